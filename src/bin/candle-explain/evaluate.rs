//! `candle-explain evaluate`: faithfulness of several methods over a dataset (image models).

use crate::method::{build, MethodArgs, METHODS};
use crate::model::{load, ImageModel, Loaded};
use crate::RunArgs;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, D};
use candle_explain::metrics::{Infidelity, PixelFlipping, SensitivityN};
use candle_explain::prelude::*;
use candle_explain::viz::{line_plot_svg, Series};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// digits-cnn, fashion-resnet or efficientnet-lite0.
    #[arg(long, default_value = "digits-cnn")]
    pub model: String,
    /// A folder of PNG / JPEG images (default: the model's built-in dataset, or the photos for
    /// efficientnet-lite0).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// How many examples (the first of the dataset, or of the folder in name order).
    #[arg(long, default_value_t = 16)]
    pub limit: usize,
    /// Comma-separated methods (see `candle-explain methods`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "saliency,gradient-x-input,integrated-gradients,lrp-epsilon-plus,random"
    )]
    pub methods: Vec<String>,
    /// Comma-separated metrics: deletion, insertion, sensitivity-n, infidelity.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "deletion,insertion,sensitivity-n"
    )]
    pub metrics: Vec<String>,
    /// Points of the deletion / insertion curves.
    #[arg(long, default_value_t = 16)]
    pub curve_steps: usize,
    /// Random subsets per subset size (Sensitivity-n) or perturbations (infidelity).
    #[arg(long, default_value_t = 64)]
    pub subsets: usize,
    #[command(flatten)]
    pub params: MethodArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[arg(long, default_value = "out/evaluate")]
    pub out: PathBuf,
}

const METRICS: [&str; 4] = ["deletion", "insertion", "sensitivity-n", "infidelity"];

/// Raw pixels of the examples and a description of where they came from.
fn examples(m: &ImageModel, a: &EvaluateArgs, device: &Device) -> Result<(Tensor, String)> {
    if a.limit == 0 {
        bail!("--limit must be at least 1");
    }
    let folder = match (&a.data, m.channels) {
        (Some(d), _) => Some(d.clone()),
        (None, 3) => Some(crate::model::assets("photos")?),
        (None, _) => None,
    };
    let Some(dir) = folder else {
        let data = m.dataset(device)?;
        let n = a.limit.min(data.labels.len());
        return Ok((
            data.images.narrow(0, 0, n)?,
            format!("{} built-in dataset, first {n}", m.name),
        ));
    };
    let images = crate::dataset_input::image_folder(m, &dir, Some(a.limit), device)?;
    let n = images.dim(0)?;
    Ok((images, format!("{} ({n} images)", dir.display())))
}

