//! Deng et al. (2023) on the trained digits CNN (superpixels) and the polarity LSTM (the words
//! of short sentences): each method's attributions summed over the feature groups are
//! measured against the three principles of a fair allocation of the exact Harsanyi
//! dividends (`metrics::interactions`): the approximation error (principle 1) and the
//! unfairness (principles 2 and 3). Shapley values obey all three exactly.

use super::{digits, sentences, write_report, ReproduceArgs};
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use candle_explain::metrics::interactions::HarsanyiInteractions;
use candle_explain::prelude::*;
use std::time::Instant;

type Methods = Vec<(&'static str, Box<dyn Attributor>)>;

/// One explained batch: its inputs, target and feature groups (a per-example mask of ids).
struct Batch<'a> {
    x: &'a Tensor,
    t: &'a Target,
    mask: &'a Tensor,
}

/// Mean approximation error and unfairness of every method over all batches, as table rows
/// (markdown) and JSON. `per_element(mask)` gives a value per feature (summed over each
/// group); `per_group(mask)` the same value to every feature of a group (read at one).
fn allocation_table(
    model: &dyn Explainable,
    batches: &[Batch],
    baseline: &Baseline,
    per_element: &dyn Fn(&Tensor) -> Methods,
    per_group: &dyn Fn(&Tensor) -> Methods,
) -> Result<(String, Vec<serde_json::Value>)> {
    let mut errors: Vec<(&str, Vec<(f64, f64)>)> = vec![];
    let mut add = |name: &'static str, e: Vec<candle_explain::metrics::interactions::AllocationErrors>| {
        let at = errors.iter().position(|(n, _)| *n == name).unwrap_or_else(|| {
            errors.push((name, vec![]));
            errors.len() - 1
        });
        errors[at].1.extend(e.iter().map(|e| (e.approximation, e.unfairness)));
    };
    for b in batches {
        let inter = HarsanyiInteractions { baseline: baseline.clone(), ..HarsanyiInteractions::new(b.mask.clone()) }.evaluate(model, b.x, b.t)?;
        for (name, method) in per_element(b.mask) {
            let attr = method.attribute(model, b.x, b.t)?.attributions;
            add(name, inter.allocation_errors(&inter.group_sums(&attr, b.mask)?)?);
        }
        // The first feature of each group, in the per-example mask's order.
        let ids: Vec<u32> = b.mask.flatten_all()?.to_vec1()?;
        let groups = ids.iter().max().map_or(0, |&m| m as usize + 1);
        let first: Vec<usize> = (0..groups).map(|g| ids.iter().position(|&i| i as usize == g).unwrap_or(0)).collect();
        for (name, method) in per_group(b.mask) {
            let attr: Vec<Vec<f32>> = method.attribute(model, b.x, b.t)?.attributions.flatten_from(1)?.to_vec2()?;
            let alloc: Vec<Vec<f64>> = attr.iter().map(|row| first.iter().map(|&k| row[k] as f64).collect()).collect();
            add(name, inter.allocation_errors(&alloc)?);
        }
    }
    let (mut md, mut rows) = (String::from("| method | approximation | unfairness |\n|---|---|---|\n"), vec![]);
    for (name, e) in &errors {
        let n = e.len().max(1) as f64;
        let (ap, un) = (e.iter().map(|e| e.0).sum::<f64>() / n, e.iter().map(|e| e.1).sum::<f64>() / n);
        md.push_str(&format!("| {name} | {ap:.2e} | {un:.2e} |\n"));
        rows.push(serde_json::json!({"method": name, "approximation": ap, "unfairness": un}));
    }
    Ok((md, rows))
}

/// The sentences' table: the LSTM one sentence at a time, each word a player, baseline the
/// zero (padding) embedding.
fn sentences_table(text: &sentences::Sentences) -> Result<(String, Vec<serde_json::Value>)> {
    let batches: Vec<Batch> = text.sentences.iter().map(|s| Batch { x: &s.x, t: &s.target, mask: &s.mask }).collect();
    let per_element = |_: &Tensor| -> Methods {
        vec![
            ("Saliency (signed)", Box::new(Saliency::signed())),
            ("Gradient × Input", Box::new(InputXGradient::default())),
            ("Integrated Gradients", Box::new(IntegratedGradients::new(64))),
            ("ε-LRP (signal-take-all gates)", Box::new(EpsilonLrp::new(1e-9))),
            ("DeepLIFT (Rescale)", Box::new(DeepLift::default())),
        ]
    };
    let per_group = |mask: &Tensor| -> Methods {
        vec![
            ("Occlusion of one word", Box::new(FeatureAblation::new(mask.clone()))),
            ("Shapley values (exact)", Box::new(ShapleyValues::exact(mask.clone()))),
            ("KernelSHAP (exact fit)", Box::new(KernelShap::exact(mask.clone()))),
            ("LIME (1,000 samples)", Box::new(Lime::new(mask.clone(), 1000, 0))),
        ]
    };
    allocation_table(&text.model, &batches, &Baseline::Zero, &per_element, &per_group)
}

