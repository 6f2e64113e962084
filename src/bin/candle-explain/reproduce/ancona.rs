//! Ancona, Ceolini, Öztireli & Gross (2018) on four networks: a bias-free ReLU MLP trained
//! here on MNIST, the trained digits CNN, the Fashion-MNIST ResNet, and the polarity LSTM on
//! movie-review sentences (words as features). Sensitivity-n curves (n log-spaced) of
//! Saliency, Gradient × Input, IG, ε-LRP, DeepLIFT, Occlusion-1 and Occlusion-N, and the
//! measured gaps between the methods the paper proves equal.

use super::{examples_of, heatmaps, sentences, write_report, ReproduceArgs};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain::core::nn::{Flatten, Linear, Sequential};
use candle_explain::metrics::SensitivityN;
use candle_explain::models::train::{accuracy, init_seeded, train, TrainConfig};
use candle_explain::prelude::*;
use candle_explain::viz::{save_line_plot, Series};
use std::collections::HashMap;
use std::time::Instant;

fn methods(black: f64) -> Vec<(&'static str, Box<dyn Attributor>)> {
    let base = Baseline::Constant(black);
    vec![
        ("Saliency", Box::new(Saliency::abs())),
        ("Gradient × Input", Box::new(InputXGradient::default())),
        ("Integrated Gradients", Box::new(IntegratedGradients::new(64).with_baseline(base.clone()))),
        ("ε-LRP", Box::new(EpsilonLrp::new(1e-9))),
        ("DeepLIFT (Rescale)", Box::new(DeepLift::default().with_baseline(base.clone()))),
        ("Occlusion-1", Box::new(Occlusion::new(&[1, 1, 1], &[1, 1, 1]).with_baseline(base.clone()))),
        ("Occlusion-3×3", Box::new(Occlusion::new(&[1, 3, 3], &[1, 1, 1]).with_baseline(base))),
    ]
}

