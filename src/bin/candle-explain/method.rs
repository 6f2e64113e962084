//! `--method` and its parameters → an attribution method.

use anyhow::{bail, Context, Result};
use candle_explain::prelude::*;

/// Method parameters shared by the subcommands (flags of the CLI).
#[derive(Debug, Clone, clap::Args)]
pub struct MethodArgs {
    /// Points on the path (IG, Blur IG, Guided IG) or steps (GGIG).
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// Noisy samples (SmoothGrad, Gradient SHAP).
    #[arg(long, default_value_t = 20)]
    pub samples: usize,
    /// Noise standard deviation as a fraction of the input's range (SmoothGrad, Gradient SHAP).
    #[arg(long, default_value_t = 0.15)]
    pub stdev: f64,
    /// Occlusion window side, in pixels (or tokens).
    #[arg(long, default_value_t = 4)]
    pub window: usize,
    /// Occlusion stride (default: half the window).
    #[arg(long)]
    pub stride: Option<usize>,
    /// ε of the LRP ε rule.
    #[arg(long, default_value_t = 1e-6)]
    pub epsilon: f64,
    /// The layer of Grad-CAM and of the layer and neuron methods: a name the model taps
    /// (default: the model's last conv stage; "embeddings" for BERT). An unknown name lists
    /// the model's layers.
    #[arg(long)]
    pub layer: Option<String>,
    /// The neuron of the neuron methods: its flat index within one example's activation at
    /// --layer.
    #[arg(long, default_value_t = 0)]
    pub neuron: usize,
    /// Random seed of the sampling methods.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Memory budget of one chunk, in MiB (steps and samples run in chunks that fit).
    #[arg(long, default_value_t = 1024)]
    pub memory_mb: usize,
}

impl MethodArgs {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"steps": self.steps, "samples": self.samples, "stdev": self.stdev, "window": self.window, "stride": self.stride, "epsilon": self.epsilon, "layer": self.layer, "neuron": self.neuron, "seed": self.seed, "memory_mb": self.memory_mb})
    }
}

pub const METHODS: &[&str] = &[
    "saliency",
    "gradient-x-input",
    "integrated-gradients",
    "deeplift",
    "smoothgrad",
    "gradient-shap",
    "occlusion",
    "lrp-epsilon",
    "lrp-epsilon-plus",
    "lrp-epsilon-plus-flat",
    "lrp-epsilon-gamma-box",
    "lrp-alpha2-beta1",
    "deep-taylor",
    "guided-backprop",
    "deconvnet",
    "grad-cam",
    "guided-grad-cam",
    "guided-ig",
    "blur-ig",
    "ggig",
    "lime",
    "kernel-shap",
    "deep-shap",
    "layer-integrated-gradients",
    "layer-gradient-x-activation",
    "layer-conductance",
    "internal-influence",
    "layer-lrp-epsilon",
    "layer-deeplift",
    "neuron-gradient",
    "neuron-integrated-gradients",
    "neuron-conductance",
    "random",
    "sobel",
];

/// Hooker et al.'s ensembles around any method of the list: `sg:NAME` (SmoothGrad),
/// `sg2:NAME` (SmoothGrad²) and `vargrad:NAME`, over `--samples` noisy copies of σ =
/// `--stdev` × the input's range.
pub const ENSEMBLES: &[&str] = &["sg", "sg2", "vargrad"];

/// Whether `name` is one of `list`, or an ensemble around one of them.
pub fn known(name: &str, list: &[&str]) -> bool {
    match name.split_once(':') {
        Some((wrap, inner)) => ENSEMBLES.contains(&wrap) && list.contains(&inner),
        None => list.contains(&name),
    }
}

/// Methods whose result has the layer's shape, not the input's.
pub const LAYER_METHODS: &[&str] = &[
    "layer-integrated-gradients",
    "layer-gradient-x-activation",
    "layer-conductance",
    "internal-influence",
    "layer-lrp-epsilon",
    "layer-deeplift",
];

/// Methods that make sense on word embeddings (no spatial structure, no pixel range).
pub const TEXT_METHODS: &[&str] = &[
    "saliency",
    "gradient-x-input",
    "integrated-gradients",
    "smoothgrad",
    "lrp-epsilon",
    "lime",
    "kernel-shap",
    "layer-integrated-gradients",
    "layer-gradient-x-activation",
    "layer-conductance",
    "internal-influence",
    "neuron-gradient",
    "neuron-integrated-gradients",
    "neuron-conductance",
    "random",
];