pub(super) fn run(a: &ReproduceArgs) -> Result<()> {
    let t0 = Instant::now();
    // 4 × 4 superpixels of 7 × 7 pixels: 65,536 coalitions per digit for the dividends,
    // Shapley values and KernelSHAP (the paper's limit of exact computation); quick: 2 × 2.
    let (examples, side) = if a.quick { (2, 2) } else { (10, 4) };
    if 28 % side != 0 {
        anyhow::bail!("the superpixel grid must divide 28 (Prediction Difference's windows are the superpixels)");
    }
    let dev = Device::Cpu;
    // One digit of each class from 0 (the file holds 500 per class, sorted).
    let (m, x, t) = digits(examples, 500, &dev)?;
    // Superpixels: a side × side grid over the 28 × 28 digit.
    let cell = 28usize.div_ceil(side);
    let ids: Vec<u32> = (0..28 * 28)
        .map(|k| ((k / 28 / cell) * side + (k % 28) / cell) as u32)
        .collect();
    let mask = Tensor::from_vec(ids, (1, 1, 28, 28), &dev)?;
    let groups = side * side;
    let base = Baseline::Constant(m.black);
    // Reference images for the methods that average over a background distribution: other
    // digits of the shipped subset (every 250th, offset so none is explained).
    let data = m.dataset(&dev)?;
    let refs: Vec<u32> = (0..20).map(|i| (125 + 250 * i) as u32 % data.labels.len() as u32).collect();
    let background = (m.normalize)(&data.images.index_select(&Tensor::new(refs.as_slice(), &dev)?, 0)?)?;
    let white = (m.normalize)(&Tensor::new(&[255f32], &dev)?)?.to_vec1::<f32>()?[0] as f64;
    let per_element = |_: &Tensor| -> Methods {
        vec![
            ("Saliency (signed)", Box::new(Saliency::signed())),
            ("Gradient × Input", Box::new(InputXGradient::default())),
            ("Integrated Gradients", Box::new(IntegratedGradients::new(64).with_baseline(base.clone()))),
            ("ε-LRP", Box::new(EpsilonLrp::new(1e-9))),
            ("DeepLIFT (Rescale)", Box::new(DeepLift::default().with_baseline(base.clone()))),
            ("DeepLIFT (RevealCancel)", Box::new(DeepLift::reveal_cancel().with_baseline(base.clone()))),
            ("Expected Gradients (GradientSHAP, 20 reference digits)", Box::new(GradientShap::new(background.clone(), 64, 0.0, 0))),
            ("DeepSHAP (20 reference digits)", Box::new(DeepShap::new(background.clone()))),
            ("LRP-α2β1", Box::new(Lrp::new(Composite::epsilon_alpha2_beta1()))),
            ("Deep Taylor (z^B, z⁺)", Box::new(Lrp::new(Composite::deep_taylor(m.black, white)))),
            ("Grad-CAM (upsampled)", Box::new(GradCam::new(&m.cam_layer))),
        ]
    };
    let per_group = |mask: &Tensor| -> Methods {
        vec![
            ("Occlusion of one superpixel", Box::new(FeatureAblation { baseline: base.clone(), ..FeatureAblation::new(mask.clone()) })),
            ("Shapley values (exact)", Box::new(ShapleyValues { baseline: base.clone(), ..ShapleyValues::exact(mask.clone()) })),
            ("KernelSHAP (exact fit)", Box::new(KernelShap::exact(mask.clone()).with_baseline(base.clone()))),
            ("LIME (1,000 samples)", Box::new(Lime::new(mask.clone(), 1000, 0).with_baseline(base.clone()))),
            // Its windows are the superpixels (stride = side of a cell); the replacement values
            // are the 20 reference digits' (the empirical marginal, exactly); the weight of
            // evidence is in log₂-odds of the class's probability, not in the score's units.
            (
                "Prediction Difference (superpixel windows, log-odds)",
                Box::new(PredictionDifference { stride: cell, ..PredictionDifference::marginal(background.clone(), cell, None) }),
            ),
        ]
    };
    let (digits_md, digit_rows) = allocation_table(m.model.as_ref(), &[Batch { x: &x, t: &t, mask: &mask }], &base, &per_element, &per_group)?;
    // Held-out movie-review sentences of 6 to 16 words on the polarity LSTM.
    let text = sentences::polarity(a.quick, if a.quick { 2 } else { 10 }, if a.quick { 4 } else { 6 }, if a.quick { 6 } else { 16 }, &dev)?;
    let (text_md, text_rows) = sentences_table(&text)?;
    let words: Vec<usize> = text.sentences.iter().map(|s| s.words.len()).collect();
    let mut md = format!(
        "# Deng et al. (2023): which methods allocate the Harsanyi interactions fairly\n\n\
         Errors are relative to Σ|I(S)|, averaged over inputs: *approximation* |Σ a − (v(N) − v(∅))| (principle 1), *unfairness* \
         the largest violation of the fair-allocation inequalities (principles 2 and 3: independent effects to their own player, \
         interactions split among their members only).\n\n\
         ## Digits: the CNN, superpixels as players\n\n\
         The trained digits CNN on {examples} MNIST digits (one per class from 0), its predicted class, a {side} × {side} grid of \
         superpixels ({groups} players, {} coalitions per digit), baseline a black image.\n\n{digits_md}\n\
         ## Sentences: the polarity LSTM, words as players\n\n\
         The polarity LSTM ({}; {:.1} % on the held-out sentences) on {} of those sentences ({} words: {} to {} coalitions each), \
         its predicted class, explained at the word embeddings; a player is a word (its whole vector), the baseline the zero \
         (padding) embedding. The image-only methods are not run here: Deep Taylor, LRP-α2β1 and RevealCancel need ReLU \
         layers (the LSTM's gates are sigmoids), Grad-CAM a convolution, Prediction Difference windows of an image, and \
         Expected Gradients / DeepSHAP a background set of sentences of the same length.\n\n{text_md}",
        1usize << groups,
        text.source,
        100.0 * text.accuracy,
        words.len(),
        words.iter().map(|w| w.to_string()).collect::<Vec<_>>().join(", "),
        1usize << words.iter().min().copied().unwrap_or(0),
        1usize << words.iter().max().copied().unwrap_or(0),
    );
    let secs = t0.elapsed().as_secs_f64();
    md.push_str(&format!(
        "\nWhat must hold: Shapley values (and KernelSHAP's exact fit, which equals them) have zero error on both, up to rounding. \
         The unfairness here is a test on the attribution vector alone (is it some fair split of the dividends?), weaker than \
         Deng et al.'s principles, which concern each method's allocation weights: a method can pass it on a given input with \
         unfair weights (DeepLIFT and IG nearly do here). Deng et al. find that only Shapley-value-based methods satisfy all \
         three principles; Saliency, Gradient × Input (= ε-LRP on this ReLU network) and single-superpixel occlusion miss even \
         principle 1 here. Prediction Difference measures log₂-odds of the class's probability, not the score the dividends split, so \
         principle 1 cannot hold for it in these units; it is listed as the paper lists it. Expected Gradients and DeepSHAP explain \
         against the 20 reference digits, not the black image the dividends are computed from, so their totals differ by design. \
         DeepLIFT RevealCancel (`DeepLift::reveal_cancel`, equal to the authors' package on MLPs and a CNN) passes the CNN's \
         max-pools with the Rescale pools' rule. On the LSTM, DeepLIFT's Rescale keeps its completeness through linear maps and \
         elementwise nonlinearities only: the gates' products are differentiated (product rule, as DeepExplain does), so its \
         total misses v(N) − v(∅) there; IG's 64-point Gauss–Legendre rule is exact to ~1e-8 on this smooth model. The digits table holds every method of \
         the paper named in PAPERS.md (Gradient × Input, Occlusion, IG, Expected Gradients, DeepLIFT Rescale and RevealCancel, \
         DeepSHAP, ε-LRP, LRP-αβ, Deep Taylor, Grad-CAM, Shapley values, Prediction Difference), plus Saliency, KernelSHAP and LIME.\n\n\
         Configuration: {}; {examples} digits, {groups} superpixels; {} sentences. Time: {secs:.1} s on this machine.\n",
        if a.quick { "--quick" } else { "full" },
        words.len()
    ));
    let dir = a.out.join("deng");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::json!({"paper": "deng", "quick": a.quick, "examples": examples, "players": groups, "methods": digit_rows,
        "sentences": {"words": words, "accuracy": text.accuracy, "methods": text_rows}, "seconds": secs});
    write_report(&dir, &json, &md, &[])
}
