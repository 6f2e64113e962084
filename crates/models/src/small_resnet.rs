//! A small ResNet for 28×28 grey images (Fashion-MNIST), with torchvision's module names:
//! a 3×3 stem conv – BatchNorm – ReLU, then one stage per width of basic blocks
//! (conv–BN–ReLU–conv–BN plus the skip, 1×1 conv–BN `downsample` where the shape changes,
//! ReLU after the sum), stride 2 at the start of every stage but the first, global average
//! pooling and `fc`. The weights the project trained ship in `weights/fashion_resnet.safetensors`
//! (`examples/train_fashion_resnet`).
//!
//! For LRP, [`SmallResNet::canonized`] folds every BatchNorm into its conv; the residual sums
//! already go through `RuleCtx::add`, where composites attach their sum rule.

use crate::error::{Error, Result};
use crate::resnet::ConvBn;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::nn::Linear;
use candle_explain_core::ops::pool::PoolGeometry;
use candle_explain_core::{Activation, Explainable, RuleCtx};
use candle_nn::VarBuilder;
use std::path::Path;

/// Fashion-MNIST's pixel statistics over the training set (inputs are `(x/255 − mean)/std`).
pub const FASHION_MEAN: f64 = 0.2860;
pub const FASHION_STD: f64 = 0.3530;

/// Fashion-MNIST's class names, in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

#[derive(Debug, Clone, PartialEq)]
pub struct SmallResNetConfig {
    pub in_channels: usize,
    /// Channels of each stage; every stage after the first halves the resolution.
    pub widths: Vec<usize>,
    pub blocks_per_stage: usize,
    pub num_classes: usize,
    /// Input height = width.
    pub input_size: usize,
}

impl SmallResNetConfig {
    /// The Fashion-MNIST model of `weights/`: widths 16, 32, 64, one block each (78k parameters).
    pub fn fashion_mnist() -> Self {
        Self {
            in_channels: 1,
            widths: vec![16, 32, 64],
            blocks_per_stage: 1,
            num_classes: 10,
            input_size: 28,
        }
    }

    fn check(&self) -> Result<usize> {
        let bad = |reason: String| {
            Error::from(candle_explain_core::Error::Unsupported(format!(
                "small ResNet: {reason}"
            )))
        };
        if self.widths.is_empty()
            || self.widths.contains(&0)
            || self.blocks_per_stage == 0
            || self.in_channels == 0
            || self.num_classes == 0
        {
            return Err(bad(format!(
                "need non-empty non-zero widths, blocks, channels and classes, got {self:?}"
            )));
        }
        // 3×3 convs with padding 1 and stride 2 map s to ceil(s/2).
        let mut s = self.input_size;
        for _ in 1..self.widths.len() {
            s = s.div_ceil(2);
        }
        if self.input_size == 0 || s == 0 {
            return Err(bad(format!(
                "input size {} is too small for {} stages",
                self.input_size,
                self.widths.len()
            )));
        }
        Ok(s)
    }
}

#[derive(Debug, Clone)]
struct BasicBlock {
    conv1: ConvBn,
    conv2: ConvBn,
    downsample: Option<ConvBn>,
}

impl BasicBlock {
    fn load(vb: VarBuilder, cin: usize, cout: usize, stride: usize) -> Result<Self> {
        let downsample = if stride != 1 || cin != cout {
            Some(ConvBn::load(
                &vb,
                "downsample.0",
                "downsample.1",
                (cin, cout),
                1,
                stride,
            )?)
        } else {
            None
        };
        Ok(Self {
            conv1: ConvBn::load(&vb, "conv1", "bn1", (cin, cout), 3, stride)?,
            conv2: ConvBn::load(&vb, "conv2", "bn2", (cout, cout), 3, 1)?,
            downsample,
        })
    }

    fn forward(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let h = ctx.activation(Activation::Relu, &self.conv1.forward(x, ctx)?)?;
        let h = self.conv2.forward(&h, ctx)?;
        let skip = match &self.downsample {
            Some(d) => d.forward(x, ctx)?,
            None => x.clone(),
        };
        ctx.activation(Activation::Relu, &ctx.add(&h, &skip)?)
    }

