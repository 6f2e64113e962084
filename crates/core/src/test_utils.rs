//! Helpers for tests (also used by the other crates' tests).

/// Defines a test for every device that is compiled in: `NAME_cpu`, and `NAME_cuda` /
/// `NAME_metal` with the `cuda` / `metal` features (Candle's habit).
#[macro_export]
macro_rules! test_device {
    ($fn_name: ident, $test_cpu: ident, $test_cuda: ident, $test_metal: ident) => {
        #[test]
        fn $test_cpu() -> anyhow::Result<()> {
            $fn_name(&candle_core::Device::Cpu)
        }

        #[cfg(feature = "cuda")]
        #[test]
        fn $test_cuda() -> anyhow::Result<()> {
            $fn_name(&candle_core::Device::new_cuda(0)?)
        }

        #[cfg(feature = "metal")]
        #[test]
        fn $test_metal() -> anyhow::Result<()> {
            $fn_name(&candle_core::Device::new_metal(0)?)
        }
    };
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> candle_core::Result<f32> {
    (a - b)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_dtype(candle_core::DType::F32)?
        .to_scalar::<f32>()
}
