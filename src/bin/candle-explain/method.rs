//! `--method` and its parameters → an attribution method.

use anyhow::{bail, Result};
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
    /// Grad-CAM's layer (a tap name; default: the model's last conv stage).
    #[arg(long)]
    pub layer: Option<String>,
    /// Random seed of the sampling methods.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Memory budget of one chunk, in MiB (steps and samples run in chunks that fit).
    #[arg(long, default_value_t = 1024)]
    pub memory_mb: usize,
}

impl MethodArgs {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"steps": self.steps, "samples": self.samples, "stdev": self.stdev, "window": self.window, "stride": self.stride, "epsilon": self.epsilon, "layer": self.layer, "seed": self.seed, "memory_mb": self.memory_mb})
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
    "guided-backprop",
    "deconvnet",
    "grad-cam",
    "guided-grad-cam",
    "guided-ig",
    "blur-ig",
    "ggig",
    "random",
];

/// Methods that make sense on word embeddings (no spatial structure, no pixel range).
pub const TEXT_METHODS: &[&str] = &[
    "saliency",
    "gradient-x-input",
    "integrated-gradients",
    "smoothgrad",
    "lrp-epsilon",
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
    let fine = |v: f64| v.is_finite() && v >= 0.0;
    if !fine(a.stdev) || !fine(a.epsilon) {
        bail!("--stdev and --epsilon must be finite and non-negative");
    }
    let batching = Batching {
        budget_bytes: a.memory_mb << 20,
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
    Ok(match name {
        "saliency" => Box::new(Saliency::signed()),
        "gradient-x-input" => Box::new(InputXGradient::default()),
        "integrated-gradients" => Box::new(
            IntegratedGradients::new(a.steps)
                .with_baseline(base)
                .with_batching(batching),
        ),
        "deeplift" => Box::new(DeepLift::default().with_baseline(base)),
        "smoothgrad" => Box::new(NoiseTunnel::new(
            Saliency::signed(),
            NoiseKind::SmoothGrad,
            a.samples,
            a.stdev,
            a.seed,
        )),
        "gradient-shap" => {
            // Baselines: black and white images (the distribution's two ends).
            let dev = candle_core::Device::Cpu;
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
            Box::new(GradientShap::new(
                candle_core::Tensor::from_vec(vals, dims, &dev)?,
                a.samples,
                a.stdev,
                a.seed,
            ))
        }
        "occlusion" => Box::new(Occlusion::new(&window, &strides).with_baseline(base)),
        "lrp-epsilon" => Box::new(EpsilonLrp::new(a.epsilon)),
        "lrp-epsilon-plus" => Box::new(Lrp::new(Composite::epsilon_plus())),
        "lrp-epsilon-plus-flat" => Box::new(Lrp::new(Composite::epsilon_plus_flat())),
        "lrp-epsilon-gamma-box" => {
            Box::new(Lrp::new(Composite::epsilon_gamma_box(range.0, range.1)))
        }
        "lrp-alpha2-beta1" => Box::new(Lrp::new(Composite::epsilon_alpha2_beta1())),
        "guided-backprop" => Box::new(GuidedBackprop::default()),
        "deconvnet" => Box::new(Deconvnet::default()),
        "grad-cam" => Box::new(GradCam::new(&layer)),
        "guided-grad-cam" => Box::new(GuidedGradCam(GradCam::new(&layer))),
        "guided-ig" => Box::new(GuidedIntegratedGradients {
            steps: a.steps,
            baseline: base,
            batching,
            ..Default::default()
        }),
        "blur-ig" => Box::new(BlurIntegratedGradients {
            steps: a.steps,
            ..Default::default()
        }),
        "ggig" => Box::new(GeometricallyGuidedIg {
            baseline: base,
            ..Default::default()
        }),
        "random" => Box::new(RandomAttribution { seed: a.seed }),
        other => bail!("unknown method {other:?}; one of: {}", METHODS.join(", ")),
    })
}
