//! Explainable layers: the building blocks models are made of.
//!
//! Each layer loads through a `VarBuilder` with PyTorch's tensor names (`weight`, `bias`)
//! and routes its forward through the [`RuleCtx`], so that any attribution rule applies.

use crate::activation::Activation;
use crate::ops::conv::ConvGeometry;
use crate::ops::pool::PoolGeometry;
use crate::{Explainable, Result, RuleCtx};
use candle_core::Tensor;
use candle_nn::VarBuilder;

/// PyTorch's default init for linear and conv layers: U(±1/√fan_in). Only used when the
/// builder creates variables (training); loading a checkpoint ignores it.
fn torch_init(fan_in: usize) -> candle_nn::Init {
    let b = 1.0 / (fan_in.max(1) as f64).sqrt();
    candle_nn::Init::Uniform { lo: -b, up: b }
}

mod sequence;
pub use sequence::{LayerNorm, Lstm, LstmDirection};

/// `y = x · Wᵀ + b` (PyTorch's `nn.Linear`).
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// Loads `weight (out, in)` and `bias (out)`. With a `VarMap` behind the builder (a fresh
    /// model to train) they are initialised as PyTorch does: U(±1/√in).
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        let init = torch_init(in_dim);
        let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
        let bias = vb.get_with_hints(out_dim, "bias", init)?;
        Ok(Self::new(weight, Some(bias)))
    }

    /// Loads a layer without bias.
    pub fn load_no_bias(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        Ok(Self::new(vb.get_with_hints((out_dim, in_dim), "weight", torch_init(in_dim))?, None))
    }
}

impl Explainable for Linear {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        ctx.linear(x, &self.weight, self.bias.as_ref())
    }
}

/// 2-D convolution (PyTorch's `nn.Conv2d`, symmetric padding).
#[derive(Debug, Clone)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub geometry: ConvGeometry,
}

impl Conv2d {
    pub fn new(weight: Tensor, bias: Option<Tensor>, geometry: ConvGeometry) -> Self {
        Self { weight, bias, geometry }
    }

    /// Loads `weight (out, in/groups, k, k)` and `bias (out)` (PyTorch's init for a fresh
    /// `VarMap`: U(±1/√fan_in)).
    pub fn load(vb: VarBuilder, in_ch: usize, out_ch: usize, kernel: usize, geometry: ConvGeometry) -> Result<Self> {
        let fan_in = in_ch / geometry.groups.max(1) * kernel * kernel;
        let weight = vb.get_with_hints((out_ch, in_ch / geometry.groups.max(1), kernel, kernel), "weight", torch_init(fan_in))?;
        let bias = vb.get_with_hints(out_ch, "bias", torch_init(fan_in))?;
        Ok(Self::new(weight, Some(bias), geometry))
    }
}

impl Explainable for Conv2d {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        ctx.conv2d(x, &self.weight, self.bias.as_ref(), self.geometry)
    }
}

/// Max-pooling (PyTorch's `nn.MaxPool2d(kernel, stride)`, no padding).
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d(pub PoolGeometry);

impl MaxPool2d {
    /// Square kernel with stride equal to the kernel (PyTorch's default).
    pub fn new(k: usize) -> Self {
        Self(PoolGeometry { kernel: (k, k), stride: (k, k) })
    }
}

impl Explainable for MaxPool2d {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        ctx.max_pool2d(x, self.0)
    }
}

impl Explainable for Activation {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        ctx.activation(*self, x)
    }
}

/// Flattens every dimension after the batch dimension.
#[derive(Debug, Clone, Copy)]
pub struct Flatten;

impl Explainable for Flatten {
    fn forward_with(&self, x: &Tensor, _ctx: &RuleCtx) -> Result<Tensor> {
        Ok(x.flatten_from(1)?)
    }
}

/// A layer whose output is tapped under a name.
pub struct Named<L> {
    pub name: String,
    pub layer: L,
}

impl<L: Explainable> Explainable for Named<L> {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        ctx.tap(&self.name, &self.layer.forward_with(x, ctx)?)
    }
}

/// Layers applied in order.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Explainable + Send + Sync>>,
    input_shape: Option<Vec<usize>>,
}

impl Sequential {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares the per-example input shape, so that methods reject wrong inputs early.
    pub fn with_input_shape(mut self, shape: &[usize]) -> Self {
        self.input_shape = Some(shape.to_vec());
        self
    }

    pub fn push<L: Explainable + Send + Sync + 'static>(mut self, layer: L) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// A layer whose output is tapped under `name` (for Grad-CAM and other layer methods).
    pub fn push_named<L: Explainable + Send + Sync + 'static>(self, name: &str, layer: L) -> Self {
        self.push(Named { name: name.to_string(), layer })
    }

    pub fn len(&self) -> usize {
        self.layers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Explainable for Sequential {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer.forward_with(&h, ctx)?;
        }
        Ok(h)
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        self.input_shape.clone()
    }
}

/// Average pooling (PyTorch's `nn.AvgPool2d(kernel, stride)`, no padding).
#[derive(Debug, Clone, Copy)]
pub struct AvgPool2d(pub PoolGeometry);

impl AvgPool2d {
    /// Square kernel with stride equal to the kernel (PyTorch's default).
    pub fn new(k: usize) -> Self {
        Self(PoolGeometry { kernel: (k, k), stride: (k, k) })
    }
}

impl Explainable for AvgPool2d {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        ctx.avg_pool2d(x, self.0)
    }
}

/// Eval-mode batch normalisation over channels (PyTorch's `nn.BatchNorm2d` / `BatchNorm1d`
/// with running statistics): `(x − mean)/sqrt(var + eps)·weight + bias`.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub eps: f64,
}

impl BatchNorm {
    /// Loads `weight`, `bias`, `running_mean`, `running_var` (PyTorch names).
    pub fn load(vb: VarBuilder, channels: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get(channels, "weight")?,
            bias: vb.get(channels, "bias")?,
            running_mean: vb.get(channels, "running_mean")?,
            running_var: vb.get(channels, "running_var")?,
            eps,
        })
    }

    /// `(scale, shift)` with `y = x·scale + shift` per channel.
    pub fn scale_shift(&self) -> Result<(Tensor, Tensor)> {
        let scale = (&self.weight / (&self.running_var + self.eps)?.sqrt()?)?;
        let shift = (&self.bias - (&self.running_mean * &scale)?)?;
        Ok((scale, shift))
    }
}

impl Explainable for BatchNorm {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        let (scale, shift) = self.scale_shift()?;
        ctx.channel_affine(x, &scale, &shift)
    }
}
