//! The MNIST-size CNN of PyTorch's MNIST example and of PERFORMANCE.md's measurements:
//! conv(1→32, 3×3) – ReLU – conv(32→64, 3×3) – ReLU – max-pool 2 – fc(9216→128) – ReLU –
//! fc(128→10), on `(1, 28, 28)` inputs.

use candle_core::Tensor;
use candle_explain_core::nn::{Conv2d, Linear, MaxPool2d};
use candle_explain_core::ops::conv::ConvGeometry;
use candle_explain_core::{Activation, Explainable, Result, RuleCtx};

use candle_nn::VarBuilder;

#[derive(Debug, Clone)]
pub struct MnistCnn {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
}

impl MnistCnn {
    /// Loads `conv1`, `conv2`, `fc1`, `fc2` (`weight` and `bias` each).
    pub fn load(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv1: Conv2d::load(vb.pp("conv1"), 1, 32, 3, ConvGeometry::default())?,
            conv2: Conv2d::load(vb.pp("conv2"), 32, 64, 3, ConvGeometry::default())?,
            fc1: Linear::load(vb.pp("fc1"), 9216, 128)?,
            fc2: Linear::load(vb.pp("fc2"), 128, 10)?,
        })
    }
}

impl Explainable for MnistCnn {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        let h = ctx.activation(Activation::Relu, &self.conv1.forward_with(x, ctx)?)?;
        let h = ctx.activation(Activation::Relu, &self.conv2.forward_with(&h, ctx)?)?;
        let h = MaxPool2d::new(2).forward_with(&h, ctx)?.flatten_from(1)?;
        let h = ctx.activation(Activation::Relu, &self.fc1.forward_with(&h, ctx)?)?;
        self.fc2.forward_with(&h, ctx)
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        Some(vec![1, 28, 28])
    }
}
