//! Infidelity and max-sensitivity against closed forms.

mod common;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::nn::{Linear, Sequential};
use candle_explain_core::prelude::*;
use candle_explain_metrics::{Error, Infidelity, MaxSensitivity};
use common::uniform;

struct Quadratic(Tensor);
impl Explainable for Quadratic {
    fn forward_with(&self, x: &Tensor, _: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        Ok(x.sqr()?.broadcast_mul(&self.0)?.sum_keepdim(1)?)
    }
}

#[test]
fn infidelity_closed_forms() -> anyhow::Result<()> {
    // Linear: S(x) − S(x − I) = w·I = Iᵀ∇S exactly.
    let lin = Sequential::new().push(Linear::new(
        uniform(&[2, 6], -1.0, 1.0, 1),
        Some(uniform(&[2], -1.0, 1.0, 2)),
    ));
    let x = uniform(&[3, 6], -1.0, 1.0, 3);
    let t = Target::Class(1);
    let sal = Saliency::signed().attribute(&lin, &x, &t)?.attributions;
    for v in Infidelity::new(50, 0.3, 1).evaluate(&lin, &x, &sal, &t)? {
        assert!(v < 1e-10, "{v}");
    }
    let gxi = InputXGradient::default()
        .attribute(&lin, &x, &t)?
        .attributions;
    assert!(Infidelity::new(50, 0.3, 1)
        .evaluate(&lin, &x, &gxi, &t)?
        .iter()
        .all(|v| *v > 1e-4));
    // Quadratic: Δ = 2a·x·I − Σ a I², so the gradient's error is (Σ a_i I_i²)², whose mean is
    // σ⁴ (2 Σ a² + (Σ a)²): a check of the noise too.
    let a = [0.5f32, -1.0, 1.5, 0.25];
    let q = Quadratic(Tensor::new(&a, &Device::Cpu)?);
    let xq = uniform(&[2, 4], -1.0, 1.0, 4);
    let g = Saliency::signed()
        .attribute(&q, &xq, &Target::Class(0))?
        .attributions;
    let sigma = 0.5f64;
    let expect = sigma.powi(4)
        * (2.0 * a.iter().map(|v| (*v as f64).powi(2)).sum::<f64>()
            + a.iter().map(|v| *v as f64).sum::<f64>().powi(2));
    for v in Infidelity::new(20_000, sigma, 9).evaluate(&q, &xq, &g, &Target::Class(0))? {
        assert!(
            (v - expect).abs() < 0.08 * expect,
            "infidelity {v} vs {expect}"
        );
    }
    // With the optimal scale β it can only improve.
    let n = Infidelity {
        normalize: true,
        ..Infidelity::new(200, 0.3, 1)
    }
    .evaluate(&lin, &x, &gxi, &t)?;
    let plain = Infidelity::new(200, 0.3, 1).evaluate(&lin, &x, &gxi, &t)?;
    assert!(n.iter().zip(&plain).all(|(a, b)| a <= b));
    Ok(())
}

#[test]
fn max_sensitivity_closed_forms() -> anyhow::Result<()> {
    let w = uniform(&[2, 6], -1.0, 1.0, 1);
    let lin = Sequential::new().push(Linear::new(w.clone(), None));
    let x = uniform(&[2, 6], 0.5, 1.0, 3);
    let t = Target::Class(0);
    // The gradient of a linear model does not move.
    for v in MaxSensitivity::new(20, 0.1, 1).evaluate(&Saliency::signed(), &lin, &x, &t)? {
        assert!(v < 1e-7, "{v}");
    }
    // Gradient × Input moves by w ⊙ (y − x): at most r·‖w‖ / ‖w ⊙ x‖.
    let s = MaxSensitivity::new(200, 0.1, 1).evaluate(&InputXGradient::default(), &lin, &x, &t)?;
    let w0: Vec<f64> = w
        .narrow(0, 0, 1)?
        .flatten_all()?
        .to_dtype(DType::F64)?
        .to_vec1()?;
    let xs: Vec<Vec<f64>> = x.to_dtype(DType::F64)?.to_vec2()?;
    for (e, v) in s.iter().enumerate() {
        let bound = 0.1 * w0.iter().map(|a| a * a).sum::<f64>().sqrt()
            / w0.iter()
                .zip(&xs[e])
                .map(|(a, b)| (a * b).powi(2))
                .sum::<f64>()
                .sqrt();
        assert!(
            *v <= bound + 1e-6 && *v > 0.5 * bound,
            "example {e}: {v} vs bound {bound}"
        );
    }
    Ok(())
}

#[test]
fn bad_input() {
    let lin = Sequential::new().push(Linear::new(uniform(&[2, 6], -1.0, 1.0, 1), None));
    let x = uniform(&[2, 6], 0.0, 1.0, 1);
    let t = Target::Class(0);
    assert!(matches!(
        Infidelity::new(0, 0.1, 0).evaluate(&lin, &x, &x, &t),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        Infidelity::new(5, -0.1, 0).evaluate(&lin, &x, &x, &t),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        Infidelity::new(5, 0.1, 0).evaluate(&lin, &x, &x.narrow(1, 0, 3).unwrap(), &t),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        MaxSensitivity::new(5, 0.0, 0).evaluate(&Saliency::abs(), &lin, &x, &t),
        Err(Error::InvalidParameter { .. })
    ));
}
