//! Explains a Hugging Face Vision Transformer (`ViTForImageClassification`, a folder or a hub
//! id `org/name[@revision]`) on photos: Saliency, Integrated Gradients, Occlusion (one patch)
//! and LRP (conservative transformer rules) at the pixel values, with the checkpoint's own
//! preprocessing (`preprocessor_config.json`) and labels (`id2label`). Writes `grid.png`
//! (each method's map over each photo, legend) and `summary.json`.
//!
//! The default model is the tiny random ViT of the tests (`crates/models/tests/data/hf/vit`,
//! made by transformers), so the example runs offline; its maps show the mechanics, not a
//! trained model's evidence. The default photos are the cat and the coffee of `assets/photos`.
//!
//! ```text
//! cargo run --release --example explain_vit -- [--model DIR|ORG/NAME] [--out DIR] [IMAGE ...]
//! ```

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, D};
use candle_explain::models::data::load_rgb;
use candle_explain::models::VitClassifier;
use candle_explain::prelude::*;
use candle_explain::viz::{Cell, Figure, Row, Sign};
use std::path::PathBuf;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn main() -> Result<()> {
    let (mut model_arg, mut out, mut images) =
        (None::<String>, PathBuf::from("out/explain_vit"), vec![]);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--model" => model_arg = Some(it.next().context("--model needs a folder or a hub id")?),
            "--out" => out = it.next().context("--out needs a folder")?.into(),
            "-h" | "--help" => {
                println!("usage: explain_vit [--model DIR|ORG/NAME] [--out DIR] [IMAGE ...]");
                return Ok(());
            }
            f if f.starts_with("--") => bail!("unknown flag {f:?} (try --help)"),
            p => images.push(PathBuf::from(p)),
        }
    }
    let dir = match &model_arg {
        Some(m) if std::path::Path::new(m).is_dir() => PathBuf::from(m),
        Some(m) => candle_explain::models::hub::snapshot_spec(m)?,
        None => PathBuf::from(format!("{ROOT}/crates/models/tests/data/hf/vit")),
    };
    if images.is_empty() {
        let photos = candle_explain::models::assets::ensure("photos")?;
        images = vec![photos.join("chelsea.png"), photos.join("coffee.png")];
    }
    let dev = Device::Cpu;
    let model = VitClassifier::from_dir(&dir, &dev)?;
    let c = model.config.clone();
    let mut pixels = vec![];
    for p in &images {
        pixels.push(
            load_rgb(p, c.image_size, &dev)
                .with_context(|| p.display().to_string())?
                .0,
        );
    }
    let pixels = Tensor::cat(&pixels, 0)?;
    let x = model.normalize(&pixels)?;
    let logits = model.forward(&x)?;
    let pred: Vec<usize> = logits
        .argmax(D::Minus1)?
        .to_vec1::<u32>()?
        .into_iter()
        .map(|c| c as usize)
        .collect();
    let t = Target::PerExample(pred.clone());
    let patch = c.patch_size;
    let methods: Vec<(&str, Box<dyn Attributor>)> = vec![
        ("Saliency", Box::new(Saliency::abs())),
        (
            "Integrated Gradients (32)",
            Box::new(IntegratedGradients::new(32)),
        ),
        (
            "Occlusion (one patch)",
            Box::new(Occlusion::new(
                &[c.num_channels, patch, patch],
                &[c.num_channels, patch, patch],
            )),
        ),
        (
            "LRP (conservative)",
            Box::new(Lrp::new(
                Composite::new(ActRule::Pass)
                    .with(Selector::kind(LayerKind::Linear), LayerRule::Epsilon(1e-3))
                    .with(Selector::kind(LayerKind::Sum), LayerRule::Epsilon(1e-3)),
            )),
        ),
    ];
    let mut maps = vec![];
    let mut summary = vec![];
    for (name, m) in &methods {
        let a = m.attribute(&model, &x, &t)?;
        let delta = a.largest_delta()?;
        println!(
            "{name:<28} completeness error {}",
            delta.map_or("—".into(), |d| format!("{d:.2e}"))
        );
        summary.push(serde_json::json!({"method": name, "completeness_error": delta}));
        maps.push(a.attributions);
    }
    let scale = (224 / c.image_size as u32).max(1);
    let mut rows = vec![];
    for (r, p) in images.iter().enumerate() {
        let img = pixels.get(r)?;
        let mut cells = vec![Cell::input(&img, scale, "").map_err(anyhow::Error::msg)?];
        for m in &maps {
            cells.push(
                Cell::attribution(&img, &m.get(r)?, Sign::Absolute, 0.7, scale)
                    .map_err(anyhow::Error::msg)?,
            );
        }
        let name = p
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        rows.push(Row {
            label: format!("{name}\npred {}: {}", pred[r], c.labels[pred[r]]),
            cells,
        });
    }
    std::fs::create_dir_all(&out)?;
    let mut columns = vec!["photo".to_string()];
    columns.extend(methods.iter().map(|(n, _)| n.to_string()));
    Figure {
        title: format!(
            "ViT ({}): which pixels made it say the predicted class",
            dir.display()
        ),
        columns,
        rows,
        sign: Sign::Absolute,
        notes: vec![],
    }
    .save(&out.join("grid.png"))
    .map_err(anyhow::Error::msg)?;
    let json = serde_json::json!({"model": dir.display().to_string(), "images": images, "predicted": pred.iter().map(|&p| &c.labels[p]).collect::<Vec<_>>(), "methods": summary});
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    println!("wrote {}/{{grid.png, summary.json}}", out.display());
    Ok(())
}
