//! The trained digits CNN on real weights and real digits.

mod common;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_models::data::load_mnist_csv;
use candle_explain_models::{DigitsCnn, Error};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn model(dev: &Device) -> DigitsCnn {
    DigitsCnn::from_file(format!("{ROOT}/weights/digits_cnn.safetensors"), dev)
        .expect("weights/digits_cnn.safetensors is committed")
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Logits and input gradients equal PyTorch's (`scripts/convert_digits_cnn.py` wrote the
/// reference with the package's own model class).
#[test]
fn matches_pytorch_reference() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = model(&dev);
    let r = candle_core::safetensors::load(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/digits_reference.safetensors"
        ),
        &dev,
    )?;
    let x = &r["input"];
    let logits = m.forward(x)?;
    assert!(
        max_abs_diff(&logits, &r["logits"]) < 1e-4,
        "logits differ by {}",
        max_abs_diff(&logits, &r["logits"])
    );
    let labels: Vec<usize> = r["label"]
        .to_vec1::<i64>()?
        .into_iter()
        .map(|l| l as usize)
        .collect();
    let s = Saliency::signed().attribute(&m, x, &Target::PerExample(labels))?;
    let scale = r["saliency"].abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(
        max_abs_diff(&s.attributions, &r["saliency"]) < 1e-4 * scale,
        "saliency differs"
    );
    Ok(())
}

/// 99.70 % on the shipped 5k subset (weights/README.md), measured in PyTorch.
#[test]
fn accuracy_on_the_shipped_digits() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = model(&dev);
    let d = load_mnist_csv(format!("{ROOT}/weights/data/mnist_5k.csv.gz"), &dev)?;
    assert_eq!(d.labels.len(), 5000);
    let mut correct = 0;
    for start in (0..5000).step_by(500) {
        let x = DigitsCnn::normalize(&d.images.narrow(0, start, 500)?)?;
        let pred = m
            .forward(&x)?
            .argmax(1)?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?;
        correct += pred
            .iter()
            .zip(&d.labels[start..start + 500])
            .filter(|(p, l)| **p == **l as u32)
            .count();
    }
    assert_eq!(correct, 4985, "PyTorch gets 4985/5000");
    Ok(())
}

#[test]
fn missing_and_damaged_files_are_clear_errors() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    assert!(matches!(
        DigitsCnn::from_file("/nonexistent/model.safetensors", &dev),
        Err(Error::MissingFile(_))
    ));
    let dir = std::env::temp_dir().join(format!("ce-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let full = std::fs::read(format!("{ROOT}/weights/digits_cnn.safetensors"))?;
    let trunc = dir.join("truncated.safetensors");
    std::fs::write(&trunc, &full[..full.len() / 2])?;
    assert!(matches!(
        DigitsCnn::from_file(&trunc, &dev),
        Err(Error::Checkpoint { .. })
    ));
    // A tensor with the wrong shape: save the MNIST-example CNN's conv1 under this model's name.
    let wrong = dir.join("wrong.safetensors");
    let mut t =
        candle_core::safetensors::load(format!("{ROOT}/weights/digits_cnn.safetensors"), &dev)?;
    t.insert(
        "conv_layers.0.weight".into(),
        Tensor::zeros((16, 1, 3, 3), DType::F32, &dev)?,
    );
    candle_core::safetensors::save(&t, &wrong)?;
    let e = DigitsCnn::from_file(&wrong, &dev).unwrap_err().to_string();
    assert!(
        e.contains("conv_layers.0.weight") || e.contains("shape"),
        "{e}"
    );
    t.remove("fc_layers.2.bias");
    candle_core::safetensors::save(&t, &wrong)?;
    assert!(DigitsCnn::from_file(&wrong, &dev).is_err());
    // Data files: missing, truncated lines.
    assert!(matches!(
        load_mnist_csv("/nonexistent.csv", &dev),
        Err(Error::MissingFile(_))
    ));
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "1,2,3\n")?;
    assert!(matches!(
        load_mnist_csv(&bad, &dev),
        Err(Error::Data { line: 1, .. })
    ));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Layer methods find the taps under PyTorch's module names.
#[test]
fn grad_cam_on_the_last_conv_block() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = model(&dev);
    let r = candle_core::safetensors::load(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/digits_reference.safetensors"
        ),
        &dev,
    )?;
    let x = r["input"].narrow(0, 0, 4)?;
    let labels: Vec<usize> = r["label"]
        .to_vec1::<i64>()?
        .into_iter()
        .take(4)
        .map(|l| l as usize)
        .collect();
    let cam = GradCam::new("conv_layers.7").attribute(&m, &x, &Target::PerExample(labels))?;
    assert_eq!(cam.attributions.dims(), &[4, 1, 28, 28]);
    let v: Vec<f32> = cam.attributions.flatten_all()?.to_vec1()?;
    assert!(v.iter().all(|v| *v >= 0.0) && v.iter().any(|v| *v > 0.0));
    assert!(GradCam::new("conv_layers.9")
        .attribute(&m, &x, &Target::Class(0))
        .is_err());
    Ok(())
}

/// Every core method on two real digits with the trained CNN; the four 14×14 quadrants are
/// the groups of the group methods (exact Shapley values over 16 groups would be 2¹⁶
/// forwards per digit, too slow for a smoke test).
#[test]
fn every_method_runs_on_the_digits_cnn() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = model(&dev);
    let d = candle_explain_models::data::load_mnist_csv(
        format!("{ROOT}/weights/data/mnist_5k.csv.gz"),
        &dev,
    )?;
    let x = DigitsCnn::normalize(
        &d.images
            .index_select(&Tensor::new(&[0u32, 2500], &dev)?, 0)?,
    )?;
    let t = Target::PerExample(vec![0, 5]);
    let cells: Vec<u32> = (0..784u32)
        .map(|k| (k / 28) / 14 * 2 + (k % 28) / 14)
        .collect();
    let groups = Tensor::from_vec(cells, (1, 1, 28, 28), &dev)?;
    common::smoke(&m, &x, &t, &groups, &[1, 7, 7], "digits cnn")
}
