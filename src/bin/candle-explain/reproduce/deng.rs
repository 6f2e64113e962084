use super::{digits, write_report, ReproduceArgs};
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use candle_explain::prelude::*;
use std::time::Instant;

/// Deng et al. (2023) on the trained digits CNN: each method's attributions summed over the
/// groups of a `side × side` grid of superpixels are measured against the three principles of
/// a fair allocation of the exact Harsanyi dividends (`metrics::interactions`): the
/// approximation error (principle 1) and the unfairness (principles 2 and 3). Shapley values
/// obey all three exactly.
pub(super) fn run(a: &ReproduceArgs) -> Result<()> {
    use candle_explain::metrics::interactions::HarsanyiInteractions;
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
    let mask = Tensor::from_vec(ids.clone(), (1, 1, 28, 28), &dev)?;
    let groups = side * side;
    let base = Baseline::Constant(m.black);
    // Reference images for the methods that average over a background distribution: other
    // digits of the shipped subset (every 250th, offset so none is explained).
    let data = m.dataset(&dev)?;
    let refs: Vec<u32> = (0..20).map(|i| (125 + 250 * i) as u32 % data.labels.len() as u32).collect();
    let background = (m.normalize)(&data.images.index_select(&Tensor::new(refs.as_slice(), &dev)?, 0)?)?;
    let white = (m.normalize)(&Tensor::new(&[255f32], &dev)?)?.to_vec1::<f32>()?[0] as f64;
    let harsanyi = HarsanyiInteractions {
        baseline: base.clone(),
        ..HarsanyiInteractions::new(mask.clone())
    };
    let inter = harsanyi.evaluate(m.model.as_ref(), &x, &t)?;
    // Methods that give each feature its own value are summed per group; group methods give
    // every feature of a group the group's value, read at one of its pixels.
    let first: Vec<usize> = (0..groups)
        .map(|g| ids.iter().position(|&i| i as usize == g).unwrap_or(0))
        .collect();
    let per_pixel: Vec<(&str, Box<dyn Attributor>)> = vec![
        ("Saliency (signed)", Box::new(Saliency::signed())),
        ("Gradient × Input", Box::new(InputXGradient::default())),
        (
            "Integrated Gradients",
            Box::new(IntegratedGradients::new(64).with_baseline(base.clone())),
        ),
        ("ε-LRP", Box::new(EpsilonLrp::new(1e-9))),
        (
            "DeepLIFT (Rescale)",
            Box::new(DeepLift::default().with_baseline(base.clone())),
        ),
        (
            "Expected Gradients (GradientSHAP, 20 reference digits)",
            Box::new(GradientShap::new(background.clone(), 64, 0.0, 0)),
        ),
        ("DeepSHAP (20 reference digits)", Box::new(DeepShap::new(background.clone()))),
        ("LRP-α2β1", Box::new(Lrp::new(Composite::epsilon_alpha2_beta1()))),
        ("Deep Taylor (z^B, z⁺)", Box::new(Lrp::new(Composite::deep_taylor(m.black, white)))),
        ("Grad-CAM (upsampled)", Box::new(GradCam::new(&m.cam_layer))),
    ];
    let per_group: Vec<(&str, Box<dyn Attributor>)> = vec![
        (
            "Occlusion of one superpixel",
            Box::new(FeatureAblation {
                baseline: base.clone(),
                ..FeatureAblation::new(mask.clone())
            }),
        ),
        (
            "Shapley values (exact)",
            Box::new(ShapleyValues {
                baseline: base.clone(),
                ..ShapleyValues::exact(mask.clone())
            }),
        ),
        (
            "KernelSHAP (exact fit)",
            Box::new(KernelShap::exact(mask.clone()).with_baseline(base.clone())),
        ),
        (
            "LIME (1,000 samples)",
            Box::new(Lime::new(mask.clone(), 1000, 0).with_baseline(base.clone())),
        ),
        // Its windows are the superpixels (stride = side of a cell); the replacement values
        // are the 20 reference digits' (the empirical marginal, exactly); the weight of
        // evidence is in log₂-odds of the class's probability, not in the score's units.
        (
            "Prediction Difference (superpixel windows, log-odds)",
            Box::new(PredictionDifference { stride: cell, ..PredictionDifference::marginal(background.clone(), cell, None) }),
        ),
    ];
    let mut md = format!(
        "# Deng et al. (2023): which methods allocate the Harsanyi interactions fairly\n\n\
         The trained digits CNN on {examples} MNIST digits (one per class from 0), its predicted class, a {side} × {side} grid of \
         superpixels ({groups} players, {} coalitions per digit), baseline a black image. Errors are relative to Σ|I(S)|, averaged over digits: \
         *approximation* |Σ a − (v(N) − v(∅))| (principle 1), *unfairness* the largest violation of the fair-allocation inequalities \
         (principles 2 and 3: independent effects to their own player, interactions split among their members only).\n\n\
         | method | approximation | unfairness |\n|---|---|---|\n",
        1usize << groups
    );
    let mut rows = vec![];
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let mut record = |name: &str, alloc: Vec<Vec<f64>>, md: &mut String| -> Result<()> {
        let e = inter.allocation_errors(&alloc)?;
        let (ap, un) = (
            mean(&e.iter().map(|e| e.approximation).collect::<Vec<_>>()),
            mean(&e.iter().map(|e| e.unfairness).collect::<Vec<_>>()),
        );
        md.push_str(&format!("| {name} | {ap:.2e} | {un:.2e} |\n"));
        rows.push(serde_json::json!({"method": name, "approximation": ap, "unfairness": un}));
        Ok(())
    };
    for (name, method) in &per_pixel {
        let attr = method.attribute(m.model.as_ref(), &x, &t)?.attributions;
        record(name, inter.group_sums(&attr, &mask)?, &mut md)?;
    }
    for (name, method) in &per_group {
        let attr: Vec<Vec<f32>> = method
            .attribute(m.model.as_ref(), &x, &t)?
            .attributions
            .flatten_from(1)?
            .to_vec2()?;
        let alloc = attr
            .iter()
            .map(|row| first.iter().map(|&k| row[k] as f64).collect())
            .collect();
        record(name, alloc, &mut md)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    md.push_str(&format!(
        "\nWhat must hold: Shapley values (and KernelSHAP's exact fit, which equals them) have zero error on both, up to rounding. \
         The unfairness here is a test on the attribution vector alone (is it some fair split of the dividends?), weaker than \
         Deng et al.'s principles, which concern each method's allocation weights: a method can pass it on a given input with \
         unfair weights (DeepLIFT and IG nearly do here). Deng et al. find that only Shapley-value-based methods satisfy all \
         three principles; Saliency, Gradient × Input (= ε-LRP on this ReLU network) and single-superpixel occlusion miss even \
         principle 1 here. Prediction Difference measures log₂-odds of the class's probability, not the score the dividends split, so \
         principle 1 cannot hold for it in these units; it is listed as the paper lists it. Expected Gradients and DeepSHAP explain \
         against the 20 reference digits, not the black image the dividends are computed from, so their totals differ by design. DeepLIFT RevealCancel, the fourteenth \
         method, is implemented for dense networks (`DeepLift::reveal_cancel`, equal to the authors' package); the digits CNN's \
         convolutions are not covered yet, so it is not in this table.\n\nConfiguration: {}; {examples} digits, {groups} superpixels. Time: {secs:.1} s on this machine.\n",
        if a.quick { "--quick" } else { "full" }
    ));
    let dir = a.out.join("deng");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::json!({"paper": "deng", "quick": a.quick, "examples": examples, "players": groups, "methods": rows, "seconds": secs});
    write_report(&dir, &json, &md, &[])
}