/// max |a − b| / max |b|.
fn gap(a: &Tensor, b: &Tensor) -> Result<f64> {
    let m = |t: &Tensor| -> Result<f64> { Ok(t.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
    Ok(m(&(a - b)?)? / m(b)?.max(1e-12))
}

/// A 784 → 256 → 256 → 10 ReLU MLP without biases, trained on 4,000 digits of the shipped
/// subset (seeded: the same network on every run); its accuracy on the other 1,000, every
/// fifth digit (the file is sorted by class), among them the explained ones.
fn bias_free_mlp(dev: &Device, quick: bool) -> Result<(Sequential, f64)> {
    let d = candle_explain::models::data::load_mnist_csv(crate::model::weights("data/mnist_5k.csv.gz"), dev)?;
    let x = candle_explain::models::DigitsCnn::normalize(&d.images)?;
    let y = Tensor::new(d.labels.iter().map(|&l| l as u32).collect::<Vec<_>>(), dev)?;
    let vars = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vars, DType::F32, dev);
    let model = Sequential::new()
        .push(Flatten)
        .push(Linear::load_no_bias(vb.pp("fc1"), 784, 256)?)
        .push(Activation::Relu)
        .push(Linear::load_no_bias(vb.pp("fc2"), 256, 256)?)
        .push(Activation::Relu)
        .push(Linear::load_no_bias(vb.pp("fc3"), 256, 10)?);
    init_seeded(&vars, 7)?;
    let cfg = TrainConfig { epochs: if quick { 1 } else { 5 }, seed: 7, ..Default::default() };
    let split = |keep: bool| Tensor::new((0..d.labels.len() as u32).filter(|i| (i % 5 == 0) != keep).collect::<Vec<_>>(), dev);
    let (train_rows, held_out) = (split(true)?, split(false)?);
    train(&model, &vars, &x.index_select(&train_rows, 0)?, &y.index_select(&train_rows, 0)?, None, &cfg)?;
    let acc = accuracy(&model, &x.index_select(&held_out, 0)?, &y.index_select(&held_out, 0)?, 500)?;
    Ok((model, acc))
}

struct ModelRun {
    name: String,
    /// The subset sizes (pixels, or words for the LSTM).
    ns: Vec<usize>,
    rows: Vec<serde_json::Value>,
    equivalences: serde_json::Value,
    stem: String,
    /// The heatmap grid's file (image models).
    maps: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn evaluate(name: &str, stem: &str, model: &dyn Explainable, x: &Tensor, t: &Target, black: f64, ns: &[usize], subsets: usize, dir: &std::path::Path) -> Result<ModelRun> {
    let (mut series, mut rows, mut maps, mut order) = (vec![], vec![], HashMap::new(), vec![]);
    for (method_name, method) in methods(black) {
        order.push(method_name);
        let attr = method.attribute(model, x, t)?.attributions;
        let s = SensitivityN { baseline: Baseline::Constant(black), ..SensitivityN::new(ns.to_vec(), subsets, 0) }.evaluate(model, x, &attr, t)?;
        let (xs, ys): (Vec<f64>, Vec<f64>) = s.n.iter().zip(&s.correlation).filter(|(_, c)| c.is_finite()).map(|(&n, &c)| (n as f64, c)).unzip();
        if !xs.is_empty() {
            series.push(Series::new(method_name, xs, ys));
        }
        rows.push(serde_json::json!({"method": method_name, "n": s.n, "correlation": s.correlation}));
        maps.insert(method_name, attr);
    }
    // The paper's equivalences: ε-LRP (ε → 0) = Gradient × Input on ReLU networks; DeepLIFT
    // (Rescale) = ε-LRP when the reference is 0 and the network has no biases.
    let zero_ref = DeepLift::default().with_baseline(Baseline::Zero).attribute(model, x, t)?.attributions;
    let equivalences = serde_json::json!({
        "lrp_vs_gradient_x_input": gap(&maps["ε-LRP"], &maps["Gradient × Input"])?,
        "deeplift_zero_reference_vs_lrp": gap(&zero_ref, &maps["ε-LRP"])?,
        "deeplift_vs_ig": gap(&maps["DeepLIFT (Rescale)"], &maps["Integrated Gradients"])?,
    });
    // Four examples spread over the batch (the digits are sorted by class), every method a column.
    let b = x.dim(0)?;
    let spread = Tensor::new((0..b.min(4)).map(|k| (k * b / b.min(4)) as u32).collect::<Vec<_>>(), x.device())?;
    let shown = x.index_select(&spread, 0)?;
    let picked: Vec<Tensor> = order.iter().map(|m| maps[m].index_select(&spread, 0)).collect::<candle_core::Result<_>>()?;
    heatmaps(&shown, &picked, &order, &format!("{name}: |attribution| per method"), &dir.join(format!("{stem}_maps.png")))?;
    save_line_plot(dir, stem, &format!("Sensitivity-n: {name}"), "n (pixels set to the baseline at once)", "Pearson correlation of Σ attributions and the output drop", &series)
        .map_err(anyhow::Error::msg)?;
    Ok(ModelRun { name: name.into(), ns: ns.to_vec(), rows, equivalences, stem: stem.into(), maps: Some(format!("{stem}_maps.png")) })
}

/// The polarity LSTM, one sentence at a time at its word embeddings: a feature is a word (its
/// whole vector), the baseline the zero (padding) embedding, Occlusion-N a 3-word window.
fn evaluate_text(text: &sentences::Sentences, ns: &[usize], subsets: usize, dir: &std::path::Path) -> Result<ModelRun> {
    let e = text.sentences[0].x.dim(2)?;
    let methods: Vec<(&str, Box<dyn Attributor>)> = vec![
        ("Saliency", Box::new(Saliency::abs())),
        ("Gradient × Input", Box::new(InputXGradient::default())),
        ("Integrated Gradients", Box::new(IntegratedGradients::new(64))),
        ("ε-LRP", Box::new(EpsilonLrp::new(1e-9))),
        ("DeepLIFT (Rescale)", Box::new(DeepLift::default())),
        ("Occlusion-1", Box::new(Occlusion::new(&[1, e], &[1, e]))),
        ("Occlusion-3 words", Box::new(Occlusion::new(&[3, e], &[1, e]))),
    ];
    let (mut series, mut rows, mut maps) = (vec![], vec![], HashMap::<&str, Vec<Tensor>>::new());
    for (method_name, method) in &methods {
        // Per n: the mean over sentences of the per-sentence correlation (NaN ones skipped).
        let mut per_n = vec![vec![]; ns.len()];
        for s in &text.sentences {
            let attr = method.attribute(&text.model, &s.x, &s.target)?.attributions;
            let sens = SensitivityN { feature_mask: Some(s.mask.clone()), ..SensitivityN::new(ns.to_vec(), subsets, 0) };
            for (j, c) in sens.evaluate(&text.model, &s.x, &attr, &s.target)?.per_example[0].iter().enumerate() {
                if c.is_finite() {
                    per_n[j].push(*c);
                }
            }
            maps.entry(method_name).or_default().push(attr);
        }
        let correlation: Vec<f64> = per_n.iter().map(|v| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 }).collect();
        let (xs, ys): (Vec<f64>, Vec<f64>) = ns.iter().zip(&correlation).filter(|(_, c)| c.is_finite()).map(|(&n, &c)| (n as f64, c)).unzip();
        series.push(Series::new(*method_name, xs, ys));
        rows.push(serde_json::json!({"method": method_name, "n": ns, "correlation": correlation}));
    }
    let cat = |k: &str| -> Result<Tensor> { Ok(Tensor::cat(&maps[k].iter().map(|t| t.flatten_all()).collect::<candle_core::Result<Vec<_>>>()?, 0)?) };
    // The text baseline is the zero embedding already: DeepLIFT's run is the zero-reference one.
    let equivalences = serde_json::json!({
        "lrp_vs_gradient_x_input": gap(&cat("ε-LRP")?, &cat("Gradient × Input")?)?,
        "deeplift_zero_reference_vs_lrp": gap(&cat("DeepLIFT (Rescale)")?, &cat("ε-LRP")?)?,
        "deeplift_vs_ig": gap(&cat("DeepLIFT (Rescale)")?, &cat("Integrated Gradients")?)?,
    });
    let stem = "sensitivity_n_lstm";
    let name = format!("the polarity LSTM on {} movie-review sentences ({:.1} % held out)", text.sentences.len(), 100.0 * text.accuracy);
    save_line_plot(dir, stem, &format!("Sensitivity-n: {name}"), "n (words set to the zero embedding at once)", "Pearson correlation of Σ attributions and the output drop", &series)
        .map_err(anyhow::Error::msg)?;
    Ok(ModelRun { name, ns: ns.to_vec(), rows, equivalences, stem: stem.into(), maps: None })
}

pub(super) fn run(a: &ReproduceArgs) -> Result<()> {
    let t0 = Instant::now();
    let (examples, subsets, points) = if a.quick { (8, 32, 5) } else { (100, 100, 10) };
    let dev = Device::Cpu;
    let dir = a.out.join("ancona");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ns = SensitivityN::log_grid(784, points, 0.8)?;
    // Every 50th digit of the class-sorted subset: all ten classes.
    let (cnn, x, t) = examples_of("digits-cnn", examples, 50, &dev)?;
    let (mlp, mlp_accuracy) = bias_free_mlp(&dev, a.quick)?;
    let mlp_pred: Vec<usize> = mlp.forward(&x)?.argmax(1)?.to_vec1::<u32>()?.into_iter().map(|c| c as usize).collect();
    // Fashion-MNIST test images, every 97th (the file is not sorted by class).
    let (resnet, fx, ft) = examples_of("fashion-resnet", if a.quick { 4 } else { 50 }, 97, &dev)?;
    // Held-out sentences of 10 to 16 words; n up to 8 words.
    let text = sentences::polarity(a.quick, if a.quick { 3 } else { 40 }, 10, 16, &dev)?;
    let word_ns = [1usize, 2, 3, 4, 6, 8];
    let runs = vec![
        evaluate(&format!("bias-free MLP on MNIST ({:.1} % held out)", 100.0 * mlp_accuracy), "sensitivity_n_mlp", &mlp, &x, &Target::PerExample(mlp_pred), cnn.black, &ns, subsets, &dir)?,
        evaluate("the digits CNN on MNIST", "sensitivity_n", cnn.model.as_ref(), &x, &t, cnn.black, &ns, subsets, &dir)?,
        evaluate("the Fashion-MNIST ResNet", "sensitivity_n_resnet", resnet.model.as_ref(), &fx, &ft, resnet.black, &ns, subsets, &dir)?,
        evaluate_text(&text, &word_ns, subsets, &dir)?,
    ];
    let secs = t0.elapsed().as_secs_f64();
    let mut md = format!(
        "# Ancona, Ceolini, Öztireli & Gross (2018): Sensitivity-n and the equivalences\n\n\
         Four networks, each explained for its predicted class. Three on images, baseline a black image: a bias-free ReLU MLP trained here \
         (784 → 256 → 256 → 10, trained on 4,000 digits of the shipped subset, tested on every fifth), the trained digits CNN (`weights/digits_cnn.safetensors`), both on \
         {examples} MNIST digits (every 50th of the subset: all ten classes), and the Fashion-MNIST ResNet on {} test images. \
         Sensitivity-n: {subsets} random subsets of n pixels per n and image, the Pearson correlation between the attributions' sum over \
         the subset and the output's drop when the subset is set to the baseline, averaged over images. And the polarity LSTM \
         (word embeddings → LSTM(64) → linear; {}) on {} held-out movie-review sentences of 10 to 16 words, explained at the word \
         embeddings: a feature is a word (its whole vector, the attributions summed over it), the baseline the zero (padding) \
         embedding, n up to 8 words, Occlusion-N a window of 3 words; ε-LRP there holds the gates constant (signal-take-all, Arras et al. \
         2017) and DeepLIFT rescales every sigmoid and tanh.\n\n",
        if a.quick { 4 } else { 50 },
        text.source,
        text.sentences.len()
    );
    for r in &runs {
        let maps = r.maps.as_ref().map_or(String::new(), |f| format!("![{f}]({f})\n\n"));
        md.push_str(&format!("## {}\n\n![{}]({}.svg)\n\n{maps}| method | {} |\n|---|{}\n", r.name, r.stem, r.stem,
            r.ns.iter().map(|n| format!("n = {n}")).collect::<Vec<_>>().join(" | "), "---|".repeat(r.ns.len())));
        for row in &r.rows {
            let c: Vec<String> = row["correlation"].as_array().unwrap_or(&vec![]).iter().map(|v| v.as_f64().map_or("—".into(), |v| format!("{v:.3}"))).collect();
            md.push_str(&format!("| {} | {} |\n", row["method"].as_str().unwrap_or(""), c.join(" | ")));
        }
        md.push('\n');
    }
    md.push_str("## The equivalences, measured (max |difference| / max |value|)\n\n| claim (the paper) | MLP, no biases | digits CNN | ResNet | LSTM |\n|---|---|---|---|---|\n");
    for (claim, key) in [
        ("ε-LRP (ε → 0) = Gradient × Input on ReLU networks", "lrp_vs_gradient_x_input"),
        ("DeepLIFT (Rescale, reference 0) = ε-LRP when there are no biases", "deeplift_zero_reference_vs_lrp"),
        ("DeepLIFT (Rescale) ≈ IG (equal when the model is piecewise linear along the path; not in general)", "deeplift_vs_ig"),
    ] {
        let cells: Vec<String> = runs.iter().map(|r| r.equivalences[key].as_f64().map_or("—".into(), |v| format!("{v:.1e}"))).collect();
        md.push_str(&format!("| {claim} | {} |\n", cells.join(" | ")));
    }
    md.push_str(&format!(
        "\nWhat must hold: Occlusion-1's correlation at n = 1 is exactly 1 on every network (its attributions are the drops); ε-LRP \
         equals Gradient × Input on all three (ReLU networks of linear maps, the ResNet's BatchNorm folded into its convolutions and its \
         skip connections plain sums); DeepLIFT with a zero reference equals ε-LRP on the bias-free MLP, and not where biases exist. \
         On the LSTM none of the equivalences is claimed (sigmoid and tanh are not piecewise linear, the gates multiply): the \
         gaps there are measured, not expected to vanish; Occlusion-1 over words is still exactly 1 at n = 1. How the curves rank the \
         methods at larger n is what the paper's Figure 3 compares; no method satisfies Sensitivity-n for every n on a nonlinear network.\n\n\
         Configuration: {}; {subsets} subsets per n, IG 64 points. Time: {secs:.1} s on this machine.\n",
        if a.quick { "--quick" } else { "full" }
    ));
    let cnn_run = &runs[1];
    let json = serde_json::json!({"paper": "ancona", "quick": a.quick, "examples": examples, "subsets": subsets,
        "sensitivity_n": cnn_run.rows, "equivalences": cnn_run.equivalences,
        "models": runs.iter().map(|r| serde_json::json!({"model": r.name, "sensitivity_n": r.rows, "equivalences": r.equivalences})).collect::<Vec<_>>(),
        "mlp_accuracy": mlp_accuracy, "seconds": secs});
    let mut figures: Vec<(String, String)> = runs.iter().map(|r| (r.stem.clone(), format!("{}.svg", r.stem))).collect();
    figures.extend(runs.iter().filter_map(|r| r.maps.clone()).map(|f| (f.clone(), f)));
    let figures: Vec<(&str, &str)> = figures.iter().map(|(a, f)| (a.as_str(), f.as_str())).collect();
    write_report(&dir, &json, &md, &figures)
}
