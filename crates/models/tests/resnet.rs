//! ResNet-50 against torchvision's, on weights both sides fill from one formula
//! (`scripts/golden/resnet50_torchvision.py`): same names, shapes, parameter count, logits.

use candle_core::{DType, Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_models::ResNet;
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;

/// The script's formula for tensor `k` (sorted names) called `name`.
fn fill(name: &str, dims: &[usize], k: usize, dev: &Device) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| {
            let s = (0.37 * i as f64 + 0.1 * k as f64).sin();
            let v = if name.ends_with("running_mean") {
                0.1 * s
            } else if name.ends_with("running_var") {
                1.0 + 0.5 * s * s
            } else if dims.len() >= 2 {
                s / ((n / dims[0]) as f64).sqrt()
            } else if name.contains(".bn")
                || name.starts_with("bn")
                || name.contains("downsample.1")
            {
                if name.ends_with("weight") {
                    1.0 + 0.2 * s
                } else {
                    0.2 * s
                }
            } else {
                0.2 * s
            };
            v as f32
        })
        .collect();
    Tensor::from_vec(v, dims, dev).expect("tensor")
}

#[test]
fn resnet50_equals_torchvision() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    // Names and shapes from a fresh model, then the formula's values.
    let vars = VarMap::new();
    ResNet::load(
        VarBuilder::from_varmap(&vars, DType::F32, &dev),
        ResNet::RESNET50,
        1000,
    )?;
    let shapes: Vec<(String, Vec<usize>)> = {
        let data = vars.data().lock().expect("vars");
        let mut v: Vec<_> = data
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        v.sort();
        v
    };
    let params: usize = shapes
        .iter()
        .filter(|(n, _)| !n.contains("running_"))
        .map(|(_, d)| d.iter().product::<usize>())
        .sum();
    assert_eq!(params, 25_557_032, "torchvision's resnet50 parameter count");
    let tensors: HashMap<String, Tensor> = shapes
        .iter()
        .enumerate()
        .map(|(k, (n, d))| (n.clone(), fill(n, d, k, &dev)))
        .collect();
    let model = ResNet::load(
        VarBuilder::from_tensors(tensors, DType::F32, &dev),
        ResNet::RESNET50,
        1000,
    )?;
    let mut x = vec![];
    for n in 0..2 {
        for c in 0..3 {
            for h in 0..64 {
                for w in 0..64 {
                    x.push(
                        (0.05 * (h + 1) as f64 * (c + 1) as f64 + 0.07 * w as f64 + n as f64).sin()
                            as f32,
                    );
                }
            }
        }
    }
    let x = Tensor::from_vec(x, (2, 3, 64, 64), &dev)?;
    let golden = candle_core::safetensors::load(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/resnet50_torchvision.safetensors"
        ),
        &dev,
    )?;
    let logits = model.forward(&x)?;
    let scale = golden["logits"].abs()?.max_all()?.to_scalar::<f32>()?;
    let diff = (&logits - &golden["logits"])?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert!(
        diff < 1e-4 * scale.max(1.0),
        "logits differ by {diff} (scale {scale})"
    );
    // BatchNorm folded: the same function; LRP and Grad-CAM run on it.
    let folded = model.canonized()?;
    let d2 = (folded.forward(&x)? - &logits)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert!(
        d2 < 1e-4 * scale.max(1.0),
        "canonized logits differ by {d2}"
    );
    let t = Target::Class(3);
    assert_eq!(
        Lrp::new(Composite::epsilon_plus())
            .attribute(&folded, &x, &t)?
            .attributions
            .dims(),
        x.dims()
    );
    // Grad-CAM: one map per image, upsampled to the input.
    assert_eq!(
        GradCam::new("layer4")
            .attribute(&folded, &x, &t)?
            .attributions
            .dims(),
        &[2, 1, 64, 64]
    );
    assert!(model
        .forward(&Tensor::zeros((1, 1, 64, 64), DType::F32, &dev)?)
        .is_err());
    Ok(())
}
