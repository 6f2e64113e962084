//! EfficientNet-Lite0 on the committed f16 weights: logits equal to a PyTorch forward, the
//! scikit-image photos labelled correctly, attribution on a photo, bad input.

use candle_core::{DType, Device, Tensor, D};
use candle_explain_core::prelude::*;
use candle_explain_models::data::load_rgb;
use candle_explain_models::efficientnet::imagenet_classes;
use candle_explain_models::{EfficientNetLite0, Error};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn model(dev: &Device) -> EfficientNetLite0 {
    EfficientNetLite0::from_file(
        format!("{ROOT}/weights/efficientnet_lite0.f16.safetensors"),
        DType::F32,
        dev,
    )
    .expect("weights/efficientnet_lite0.f16.safetensors is committed")
}

/// The synthetic input of `scripts/convert_efficientnet_lite0.py`:
/// `(7h + 13w + 29c + 101n) mod 256`, normalised.
fn synthetic(dev: &Device) -> anyhow::Result<Tensor> {
    let mut v = Vec::with_capacity(2 * 3 * 224 * 224);
    for n in 0..2 {
        for c in 0..3 {
            for h in 0..224 {
                for w in 0..224 {
                    v.push(((7 * h + 13 * w + 29 * c + 101 * n) % 256) as f32);
                }
            }
        }
    }
    Ok(EfficientNetLite0::normalize(&Tensor::from_vec(
        v,
        (2, 3, 224, 224),
        dev,
    )?)?)
}

/// Logits equal the script's PyTorch forward (F.conv2d with TF "same" padding, eval-mode
/// BatchNorm eps 1e-3, ReLU6) on the same f16 weights.
#[test]
fn matches_pytorch_reference() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let r = candle_core::safetensors::load(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/efficientnet_lite0_torch.safetensors"
        ),
        &dev,
    )?;
    let logits = model(&dev).forward(&synthetic(&dev)?)?;
    let diff = (&logits - &r["logits"])?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    let scale = r["logits"].abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(
        diff < 1e-4 * scale.max(1.0),
        "logits differ by {diff} (scale {scale})"
    );
    Ok(())
}

/// The cat and the coffee photo get their ImageNet classes (the script's PyTorch forward:
/// Egyptian Mau 0.79, espresso 0.90), with the committed class names.
#[test]
fn labels_the_photos() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = model(&dev);
    let names = imagenet_classes(format!("{ROOT}/weights/imagenet_classes.txt"))?;
    candle_explain_models::assets::ensure("photos")?;
    for (photo, ok) in [
        ("chelsea.png", &[281usize, 282, 285][..]),
        ("coffee.png", &[967, 968][..]),
    ] {
        let path = format!("{ROOT}/assets/photos/{photo}");
        let (pixels, _) = load_rgb(&path, 224, &dev).unwrap_or_else(|e| panic!("{path}: {e}"));
        let p = candle_nn::ops::softmax(
            &m.forward(&EfficientNetLite0::normalize(&pixels)?)?,
            D::Minus1,
        )?;
        let top = p.argmax(D::Minus1)?.to_vec1::<u32>()?[0] as usize;
        let conf = p.flatten_all()?.to_vec1::<f32>()?[top];
        assert!(
            ok.contains(&top),
            "{photo}: predicted {top} ({}, {conf:.3}), expected one of {ok:?}",
            names[top]
        );
        assert!(conf > 0.5, "{photo}: {} with only {conf:.3}", names[top]);
    }
    Ok(())
}

/// Saliency and IG on a photo at full size; IG's completeness holds through the folded
/// convs, ReLU6, the TF padding and the residual sums.
#[test]
fn attributes_a_photo() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = model(&dev);
    let photos = candle_explain_models::assets::ensure("photos")?;
    let (pixels, _) = load_rgb(photos.join("coffee.png"), 224, &dev)?;
    let x = EfficientNetLite0::normalize(&pixels)?;
    let s = Saliency::signed().attribute(&m, &x, &Target::Class(967))?;
    assert_eq!(s.attributions.dims(), &[1, 3, 224, 224]);
    assert!(s.attributions.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
    let ig = IntegratedGradients::new(64).attribute(&m, &x, &Target::Class(967))?;
    let delta = ig
        .delta
        .expect("IG reports its completeness delta")
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    let change = (&ig.output - ig.baseline_output.expect("IG has a baseline"))?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert!(
        delta < 0.05 * change,
        "IG-64 completeness error {delta} against an output change of {change}"
    );
    Ok(())
}

#[test]
fn bad_input() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = model(&dev);
    let grey = Tensor::zeros((1, 1, 224, 224), DType::F32, &dev)?;
    assert!(m.forward(&grey).unwrap_err().to_string().contains("RGB"));
    let tiny = Tensor::zeros((1, 3, 8, 8), DType::F32, &dev)?;
    assert!(m.forward(&tiny).is_err());
    assert!(matches!(
        EfficientNetLite0::from_file("/nonexistent/lite0.safetensors", DType::F32, &dev),
        Err(Error::MissingFile(_))
    ));
    // A truncated checkpoint and one missing a tensor (the digits CNN's weights).
    let dir = std::env::temp_dir().join(format!("lite0-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let bytes = std::fs::read(format!("{ROOT}/weights/efficientnet_lite0.f16.safetensors"))?;
    std::fs::write(dir.join("cut.safetensors"), &bytes[..bytes.len() / 2])?;
    assert!(matches!(
        EfficientNetLite0::from_file(dir.join("cut.safetensors"), DType::F32, &dev),
        Err(Error::Checkpoint { .. })
    ));
    let e = EfficientNetLite0::from_file(
        format!("{ROOT}/weights/digits_cnn.safetensors"),
        DType::F32,
        &dev,
    )
    .unwrap_err();
    assert!(e.to_string().contains("_conv_stem"), "{e}");
    assert!(load_rgb(format!("{ROOT}/weights/imagenet_classes.txt"), 224, &dev).is_err());
    std::fs::write(dir.join("classes.txt"), "cat\ndog\n")?;
    assert!(imagenet_classes(dir.join("classes.txt"))
        .unwrap_err()
        .to_string()
        .contains("expected 1000"));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