    fn folded(&self) -> Result<Self> {
        Ok(Self {
            conv1: self.conv1.folded()?,
            conv2: self.conv2.folded()?,
            downsample: self.downsample.as_ref().map(ConvBn::folded).transpose()?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct SmallResNet {
    config: SmallResNetConfig,
    stem: ConvBn,
    /// `layers[stage][block]`.
    layers: Vec<Vec<BasicBlock>>,
    fc: Linear,
    pool: usize,
}

impl SmallResNet {
    /// Loads `conv1`, `bn1`, `layer{s}.{b}.{conv1,bn1,conv2,bn2,downsample.0,downsample.1}`
    /// and `fc` (a fresh `VarMap` gets PyTorch's initial values).
    pub fn load(vb: VarBuilder, config: SmallResNetConfig) -> Result<Self> {
        let pool = config.check()?;
        let stem = ConvBn::load(
            &vb,
            "conv1",
            "bn1",
            (config.in_channels, config.widths[0]),
            3,
            1,
        )?;
        let mut layers = vec![];
        let mut cin = config.widths[0];
        for (s, &w) in config.widths.iter().enumerate() {
            let mut blocks = vec![];
            for b in 0..config.blocks_per_stage {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::load(
                    vb.pp(format!("layer{}.{b}", s + 1)),
                    cin,
                    w,
                    stride,
                )?);
                cin = w;
            }
            layers.push(blocks);
        }
        let fc = Linear::load(vb.pp("fc"), cin, config.num_classes)?;
        Ok(Self {
            config,
            stem,
            layers,
            fc,
            pool,
        })
    }

    /// Loads a safetensors checkpoint, with a clear error for a missing or damaged file.
    pub fn from_file(
        path: impl AsRef<Path>,
        config: SmallResNetConfig,
        device: &Device,
    ) -> Result<Self> {
        Self::from_file_as(path, config, DType::F32, device)
    }

    /// [`SmallResNet::from_file`] computing in `dtype` (f32, bf16 or f16).
    pub fn from_file_as(
        path: impl AsRef<Path>,
        config: SmallResNetConfig,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        crate::checkpoint::load(path.as_ref(), dtype, device, |vb| Self::load(vb, config))
    }

    /// Raw pixels `0..=255` → the model's input scale.
    pub fn normalize(pixels: &Tensor) -> Result<Tensor> {
        Ok(pixels.affine(1.0 / (255.0 * FASHION_STD), -FASHION_MEAN / FASHION_STD)?)
    }

    /// The same function with every BatchNorm folded into the conv before it (Zennit's
    /// canonizer), for LRP; gradients and predictions are unchanged.
    pub fn canonized(&self) -> Result<Self> {
        Ok(Self {
            config: self.config.clone(),
            stem: self.stem.folded()?,
            layers: self
                .layers
                .iter()
                .map(|bs| {
                    bs.iter()
                        .map(BasicBlock::folded)
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<_>>()?,
            fc: self.fc.clone(),
            pool: self.pool,
        })
    }

    pub fn config(&self) -> &SmallResNetConfig {
        &self.config
    }
}

impl Explainable for SmallResNet {
    /// Every BatchNorm folded into its conv ([`SmallResNet::canonized`]): what composites with
    /// the `MergeBatchNorm` canonizer explain.
    fn canonized(&self) -> candle_explain_core::Result<Option<Box<dyn Explainable + '_>>> {
        Ok(Some(Box::new(SmallResNet::canonized(self)?)))
    }

    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let mut h = ctx.activation(Activation::Relu, &self.stem.forward(x, ctx)?)?;
        for (s, blocks) in self.layers.iter().enumerate() {
            for block in blocks {
                h = block.forward(&h, ctx)?;
            }
            // Taps name each stage's output as torchvision does (`layer3` for Grad-CAM).
            h = ctx.tap(&format!("layer{}", s + 1), &h)?;
        }
        let p = PoolGeometry {
            kernel: (self.pool, self.pool),
            stride: (self.pool, self.pool),
        };
        let h = ctx.avg_pool2d(&h, p)?.flatten_from(1)?;
        self.fc.forward_with(&h, ctx)
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        Some(vec![
            self.config.in_channels,
            self.config.input_size,
            self.config.input_size,
        ])
    }
}
