//! `candle-explain reproduce <paper>`: a paper's experiment rerun, written as a report
//! (`report.md`, `report.html`, `results.json`, plots as SVG) in `out/reproduce/<paper>/`.
//! So far: Lundstrom et al. (2022), the method × axiom table of `metrics::check_axioms` and
//! the monomial closed form; Ancona et al. (2018), Sensitivity-n curves of seven methods on
//! the digits CNN and the measured gaps between the methods the paper proves equal.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain::core::nn::{Linear, Sequential};
use candle_explain::metrics::{check_axioms, check_monomial};
use candle_explain::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, clap::Args)]
pub struct ReproduceArgs {
    /// The paper: lundstrom, ancona or deng (hooker and ggig are not here yet).
    pub paper: String,
    /// The small configuration CI runs (fewer inputs and steps, the same code path).
    #[arg(long)]
    pub quick: bool,
    /// Violations up to this (relative to the largest |F(x) − F(0)|) count as holding.
    #[arg(long, default_value_t = 1e-3)]
    pub tolerance: f64,
    #[arg(long, default_value = "out/reproduce")]
    pub out: PathBuf,
}

pub fn run(a: &ReproduceArgs) -> Result<()> {
    match a.paper.as_str() {
        "lundstrom" => lundstrom(a),
        "ancona" => ancona(a),
        "deng" => deng(a),
        other => bail!("unknown paper {other:?}: lundstrom, ancona or deng (hooker and ggig are not reproduced yet)"),
    }
}

/// Seeded uniform values in `[lo, hi)`.
fn uniform(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(DType::F64)?)
}

/// A 6 → 16 → 3 MLP with `act`, seeded, in f64 (the checks compare small differences).
fn mlp(act: Activation) -> Result<Sequential> {
    Ok(Sequential::new()
        .push(Linear::new(
            uniform(&[16, 6], -0.8, 0.8, 1)?,
            Some(uniform(&[16], -0.3, 0.3, 2)?),
        ))
        .push(act)
        .push(Linear::new(
            uniform(&[3, 16], -0.8, 0.8, 3)?,
            Some(uniform(&[3], -0.3, 0.3, 4)?),
        )))
}

/// What the paper (and Sundararajan et al.) say of each method, for the report's last column.
fn claim(method: &str) -> &'static str {
    match method {
        "Integrated Gradients" => "all of them (IG's defining axioms)",
        "Saliency" => "not completeness (a gradient, not a share of F(x) − F(0))",
        "Gradient × Input" => "completeness only for linear models",
        "DeepLIFT (Rescale)" => "completeness; not implementation invariance in general",
        "ε-LRP" => "conservation up to biases and ε; = Gradient × Input on ReLU nets",
        "Occlusion-1" => "dummy, linearity, symmetry; not completeness",
        _ => "",
    }
}

