//! Rahman, Lewis & Plis (2022): Geometrically Guided IG against IG and the gradient on the
//! digits CNN (MNIST) and EfficientNet-Lite0 (two photos): heatmaps, deletion and insertion
//! AOPC, Sensitivity-n on the digits, and the paper's model-perturbation sanity check (small
//! weight noise: the explanation should stay) beside model randomization (cascading from the
//! top: it should change).

use super::{digits, heatmaps, write_report, ReproduceArgs};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain::metrics::{ModelPerturbation, ModelRandomization, PixelFlipping, Randomization, SensitivityN};
use candle_explain::models::DigitsCnn;
use candle_explain::prelude::*;
use candle_explain::viz::{save_line_plot, Series};
use std::time::Instant;

fn mean(v: &[f64]) -> f64 {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The three methods of the paper's comparison, from a black baseline.
fn methods(black: f64, quick: bool) -> Vec<(&'static str, Box<dyn Attributor>)> {
    let base = Baseline::Constant(black);
    let ggig = GeometricallyGuidedIg { scales: if quick { 8 } else { 20 }, baseline: base.clone(), ..Default::default() };
    vec![
        ("Gradient", Box::new(Saliency { abs: false, batching: Batching::default() }) as Box<dyn Attributor>),
        ("IG", Box::new(IntegratedGradients::new(if quick { 16 } else { 64 }).with_baseline(base))),
        ("GGIG", Box::new(ggig)),
    ]
}

/// Deletion and insertion AOPC (mean over examples) and the mean curves.
fn flipping(model: &dyn Explainable, x: &Tensor, attr: &Tensor, t: &Target, black: f64, steps: usize) -> Result<[(f64, Vec<f64>, Vec<f64>); 2]> {
    let run = |p: PixelFlipping| -> Result<(f64, Vec<f64>, Vec<f64>)> {
        let c = PixelFlipping { baseline: Baseline::Constant(black), ..p }.evaluate(model, x, attr, t)?;
        let curve: Vec<f64> = (0..c.fractions.len()).map(|k| mean(&c.scores.iter().map(|s| s[k]).collect::<Vec<_>>())).collect();
        Ok((mean(&c.aopc), c.fractions.clone(), curve))
    };
    Ok([run(PixelFlipping::deletion(steps))?, run(PixelFlipping::insertion(steps))?])
}

fn build(vb: candle_nn::VarBuilder) -> candle_explain::core::Result<Box<dyn Explainable>> {
    DigitsCnn::load(vb)
        .map(|m| Box::new(m) as Box<dyn Explainable>)
        .map_err(|e| candle_explain::core::Error::Unsupported(e.to_string()))
}

pub(super) fn run(a: &ReproduceArgs) -> Result<()> {
    let t0 = Instant::now();
    let q = a.quick;
    let (examples, steps, subsets, points, sanity_examples, repeats) = if q { (6, 14, 16, 4, 3, 1) } else { (100, 28, 100, 8, 10, 3) };
    let dev = Device::Cpu;
    let dir = a.out.join("ggig");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Digits: every 50th image of the class-sorted subset (500 per class): all ten classes;
    // the quick run takes every 500th, one per class.
    let (m, x, t) = digits(examples, if q { 500 } else { 50 }, &dev)?;
    let model = m.model.as_ref();
    let ns = SensitivityN::log_grid(784, points, 0.8)?;
    let weights = candle_core::safetensors::load(crate::model::weights("digits_cnn.safetensors"), &dev)?;
    let xs = x.narrow(0, 0, sanity_examples)?;
    let ts = match &t {
        Target::PerExample(v) => Target::PerExample(v[..sanity_examples].to_vec()),
        other => other.clone(),
    };
    let layers: Vec<String> = ["fc_layers.2.", "fc_layers.0.", "conv_layers.6.", "conv_layers.3.", "conv_layers.0."].map(String::from).to_vec();
    let (mut rows, mut del_series, mut ins_series, mut sens_series, mut maps) = (vec![], vec![], vec![], vec![], vec![]);
    for (name, method) in methods(m.black, q) {
        let ts0 = Instant::now();
        let attr = method.attribute(model, &x, &t)?.attributions;
        let secs = ts0.elapsed().as_secs_f64();
        let [(del, fr, dc), (ins, _, ic)] = flipping(model, &x, &attr, &t, m.black, steps)?;
        del_series.push(Series::new(name, fr.clone(), dc));
        ins_series.push(Series::new(name, fr, ic));
        let s = SensitivityN { baseline: Baseline::Constant(m.black), ..SensitivityN::new(ns.clone(), subsets, 0) }.evaluate(model, &x, &attr, &t)?;
        let (nx, cy): (Vec<f64>, Vec<f64>) = s.n.iter().zip(&s.correlation).filter(|(_, c)| c.is_finite()).map(|(&n, &c)| (n as f64, c)).unzip();
        if !nx.is_empty() {
            sens_series.push(Series::new(name, nx, cy));
        }
        // The sanity checks on the first few digits: 5 % weight noise, and all five layers
        // randomised from the top (the last step of the cascade).
        let pert = ModelPerturbation { relative_noise: 0.05, repeats, seed: 3 }.evaluate(&build, &weights, method.as_ref(), &xs, &ts, None)?;
        let sp = |f: &dyn Fn(&candle_explain::metrics::PerturbationStep) -> &Vec<f64>| mean(&pert.steps.iter().map(|s| mean(f(s))).collect::<Vec<_>>());
        let cascade = ModelRandomization { layers: layers.clone(), mode: Randomization::Cascading, seed: 1 }.evaluate(&build, &weights, method.as_ref(), &xs, &ts)?;
        let last = cascade.last().context("no randomisation step")?;
        rows.push(serde_json::json!({
            "method": name, "seconds": secs, "deletion_aopc": del, "insertion_aopc": ins,
            "sensitivity_n": {"n": s.n, "correlation": s.correlation},
            "perturbation": {"spearman": sp(&|s| &s.spearman), "ssim": sp(&|s| &s.ssim), "hog": sp(&|s| &s.hog)},
            "randomization": {"spearman": mean(&last.spearman), "ssim": mean(&last.ssim), "hog": mean(&last.hog)},
        }));
        maps.push(attr);
    }
    let names: Vec<&str> = rows.iter().map(|r| r["method"].as_str().unwrap_or("")).collect();
    // Six digits of different classes in the picture.
    let shown = Tensor::new((0..6.min(examples)).map(|i| (i * examples / 6) as u32).collect::<Vec<_>>(), &dev)?;
    let pick = |t: &Tensor| t.index_select(&shown, 0);
    heatmaps(&pick(&x)?, &maps.iter().map(pick).collect::<candle_core::Result<Vec<_>>>()?, &names, "Digits CNN: Gradient, IG and GGIG (black baseline)", &dir.join("digits.png"))?;
    let photos = photos(q, &dir)?;
    for (stem, title, series, y) in [
        ("deletion", "Deletion on the digits CNN: most relevant pixels first", &del_series, "mean score of the explained class"),
        ("insertion", "Insertion on the digits CNN: most relevant pixels first", &ins_series, "mean score of the explained class"),
        ("sensitivity_n", "Sensitivity-n on the digits CNN", &sens_series, "Pearson correlation"),
    ] {
        let x_label = if stem == "sensitivity_n" { "n (pixels set to black at once)" } else { "fraction of pixels changed" };
        save_line_plot(&dir, stem, title, x_label, y, series).map_err(anyhow::Error::msg)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let f = |r: &serde_json::Value, p: &str| r.pointer(p).and_then(|v| v.as_f64()).map_or("—".into(), |v| format!("{v:.3}"));
    let mut md = format!(
        "# Rahman, Lewis & Plis (2022): Geometrically Guided Integrated Gradients\n\n\
         The trained digits CNN on {examples} MNIST digits (every {}th of the shipped subset; predicted class), and EfficientNet-Lite0 on \
         the two photos; baseline: black. GGIG: {} scales, 3 guided steps of 0.02 each (`methods::GeometricallyGuidedIg`); IG: {} Gauss–Legendre points.\n\n\
         ![heatmaps](digits.png)\n\n\
         | method | deletion AOPC (mean drop, higher is better) | insertion AOPC (mean gain over black, higher is better) | Sensitivity-n mean | Spearman after 5 % weight noise (want high) | SSIM | Spearman after randomising all layers (want low) | SSIM | seconds |\n|---|---|---|---|---|---|---|---|---|\n",
        if q { 500 } else { 50 },
        if q { 8 } else { 20 },
        if q { 16 } else { 64 }
    );
    for r in &rows {
        let sens = r["sensitivity_n"]["correlation"].as_array().map(|v| mean(&v.iter().filter_map(|c| c.as_f64()).collect::<Vec<_>>())).unwrap_or(f64::NAN);
        md.push_str(&format!(
            "| {} | {} | {} | {sens:.3} | {} | {} | {} | {} | {} |\n",
            r["method"].as_str().unwrap_or(""),
            f(r, "/deletion_aopc"),
            f(r, "/insertion_aopc"),
            f(r, "/perturbation/spearman"),
            f(r, "/perturbation/ssim"),
            f(r, "/randomization/spearman"),
            f(r, "/randomization/ssim"),
            f(r, "/seconds"),
        ));
    }
    md.push_str("\n![deletion](deletion.svg) ![insertion](insertion.svg) ![Sensitivity-n](sensitivity_n.svg)\n\n## EfficientNet-Lite0 on the photos\n\n![photos](photos.png)\n\n| method | deletion AOPC | insertion AOPC |\n|---|---|---|\n");
    for r in &photos {
        md.push_str(&format!("| {} | {} | {} |\n", r["method"].as_str().unwrap_or(""), f(r, "/deletion_aopc"), f(r, "/insertion_aopc")));
    }
    md.push_str(&format!(
        "\n## What the paper claims, and what we measured\n\n\
         The paper reports GGIG's maps as less noisy than the gradient's and IG's and better on its quantitative comparisons, and proposes the \
         model-perturbation check: weights perturbed slightly (accuracy nearly unchanged) should leave a good explanation nearly unchanged, \
         while randomised weights should change it (Adebayo et al.). The table gives our numbers on this model; the rows are not ranked by us. \
         What must hold (checked by the tests): every explanation is finite; under 5 % noise every method's maps stay closer to the original \
         (SSIM) than after full randomisation. Read the Spearman column with care: most MNIST pixels are black, the baseline, so IG's and \
         GGIG's `(x − x̄)` factor makes them exactly 0 there under any weights, and these shared zeros keep the rank correlation high even \
         after randomisation (the input-structure effect Adebayo et al. report for Gradient ⊙ Input and IG); SSIM and the plain \
         gradient show the randomisation.\n\n\
         Configuration: {}; sanity checks on the first {sanity_examples} digits ({repeats} noise draws; cascade over {} layers); \
         deletion / insertion {steps} steps; Sensitivity-n {subsets} subsets per n. Time: {secs:.1} s on this machine.\n",
        if q { "--quick" } else { "full" },
        layers.len()
    ));
    let json = serde_json::json!({"paper": "ggig", "quick": q, "examples": examples, "digits": rows, "photos": photos, "seconds": secs});
    write_report(&dir, &json, &md, &[("heatmaps", "digits.png"), ("deletion", "deletion.svg"), ("insertion", "insertion.svg"), ("Sensitivity-n", "sensitivity_n.svg"), ("photos", "photos.png")])
}

/// EfficientNet-Lite0 on the two photos: heatmaps and deletion / insertion AOPC per method.
fn photos(quick: bool, dir: &std::path::Path) -> Result<Vec<serde_json::Value>> {
    let dev = Device::Cpu;
    let crate::model::Loaded::Image(m) = crate::model::load("efficientnet-lite0", DType::F32, &dev)? else {
        anyhow::bail!("EfficientNet-Lite0 is an image model");
    };
    let folder = candle_explain::models::assets::ensure("photos")?;
    let mut px = vec![];
    for p in ["chelsea.png", "coffee.png"] {
        px.push(candle_explain::models::data::load_rgb(folder.join(p), m.size, &dev).with_context(|| p.to_string())?.0);
    }
    let pixels = Tensor::cat(&px, 0)?;
    let x = (m.normalize)(&pixels)?;
    let pred: Vec<usize> = m.model.forward(&x)?.argmax(1)?.to_vec1::<u32>()?.into_iter().map(|c| c as usize).collect();
    let t = Target::PerExample(pred);
    let (mut rows, mut maps) = (vec![], vec![]);
    for (name, method) in methods(m.black, quick) {
        let attr = method.attribute(m.model.as_ref(), &x, &t)?.attributions;
        let [(del, ..), (ins, ..)] = flipping(m.model.as_ref(), &x, &attr, &t, m.black, if quick { 8 } else { 20 })?;
        rows.push(serde_json::json!({"method": name, "deletion_aopc": del, "insertion_aopc": ins}));
        // Summed over the colour channels for the picture.
        maps.push(attr.sum_keepdim(1)?);
    }
    let names: Vec<&str> = rows.iter().map(|r| r["method"].as_str().unwrap_or("")).collect();
    let shown = (&pixels / 255.0)?.mean_keepdim(1)?;
    heatmaps(&shown, &maps, &names, "EfficientNet-Lite0: Gradient, IG and GGIG (black baseline)", &dir.join("photos.png"))?;
    Ok(rows)
}