/// Builds `name` for an input of per-example `shape`; `black` is the input value of a black
/// pixel (the baseline of the path and ablation methods), `range` the input's value range.
pub fn build(
    name: &str,
    a: &MethodArgs,
    shape: &[usize],
    black: f64,
    range: (f64, f64),
    cam_layer: &str,
) -> Result<Box<dyn Attributor>> {
    if a.steps == 0 || a.samples == 0 || a.window == 0 || a.memory_mb == 0 {
        bail!("--steps, --samples, --window and --memory-mb must be at least 1");
    }
    let budget_bytes = a
        .memory_mb
        .checked_mul(1 << 20)
        .filter(|&b| b <= candle_explain::core::validate::host_memory_limit())
        .with_context(|| {
            format!(
                "--memory-mb {} is more than the memory available ({} MiB)",
                a.memory_mb,
                candle_explain::core::validate::host_memory_limit() >> 20
            )
        })?;
    let fine = |v: f64| v.is_finite() && v >= 0.0;
    if !fine(a.stdev) || !fine(a.epsilon) {
        bail!("--stdev and --epsilon must be finite and non-negative");
    }
    let batching = Batching {
        budget_bytes,
        max_rows: None,
        progress: true,
    };
    let base = Baseline::Constant(black);
    let window: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if i == 0 && shape.len() == 3 {
                d
            } else {
                a.window.min(d)
            }
        })
        .collect();
    let stride = a.stride.unwrap_or((a.window / 2).max(1));
    let strides: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if i == 0 && shape.len() == 3 {
                d
            } else {
                stride
            }
        })
        .collect();
    let layer = a.layer.clone().unwrap_or_else(|| cam_layer.to_string());
    // Every method, and the inner method of SmoothGrad, chunks within --memory-mb.
    let b = || batching.clone();
    if let Some((wrap, inner)) = name.split_once(':') {
        let kind = match wrap {
            "sg" => NoiseKind::SmoothGrad,
            "sg2" => NoiseKind::SmoothGradSquared,
            "vargrad" => NoiseKind::VarGrad,
            w => bail!("unknown ensemble {w:?} in {name:?}: {}", ENSEMBLES.join(", ")),
        };
        if inner.contains(':') || LAYER_METHODS.contains(&inner) || ["random", "sobel", "smoothgrad"].contains(&inner) {
            bail!("{name:?}: an ensemble wraps one model-based method over the input (not a layer method, a control or SmoothGrad itself)");
        }
        let inner = build(inner, a, shape, black, range, cam_layer)?;
        return Ok(Box::new(NoiseTunnel::new(inner, kind, a.samples, a.stdev, a.seed).with_batching(b())));
    }
    Ok(match name {
        "saliency" => Box::new(Saliency {
            batching: b(),
            ..Saliency::signed()
        }),
        "gradient-x-input" => Box::new(InputXGradient { batching: b() }),
        "integrated-gradients" => Box::new(
            IntegratedGradients::new(a.steps)
                .with_baseline(base)
                .with_batching(b()),
        ),
        "deeplift" => Box::new(DeepLift {
            batching: b(),
            ..DeepLift::default().with_baseline(base)
        }),
        "smoothgrad" => Box::new(
            NoiseTunnel::new(
                Saliency {
                    batching: b(),
                    ..Saliency::signed()
                },
                NoiseKind::SmoothGrad,
                a.samples,
                a.stdev,
                a.seed,
            )
            .with_batching(b()),
        ),
        "gradient-shap" => Box::new(GradientShap {
            batching: b(),
            ..GradientShap::new(black_and_white(shape, range)?, a.samples, a.stdev, a.seed)
        }),
        "occlusion" => Box::new(Occlusion {
            batching: b(),
            ..Occlusion::new(&window, &strides).with_baseline(base)
        }),
        "lrp-epsilon" => Box::new(EpsilonLrp {
            batching: b(),
            ..EpsilonLrp::new(a.epsilon)
        }),
        "lrp-epsilon-plus"
        | "lrp-epsilon-plus-flat"
        | "lrp-epsilon-gamma-box"
        | "lrp-alpha2-beta1"
        | "deep-taylor" => {
            let composite = match name {
                "lrp-epsilon-plus" => Composite::epsilon_plus(),
                "deep-taylor" => Composite::deep_taylor(range.0, range.1),
                "lrp-epsilon-plus-flat" => Composite::epsilon_plus_flat(),
                "lrp-epsilon-gamma-box" => Composite::epsilon_gamma_box(range.0, range.1),
                _ => Composite::epsilon_alpha2_beta1(),
            };
            Box::new(Lrp {
                batching: b(),
                ..Lrp::new(composite)
            })
        }
        "guided-backprop" => Box::new(GuidedBackprop { batching: b() }),
        "deconvnet" => Box::new(Deconvnet { batching: b() }),
        "grad-cam" => Box::new(GradCam {
            batching: b(),
            ..GradCam::new(&layer)
        }),
        "guided-grad-cam" => Box::new(GuidedGradCam(GradCam {
            batching: b(),
            ..GradCam::new(&layer)
        })),
        "guided-ig" => Box::new(GuidedIntegratedGradients {
            steps: a.steps,
            baseline: base,
            batching: b(),
            ..Default::default()
        }),
        "blur-ig" => Box::new(BlurIntegratedGradients {
            steps: a.steps,
            batching: b(),
            ..Default::default()
        }),
        "ggig" => Box::new(GeometricallyGuidedIg {
            baseline: base,
            batching: b(),
            ..Default::default()
        }),
        "lime" => Box::new(Lime {
            batching: b(),
            baseline: base,
            ..Lime::new(groups(shape, a.window)?, a.samples, a.seed)
        }),
        "kernel-shap" => Box::new(KernelShap {
            batching: b(),
            ..KernelShap::sampling(groups(shape, a.window)?, a.samples, a.seed).with_baseline(base)
        }),
        "deep-shap" => Box::new(DeepShap {
            batching: b(),
            ..DeepShap::new(black_and_white(shape, range)?)
        }),
        "layer-integrated-gradients" => Box::new(LayerIntegratedGradients {
            batching: b(),
            ..LayerIntegratedGradients::new(&layer, a.steps).with_baseline(base)
        }),
        "layer-gradient-x-activation" => Box::new(LayerGradientXActivation {
            batching: b(),
            ..LayerGradientXActivation::new(&layer)
        }),
        "layer-conductance" => Box::new(LayerConductance {
            batching: b(),
            ..LayerConductance::new(&layer, a.steps).with_baseline(base)
        }),
        "internal-influence" => Box::new(InternalInfluence {
            batching: b(),
            baseline: base,
            ..InternalInfluence::new(&layer, a.steps)
        }),
        "layer-lrp-epsilon" => {
            let composite =
                Composite::new(ActRule::Pass).with(Selector::any(), LayerRule::Epsilon(a.epsilon));
            Box::new(LayerLrp {
                layer: layer.clone(),
                lrp: Lrp {
                    batching: b(),
                    ..Lrp::new(composite)
                },
            })
        }
        "layer-deeplift" => Box::new(LayerDeepLift {
            layer: layer.clone(),
            deeplift: DeepLift {
                batching: b(),
                ..DeepLift::default().with_baseline(base)
            },
        }),
        "neuron-gradient" => Box::new(NeuronGradient {
            batching: b(),
            ..NeuronGradient::new(&layer, a.neuron)
        }),
        "neuron-integrated-gradients" => Box::new(NeuronIntegratedGradients {
            batching: b(),
            baseline: base,
            ..NeuronIntegratedGradients::new(&layer, a.neuron, a.steps)
        }),
        "neuron-conductance" => Box::new(NeuronConductance {
            batching: b(),
            baseline: base,
            ..NeuronConductance::new(&layer, a.neuron, a.steps)
        }),
        "random" => Box::new(RandomAttribution { seed: a.seed }),
        "sobel" => Box::new(SobelEdge),
        other => bail!("unknown method {other:?}; one of: {}", METHODS.join(", ")),
    })
}

