//! Shared set-up: the device (chosen by feature), seeded random models, and syncing.

pub mod families;
pub mod methods;
pub mod metrics;
pub mod op_stacks;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;

/// The device the benches run on: CUDA or Metal when compiled in, else the CPU.
pub fn device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    #[cfg(feature = "metal")]
    if let Ok(d) = Device::new_metal(0) {
        return d;
    }
    Device::Cpu
}

/// Waits for queued device work, so that timings include it.
pub fn sync(dev: &Device) {
    dev.synchronize().expect("device sync");
}

/// Deterministic uniform values in [−a, a] (a small LCG: benches need no statistics).
pub fn uniform(shape: &[usize], a: f32, seed: u64, dev: &Device) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32 * 2.0 - 1.0) * a
        })
        .collect();
    Tensor::from_vec(v, shape, dev).expect("tensor")
}

/// PyTorch-style initialised weights for the given (name, shape, fan_in) list.
pub fn var_builder(params: &[(&str, &[usize], usize)], dev: &Device) -> VarBuilder<'static> {
    let mut m = HashMap::new();
    for (i, (name, shape, fan_in)) in params.iter().enumerate() {
        m.insert(
            name.to_string(),
            uniform(shape, 1.0 / (*fan_in as f32).sqrt(), i as u64 + 1, dev),
        );
    }
    VarBuilder::from_tensors(m, DType::F32, dev)
}
