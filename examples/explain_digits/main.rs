//! Explains real MNIST digits with the trained digits CNN shipped in `weights/`, with every
//! core method, and writes what it finds:
//! - `attributions.safetensors`: one `(digits, 1, 28, 28)` tensor per method;
//! - `summary.json`: per method the time, explanations/s and completeness error;
//! - `grid.png`: one row per digit (label and prediction at the left), the digit then one
//!   heatmap per method, named over its column (red positive, blue negative, each map scaled
//!   by its 99.5th percentile of |value|, printed under it; the legend says so).
//!
//! ```text
//! cargo run --release --example explain_digits -- [--digits N] [--out DIR]
//! ```

#[global_allocator]
static GLOBAL: candle_explain::alloc::Allocator = candle_explain::alloc::Allocator;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use candle_explain::models::data::load_mnist_csv;
use candle_explain::models::DigitsCnn;
use candle_explain::prelude::*;
use std::collections::HashMap;
use std::time::Instant;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

struct Args {
    digits: usize,
    out: std::path::PathBuf,
}

fn args() -> Result<Args> {
    let mut a = Args {
        digits: 10,
        out: "out/explain_digits".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--digits" => a.digits = value()?.parse().context("--digits takes a number")?,
            "--out" => a.out = value()?.into(),
            "-h" | "--help" => {
                println!("usage: explain_digits [--digits N (1..=5000, default 10)] [--out DIR (default out/explain_digits)]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if a.digits == 0 || a.digits > 5000 {
        bail!("--digits must be in 1..=5000, got {}", a.digits);
    }
    Ok(a)
}

fn main() -> Result<()> {
    candle_explain::alloc::retain_freed_memory();
    let args = args()?;
    let dev = Device::Cpu;
    let model = DigitsCnn::from_file(format!("{ROOT}/weights/digits_cnn.safetensors"), &dev)?;
    let data = load_mnist_csv(format!("{ROOT}/weights/data/mnist_5k.csv.gz"), &dev)?;
    // The data is sorted by class: take digits round-robin over the classes.
    let rows: Vec<u32> = (0..args.digits)
        .map(|i| ((i % 10) * 500 + i / 10) as u32)
        .collect();
    let idx = Tensor::new(rows.as_slice(), &dev)?;
    let x = DigitsCnn::normalize(&data.images.index_select(&idx, 0)?)?;
    let labels: Vec<usize> = rows
        .iter()
        .map(|&r| data.labels[r as usize] as usize)
        .collect();
    let target = Target::PerExample(labels.clone());
    // Background for the distribution methods: 32 other digits.
    let bg_rows: Vec<u32> = (0..32)
        .map(|i| ((i % 10) * 500 + 250 + i / 10) as u32)
        .collect();
    let background = DigitsCnn::normalize(
        &data
            .images
            .index_select(&Tensor::new(bg_rows.as_slice(), &dev)?, 0)?,
    )?;
    let black = Baseline::Constant(-0.1307 / 0.3081);
    // 7×7 superpixels: 16 groups.
    let groups: Vec<u32> = (0..784)
        .map(|i| ((i / 28) / 7 * 4 + (i % 28) / 7) as u32)
        .collect();
    let groups = Tensor::from_vec(groups, (1, 28, 28), &dev)?;

    let methods: Vec<(&str, Box<dyn Attributor>)> = vec![
        ("saliency", Box::new(Saliency::signed())),
        ("gradient_x_input", Box::new(InputXGradient::default())),
        (
            "integrated_gradients",
            Box::new(IntegratedGradients::new(50).with_baseline(black.clone())),
        ),
        (
            "deeplift",
            Box::new(DeepLift::default().with_baseline(black.clone())),
        ),
        ("epsilon_lrp", Box::new(EpsilonLrp::default())),
        (
            "lrp_epsilon_plus",
            Box::new(Lrp::new(Composite::epsilon_plus())),
        ),
        // Normalised pixels lie in [−0.42, 2.82]: the z^B box of the first layer.
        (
            "lrp_epsilon_gamma_box",
            Box::new(Lrp::new(Composite::epsilon_gamma_box(-0.4242, 2.8215))),
        ),
        // The last conv block's ReLU (7×7 maps), as the Grad-CAM paper prescribes.
        ("grad_cam", Box::new(GradCam::new("conv_layers.7"))),
        (
            "blur_ig",
            Box::new(BlurIntegratedGradients {
                max_sigma: 8.0,
                steps: 50,
                ..Default::default()
            }),
        ),
        (
            "guided_ig",
            Box::new(GuidedIntegratedGradients {
                steps: 100,
                baseline: black.clone(),
                ..Default::default()
            }),
        ),
        (
            "ggig",
            Box::new(GeometricallyGuidedIg {
                baseline: black.clone(),
                ..Default::default()
            }),
        ),
        ("guided_backprop", Box::new(GuidedBackprop::default())),
        ("deconvnet", Box::new(Deconvnet::default())),
        (
            "smoothgrad",
            Box::new(NoiseTunnel::smooth_grad(Saliency::signed(), 20, 0)),
        ),
        (
            "gradient_shap",
            Box::new(GradientShap::new(background, 20, 0.1, 0)),
        ),
        (
            "occlusion_4x4",
            Box::new(Occlusion::new(&[1, 4, 4], &[1, 2, 2]).with_baseline(black.clone())),
        ),
        (
            "shapley_7x7",
            Box::new(ShapleyValues {
                baseline: black,
                ..ShapleyValues::sampling(groups, 25, 0)
            }),
        ),
        ("sobel", Box::new(SobelEdge)),
        ("random", Box::new(RandomAttribution { seed: 0 })),
    ];

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let logits = model.forward(&x)?;
    let pred: Vec<u32> = logits.argmax(1)?.to_vec1()?;
    println!(
        "{} digits, labels {:?}, predicted {:?}",
        args.digits, labels, pred
    );
    println!(
        "{:<22} {:>9} {:>12} {:>22}",
        "method", "seconds", "explained/s", "max |completeness err|"
    );
    let (mut tensors, mut summary, mut maps) = (HashMap::new(), vec![], vec![]);
    for (name, m) in &methods {
        let start = Instant::now();
        let a = m.attribute(&model, &x, &target)?;
        let secs = start.elapsed().as_secs_f64();
        let delta = a
            .delta
            .as_ref()
            .map(|d| d.abs()?.max(0)?.to_scalar::<f32>())
            .transpose()?;
        println!(
            "{name:<22} {secs:>9.3} {:>12.1} {:>22}",
            args.digits as f64 / secs,
            delta.map_or("—".into(), |d| format!("{d:.2e}"))
        );
        summary.push(serde_json::json!({"method": name, "seconds": secs, "explanations_per_s": args.digits as f64 / secs, "max_abs_completeness_error": delta}));
        maps.push(a.attributions.clone());
        tensors.insert(name.to_string(), a.attributions);
    }
    tensors.insert("input".into(), x.clone());
    candle_core::safetensors::save(&tensors, args.out.join("attributions.safetensors"))?;
    let json = serde_json::json!({"model": "weights/digits_cnn.safetensors", "digits": rows, "labels": labels, "predicted": pred, "methods": summary});
    std::fs::write(
        args.out.join("summary.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    let names: Vec<&str> = methods.iter().map(|(n, _)| *n).collect();
    grid(
        &x,
        &maps,
        &names,
        &labels,
        &pred,
        &args.out.join("grid.png"),
    )?;
    println!(
        "wrote {}/{{attributions.safetensors, summary.json, grid.png}}",
        args.out.display()
    );
    Ok(())
}

/// One row per digit (its label and the prediction beside it): the digit, then every method's
/// map (diverging red / blue), the method's name over each column and a colour legend.
fn grid(
    x: &Tensor,
    maps: &[Tensor],
    names: &[&str],
    labels: &[usize],
    pred: &[u32],
    path: &std::path::Path,
) -> Result<()> {
    use candle_explain::viz::{Cell, Figure, Row, Sign};
    let mut rows = vec![];
    for r in 0..x.dim(0)? {
        let digit = x.get(r)?;
        let mut cells = vec![Cell::input(&digit, 3, "").map_err(anyhow::Error::msg)?];
        for m in maps {
            cells.push(
                Cell::attribution(&digit, &m.get(r)?, Sign::Signed, 1.0, 3)
                    .map_err(anyhow::Error::msg)?,
            );
        }
        rows.push(Row {
            label: format!("label {}\npred {}", labels[r], pred[r]),
            cells,
        });
    }
    let mut columns = vec!["input".to_string()];
    columns.extend(names.iter().map(|n| n.to_string()));
    Figure {
        title: "Digits CNN on MNIST: which pixels made it say the label".into(),
        columns,
        rows,
        sign: Sign::Signed,
        notes: vec![],
    }
    .save(path)
    .map_err(anyhow::Error::msg)
}
