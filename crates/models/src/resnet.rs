//! torchvision's bottleneck ResNets (ResNet-50 / 101 / 152) with torchvision's tensor names
//! (`conv1`, `bn1`, `layer{1..4}.{i}.{conv1,bn1,conv2,bn2,conv3,bn3,downsample.0,downsample.1}`,
//! `fc`), so a converted torchvision checkpoint loads unchanged. The stride sits on the 3×3
//! conv (torchvision's "ResNet v1.5").
//!
//! The stem's 3×3 / stride-2 max-pool pads with −∞ in PyTorch; it follows a ReLU here, so
//! padding with zeros gives the same maxima, and our pool (no padding) runs on a zero-padded
//! input. [`ResNet::canonized`] folds every BatchNorm into its conv for LRP.

use crate::error::Result;
use candle_core::Tensor;
use candle_explain_core::canonize::fold_conv_batch_norm;
use candle_explain_core::nn::{BatchNorm, Conv2d, Linear};
use candle_explain_core::ops::conv::ConvGeometry;
use candle_explain_core::ops::pool::PoolGeometry;
use candle_explain_core::{Activation, Explainable, RuleCtx};
use candle_nn::VarBuilder;

/// A conv and the BatchNorm after it (`None` once folded); shared with the small ResNet.
#[derive(Debug, Clone)]
pub(crate) struct ConvBn {
    conv: Conv2d,
    bn: Option<BatchNorm>,
}

impl ConvBn {
    pub(crate) fn load(
        vb: &VarBuilder,
        conv: &str,
        bn: &str,
        (cin, cout): (usize, usize),
        k: usize,
        stride: usize,
    ) -> Result<Self> {
        let g = ConvGeometry {
            padding: k / 2,
            stride,
            ..Default::default()
        };
        Ok(Self {
            conv: Conv2d::load_no_bias(vb.pp(conv), cin, cout, k, g)?,
            bn: Some(BatchNorm::load(vb.pp(bn), cout, 1e-5)?),
        })
    }

    pub(crate) fn forward(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let y = self.conv.forward_with(x, ctx)?;
        match &self.bn {
            Some(bn) => bn.forward_with(&y, ctx),
            None => Ok(y),
        }
    }

    pub(crate) fn folded(&self) -> Result<Self> {
        Ok(match &self.bn {
            Some(bn) => Self {
                conv: fold_conv_batch_norm(&self.conv, bn)?,
                bn: None,
            },
            None => self.clone(),
        })
    }
}

#[derive(Debug, Clone)]
struct Bottleneck {
    convs: [ConvBn; 3],
    downsample: Option<ConvBn>,
}

impl Bottleneck {
    const EXPANSION: usize = 4;

    fn load(vb: VarBuilder, cin: usize, width: usize, stride: usize) -> Result<Self> {
        let cout = width * Self::EXPANSION;
        let downsample = (stride != 1 || cin != cout)
            .then(|| ConvBn::load(&vb, "downsample.0", "downsample.1", (cin, cout), 1, stride))
            .transpose()?;
        Ok(Self {
            convs: [
                ConvBn::load(&vb, "conv1", "bn1", (cin, width), 1, 1)?,
                ConvBn::load(&vb, "conv2", "bn2", (width, width), 3, stride)?,
                ConvBn::load(&vb, "conv3", "bn3", (width, cout), 1, 1)?,
            ],
            downsample,
        })
    }

    fn forward(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let h = ctx.activation(Activation::Relu, &self.convs[0].forward(x, ctx)?)?;
        let h = ctx.activation(Activation::Relu, &self.convs[1].forward(&h, ctx)?)?;
        let h = self.convs[2].forward(&h, ctx)?;
        let skip = match &self.downsample {
            Some(d) => d.forward(x, ctx)?,
            None => x.clone(),
        };
        ctx.activation(Activation::Relu, &ctx.add(&h, &skip)?)
    }

    fn folded(&self) -> Result<Self> {
        Ok(Self {
            convs: [
                self.convs[0].folded()?,
                self.convs[1].folded()?,
                self.convs[2].folded()?,
            ],
            downsample: self.downsample.as_ref().map(ConvBn::folded).transpose()?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ResNet {
    stem: ConvBn,
    layers: Vec<Vec<Bottleneck>>,
    fc: Linear,
}

impl ResNet {
    /// Blocks per stage of ResNet-50.
    pub const RESNET50: [usize; 4] = [3, 4, 6, 3];

    /// A bottleneck ResNet with `blocks` per stage (`[3, 4, 6, 3]`: ResNet-50) and
    /// `num_classes` outputs; a fresh `VarMap` gets PyTorch's initial values.
    pub fn load(vb: VarBuilder, blocks: [usize; 4], num_classes: usize) -> Result<Self> {
        let stem = ConvBn::load(&vb, "conv1", "bn1", (3, 64), 7, 2)?;
        let mut cin = 64;
        let mut layers = vec![];
        for (s, &n) in blocks.iter().enumerate() {
            let width = 64 << s;
            let mut stage = vec![];
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                stage.push(Bottleneck::load(
                    vb.pp(format!("layer{}.{b}", s + 1)),
                    cin,
                    width,
                    stride,
                )?);
                cin = width * Bottleneck::EXPANSION;
            }
            layers.push(stage);
        }
        Ok(Self {
            stem,
            layers,
            fc: Linear::load(vb.pp("fc"), cin, num_classes)?,
        })
    }

    /// The same function with every BatchNorm folded into its conv (for LRP).
    pub fn canonized(&self) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|s| s.iter().map(Bottleneck::folded).collect::<Result<Vec<_>>>())
            .collect::<Result<_>>()?;
        Ok(Self {
            stem: self.stem.folded()?,
            layers,
            fc: self.fc.clone(),
        })
    }
}

impl Explainable for ResNet {
    /// Every BatchNorm folded into its conv ([`ResNet::canonized`]): what composites with
    /// the `MergeBatchNorm` canonizer explain.
    fn canonized(&self) -> candle_explain_core::Result<Option<Box<dyn Explainable + '_>>> {
        Ok(Some(Box::new(ResNet::canonized(self)?)))
    }

    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        if x.rank() != 4 || x.dim(1)? != 3 || x.dim(2)? < 32 || x.dim(3)? < 32 {
            return Err(candle_explain_core::Error::InputShape {
                expected: "(batch, 3, H, W) with H, W ≥ 32 (trained at 224)".into(),
                got: x.dims().to_vec(),
            });
        }
        let h = ctx.activation(Activation::Relu, &self.stem.forward(x, ctx)?)?;
        let h = h.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?;
        let mut h = ctx.max_pool2d(
            &h,
            PoolGeometry {
                kernel: (3, 3),
                stride: (2, 2),
            },
        )?;
        for (s, stage) in self.layers.iter().enumerate() {
            for block in stage {
                h = block.forward(&h, ctx)?;
            }
            h = ctx.tap(&format!("layer{}", s + 1), &h)?;
        }
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

    /// Any size from 32×32 (global average pooling); trained at 224².
    fn input_shape(&self) -> Option<Vec<usize>> {
        None
    }
}
