//! The axiom checker on a smooth MLP: IG satisfies every axiom; Saliency and Gradient ×
//! Input break completeness (and so the checker can fail).

mod common;
use common::uniform;

use candle_explain_core::nn::{Linear, Sequential};
use candle_explain_core::prelude::*;
use candle_explain_metrics::{check_affine_invariance, check_axioms, check_monomial, check_positivity, Error};

fn mlp(act: Activation) -> Sequential {
    Sequential::new()
        .push(Linear::new(
            uniform(&[12, 5], -0.8, 0.8, 1),
            Some(uniform(&[12], -0.3, 0.3, 2)),
        ))
        .push(act)
        .push(Linear::new(
            uniform(&[3, 12], -0.8, 0.8, 3),
            Some(uniform(&[3], -0.3, 0.3, 4)),
        ))
}

#[test]
fn integrated_gradients_satisfies_the_axioms() -> anyhow::Result<()> {
    let m = mlp(Activation::Tanh);
    let x = uniform(&[4, 5], -1.5, 1.5, 5);
    let r = check_axioms(&IntegratedGradients::new(64), &m, &x, 1)?;
    for (axiom, ok) in r.holds(1e-4) {
        assert!(ok, "IG should satisfy {axiom}: {r:?}");
    }
    Ok(())
}

#[test]
fn gradient_methods_break_completeness_and_saliency_breaks_scale_invariance() -> anyhow::Result<()>
{
    let m = mlp(Activation::Tanh);
    let x = uniform(&[4, 5], -1.5, 1.5, 5);
    // Saliency also breaks scale invariance (∂F'/∂x'_i = ∂F/∂x_i / s_i); Gradient × Input
    // keeps it (the x_i factor cancels the 1/s_i).
    for (name, method, broken) in [
        (
            "saliency",
            Box::new(Saliency::signed()) as Box<dyn Attributor>,
            vec!["completeness", "affine scale invariance"],
        ),
        (
            "gradient × input",
            Box::new(InputXGradient::default()),
            vec!["completeness"],
        ),
    ] {
        let r = check_axioms(method.as_ref(), &m, &x, 2)?;
        for (axiom, ok) in r.holds(1e-4) {
            assert_eq!(ok, !broken.contains(&axiom), "{name}, {axiom}: {r:?}");
        }
    }
    // Occlusion-1 on a ReLU net: dummy, linearity, symmetry and implementation invariance hold.
    let relu = mlp(Activation::Relu);
    let r = check_axioms(&Occlusion::single(1), &relu, &x, 0)?;
    assert!(r.holds(1e-4)[1..].iter().all(|(_, ok)| *ok), "{r:?}");
    Ok(())
}

#[test]
fn bad_input() {
    let m = mlp(Activation::Tanh);
    assert!(matches!(
        check_axioms(&Saliency::abs(), &m, &uniform(&[2, 1, 5], 0.0, 1.0, 1), 0),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(check_axioms(&Saliency::abs(), &m, &uniform(&[2, 5], 0.0, 1.0, 1), 7).is_err());
}

/// On `F = x₀² x₁ x₂³` IG gives `a_i / Σa · F(x)` (Gauss–Legendre with 4 nodes integrates the
/// degree-5 path polynomial exactly); Gradient × Input gives `a_i · F(x)`, off by `Σa = 6`.
#[test]
fn monomial_closed_form() -> anyhow::Result<()> {
    let x = uniform(&[3, 3], 0.3, 1.6, 9);
    let ig = IntegratedGradients {
        quadrature: Quadrature::GaussLegendre,
        ..IntegratedGradients::new(4)
    };
    let v = check_monomial(&ig, &[2.0, 1.0, 3.0], &x)?;
    assert!(v < 1e-5, "IG violates the monomial closed form by {v}");
    let v = check_monomial(&InputXGradient::default(), &[2.0, 1.0, 3.0], &x)?;
    assert!(v > 1.0, "Gradient × Input must not pass: {v}");
    assert!(check_monomial(&ig, &[2.0, 1.0], &x).is_err());
    assert!(check_monomial(&ig, &[2.0, 0.5, 1.0], &x).is_err());
    assert!(check_monomial(&ig, &[2.0, 1.0, 1.0], &x.neg()?).is_err());
    Ok(())
}

/// With a shift, the baseline moves with the input: IG is unchanged; Gradient × Input, which
/// has no baseline, is not.
#[test]
fn affine_invariance_with_a_shift() -> anyhow::Result<()> {
    let m = mlp(Activation::Tanh);
    let x = uniform(&[4, 5], -1.5, 1.5, 5);
    let ig = |b: Baseline| -> Box<dyn Attributor> {
        Box::new(IntegratedGradients {
            baseline: b,
            quadrature: Quadrature::GaussLegendre,
            ..IntegratedGradients::new(32)
        })
    };
    let v = check_affine_invariance(&ig, &m, &x, 1)?;
    assert!(v < 1e-4, "IG: {v}");
    let gxi = |_: Baseline| -> Box<dyn Attributor> { Box::new(InputXGradient::default()) };
    let v = check_affine_invariance(&gxi, &m, &x, 1)?;
    assert!(v > 1e-2, "Gradient × Input must break it: {v}");
    Ok(())
}

/// Non-decreasing positivity: an MLP with non-negative weights and tanh is non-decreasing in
/// every input, so at positive inputs IG's attributions are all ≥ 0; a random map's are not
/// (so the check can fail); a model that decreases somewhere in the box is refused.
#[test]
fn non_decreasing_positivity() -> anyhow::Result<()> {
    let monotone = Sequential::new()
        .push(Linear::new(uniform(&[12, 5], 0.0, 0.8, 1), Some(uniform(&[12], -0.3, 0.3, 2))))
        .push(Activation::Tanh)
        .push(Linear::new(uniform(&[3, 12], 0.0, 0.8, 3), None));
    let x = uniform(&[4, 5], 0.1, 1.5, 5);
    let v = check_positivity(&IntegratedGradients::new(64), &monotone, &x, 1)?;
    assert!(v == 0.0, "IG gives a negative attribution on a non-decreasing model: {v}");
    let v = check_positivity(&RandomAttribution { seed: 3 }, &monotone, &x, 1)?;
    assert!(v > 1e-2, "a random map should break positivity: {v}");
    let e = check_positivity(&IntegratedGradients::new(64), &mlp(Activation::Tanh), &x, 1).unwrap_err();
    assert!(e.to_string().contains("non-decreasing"), "{e}");
    Ok(())
}