fn lundstrom(a: &ReproduceArgs) -> Result<()> {
    let t0 = Instant::now();
    let (rows, steps) = if a.quick { (3, 32) } else { (16, 256) };
    let methods: Vec<(&str, Box<dyn Attributor>)> = vec![
        ("Saliency", Box::new(Saliency::signed())),
        ("Gradient × Input", Box::new(InputXGradient::default())),
        (
            "Integrated Gradients",
            Box::new(IntegratedGradients::new(steps)),
        ),
        ("DeepLIFT (Rescale)", Box::new(DeepLift::default())),
        ("ε-LRP", Box::new(EpsilonLrp::new(1e-9))),
        ("Occlusion-1", Box::new(Occlusion::single(1))),
        // Shapley values and KernelSHAP take a feature mask of the input's width, and the
        // dummy check widens the input: they are not in this table yet.
    ];
    let models = [
        ("tanh MLP 6→16→3", Activation::Tanh),
        ("ReLU MLP 6→16→3", Activation::Relu),
    ];
    let x = uniform(&[rows, 6], -1.5, 1.5, 5)?;
    let positive = uniform(&[rows, 3], 0.5, 1.5, 6)?;
    let mut results = vec![];
    let mut md = format!(
        "# Lundstrom, Huang & Razaviyayn (2022): which methods keep IG's axioms\n\n\
         Each cell is the largest violation over {rows} inputs, relative to the largest |F(x) − F(0)|; \
         ✓ where it is at most {tol:e}. Baseline 0; class 1; IG with {steps} Gauss–Legendre points. \
         Checks: `candle_explain::metrics::check_axioms` (dummy feature appended, linear \
         combination with a rescaled copy, symmetric features swapped, ReLU split of the input, \
         per-feature scaling) and `check_monomial` (F = x₀² x₁ x₂³, A_i = a_i / Σ a · F(x)).\n\n",
        tol = a.tolerance
    );
    for (model_name, act) in models {
        let model = mlp(act)?;
        md.push_str(&format!("## {model_name}\n\n| method | completeness | dummy | linearity | symmetry | implementation invariance | affine scale invariance | the paper / the method's authors |\n|---|---|---|---|---|---|---|---|\n"));
        for (name, m) in &methods {
            let r = check_axioms(m.as_ref(), &model, &x, 1)
                .with_context(|| format!("{name} on {model_name}"))?;
            let holds = r.holds(a.tolerance);
            let values = [
                r.completeness,
                r.dummy,
                r.linearity,
                r.symmetry,
                r.implementation_invariance,
                r.affine_scale,
            ];
            let cells: Vec<String> = values
                .iter()
                .zip(&holds)
                .map(|(v, (_, ok))| format!("{} {v:.1e}", if *ok { "✓" } else { "✗" }))
                .collect();
            md.push_str(&format!(
                "| {name} | {} | {} |\n",
                cells.join(" | "),
                claim(name)
            ));
            results.push(serde_json::json!({
                "model": model_name, "method": name,
                "violations": {"completeness": r.completeness, "dummy": r.dummy, "linearity": r.linearity,
                    "symmetry": r.symmetry, "implementation_invariance": r.implementation_invariance, "affine_scale": r.affine_scale},
                "holds": holds.iter().map(|(k, ok)| (k.to_string(), *ok)).collect::<std::collections::BTreeMap<_, _>>(),
            }));
        }
        md.push('\n');
    }
    md.push_str("## The monomial closed form (F = x₀² x₁ x₂³, positive inputs)\n\n| method | largest violation | |\n|---|---|---|\n");
    let mut monomial = vec![];
    for (name, m) in &methods {
        let v = check_monomial(m.as_ref(), &[2.0, 1.0, 3.0], &positive);
        let (text, mark, value) = match &v {
            Ok(v) => (
                format!("{v:.1e}"),
                if *v <= a.tolerance { "✓" } else { "✗" },
                Some(*v),
            ),
            // Rule-based methods need layers on the rule context; the monomial has none.
            Err(candle_explain::metrics::Error::Explain(
                candle_explain::core::Error::RulesNotApplied { .. },
            )) => (
                "n/a (a rule-based method; the monomial has no layers for its rules)".to_string(),
                "",
                None,
            ),
            Err(e) => (format!("error: {e}"), "✗", None),
        };
        md.push_str(&format!("| {name} | {text} | {mark} |\n"));
        monomial.push(serde_json::json!({"method": name, "violation": value}));
    }
    let secs = t0.elapsed().as_secs_f64();
    md.push_str(
        "\nReading: IG keeps every axiom the checker tests; on the ReLU MLP its completeness \
         error is the quadrature's (the path crosses ReLU kinks, where Gauss–Legendre converges \
         slowly) and shrinks with more points. DeepLIFT (Rescale) is exactly complete; the ReLU \
         split leaves its zero-baseline multipliers unchanged, so this check does not catch its \
         known implementation-invariance failures. Saliency breaks completeness and scale \
         invariance; Gradient × Input, ε-LRP and Occlusion-1 break completeness, as the papers \
         say.\n",
    );
    md.push_str(&format!(
        "\nConfiguration: {}; {rows} inputs, IG {steps} points, tolerance {:e}. Time: {secs:.1} s on this machine.\n",
        if a.quick { "--quick" } else { "full" },
        a.tolerance
    ));
    let dir = a.out.join("lundstrom");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::json!({"paper": "lundstrom", "quick": a.quick, "tolerance": a.tolerance, "inputs": rows,
        "ig_steps": steps, "seconds": secs, "axioms": results, "monomial": monomial});
    write_report(&dir, &json, &md, None)
}

/// The report's headings, paragraphs and pipe tables as one HTML page.
/// `results.json`, `report.md` and `report.html` (its tables as HTML; `figure`, `(alt,
/// file)`, the markdown's `![alt](file)` line shown as an image) in `dir`; prints the report
/// and what was written.
fn write_report(
    dir: &std::path::Path,
    json: &serde_json::Value,
    md: &str,
    figure: Option<(&str, &str)>,
) -> Result<()> {
    crate::write_file(&dir.join("results.json"), serde_json::to_string_pretty(json)?)?;
    crate::write_file(&dir.join("report.md"), md)?;
    let mut html = markdown_tables_html(md);
    let mut written = "report.md, report.html, results.json".to_string();
    if let Some((alt, file)) = figure {
        html = html.replace(
            &format!("<p>![{alt}]({file})</p>"),
            &format!("<img src=\"{file}\" alt=\"{alt}\">"),
        );
        written.push_str(&format!(", {file}"));
    }
    crate::write_file(&dir.join("report.html"), html)?;
    println!("{md}\nwrote {}/{{{written}}}", dir.display());
    Ok(())
}

