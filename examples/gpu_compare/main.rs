//! Our side of the GPU comparison with Captum (`benches/gpu_captum.py` is the other side,
//! `benches/gpu_compare.sh` runs both on the GPU machine and prints the ratios): the same
//! cases (MNIST CNN batch 256, ResNet-50 at 224² batch 16, BERT-base at 128 tokens batch 16
//! attributed at the word embeddings), the same methods (Saliency, IG-50 Gauss–Legendre from
//! zero, SmoothGrad-20 at 15 % noise), f32 and bf16, seeded random weights. One JSON line per
//! (case, method, dtype) on stdout: median seconds, explanations per second and, for IG, the
//! relative completeness error max|Σ attr − ΔF| / max|ΔF|.
//!
//! ```text
//! cargo run --release --example gpu_compare -- [--device cpu|cuda] [--dtype f32|bf16|both] [--tf32]
//!     [--cases mnist_cnn,resnet50,bert_base] [--methods saliency,ig50,smoothgrad20]
//!     [--reps 5] [--warmup 2] [--budget-mib 8192] [--quick]
//! ```
//! `--quick` shrinks batches to 2, BERT to 16 tokens and ResNet inputs to 64² (to check the
//! binary on a CPU). Peak device memory is measured from outside (`gpu_compare.sh` polls
//! nvidia-smi around a run of one case): Candle exposes no allocator statistics.

#[global_allocator]
static GLOBAL: candle_explain::alloc::Allocator = candle_explain::alloc::Allocator;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_explain::models::{BertClassifier, BertConfig, MnistCnn, ResNet};
use candle_explain::prelude::*;
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;

struct Args {
    device: String,
    dtypes: Vec<DType>,
    tf32: bool,
    cases: Vec<String>,
    methods: Vec<String>,
    reps: usize,
    warmup: usize,
    budget_mib: usize,
    quick: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        device: "cpu".into(),
        dtypes: vec![DType::F32, DType::BF16],
        tf32: false,
        cases: ["mnist_cnn", "resnet50", "bert_base"]
            .map(String::from)
            .to_vec(),
        methods: ["saliency", "ig50", "smoothgrad20"]
            .map(String::from)
            .to_vec(),
        reps: 5,
        warmup: 2,
        budget_mib: 8192,
        quick: false,
    };
    let mut it = std::env::args().skip(1);
    let list = |s: String| s.split(',').map(str::to_string).collect::<Vec<_>>();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--device" => a.device = value()?,
            "--dtype" => {
                a.dtypes = match value()?.as_str() {
                    "f32" => vec![DType::F32],
                    "bf16" => vec![DType::BF16],
                    "both" => vec![DType::F32, DType::BF16],
                    other => bail!("--dtype f32|bf16|both, got {other:?}"),
                }
            }
            "--tf32" => a.tf32 = true,
            "--cases" => a.cases = list(value()?),
            "--methods" => a.methods = list(value()?),
            "--reps" => a.reps = value()?.parse().context("--reps takes a number")?,
            "--warmup" => a.warmup = value()?.parse().context("--warmup takes a number")?,
            "--budget-mib" => {
                a.budget_mib = value()?.parse().context("--budget-mib takes a number")?
            }
            "--quick" => a.quick = true,
            "-h" | "--help" => {
                println!("usage: gpu_compare [--device cpu|cuda] [--dtype f32|bf16|both] [--tf32] [--cases mnist_cnn,resnet50,bert_base] [--methods saliency,ig50,smoothgrad20] [--reps N] [--warmup N] [--budget-mib N] [--quick]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if a.reps == 0 || a.budget_mib == 0 {
        bail!("--reps and --budget-mib must be at least 1");
    }
    Ok(a)
}

/// Seeded random weights (PyTorch's initial scales, from the VarMap) as tensors of `dtype`.
fn weights(vars: &VarMap, dtype: DType) -> Result<HashMap<String, Tensor>> {
    let data = vars
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    data.iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().to_dtype(dtype)?)))
        .collect()
}

struct Case {
    model: Box<dyn Explainable>,
    x: Tensor,
}

