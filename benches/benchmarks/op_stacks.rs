//! Forward + backward-to-input on PERFORMANCE.md's op-layer cases, through our ops (the
//! gradient rule) and through Candle's stock autograd, with the shapes and initialisation of
//! `../shared/bench/torch_fwd_bwd.py` (its `--modes input` is the PyTorch side):
//! - `bert_stack`: 6 post-LN encoder layers, hidden 384, 12 heads, FFN 1536, GELU, 64 tokens,
//!   200 sequences in one chunk (`bert:6:384:12:1536:64:200:200`);
//! - `resnet_stack`: 3 bottlenecks (256 → 64 → 64 → 256, biases, no BatchNorm) at 56×56,
//!   16 images (`resnet:3:16:16`).
//!
//! (The MNIST CNN's pass is `mnist_cnn_b32_*/fwd_bwd_1600_*` in `methods.rs`.) The seed is
//! all ones, as torch's `out.sum()`.

use super::{bench_dtype, device, precision, sync};
use candle_core::{Result as CResult, Tensor};
use candle_explain::core::batch::gradient;
use candle_explain::core::ops::conv::ConvGeometry;
use candle_explain::prelude::*;
use criterion::{criterion_group, Criterion, Throughput};

/// `super::uniform` in the dtype of the run (`BENCH_DTYPE`).
fn uniform(shape: &[usize], a: f32, seed: u64, dev: &candle_core::Device) -> Tensor {
    super::uniform(shape, a, seed, dev)
        .to_dtype(bench_dtype())
        .expect("dtype")
}

/// `(weight, bias)` of a linear layer `in → out`, U(±1/√in).
fn lin(i: usize, o: usize, seed: u64, dev: &candle_core::Device) -> (Tensor, Tensor) {
    let a = 1.0 / (i as f32).sqrt();
    (
        uniform(&[o, i], a, seed, dev),
        uniform(&[o], a, seed + 1, dev),
    )
}

struct BertStack {
    /// Per layer: q, k, v, o, f1, f2 and the two LayerNorms' (γ, β).
    layers: Vec<([(Tensor, Tensor); 6], [(Tensor, Tensor); 2])>,
    heads: usize,
}

impl BertStack {
    fn new(layers: usize, h: usize, heads: usize, ffn: usize, dev: &candle_core::Device) -> Self {
        let layers = (0..layers as u64)
            .map(|l| {
                let s = 100 * l;
                let dims = [(h, h), (h, h), (h, h), (h, h), (h, ffn), (ffn, h)];
                let lins =
                    std::array::from_fn(|k| lin(dims[k].0, dims[k].1, s + 10 * k as u64, dev));
                let ln = std::array::from_fn(|k| {
                    (
                        (uniform(&[h], 0.1, s + 80 + k as u64, dev) + 1.0).unwrap(),
                        uniform(&[h], 0.1, s + 90 + k as u64, dev),
                    )
                });
                (lins, ln)
            })
            .collect();
        Self { layers, heads }
    }
}

impl Explainable for BertStack {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain::core::Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let hd = h / self.heads;
        let mut x = x.clone();
        for (l, ln) in &self.layers {
            let lin = |t: &Tensor, k: usize| ctx.linear(t, &l[k].0, Some(&l[k].1));
            let heads = |t: Tensor| -> CResult<Tensor> {
                t.reshape((b, s, self.heads, hd))?.transpose(1, 2)
            };
            let (q, k, v) = (
                heads(lin(&x, 0)?)?,
                heads(lin(&x, 1)?)?,
                heads(lin(&x, 2)?)?,
            );
            let a = ctx.attention(&q, &k, &v, None, 1.0 / (hd as f64).sqrt())?;
            let a = a.transpose(1, 2)?.reshape((b, s, h))?;
            x = ctx.layer_norm(&ctx.add(&lin(&a, 3)?, &x)?, &ln[0].0, Some(&ln[0].1), 1e-12)?;
            let f = lin(&ctx.activation(Activation::Gelu, &lin(&x, 4)?)?, 5)?;
            x = ctx.layer_norm(&ctx.add(&f, &x)?, &ln[1].0, Some(&ln[1].1), 1e-12)?;
        }
        Ok(x.flatten_from(1)?)
    }
}

