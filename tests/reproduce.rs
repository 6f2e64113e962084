//! `candle-explain reproduce <paper> --quick`: each report's numbers have the properties
//! that must hold whatever the model (theorems, and the sanity checks' directions).

use std::path::{Path, PathBuf};
use std::process::Command;

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("candle-explain-reproduce-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_candle-explain")).args(args).output().expect("the binary runs")
}

/// Runs the binary; panics with stderr on failure.
fn ok(args: &[&str]) {
    let o = run(args);
    assert!(o.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// Runs the binary expecting failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert!(!o.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).expect("valid JSON")
}

/// `reproduce lundstrom --quick`: the report's table says what the theory says — IG keeps
/// every axiom on the smooth MLP and the monomial closed form; Saliency breaks completeness.
#[test]
fn reproduce_lundstrom_reports_the_axiom_table() {
    let out = out_dir("reproduce");
    let o = out.to_str().expect("utf-8 path");
    ok(&["reproduce", "lundstrom", "--quick", "--out", o]);
    let r = json(&out.join("lundstrom/results.json"));
    let row = |model: &str, method: &str| {
        r["axioms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["model"].as_str().unwrap().starts_with(model) && a["method"] == method)
            .unwrap_or_else(|| panic!("{model} / {method}"))
            .clone()
    };
    let ig = row("tanh", "Integrated Gradients");
    for (axiom, ok) in ig["holds"].as_object().unwrap() {
        assert_eq!(ok, true, "IG should keep {axiom}: {ig}");
    }
    assert_eq!(row("tanh", "Saliency")["holds"]["completeness"], false);
    // On the digits CNN: DeepLIFT is complete, IG keeps every axiom but completeness (its
    // error is the quadrature's across ReLU kinks), Gradient × Input is not complete.
    let cnn = |method: &str| row("the digits CNN", method);
    assert_eq!(cnn("DeepLIFT (Rescale)")["holds"]["completeness"], true);
    for (axiom, ok) in cnn("Integrated Gradients")["holds"].as_object().unwrap() {
        assert!(axiom == "completeness" || ok == true, "IG on the CNN should keep {axiom}");
    }
    assert_eq!(cnn("Gradient × Input")["holds"]["completeness"], false);
    // Non-decreasing positivity on the monotone MLPs: IG's attributions are all ≥ 0.
    for p in r["positivity"].as_array().unwrap().iter().filter(|p| p["method"] == "Integrated Gradients") {
        assert!(p["violation"].as_f64().unwrap() <= 1e-12, "{p}");
    }
    let mono = r["monomial"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "Integrated Gradients")
        .unwrap()
        .clone();
    assert!(mono["violation"].as_f64().unwrap() < 1e-3, "{mono}");
    assert!(std::fs::read_to_string(out.join("lundstrom/report.html"))
        .unwrap()
        .contains("<table>"));
    assert!(fails(&["reproduce", "nobody", "--out", o]).contains("lundstrom"));
    std::fs::remove_dir_all(&out).ok();
}

/// `reproduce ancona --quick`: Occlusion-1's Sensitivity-1 correlation is 1 (its attributions
/// are the drops) and ε-LRP equals Gradient × Input on each ReLU network; DeepLIFT with a zero
/// reference equals ε-LRP where there are no biases.
#[test]
fn reproduce_ancona_checks_what_must_hold() {
    let out = out_dir("reproduce-ancona");
    let o = out.to_str().expect("utf-8 path");
    ok(&["reproduce", "ancona", "--quick", "--out", o]);
    let r = json(&out.join("ancona/results.json"));
    let occ = r["sensitivity_n"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "Occlusion-1")
        .unwrap()
        .clone();
    assert_eq!(occ["n"][0], 1);
    assert!(
        (occ["correlation"][0].as_f64().unwrap() - 1.0).abs() < 1e-6,
        "{occ}"
    );
    assert!(
        r["equivalences"]["lrp_vs_gradient_x_input"]
            .as_f64()
            .unwrap()
            < 1e-5
    );
    assert!(
        std::fs::read_to_string(out.join("ancona/sensitivity_n.svg"))
            .unwrap()
            .contains("Occlusion-1")
    );
    // Every network, the LSTM's words included: Occlusion-1 at n = 1 is 1. On the three ReLU
    // networks ε-LRP = Gradient × Input; DeepLIFT with a zero reference = ε-LRP on the
    // bias-free MLP only. The LSTM's gates and sigmoids break the first equivalence.
    let models = r["models"].as_array().unwrap();
    assert_eq!(models.len(), 4);
    for (i, m) in models.iter().enumerate() {
        let occ = m["sensitivity_n"].as_array().unwrap().iter().find(|r| r["method"] == "Occlusion-1").unwrap();
        assert!((occ["correlation"][0].as_f64().unwrap() - 1.0).abs() < 1e-6, "{}", m["model"]);
        let lrp_gap = m["equivalences"]["lrp_vs_gradient_x_input"].as_f64().unwrap();
        assert!((lrp_gap < 1e-4) == (i < 3), "{}: ε-LRP vs Gradient × Input {lrp_gap}", m["model"]);
    }
    assert!(models[0]["equivalences"]["deeplift_zero_reference_vs_lrp"].as_f64().unwrap() < 1e-5);
    assert!(models[1]["equivalences"]["deeplift_zero_reference_vs_lrp"].as_f64().unwrap() > 1e-2);
    for stem in ["sensitivity_n_mlp", "sensitivity_n", "sensitivity_n_resnet", "sensitivity_n_lstm"] {
        assert!(out.join(format!("ancona/{stem}.png")).exists(), "{stem}.png");
    }
    // The heatmap grids of the image models, embedded in the HTML report.
    let html = std::fs::read_to_string(out.join("ancona/report.html")).unwrap();
    for stem in ["sensitivity_n_mlp", "sensitivity_n", "sensitivity_n_resnet"] {
        assert!(out.join(format!("ancona/{stem}_maps.png")).exists() && html.contains(&format!("<img src=\"{stem}_maps.png\"")), "{stem}_maps.png");
    }
    std::fs::remove_dir_all(&out).ok();
}

/// `reproduce deng --quick`: exact Shapley values (and KernelSHAP's exact fit) allocate the
/// Harsanyi dividends fairly (errors ~0); Saliency does not.
#[test]
fn reproduce_deng_finds_shapley_fair() {
    let out = out_dir("reproduce-deng");
    let o = out.to_str().expect("utf-8 path");
    ok(&["reproduce", "deng", "--quick", "--out", o]);
    let r = json(&out.join("deng/results.json"));
    let row = |name: &str| {
        r["methods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["method"].as_str().unwrap().starts_with(name))
            .unwrap()
            .clone()
    };
    for name in ["Shapley", "KernelSHAP"] {
        let m = row(name);
        assert!(
            m["approximation"].as_f64().unwrap() < 1e-5 && m["unfairness"].as_f64().unwrap() < 1e-5,
            "{m}"
        );
    }
    assert!(row("Saliency")["approximation"].as_f64().unwrap() > 1e-2);
    // RevealCancel runs through the CNN's convolutions and, like Rescale, keeps completeness
    // (principle 1) up to the package's 1e-7 nudges.
    assert!(row("DeepLIFT (RevealCancel)")["approximation"].as_f64().unwrap() < 1e-5);
    // The sentences on the LSTM: the same verdicts with words as players.
    let words = &r["sentences"]["methods"];
    let word_row = |name: &str| words.as_array().unwrap().iter().find(|m| m["method"].as_str().unwrap().starts_with(name)).unwrap().clone();
    for name in ["Shapley", "KernelSHAP"] {
        let m = word_row(name);
        assert!(m["approximation"].as_f64().unwrap() < 1e-5 && m["unfairness"].as_f64().unwrap() < 1e-5, "{m}");
    }
    assert!(word_row("Saliency")["approximation"].as_f64().unwrap() > 1e-2);
    std::fs::remove_dir_all(&out).ok();
}

/// `reproduce ggig --quick`: every method's numbers are finite; 5 % weight noise leaves each
/// method's maps more similar to the original (SSIM) than randomising every layer does, and
/// the gradient (no input factor) loses its rank correlation under randomisation; the
/// figures are written and named in the report.
#[test]
fn reproduce_ggig_runs_the_sanity_checks_both_ways() {
    let out = out_dir("ggig");
    let o = out.to_str().expect("utf-8 path");
    ok(&["reproduce", "ggig", "--quick", "--out", o]);
    let r = json(&out.join("ggig/results.json"));
    let digits = r["digits"].as_array().unwrap();
    assert_eq!(digits.iter().map(|m| m["method"].as_str().unwrap()).collect::<Vec<_>>(), ["Gradient", "IG", "GGIG"]);
    for m in digits {
        for p in ["/deletion_aopc", "/insertion_aopc", "/perturbation/ssim", "/randomization/ssim"] {
            assert!(m.pointer(p).and_then(|v| v.as_f64()).is_some_and(f64::is_finite), "{p}: {m}");
        }
        let (kept, random) = (m["perturbation"]["ssim"].as_f64().unwrap(), m["randomization"]["ssim"].as_f64().unwrap());
        assert!(kept > random, "{}: SSIM {kept} after noise, {random} after randomisation", m["method"]);
    }
    let g = &digits[0];
    assert!(g["perturbation"]["spearman"].as_f64().unwrap() > 0.5 && g["randomization"]["spearman"].as_f64().unwrap() < 0.5, "{g}");
    assert_eq!(r["photos"].as_array().unwrap().len(), 3);
    let html = std::fs::read_to_string(out.join("ggig/report.html")).unwrap();
    for f in ["digits.png", "photos.png", "deletion.svg", "insertion.svg", "sensitivity_n.svg"] {
        assert!(out.join("ggig").join(f).exists() && html.contains(&format!("<img src=\"{f}\"")), "{f}");
    }
    std::fs::remove_dir_all(&out).ok();
}

/// `reproduce hooker --quick`: the ROAR job runs from the report command (four rankings, two
/// thresholds, both modes), every point has its accuracy in [0, 1], the paper's comparison
/// with random is tabulated and the plots are embedded. (At this size the retrained Fashion
/// models do not learn, so no ordering is asserted there; the committed reduced run has them.)
/// The report's control, where the informative pixels are known, must separate an oracle
/// ranking from a random one under both ROAR and KAR.
#[test]
fn reproduce_hooker_runs_roar_and_kar_through_the_dataset_job() {
    let out = out_dir("hooker");
    let o = out.to_str().expect("utf-8 path");
    ok(&["reproduce", "hooker", "--quick", "--out", o]);
    let r = json(&out.join("hooker/results.json"));
    for mode in ["roar", "kar"] {
        for method in ["saliency", "sg2:saliency", "random", "sobel"] {
            let pts = r["roar"]["results"][mode][method].as_array().unwrap_or_else(|| panic!("{mode} {method}: {r}"));
            assert_eq!(pts.len(), 2);
            for p in pts {
                let acc = p["mean"].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&acc), "{p}");
            }
        }
        let html = std::fs::read_to_string(out.join("hooker/report.html")).unwrap();
        assert!(html.contains(&format!("<img src=\"{mode}.svg\"")));
    }
    assert_eq!(r["verdicts"].as_array().unwrap().len(), 3, "every method against random");
    let c = |k: &str| r["oracle_control"][k]["mean"].as_f64().unwrap();
    assert!(c("roar_oracle") < 0.65 && c("roar_random") > c("roar_oracle") + 0.15, "ROAR: oracle {} random {}", c("roar_oracle"), c("roar_random"));
    assert!(c("kar_oracle") > c("kar_random") + 0.15, "KAR: oracle {} random {}", c("kar_oracle"), c("kar_random"));
    // A rerun finds every retraining done.
    ok(&["reproduce", "hooker", "--quick", "--out", o]);
    std::fs::remove_dir_all(&out).ok();
}