/// Baselines of the distribution methods: a black and a white input (the range's two ends).
fn black_and_white(shape: &[usize], range: (f64, f64)) -> Result<candle_core::Tensor> {
    let mut dims = vec![2];
    dims.extend_from_slice(shape);
    let n: usize = shape.iter().product();
    let vals: Vec<f32> = (0..2 * n)
        .map(|i| {
            if i < n {
                range.0 as f32
            } else {
                range.1 as f32
            }
        })
        .collect();
    Ok(candle_core::Tensor::from_vec(
        vals,
        dims,
        &candle_core::Device::Cpu,
    )?)
}

/// Feature groups of LIME and KernelSHAP: `window × window` superpixels of an image
/// `(C, H, W)` (all channels together), one group per token of a text `(L, H)`.
fn groups(shape: &[usize], window: usize) -> Result<candle_core::Tensor> {
    let dev = candle_core::Device::Cpu;
    Ok(match *shape {
        [c, h, w] => {
            let (gh, gw) = (h.div_ceil(window), w.div_ceil(window));
            if gh * gw > 64 {
                bail!("--window {window} makes {} superpixels of a {h}×{w} image; LIME and KernelSHAP take at most 64: use a larger --window", gh * gw);
            }
            let ids: Vec<u32> = (0..c * h * w)
                .map(|i| {
                    let (y, x) = ((i / w) % h, i % w);
                    ((y / window) * gw + x / window) as u32
                })
                .collect();
            candle_core::Tensor::from_vec(ids, (c, h, w), &dev)?
        }
        [l, hid] => {
            if l > 64 {
                bail!("{l} tokens: LIME and KernelSHAP take at most 64 groups (one per token)");
            }
            let ids: Vec<u32> = (0..l * hid).map(|i| (i / hid) as u32).collect();
            candle_core::Tensor::from_vec(ids, (l, hid), &dev)?
        }
        _ => bail!("LIME / KernelSHAP: no feature groups for inputs of shape {shape:?}"),
    })
}

/// A layer method's result `(1, C, h, w)` as a map over the input `(1, c, H, W)`: summed
/// over the layer's channels and spread over the pixels each cell covers (nearest). `None`
/// when the layer has no spatial layout (a dense layer).
pub fn layer_map_on_input(
    attr: &candle_core::Tensor,
    input: &candle_core::Tensor,
) -> Result<Option<candle_core::Tensor>> {
    if attr.rank() != 4 || input.rank() != 4 {
        return Ok(None);
    }
    let (h, w) = (input.dim(2)?, input.dim(3)?);
    let summed = attr.sum_keepdim(1)?;
    Ok(Some(summed.upsample_nearest2d(h, w)?))
}