struct ResNetStack {
    /// Per block: (weight, bias) of the 1×1 reduce, 3×3, 1×1 expand convs.
    blocks: Vec<[(Tensor, Tensor); 3]>,
}

impl ResNetStack {
    fn new(blocks: usize, dev: &candle_core::Device) -> Self {
        let conv = |cin: usize, cout: usize, k: usize, seed: u64| {
            let a = 1.0 / ((cin * k * k) as f32).sqrt();
            (
                uniform(&[cout, cin, k, k], a, seed, dev),
                uniform(&[cout], a, seed + 1, dev),
            )
        };
        Self {
            blocks: (0..blocks as u64)
                .map(|i| {
                    [
                        conv(256, 64, 1, 10 * i),
                        conv(64, 64, 3, 10 * i + 3),
                        conv(64, 256, 1, 10 * i + 6),
                    ]
                })
                .collect(),
        }
    }
}

impl Explainable for ResNetStack {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain::core::Result<Tensor> {
        let mut x = x.clone();
        let one = ConvGeometry::default();
        let pad = ConvGeometry {
            padding: 1,
            ..Default::default()
        };
        for [c1, c2, c3] in &self.blocks {
            let h = ctx.activation(Activation::Relu, &ctx.conv2d(&x, &c1.0, Some(&c1.1), one)?)?;
            let h = ctx.activation(Activation::Relu, &ctx.conv2d(&h, &c2.0, Some(&c2.1), pad)?)?;
            let h = ctx.conv2d(&h, &c3.0, Some(&c3.1), one)?;
            x = ctx.activation(Activation::Relu, &ctx.add(&h, &x)?)?;
        }
        Ok(x.flatten_from(1)?)
    }
}

fn pass(c: &mut Criterion, group: &str, model: &dyn Explainable, x: &Tensor) {
    let dev = x.device().clone();
    let out = model.forward(x).unwrap();
    let seed = out.ones_like().unwrap();
    let mut g = c.benchmark_group(format!(
        "{group}{}_{}",
        precision(),
        if dev.is_cpu() { "cpu" } else { "gpu" }
    ));
    g.sample_size(10);
    g.throughput(Throughput::Elements(x.dim(0).unwrap() as u64));
    g.bench_function("fwd", |b| {
        b.iter(|| {
            let r = model.forward_with(x, &RuleCtx::inference()).unwrap();
            sync(&dev);
            r
        })
    });
    g.bench_function("fwd_bwd_ours", |b| {
        b.iter(|| {
            let r = gradient(model, x, &seed, &RuleCtx::rule(ActRule::Gradient).unwrap()).unwrap();
            sync(&dev);
            r
        })
    });
    g.bench_function("fwd_bwd_stock", |b| {
        b.iter(|| {
            let r = gradient(model, x, &seed, &RuleCtx::plain()).unwrap();
            sync(&dev);
            r
        })
    });
    g.finish();
}

fn bench_stacks(c: &mut Criterion) {
    let dev = device();
    let bert = BertStack::new(6, 384, 12, 1536, &dev);
    pass(
        c,
        "bert_stack_6x384_s64_n200",
        &bert,
        &uniform(&[200, 64, 384], 1.0, 1, &dev),
    );
    let resnet = ResNetStack::new(3, &dev);
    pass(
        c,
        "resnet_stack_3x256_56_n16",
        &resnet,
        &uniform(&[16, 256, 56, 56], 1.0, 2, &dev),
    );
}

criterion_group!(benches, bench_stacks);
