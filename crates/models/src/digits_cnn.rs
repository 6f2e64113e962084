//! The trained MNIST digits CNN shipped in `weights/digits_cnn.safetensors` (converted from
//! the `digit-recognizer-py` package, MIT; see `weights/README.md`): three conv(3×3, pad 1)
//! – ReLU – max-pool(2) blocks with 32, 64 and 128 channels (28 → 14 → 7 → 3), flatten,
//! fc(1152 → 256) – ReLU – fc(256 → 10). Inputs are `(x/255 − 0.1307)/0.3081`.

use crate::error::Result;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::nn::{Conv2d, Linear, MaxPool2d};
use candle_explain_core::ops::conv::ConvGeometry;
use candle_explain_core::{Activation, Explainable, RuleCtx};
use candle_nn::VarBuilder;
use std::path::Path;

/// MNIST normalisation used in training.
pub const MNIST_MEAN: f64 = 0.1307;
pub const MNIST_STD: f64 = 0.3081;

#[derive(Debug, Clone)]
pub struct DigitsCnn {
    convs: [Conv2d; 3],
    fc1: Linear,
    fc2: Linear,
}

impl DigitsCnn {
    /// Loads the PyTorch names `conv_layers.{0,3,6}` and `fc_layers.{0,2}`.
    pub fn load(vb: VarBuilder) -> Result<Self> {
        let g = ConvGeometry {
            padding: 1,
            ..Default::default()
        };
        let conv =
            |i: usize, cin, cout| Conv2d::load(vb.pp(format!("conv_layers.{i}")), cin, cout, 3, g);
        Ok(Self {
            convs: [conv(0, 1, 32)?, conv(3, 32, 64)?, conv(6, 64, 128)?],
            fc1: Linear::load(vb.pp("fc_layers.0"), 1152, 256)?,
            fc2: Linear::load(vb.pp("fc_layers.2"), 256, 10)?,
        })
    }

    /// Loads a safetensors checkpoint, with a clear error for a missing or damaged file.
    pub fn from_file(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Self::from_file_as(path, DType::F32, device)
    }

    /// [`DigitsCnn::from_file`] computing in `dtype` (f32, bf16 or f16).
    pub fn from_file_as(path: impl AsRef<Path>, dtype: DType, device: &Device) -> Result<Self> {
        crate::checkpoint::load(path.as_ref(), dtype, device, Self::load)
    }

    /// Raw pixels `0..=255` → the model's input scale.
    pub fn normalize(pixels: &Tensor) -> Result<Tensor> {
        Ok(pixels.affine(1.0 / (255.0 * MNIST_STD), -MNIST_MEAN / MNIST_STD)?)
    }
}

impl Explainable for DigitsCnn {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        // Taps carry PyTorch's module names (conv_layers.0 = conv, .1 = its ReLU, .2 = pool, …;
        // fc_layers.0 = the first dense layer, .1 = its ReLU).
        let mut h = x.clone();
        for (i, conv) in self.convs.iter().enumerate() {
            h = ctx.tap(
                &format!("conv_layers.{}", 3 * i),
                &conv.forward_with(&h, ctx)?,
            )?;
            h = ctx.tap(
                &format!("conv_layers.{}", 3 * i + 1),
                &ctx.activation(Activation::Relu, &h)?,
            )?;
            h = ctx.tap(
                &format!("conv_layers.{}", 3 * i + 2),
                &MaxPool2d::new(2).forward_with(&h, ctx)?,
            )?;
        }
        let h = ctx.tap(
            "fc_layers.0",
            &self.fc1.forward_with(&h.flatten_from(1)?, ctx)?,
        )?;
        let h = ctx.tap("fc_layers.1", &ctx.activation(Activation::Relu, &h)?)?;
        self.fc2.forward_with(&h, ctx)
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        Some(vec![1, 28, 28])
    }
}
