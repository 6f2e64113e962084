//! Helpers shared by the metrics tests.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use candle_explain_core::nn::{Conv2d, Flatten, Linear, MaxPool2d, Sequential};
use candle_explain_core::ops::conv::ConvGeometry;
use candle_explain_core::Activation;

/// Fixed pseudo-random numbers in [lo, hi) from a plain LCG: the tests need fixed values,
/// not statistics.
pub fn uniform(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    let mut s = seed.wrapping_add(1).wrapping_mul(6364136223846793005);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// A small CNN on 6×6 single-channel inputs: conv(4, 3×3, pad 1) – ReLU – max-pool(2) – linear(3).
pub fn cnn() -> Sequential {
    Sequential::new()
        .push(Conv2d::new(
            uniform(&[4, 1, 3, 3], -0.6, 0.6, 3),
            Some(uniform(&[4], -0.1, 0.1, 4)),
            ConvGeometry {
                padding: 1,
                ..Default::default()
            },
        ))
        .push(Activation::Relu)
        .push(MaxPool2d::new(2))
        .push(Flatten)
        .push(Linear::new(uniform(&[3, 36], -0.5, 0.5, 5), None))
}
