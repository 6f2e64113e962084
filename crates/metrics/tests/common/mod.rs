//! Helpers shared by the metrics tests.
#![allow(dead_code)]

use candle_core::{Device, Tensor};

/// Fixed pseudo-random numbers in [lo, hi) from a plain LCG: the tests need fixed values,
/// not statistics.
pub fn uniform(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    let mut s = seed.wrapping_add(1).wrapping_mul(6364136223846793005);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}
