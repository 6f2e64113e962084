//! Shared set-up: the device (chosen by feature), seeded random models, and syncing.

pub mod families;
pub mod llm;
pub mod methods;
pub mod metrics;
pub mod op_stacks;
pub mod padded_text;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;

/// The device the benches run on: CUDA or Metal when compiled in, else the CPU. On CUDA,
/// `BENCH_TF32=1` lets f32 matmuls use TF32 (the op layer's TF32 target).
pub fn device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        if std::env::var("BENCH_TF32").as_deref() == Ok("1") {
            candle_core::cuda::set_gemm_reduced_precision_f32(true);
        }
        return d;
    }
    #[cfg(feature = "metal")]
    if let Ok(d) = Device::new_metal(0) {
        return d;
    }
    Device::Cpu
}

/// The dtype of the op-layer passes (`methods.rs`' MNIST CNN, `op_stacks.rs`):
/// `BENCH_DTYPE` = `f32` (default), `bf16` or `f16`.
pub fn bench_dtype() -> DType {
    match std::env::var("BENCH_DTYPE").as_deref() {
        Ok("bf16") => DType::BF16,
        Ok("f16") => DType::F16,
        _ => DType::F32,
    }
}

/// Names the precision in bench group names: empty for plain f32, else `_bf16`, `_f16`
/// or `_tf32`, so that runs in different precisions keep separate criterion histories.
pub fn precision() -> String {
    match bench_dtype() {
        DType::F32 if std::env::var("BENCH_TF32").as_deref() == Ok("1") => "_tf32".into(),
        DType::F32 => String::new(),
        d => format!("_{}", d.as_str()),
    }
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
    VarBuilder::from_tensors(m, bench_dtype(), dev)
}
