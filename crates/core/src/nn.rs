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

mod init;
mod interop;
mod sequence;
pub use sequence::{LayerNorm, Lstm, LstmDirection};

use init::{path_of, torch_init};

/// `y = x · Wᵀ + b` (PyTorch's `nn.Linear`).
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// What composites select it by: its `VarBuilder` path when loaded through one.
    pub name: Option<String>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            name: None,
        }
    }

    /// The layer named `name` (composites select rules by name).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Loads `weight (out, in)` and `bias (out)`. With a `VarMap` behind the builder (a fresh
    /// model to train) they are initialised as PyTorch does: U(±1/√in).
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        let init = torch_init(in_dim);
        let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
        let bias = vb.get_with_hints(out_dim, "bias", init)?;
        Ok(Self::new(weight, Some(bias)).named_by(&vb))
    }

    /// Loads a layer without bias.
    pub fn load_no_bias(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        Ok(Self::new(
            vb.get_with_hints((out_dim, in_dim), "weight", torch_init(in_dim))?,
            None,
        )
        .named_by(&vb))
    }

    fn named_by(self, vb: &VarBuilder) -> Self {
        match path_of(vb) {
            Some(p) => self.with_name(p),
            None => self,
        }
    }
}

impl Explainable for Linear {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        let _name = self.name.as_deref().map(|n| ctx.enter(n));
        ctx.linear(x, &self.weight, self.bias.as_ref())
    }
}

/// 2-D convolution (PyTorch's `nn.Conv2d`, symmetric padding).
#[derive(Debug, Clone)]
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub geometry: ConvGeometry,
    /// What composites select it by: its `VarBuilder` path when loaded through one.
    pub name: Option<String>,
}

impl Conv2d {
    pub fn new(weight: Tensor, bias: Option<Tensor>, geometry: ConvGeometry) -> Self {
        Self {
            weight,
            bias,
            geometry,
            name: None,
        }
    }

    /// The layer named `name` (composites select rules by name).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Loads `weight (out, in/groups, k, k)` and `bias (out)` (PyTorch's init for a fresh
    /// `VarMap`: U(±1/√fan_in)).
    pub fn load(
        vb: VarBuilder,
        in_ch: usize,
        out_ch: usize,
        kernel: usize,
        geometry: ConvGeometry,
    ) -> Result<Self> {
        let fan_in = in_ch / geometry.groups.max(1) * kernel * kernel;
        let weight = vb.get_with_hints(
            (out_ch, in_ch / geometry.groups.max(1), kernel, kernel),
            "weight",
            torch_init(fan_in),
        )?;
        let bias = vb.get_with_hints(out_ch, "bias", torch_init(fan_in))?;
        let conv = Self::new(weight, Some(bias), geometry);
        Ok(match path_of(&vb) {
            Some(p) => conv.with_name(p),
            None => conv,
        })
    }

    /// Loads `weight` only (`nn.Conv2d(…, bias=False)`, the conv before a BatchNorm).
    pub fn load_no_bias(
        vb: VarBuilder,
        in_ch: usize,
        out_ch: usize,
        kernel: usize,
        geometry: ConvGeometry,
    ) -> Result<Self> {
        let fan_in = in_ch / geometry.groups.max(1) * kernel * kernel;
        let weight = vb.get_with_hints(
            (out_ch, in_ch / geometry.groups.max(1), kernel, kernel),
            "weight",
            torch_init(fan_in),
        )?;
        let conv = Self::new(weight, None, geometry);
        Ok(match path_of(&vb) {
            Some(p) => conv.with_name(p),
            None => conv,
        })
    }
}

impl Explainable for Conv2d {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        let _name = self.name.as_deref().map(|n| ctx.enter(n));
        ctx.conv2d(x, &self.weight, self.bias.as_ref(), self.geometry)
    }
}

/// A lookup table of vectors (PyTorch's `nn.Embedding`): ids `(batch, length)` → vectors
/// `(batch, length, dim)`. Not a layer a rule applies to: methods attribute at its output.
#[derive(Debug, Clone)]
pub struct Embedding {
    pub weight: Tensor,
}

impl Embedding {
    pub fn new(weight: Tensor) -> Self {
        Self { weight }
    }

    /// The vectors of `ids`; an id outside the table is an error naming it.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let rows = self.weight.dim(0)?;
        let flat = ids.flatten_all()?.to_dtype(candle_core::DType::U32)?;
        let max = flat.max(0)?.to_scalar::<u32>()? as usize;
        if max >= rows {
            return Err(crate::error::invalid(
                "ids",
                format!("id {max} is outside the embedding table of {rows} rows"),
            ));
        }
        let mut dims = ids.dims().to_vec();
        dims.push(self.weight.dim(1)?);
        Ok(self.weight.index_select(&flat, 0)?.reshape(dims)?)
    }
}

/// Max-pooling (PyTorch's `nn.MaxPool2d(kernel, stride)`, no padding).
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d(pub PoolGeometry);

impl MaxPool2d {
    /// Square kernel with stride equal to the kernel (PyTorch's default).
    pub fn new(k: usize) -> Self {
        Self(PoolGeometry {
            kernel: (k, k),
            stride: (k, k),
        })
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
        let y = {
            // Its operations carry the tap's name too (composites select by it).
            let _name = ctx.enter(&self.name);
            self.layer.forward_with(x, ctx)?
        };
        ctx.tap(&self.name, &y)
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
        self.push(Named {
            name: name.to_string(),
            layer,
        })
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
        // Children are named by position under the enclosing name, as PyTorch names the
        // modules of an `nn.Sequential` ("0", "1", … or "features.0", …).
        for (i, layer) in self.layers.iter().enumerate() {
            let _name = ctx.enter_child(&i.to_string());
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
        Self(PoolGeometry {
            kernel: (k, k),
            stride: (k, k),
        })
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
    /// Loads `weight`, `bias`, `running_mean`, `running_var` (PyTorch names; a fresh
    /// `VarMap` gets PyTorch's initial values 1, 0, 0, 1).
    pub fn load(vb: VarBuilder, channels: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(channels, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.0))?,
            running_mean: vb.get_with_hints(
                channels,
                "running_mean",
                candle_nn::Init::Const(0.0),
            )?,
            running_var: vb.get_with_hints(channels, "running_var", candle_nn::Init::Const(1.0))?,
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

impl BatchNorm {
    /// PyTorch's default momentum of the running averages.
    pub const MOMENTUM: f64 = crate::train::BATCH_NORM_MOMENTUM;
}

impl Explainable for BatchNorm {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> Result<Tensor> {
        if ctx.is_training() {
            return crate::train::batch_norm_forward(
                x,
                (&self.weight, &self.bias),
                (&self.running_mean, &self.running_var),
                self.eps,
            );
        }
        let (scale, shift) = self.scale_shift()?;
        ctx.channel_affine(x, &scale, &shift)
    }
}
