//! Seeded random models and helpers shared by the integration tests.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use candle_explain_core::nn::{Conv2d, Flatten, Linear, MaxPool2d, Sequential};
use candle_explain_core::ops::conv::ConvGeometry;
use candle_explain_core::Activation;
use candle_nn::VarBuilder;
use rand::{Rng, SeedableRng};

pub fn uniform(shape: &[usize], lo: f32, hi: f32, seed: u64, dev: &Device) -> Tensor {
    uniform_dt(shape, lo, hi, seed, dev, DType::F32)
}

pub fn uniform_dt(shape: &[usize], lo: f32, hi: f32, seed: u64, dev: &Device, dt: DType) -> Tensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_vec(v, shape, dev)
        .unwrap()
        .to_dtype(dt)
        .unwrap()
}

/// PyTorch-like init: U(−a, a), a = scale / sqrt(fan_in).
fn layer(shape: &[usize], fan_in: usize, scale: f32, seed: u64, dev: &Device, dt: DType) -> Tensor {
    let a = scale / (fan_in as f32).sqrt();
    uniform_dt(shape, -a, a, seed, dev, dt)
}

/// MLP `in → hidden… → out` with the given activation; biases optional.
pub fn mlp(dims: &[usize], act: Activation, bias: bool, seed: u64, dev: &Device) -> Sequential {
    mlp_dt(dims, act, bias, seed, dev, DType::F32)
}

pub fn mlp_dt(
    dims: &[usize],
    act: Activation,
    bias: bool,
    seed: u64,
    dev: &Device,
    dt: DType,
) -> Sequential {
    let mut m = Sequential::new().with_input_shape(&[dims[0]]);
    for (i, w) in dims.windows(2).enumerate() {
        let s = seed * 100 + i as u64;
        let weight = layer(&[w[1], w[0]], w[0], 2.0, s, dev, dt);
        let b = bias.then(|| layer(&[w[1]], w[0], 1.0, s + 50, dev, dt));
        m = m.push(Linear::new(weight, b));
        if i + 2 < dims.len() {
            m = m.push(act);
        }
    }
    m
}

/// CNN on `(1, 12, 12)`: conv3 (4) – act – conv3 pad 1 (6) – act – maxpool 2 – fc (16) – act – fc (3).
pub fn cnn(act: Activation, bias: bool, seed: u64, dev: &Device) -> Sequential {
    cnn_dt(act, bias, seed, dev, DType::F32)
}

/// [`cnn`] with its weights in `dt`.
pub fn cnn_dt(act: Activation, bias: bool, seed: u64, dev: &Device, dt: DType) -> Sequential {
    let s = seed * 100;
    let b =
        |shape: &[usize], fan: usize, k: u64| bias.then(|| layer(shape, fan, 1.0, s + k, dev, dt));
    Sequential::new()
        .with_input_shape(&[1, 12, 12])
        .push(Conv2d::new(
            layer(&[4, 1, 3, 3], 9, 2.0, s + 1, dev, dt),
            b(&[4], 9, 11),
            ConvGeometry::default(),
        ))
        .push(act)
        .push(Conv2d::new(
            layer(&[6, 4, 3, 3], 36, 2.0, s + 2, dev, dt),
            b(&[6], 36, 12),
            ConvGeometry {
                padding: 1,
                ..Default::default()
            },
        ))
        .push(act)
        .push(MaxPool2d::new(2))
        .push(Flatten)
        .push(Linear::new(
            layer(&[16, 150], 150, 2.0, s + 3, dev, dt),
            b(&[16], 150, 13),
        ))
        .push(act)
        .push(Linear::new(
            layer(&[3, 16], 16, 2.0, s + 4, dev, dt),
            b(&[3], 16, 14),
        ))
}

pub fn max_abs(t: &Tensor) -> f32 {
    t.to_dtype(DType::F32)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

pub fn assert_close(a: &Tensor, b: &Tensor, tol: f32, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes differ");
    let d = max_abs(&(a - b).unwrap());
    let scale = max_abs(b).max(1.0);
    assert!(
        d <= tol * scale,
        "{what}: max |a − b| = {d} > {tol} × {scale}"
    );
}

pub fn vec1(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// The small CNN of the golden files (`scripts/golden/core_captum.py`), loaded under its
/// PyTorch names: conv1 – relu – conv2 (pad 1) – relu – maxpool 2 – flatten – fc1 – relu – fc2.
pub fn golden_cnn(vb: VarBuilder) -> Sequential {
    Sequential::new()
        .with_input_shape(&[1, 10, 10])
        .push(Conv2d::load(vb.pp("conv1"), 1, 4, 3, ConvGeometry::default()).unwrap())
        .push(Activation::Relu)
        .push(
            Conv2d::load(
                vb.pp("conv2"),
                4,
                6,
                3,
                ConvGeometry {
                    padding: 1,
                    ..Default::default()
                },
            )
            .unwrap(),
        )
        .push(Activation::Relu)
        .push(MaxPool2d::new(2))
        .push(Flatten)
        .push(Linear::load(vb.pp("fc1"), 96, 16).unwrap())
        .push(Activation::Relu)
        .push(Linear::load(vb.pp("fc2"), 16, 3).unwrap())
}