fn markdown_tables_html(md: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut html = String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>reproduce</title><style>body{font-family:sans-serif;max-width:70em;margin:2em auto} td,th{border:1px solid #ccc;padding:0.2em 0.5em} table{border-collapse:collapse}</style></head><body>\n");
    let mut in_table = false;
    for line in md.lines() {
        if let Some(row) = line.strip_prefix('|') {
            if line.starts_with("|---") {
                continue;
            }
            if !in_table {
                html.push_str("<table>\n");
                in_table = true;
            }
            let cells: Vec<String> = row
                .trim_end_matches('|')
                .split('|')
                .map(|c| format!("<td>{}</td>", esc(c.trim())))
                .collect();
            html.push_str(&format!("<tr>{}</tr>\n", cells.concat()));
            continue;
        }
        if in_table {
            html.push_str("</table>\n");
            in_table = false;
        }
        if let Some(h) = line.strip_prefix("## ") {
            html.push_str(&format!("<h2>{}</h2>\n", esc(h)));
        } else if let Some(h) = line.strip_prefix("# ") {
            html.push_str(&format!("<h1>{}</h1>\n", esc(h)));
        } else if !line.trim().is_empty() {
            html.push_str(&format!("<p>{}</p>\n", esc(line)));
        }
    }
    if in_table {
        html.push_str("</table>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// The trained digits CNN, `examples` rows of its MNIST subset (every `step`-th), normalised,
/// and their predicted classes as the target.
fn digits(
    examples: usize,
    step: usize,
    dev: &Device,
) -> Result<(crate::model::ImageModel, Tensor, Target)> {
    let crate::model::Loaded::Image(m) = crate::model::load("digits-cnn", DType::F32, dev)? else {
        bail!("the digits CNN is an image model");
    };
    let data = m.dataset(dev)?;
    let idx: Vec<u32> = (0..examples)
        .map(|i| (i * step % data.labels.len()) as u32)
        .collect();
    let x = (m.normalize)(
        &data
            .images
            .index_select(&Tensor::new(idx.as_slice(), dev)?, 0)?,
    )?;
    let pred = m
        .model
        .forward(&x)?
        .argmax(candle_core::D::Minus1)?
        .to_vec1::<u32>()?;
    let t = Target::PerExample(pred.into_iter().map(|c| c as usize).collect());
    Ok((m, x, t))
}

/// Ancona et al. (2018) on the trained digits CNN and real MNIST digits: Sensitivity-n curves
/// (n log-spaced) of Saliency, Gradient × Input, IG, ε-LRP, DeepLIFT, Occlusion-1 and
/// Occlusion-3×3, and the measured gaps between methods the paper proves equal on ReLU
/// networks (ε-LRP with ε → 0 = Gradient × Input).
fn ancona(a: &ReproduceArgs) -> Result<()> {
    use candle_explain::metrics::SensitivityN;
    use candle_explain::viz::{line_plot_svg, Series};
    let t0 = Instant::now();
    let (examples, subsets, points) = if a.quick { (8, 32, 5) } else { (100, 100, 10) };
    let dev = Device::Cpu;
    // Every 50th image: the file is sorted by class, 500 per class, so all ten digits.
    let (m, x, t) = digits(examples, 50, &dev)?;
    let base = Baseline::Constant(m.black);
    let methods: Vec<(&str, Box<dyn Attributor>)> = vec![
        ("Saliency", Box::new(Saliency::abs())),
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
            "Occlusion-1",
            Box::new(Occlusion::new(&[1, 1, 1], &[1, 1, 1]).with_baseline(base.clone())),
        ),
        (
            "Occlusion-3×3",
            Box::new(Occlusion::new(&[1, 3, 3], &[1, 1, 1]).with_baseline(base.clone())),
        ),
    ];
    let ns = SensitivityN::log_grid(784, points, 0.8)?;
    let mut series = vec![];
    let mut rows = vec![];
    let mut maps = std::collections::HashMap::new();
    for (name, method) in &methods {
        let attr = method.attribute(m.model.as_ref(), &x, &t)?.attributions;
        let s = SensitivityN {
            baseline: base.clone(),
            ..SensitivityN::new(ns.clone(), subsets, 0)
        }
        .evaluate(m.model.as_ref(), &x, &attr, &t)?;
        let (xs, ys): (Vec<f64>, Vec<f64>) =
            s.n.iter()
                .zip(&s.correlation)
                .filter(|(_, c)| c.is_finite())
                .map(|(&n, &c)| (n as f64, c))
                .unzip();
        if !xs.is_empty() {
            series.push(Series::new(*name, xs, ys));
        }
        rows.push(serde_json::json!({"method": name, "n": s.n, "correlation": s.correlation}));
        maps.insert(*name, attr);
    }
    // The paper's equivalence on ReLU networks: ε-LRP (ε → 0) = Gradient × Input.
    let gap = |a: &str, b: &str| -> Result<f64> {
        let (p, q) = (&maps[a], &maps[b]);
        let d = (p - q)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? as f64;
        let s = q.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? as f64;
        Ok(d / s.max(1e-12))
    };
    let lrp_gxi = gap("ε-LRP", "Gradient × Input")?;
    let dl_ig = gap("DeepLIFT (Rescale)", "Integrated Gradients")?;
    let dir = a.out.join("ancona");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let svg = line_plot_svg(
        "Sensitivity-n on the digits CNN (Ancona et al. 2018, Fig. 3)",
        "n (pixels set to the baseline at once)",
        "Pearson correlation of Σ attributions and the output drop",
        &series,
    )
    .map_err(anyhow::Error::msg)?;
    crate::write_file(&dir.join("sensitivity_n.svg"), &svg)?;
    let secs = t0.elapsed().as_secs_f64();
    let mut md = format!(
        "# Ancona, Ceolini, Öztireli & Gross (2018): Sensitivity-n and the equivalences\n\n\
         The trained digits CNN (`weights/digits_cnn.safetensors`) on {examples} MNIST digits (every 50th of the shipped subset), \
         explained for its predicted class; baseline: a black image. Sensitivity-n: {subsets} random subsets of n pixels per n and digit, \
         the Pearson correlation between the attributions' sum over the subset and the output's drop when the subset is set to the baseline, \
         averaged over digits.\n\n![Sensitivity-n](sensitivity_n.svg)\n\n| method | {} |\n|---|{}\n",
        ns.iter().map(|n| format!("n = {n}")).collect::<Vec<_>>().join(" | "),
        "---|".repeat(ns.len())
    );
    for r in &rows {
        let c: Vec<String> = r["correlation"]
            .as_array()
            .unwrap_or(&vec![])
            .iter()
            .map(|v| v.as_f64().map_or("—".into(), |v| format!("{v:.3}")))
            .collect();
        md.push_str(&format!(
            "| {} | {} |\n",
            r["method"].as_str().unwrap_or(""),
            c.join(" | ")
        ));
    }
    md.push_str(&format!(
        "\n## The equivalences, measured\n\n| claim (the paper) | measured max |difference| / max |value| |\n|---|---|\n\
         | ε-LRP (ε → 0) = Gradient × Input on ReLU networks | {lrp_gxi:.1e} |\n\
         | DeepLIFT (Rescale) ≈ IG (equal when the model is piecewise linear along the path; not in general) | {dl_ig:.1e} |\n\n\
         What must hold: Occlusion-1's correlation at n = 1 is exactly 1 (its attributions are the drops); ε-LRP equals Gradient × Input \
         on this ReLU network (the table above, to rounding). How the curves rank the methods at larger n is what the paper's \
         Figure 3 compares across models; no method satisfies Sensitivity-n for every n on a nonlinear network.\n\n\
         Configuration: {}; {examples} digits, {subsets} subsets per n, IG 64 points. Time: {secs:.1} s on this machine.\n",
        if a.quick { "--quick" } else { "full" }
    ));
    let json = serde_json::json!({"paper": "ancona", "quick": a.quick, "examples": examples, "subsets": subsets,
        "sensitivity_n": rows, "equivalences": {"lrp_vs_gradient_x_input": lrp_gxi, "deeplift_vs_ig": dl_ig}, "seconds": secs});
    write_report(&dir, &json, &md, Some(("Sensitivity-n", "sensitivity_n.svg")))
}

/// Deng et al. (2023) on the trained digits CNN: each method's attributions summed over the
/// groups of a `side × side` grid of superpixels are measured against the three principles of
/// a fair allocation of the exact Harsanyi dividends (`metrics::interactions`): the
/// approximation error (principle 1) and the unfairness (principles 2 and 3). Shapley values
/// obey all three exactly.
fn deng(a: &ReproduceArgs) -> Result<()> {
    use candle_explain::metrics::interactions::HarsanyiInteractions;
    let t0 = Instant::now();
    // 3 × 3 superpixels: 512 coalitions per digit for the dividends, Shapley and KernelSHAP
    // (4 × 4, 65,536 each, also works; minutes per digit here).
    let (examples, side) = if a.quick { (2, 3) } else { (10, 3) };
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
         principle 1 here.\n\nConfiguration: {}; {examples} digits, {groups} superpixels. Time: {secs:.1} s on this machine.\n",
        if a.quick { "--quick" } else { "full" }
    ));
    let dir = a.out.join("deng");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::json!({"paper": "deng", "quick": a.quick, "examples": examples, "players": groups, "methods": rows, "seconds": secs});
    write_report(&dir, &json, &md, None)
}