pub fn run(a: &EvaluateArgs) -> Result<()> {
    for m in &a.metrics {
        if !METRICS.contains(&m.as_str()) {
            bail!("unknown metric {m:?}; one of: {}", METRICS.join(", "));
        }
    }
    // Every name is checked before any work, so a typo at the end of the list loses nothing.
    for name in &a.methods {
        if !crate::method::known(name, METHODS) {
            bail!(
                "unknown method {name:?} in --methods; one of: {}",
                METHODS.join(", ")
            );
        }
    }
    if a.curve_steps == 0 || a.subsets == 0 {
        bail!("--curve-steps and --subsets must be at least 1");
    }
    let (device, dtype) = (a.run.device()?, a.run.dtype());
    let Loaded::Image(m) = load(&a.model, dtype, &device)? else {
        bail!("evaluate works on image models (digits-cnn, fashion-resnet, efficientnet-lite0)")
    };
    let (pixels, source) = examples(&m, a, &device)?;
    let x = (m.normalize)(&pixels)?.to_dtype(dtype)?;
    let n = x.dim(0)?;
    let pred: Vec<usize> = m
        .model
        .forward(&x)?
        .argmax(D::Minus1)?
        .to_vec1::<u32>()?
        .into_iter()
        .map(|v| v as usize)
        .collect();
    let target = Target::PerExample(pred.clone());
    let range = m.input_range(&device)?;
    let features: usize = x.dims()[1..].iter().product();
    if a.curve_steps > features {
        bail!(
            "--curve-steps {} is more than the {features} features of an input: each step \
             flips at least one, so use at most {features}",
            a.curve_steps
        );
    }
    // Built (and their parameters checked) before the first one runs.
    let methods = a
        .methods
        .iter()
        .map(|name| {
            if crate::method::LAYER_METHODS.contains(&name.as_str()) {
                bail!("--methods {name}: a layer method's result has the layer's shape; the faithfulness metrics perturb the input and need maps over it");
            }
            if name == "neuron-gradient" || name == "neuron-integrated-gradients" {
                bail!("--methods {name}: it explains one neuron's value, not the target, so the metrics (which follow the target) would not measure it");
            }
            build(name, &a.params, &x.dims()[1..], m.black, range, &m.cam_layer)
                .with_context(|| format!("--methods {name}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let base = Baseline::Constant(m.black);
    let ns = SensitivityN::log_grid(features, 6, 0.8)?;
    let bar = indicatif::ProgressBar::new((a.methods.len() * a.metrics.len()) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("evaluate [{bar:30}] {pos}/{len} {msg} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (mut json, mut del_series, mut ins_series, mut sens_series) =
        (vec![], vec![], vec![], vec![]);
    for (name, method) in a.methods.iter().zip(&methods) {
        bar.set_message(format!("{name}: attributing"));
        let t0 = std::time::Instant::now();
        let attr = method
            .attribute(m.model.as_ref(), &x, &target)?
            .attributions
            .to_dtype(x.dtype())?;
        let mut row =
            serde_json::json!({"method": name, "attribution_seconds": t0.elapsed().as_secs_f64()});
        for metric in &a.metrics {
            bar.set_message(format!("{name}: {metric}"));
            match metric.as_str() {
                "deletion" | "insertion" => {
                    let pf = if metric == "deletion" {
                        PixelFlipping::deletion(a.curve_steps)
                    } else {
                        PixelFlipping::insertion(a.curve_steps)
                    };
                    let c = PixelFlipping {
                        baseline: base.clone(),
                        ..pf
                    }
                    .evaluate(m.model.as_ref(), &x, &attr, &target)?;
                    let curve: Vec<f64> = (0..c.fractions.len())
                        .map(|k| mean(&c.scores.iter().map(|s| s[k]).collect::<Vec<_>>()))
                        .collect();
                    let series = Series::new(name.clone(), c.fractions.clone(), curve.clone());
                    if metric == "deletion" {
                        del_series.push(series)
                    } else {
                        ins_series.push(series)
                    }
                    let aopc = finite(&format!("{name}: {metric} AOPC"), mean(&c.aopc))?;
                    for v in &curve {
                        finite(&format!("{name}: {metric} curve"), *v)?;
                    }
                    row[format!("{metric}_aopc")] = serde_json::json!(aopc);
                    row[format!("{metric}_curve")] =
                        serde_json::json!({"fractions": c.fractions, "mean_score": curve});
                }
                "sensitivity-n" => {
                    let s = SensitivityN {
                        baseline: base.clone(),
                        ..SensitivityN::new(ns.clone(), a.subsets, a.params.seed)
                    }
                    .evaluate(m.model.as_ref(), &x, &attr, &target)?;
                    // A correlation is undefined (NaN) where the sampled attribution sums or
                    // output changes do not vary (e.g. n = 1 on a black background): not drawn.
                    let (xs, ys): (Vec<f64>, Vec<f64>) =
                        s.n.iter()
                            .zip(&s.correlation)
                            .filter(|(_, c)| c.is_finite())
                            .map(|(&n, &c)| (n as f64, c))
                            .unzip();
                    if !xs.is_empty() {
                        sens_series.push(Series::new(name.clone(), xs, ys));
                    }
                    row["sensitivity_n"] =
                        serde_json::json!({"n": s.n, "correlation": s.correlation});
                }
                "infidelity" => {
                    let v = Infidelity::new(a.subsets, 0.2, a.params.seed).evaluate(
                        m.model.as_ref(),
                        &x,
                        &attr,
                        &target,
                    )?;
                    row["infidelity"] =
                        serde_json::json!(finite(&format!("{name}: infidelity"), mean(&v))?);
                }
                _ => unreachable!("metrics are checked above"),
            }
            bar.inc(1);
        }
        json.push(row);
    }
    bar.finish_and_clear();
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut written = vec![a.out.join("metrics.json")];
    for (file, title, xl, yl, series) in [
        (
            "deletion.svg",
            "Deletion (most relevant pixels first)",
            "fraction of pixels removed",
            "target score",
            &del_series,
        ),
        (
            "insertion.svg",
            "Insertion (most relevant pixels first)",
            "fraction of pixels inserted",
            "target score",
            &ins_series,
        ),
        (
            "sensitivity_n.svg",
            "Sensitivity-n",
            "subset size n",
            "Pearson correlation",
            &sens_series,
        ),
    ] {
        if !series.is_empty() {
            let svg = line_plot_svg(
                &format!("{title}: {} on {n} examples", a.model),
                xl,
                yl,
                series,
            )
            .map_err(anyhow::Error::msg)?;
            let path = a.out.join(file);
            crate::write_file(&path, svg)?;
            written.push(path);
        }
    }
    let report = serde_json::json!({"model": a.model, "data": source, "examples": n, "predicted": pred, "dtype": format!("{:?}", a.run.dtype), "methods": json});
    crate::write_file(
        &a.out.join("metrics.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    print_table(&report);
    println!(
        "wrote {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn print_table(report: &serde_json::Value) {
    println!(
        "{:<24} {:>12} {:>12} {:>14} {:>12}",
        "method", "deletion↑", "insertion↓", "mean sens-n↑", "infidelity↓"
    );
    let f = |v: &serde_json::Value| v.as_f64().map_or("—".to_string(), |x| format!("{x:.4}"));
    for row in report["methods"].as_array().into_iter().flatten() {
        let sens = row["sensitivity_n"]["correlation"]
            .as_array()
            .map(|c| c.iter().filter_map(|v| v.as_f64()).sum::<f64>() / c.len().max(1) as f64);
        println!(
            "{:<24} {:>12} {:>12} {:>14} {:>12}",
            row["method"].as_str().unwrap_or("?"),
            f(&row["deletion_aopc"]),
            f(&row["insertion_aopc"]),
            sens.map_or("—".into(), |v| format!("{v:.4}")),
            f(&row["infidelity"])
        );
    }
}

/// A metric's value, or an error when it is NaN / infinite (JSON would write it as null).
fn finite(what: &str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        bail!("{what} is {v}: the model's scores on the perturbed inputs are not finite")
    }
}
