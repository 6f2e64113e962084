//! Model-randomization sanity checks on the trained digits CNN, and the similarity measures.

mod common;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_metrics::sanity::{spearman, ssim};
use candle_explain_metrics::{Error, ModelRandomization, Randomization};
use candle_explain_models::data::load_mnist_csv;
use candle_explain_models::DigitsCnn;
use candle_nn::VarBuilder;
use common::uniform;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// SSIM by hand for one map: every 7×7 window, then the mean (scikit-image's definition).
fn ssim_naive(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    let (h, w, k) = (a.len(), a[0].len(), 7);
    let (c1, c2, n) = (1e-4, 9e-4, 49.0);
    let mut total = 0.0;
    let mut count = 0.0;
    for i in 0..=h - k {
        for j in 0..=w - k {
            let cells: Vec<(f64, f64)> = (i..i + k).flat_map(|r| (j..j + k).map(move |c| (r, c))).map(|(r, c)| (a[r][c], b[r][c])).collect();
            let mx = cells.iter().map(|p| p.0).sum::<f64>() / n;
            let my = cells.iter().map(|p| p.1).sum::<f64>() / n;
            let vx = cells.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>() / (n - 1.0);
            let vy = cells.iter().map(|p| (p.1 - my).powi(2)).sum::<f64>() / (n - 1.0);
            let cxy = cells.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / (n - 1.0);
            total += (2.0 * mx * my + c1) * (2.0 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2));
            count += 1.0;
        }
    }
    total / count
}

#[test]
fn similarity_measures() -> anyhow::Result<()> {
    let a = uniform(&[2, 1, 12, 10], 0.0, 1.0, 1);
    let b = uniform(&[2, 1, 12, 10], 0.0, 1.0, 2);
    let s = ssim(&a, &b)?;
    let scale = |t: &Tensor, e: usize| -> Vec<Vec<f64>> {
        let m: Vec<Vec<f64>> = t.get(e).unwrap().get(0).unwrap().to_dtype(DType::F64).unwrap().to_vec2().unwrap();
        let mx = m.iter().flatten().fold(0f64, |p, q| p.max(q.abs()));
        m.iter().map(|r| r.iter().map(|v| v.abs() / mx).collect()).collect()
    };
    for e in 0..2 {
        let naive = ssim_naive(&scale(&a, e), &scale(&b, e));
        assert!((s[e] - naive).abs() < 1e-9, "ssim {} vs by hand {naive}", s[e]);
    }
    assert!(ssim(&a, &a)?.iter().all(|v| (v - 1.0).abs() < 1e-12));
    assert!(spearman(&a, &a)?.iter().all(|v| (v - 1.0).abs() < 1e-12));
    let up = Tensor::arange(0f32, 20., &Device::Cpu)?.reshape((1, 20))?;
    let down = up.affine(-1.0, 20.0)?;
    assert!((spearman(&up, &down)?[0] + 1.0).abs() < 1e-12);
    assert!(ssim(&a, &a.narrow(2, 0, 6)?).is_err());
    Ok(())
}

fn build(vb: VarBuilder) -> candle_explain_core::Result<Box<dyn Explainable>> {
    DigitsCnn::load(vb).map(|m| Box::new(m) as Box<dyn Explainable>).map_err(|e| candle_explain_core::Error::Unsupported(e.to_string()))
}

#[test]
fn randomizing_the_digits_cnn() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let weights = candle_core::safetensors::load(format!("{ROOT}/weights/digits_cnn.safetensors"), &dev)?;
    let d = load_mnist_csv(format!("{ROOT}/weights/data/mnist_5k.csv.gz"), &dev)?;
    let rows = Tensor::new(&[3u32, 503, 1003, 1503], &dev)?;
    let x = DigitsCnn::normalize(&d.images.index_select(&rows, 0)?)?;
    let t = Target::PerExample(vec![0, 1, 2, 3]);
    let layers: Vec<String> = ["fc_layers.2.", "fc_layers.0.", "conv_layers.6.", "conv_layers.3.", "conv_layers.0."].iter().map(|s| s.to_string()).collect();
    let cascade = ModelRandomization { layers: layers.clone(), mode: Randomization::Cascading, seed: 1 };
    let steps = cascade.evaluate(&build, &weights, &Saliency::abs(), &x, &t)?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let last = steps.last().unwrap();
    assert!(mean(&last.spearman) < 0.5, "fully randomised saliency still correlates: {:?}", last.spearman);
    assert!(mean(&last.ssim) < mean(&steps[0].ssim), "{:?}", steps.iter().map(|s| mean(&s.ssim)).collect::<Vec<_>>());
    // The edge-detector control ignores the model: identical at every step.
    for s in cascade.evaluate(&build, &weights, &SobelEdge, &x, &t)? {
        assert!(s.spearman.iter().chain(&s.ssim).all(|v| (v - 1.0).abs() < 1e-9), "{s:?}");
    }
    // Independent randomisation of one layer changes less than cascading through all.
    let indep = ModelRandomization { mode: Randomization::Independent, ..cascade.clone() }.evaluate(&build, &weights, &Saliency::abs(), &x, &t)?;
    assert_eq!(indep.len(), 5);
    assert!(mean(&indep[0].spearman) > mean(&last.spearman));
    // A layer name the model does not have.
    let bad = ModelRandomization { layers: vec!["conv9.".into()], ..cascade };
    match bad.evaluate(&build, &weights, &Saliency::abs(), &x, &t) {
        Err(Error::InvalidParameter { reason, .. }) => assert!(reason.contains("conv_layers.0.weight"), "{reason}"),
        other => panic!("{other:?}"),
    }
    Ok(())
}