fn build(name: &str, dtype: DType, quick: bool, dev: &Device) -> Result<Case> {
    let vars = VarMap::new();
    let fresh = VarBuilder::from_varmap(&vars, DType::F32, dev);
    let b = |full: usize| if quick { 2 } else { full };
    // The same model again on the VarMap's values in `dtype`.
    let again = |vars: &VarMap| -> Result<VarBuilder<'static>> {
        Ok(VarBuilder::from_tensors(weights(vars, dtype)?, dtype, dev))
    };
    Ok(match name {
        "mnist_cnn" => {
            MnistCnn::load(fresh)?;
            Case {
                model: Box::new(MnistCnn::load(again(&vars)?)?),
                x: Tensor::rand(0f32, 1.0, (b(256), 1, 28, 28), dev)?.to_dtype(dtype)?,
            }
        }
        "resnet50" => {
            ResNet::load(fresh, ResNet::RESNET50, 1000)?;
            let side = if quick { 64 } else { 224 };
            Case {
                model: Box::new(ResNet::load(again(&vars)?, ResNet::RESNET50, 1000)?.canonized()?),
                x: Tensor::randn(0f32, 1.0, (b(16), 3, side, side), dev)?.to_dtype(dtype)?,
            }
        }
        "bert_base" => {
            let cfg = BertConfig::from_json(
                r#"{"model_type": "bert", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu", "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "num_labels": 2}"#,
            )?;
            BertClassifier::load(fresh.clone(), fresh, cfg.clone())?;
            let vb = again(&vars)?;
            let len = if quick { 16 } else { 128 };
            Case {
                model: Box::new(BertClassifier::load(vb.clone(), vb, cfg)?),
                x: (Tensor::randn(0f32, 1.0, (b(16), len, 768), dev)? * 0.02)?.to_dtype(dtype)?,
            }
        }
        other => bail!("unknown case {other:?}: mnist_cnn, resnet50, bert_base"),
    })
}

fn method(name: &str, budget: usize) -> Result<Box<dyn Attributor>> {
    let batching = Batching::with_budget(budget << 20);
    Ok(match name {
        "saliency" => Box::new(Saliency::signed()),
        "ig50" => Box::new(
            IntegratedGradients {
                quadrature: Quadrature::GaussLegendre,
                ..IntegratedGradients::new(50)
            }
            .with_batching(batching),
        ),
        "smoothgrad20" => Box::new(NoiseTunnel::smooth_grad(Saliency::signed(), 20, 0)),
        other => bail!("unknown method {other:?}: saliency, ig50, smoothgrad20"),
    })
}

fn main() -> Result<()> {
    candle_explain::alloc::retain_freed_memory();
    let a = args()?;
    let dev = match a.device.as_str() {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0)
            .context("--device cuda: no CUDA device, or built without --features cuda")?,
        other => bail!("--device cpu|cuda, got {other:?}"),
    };
    #[cfg(feature = "cuda")]
    candle_core::cuda::set_gemm_reduced_precision_f32(a.tf32);
    if a.tf32 && dev.is_cpu() {
        eprintln!("--tf32 has no effect on the CPU");
    }
    for case in &a.cases {
        for &dtype in &a.dtypes {
            let c = build(case, dtype, a.quick, &dev)?;
            let batch = c.x.dim(0)?;
            let target = Target::PerExample(
                c.model
                    .forward(&c.x)?
                    .argmax(D::Minus1)?
                    .to_vec1::<u32>()?
                    .into_iter()
                    .map(|v| v as usize)
                    .collect(),
            );
            for m in &a.methods {
                let method = method(m, a.budget_mib)?;
                eprintln!("{case} {m} {dtype:?}");
                let mut last = None;
                for _ in 0..a.warmup {
                    last = Some(method.attribute(c.model.as_ref(), &c.x, &target)?);
                    dev.synchronize()?;
                }
                let mut times = vec![];
                for _ in 0..a.reps {
                    let t0 = std::time::Instant::now();
                    let r = method.attribute(c.model.as_ref(), &c.x, &target)?;
                    dev.synchronize()?;
                    times.push(t0.elapsed().as_secs_f64());
                    last = Some(r);
                }
                times.sort_by(f64::total_cmp);
                let secs = times[times.len() / 2];
                let completeness = match &last {
                    Some(r) if m == "ig50" => {
                        let f = |t: &Tensor| -> Result<f32> {
                            Ok(t.to_dtype(DType::F32)?
                                .abs()?
                                .max_all()?
                                .to_scalar::<f32>()?)
                        };
                        let delta = f(r.delta.as_ref().context("IG reports its delta")?)?;
                        let change = f(&(r.output.to_dtype(DType::F32)?
                            - r.baseline_output
                                .as_ref()
                                .context("IG has a baseline")?
                                .to_dtype(DType::F32)?)?)?;
                        Some(delta / change.max(1e-12))
                    }
                    _ => None,
                };
                let line = serde_json::json!({
                    "side": "candle-explain", "case": case, "batch": batch, "method": m, "dtype": if dtype == DType::F32 { "f32" } else { "bf16" },
                    "tf32": a.tf32, "device": a.device, "seconds": secs, "explanations_per_s": batch as f64 / secs,
                    "peak_mib": null, "completeness_rel": completeness, "budget_mib": a.budget_mib,
                });
                println!("{line}");
            }
        }
    }
    Ok(())
}
