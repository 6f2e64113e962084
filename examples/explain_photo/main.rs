//! Explains photos with EfficientNet-Lite0 (the f16 checkpoint in `weights/`): what made it
//! say "Egyptian Mau" for the cat and "espresso" for the coffee? Eight methods per photo,
//! each drawn over the photo; prints the top-3 classes, per method the time and the
//! completeness error, and writes `grid.png` (one row per photo: the photo, then one heatmap
//! per method), `summary.json` and `attributions.safetensors`.
//!
//! The photos are scikit-image's (fetched on first run by `scripts/fetch-assets.sh photos`); any PNG / JPEG works.
//!
//! ```text
//! cargo run --release --example explain_photo -- [PHOTO ...] [--out DIR]
//! ```

#[global_allocator]
static GLOBAL: candle_explain::alloc::Allocator = candle_explain::alloc::Allocator;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_explain::models::data::load_rgb;
use candle_explain::models::efficientnet::imagenet_classes;
use candle_explain::models::EfficientNetLite0;
use candle_explain::prelude::*;
use candle_explain::viz::{Cell, Figure, Row, Sign};
use std::collections::HashMap;
use std::time::Instant;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn main() -> Result<()> {
    candle_explain::alloc::retain_freed_memory();
    let (mut photos, mut out) = (
        Vec::<String>::new(),
        std::path::PathBuf::from("out/explain_photo"),
    );
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = it.next().context("--out needs a folder")?.into(),
            "-h" | "--help" => {
                println!(
                    "usage: explain_photo [PHOTO ...] [--out DIR (default out/explain_photo)]"
                );
                return Ok(());
            }
            flag if flag.starts_with("--") => bail!("unknown flag {flag:?} (try --help)"),
            p => photos.push(p.to_string()),
        }
    }
    if photos.is_empty() {
        let dir = candle_explain::models::assets::ensure("photos")?;
        photos = ["chelsea.png", "coffee.png"]
            .map(|p| dir.join(p).display().to_string())
            .to_vec();
    }
    let dev = Device::Cpu;
    let model = EfficientNetLite0::from_file(
        format!("{ROOT}/weights/efficientnet_lite0.f16.safetensors"),
        DType::F32,
        &dev,
    )?;
    let names = imagenet_classes(format!("{ROOT}/weights/imagenet_classes.txt"))?;
    let mut pixels = vec![];
    for p in &photos {
        let (px, _) =
            load_rgb(p, EfficientNetLite0::INPUT_SIZE, &dev).with_context(|| p.clone())?;
        pixels.push(px);
    }
    let pixels = Tensor::cat(&pixels, 0)?;
    let x = EfficientNetLite0::normalize(&pixels)?;
    let probs = candle_nn::ops::softmax(&model.forward(&x)?, D::Minus1)?;
    let pred: Vec<usize> = probs
        .argmax(D::Minus1)?
        .to_vec1::<u32>()?
        .into_iter()
        .map(|v| v as usize)
        .collect();
    let conf: Vec<f32> = (0..photos.len())
        .map(|i| probs.get(i)?.get(pred[i])?.to_scalar::<f32>())
        .collect::<candle_core::Result<_>>()?;
    for (i, p) in photos.iter().enumerate() {
        let row: Vec<f32> = probs.get(i)?.to_vec1()?;
        let mut idx: Vec<usize> = (0..row.len()).collect();
        idx.sort_by(|a, b| row[*b].total_cmp(&row[*a]));
        let top: Vec<String> = idx
            .iter()
            .take(3)
            .map(|&c| format!("{} ({c}) {:.3}", names[c], row[c]))
            .collect();
        println!("{p}: {}", top.join(", "));
    }
    let target = Target::PerExample(pred.clone());
    // A black image as the baseline of the path methods; the input range for z^B.
    let black = Baseline::Constant(-127.0 / 128.0);
    let methods: Vec<(&str, Box<dyn Attributor>)> = vec![
        ("saliency", Box::new(Saliency::abs())),
        (
            "integrated_gradients",
            Box::new(IntegratedGradients::new(32).with_baseline(black.clone())),
        ),
        (
            "smoothgrad",
            Box::new(NoiseTunnel::smooth_grad(Saliency::abs(), 16, 0)),
        ),
        (
            "lrp_epsilon_plus",
            Box::new(Lrp::new(Composite::epsilon_plus())),
        ),
        (
            "lrp_epsilon_gamma_box",
            Box::new(Lrp::new(Composite::epsilon_gamma_box(-127.0 / 128.0, 1.0))),
        ),
        ("guided_backprop", Box::new(GuidedBackprop::default())),
        ("grad_cam", Box::new(GradCam::new("_conv_head"))),
        (
            "occlusion_32",
            Box::new(Occlusion::new(&[3, 32, 32], &[3, 16, 16]).with_baseline(black)),
        ),
    ];
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    println!(
        "{:<24} {:>9} {:>24}",
        "method", "seconds", "max |completeness err|"
    );
    let (mut tensors, mut summary, mut maps) = (HashMap::new(), vec![], vec![]);
    for (name, m) in &methods {
        let t0 = Instant::now();
        let a = m.attribute(&model, &x, &target)?;
        let secs = t0.elapsed().as_secs_f64();
        let delta = a
            .delta
            .as_ref()
            .map(|d| d.abs()?.max(0)?.to_scalar::<f32>())
            .transpose()?;
        println!(
            "{name:<24} {secs:>9.2} {:>24}",
            delta.map_or("—".into(), |d| format!("{d:.2e}"))
        );
        summary.push(serde_json::json!({"method": name, "seconds": secs, "max_abs_completeness_error": delta}));
        maps.push(a.attributions.clone());
        tensors.insert(name.to_string(), a.attributions);
    }
    tensors.insert("input".into(), x.clone());
    candle_core::safetensors::save(&tensors, out.join("attributions.safetensors"))?;
    let json = serde_json::json!({"model": "weights/efficientnet_lite0.f16.safetensors", "photos": photos, "predicted": pred.iter().map(|&c| (c, names[c].clone())).collect::<Vec<_>>(), "methods": summary});
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    // Signed maps are dominated by a few pixels on photos: absolute values, positive only for
    // LRP (its negative evidence is faint), Grad-CAM as it comes.
    let mut rows = vec![];
    for r in 0..x.dim(0)? {
        let photo = pixels.get(r)?;
        let mut cells = vec![Cell::input(&photo, 1, "").map_err(anyhow::Error::msg)?];
        for ((name, _), m) in methods.iter().zip(&maps) {
            let sign = if name.starts_with("lrp") {
                Sign::Positive
            } else {
                Sign::Absolute
            };
            cells.push(
                Cell::attribution(&photo, &m.get(r)?, sign, 0.7, 1).map_err(anyhow::Error::msg)?,
            );
        }
        let c = pred[r];
        rows.push(Row {
            label: format!(
                "{}\npred {c}: {}\n({:.2})",
                short_name(&photos[r]),
                names[c],
                conf[r]
            ),
            cells,
        });
    }
    let path = out.join("grid.png");
    let mut columns = vec!["photo".to_string()];
    columns.extend(methods.iter().map(|(n, _)| n.to_string()));
    Figure {
        title: "EfficientNet-Lite0: which pixels made it say the predicted class".into(),
        columns,
        rows,
        sign: Sign::Absolute,
        notes: vec!["LRP columns (+max under them) show positive relevance only".into()],
    }
    .save(&path)
    .map_err(anyhow::Error::msg)?;
    let cols: Vec<&str> = methods.iter().map(|(n, _)| *n).collect();
    println!(
        "wrote {}/{{grid.png (columns: photo, {}), summary.json, attributions.safetensors}}",
        out.display(),
        cols.join(", ")
    );
    Ok(())
}

/// A photo's file name without its folder.
fn short_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or(path.to_string(), |f| f.to_string_lossy().into_owned())
}
