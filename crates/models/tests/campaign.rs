//! The loader cases of the bad-input campaign (issue 15): configs that do not match their
//! checkpoint or have fields of the wrong type, integer and NaN weights, a folder given as a
//! weights file, and an image whose extension lies.

use candle_core::{DType, Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_models::data::load_rgb;
use candle_explain_models::{BertClassifier, DigitsCnn};
use std::path::{Path, PathBuf};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "candle-explain-campaign-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp folder");
    d
}

/// A copy of the MiniLM folder whose config.json has `from` replaced by `to`.
fn minilm_with(name: &str, from: &str, to: &str) -> anyhow::Result<PathBuf> {
    let src = candle_explain_models::assets::ensure("minilm")?;
    let dir = temp(name);
    let config = std::fs::read_to_string(src.join("config.json"))?;
    assert!(config.contains(from), "config.json lacks {from}");
    std::fs::write(dir.join("config.json"), config.replacen(from, to, 1))?;
    std::os::unix::fs::symlink(
        src.join("model.safetensors").canonicalize()?,
        dir.join("model.safetensors"),
    )?;
    Ok(dir)
}

/// Finding 5: each case is (config change, expected error substring).
#[test]
fn configs_are_applied_whole_or_refused() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let cases = [
        (
            "\"num_hidden_layers\": 6",
            "\"num_hidden_layers\": 2",
            "more layers",
        ),
        (
            "\"hidden_act\": \"gelu\"",
            "\"hidden_act\": 3",
            "must be a string",
        ),
        (
            "\"layer_norm_eps\": 1e-12",
            "\"layer_norm_eps\": \"1e-12\"",
            "positive number",
        ),
        (
            "\"layer_norm_eps\": 1e-12",
            "\"layer_norm_eps\": -1e-12",
            "positive number",
        ),
    ];
    for (i, (from, to, expect)) in cases.into_iter().enumerate() {
        let dir = minilm_with(&format!("cfg{i}"), from, to)?;
        let e = match BertClassifier::from_dir(&dir, None, &dev) {
            Ok(_) => panic!("{to}: loaded"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(expect), "{to}: expected {expect:?} in {e}");
        std::fs::remove_dir_all(dir)?;
    }
    // More layers in the config than in the checkpoint is an error too (a missing tensor).
    let dir = minilm_with(
        "cfg-more",
        "\"num_hidden_layers\": 6",
        "\"num_hidden_layers\": 7",
    )?;
    let e = BertClassifier::from_dir(&dir, None, &dev)
        .err()
        .expect("7 layers")
        .to_string();
    assert!(e.contains("encoder.layer.6"), "{e}");
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

/// Findings 1, 5, 7: integer weights are refused, NaN weights give an error that says to
/// check the weights (not NaN attributions), and a folder is not "No such device".
#[test]
fn bad_weight_files_are_named() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let weights = format!("{ROOT}/weights/digits_cnn.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &dev)?;
    let dir = temp("weights");
    // An integer tensor.
    let mut ints = tensors.clone();
    let mut names: Vec<String> = ints.keys().cloned().collect();
    names.sort();
    let (name, t) = (names[0].clone(), ints[&names[0]].clone());
    ints.insert(name.clone(), t.to_dtype(DType::I64)?);
    let p = dir.join("ints.safetensors");
    candle_core::safetensors::save(&ints, &p)?;
    let e = DigitsCnn::from_file(&p, &dev)
        .err()
        .expect("I64 refused")
        .to_string();
    assert!(e.contains(&name) && e.contains("I64"), "{e}");
    // A NaN weight.
    let mut keys: Vec<String> = tensors
        .keys()
        .filter(|k| k.ends_with("weight"))
        .cloned()
        .collect();
    keys.sort();
    let key = keys[0].clone();
    let w = tensors[&key].flatten_all()?;
    let w = Tensor::cat(
        &[
            &Tensor::new(&[f32::NAN], &dev)?,
            &w.narrow(0, 1, w.dim(0)? - 1)?,
        ],
        0,
    )?
    .reshape(tensors[&key].shape())?;
    tensors.insert(key, w);
    let p = dir.join("nan.safetensors");
    candle_core::safetensors::save(&tensors, &p)?;
    let model = DigitsCnn::from_file(&p, &dev)?;
    let x = Tensor::ones((2, 1, 28, 28), DType::F32, &dev)?;
    let e = IntegratedGradients::new(4)
        .attribute(&model, &x, &Target::Class(0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("NaN or infinite") && e.contains("weights"),
        "{e}"
    );
    // A folder given as the weights file.
    let e = DigitsCnn::from_file(&dir, &dev)
        .err()
        .expect("a folder")
        .to_string();
    assert!(e.contains("folder") && !e.contains("No such device"), "{e}");
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

/// Finding 7: the image format comes from the content: a PNG named .jpg loads.
#[test]
fn image_formats_come_from_the_content() -> anyhow::Result<()> {
    let dir = temp("image");
    let img =
        image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([(x * 30) as u8, (y * 30) as u8, 7]));
    let p: &Path = &dir.join("really-a-png.jpg");
    img.save_with_format(p, image::ImageFormat::Png)?;
    let (px, _) = load_rgb(p, 8, &Device::Cpu)?;
    assert_eq!(px.dims(), &[1, 3, 8, 8]);
    assert_eq!(px.flatten_all()?.to_vec1::<f32>()?[9], 30.0);
    std::fs::write(dir.join("text.png"), "not an image")?;
    let e = load_rgb(dir.join("text.png"), 8, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a readable PNG/JPEG"), "{e}");
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
