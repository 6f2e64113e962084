//! The axiom checker on a smooth MLP: IG satisfies every axiom; Saliency and Gradient ×
//! Input break completeness (and so the checker can fail).

mod common;
use common::uniform;

use candle_explain_core::nn::{Linear, Sequential};
use candle_explain_core::prelude::*;
use candle_explain_metrics::{check_axioms, Error};


fn mlp(act: Activation) -> Sequential {
    Sequential::new()
        .push(Linear::new(uniform(&[12, 5], -0.8, 0.8, 1), Some(uniform(&[12], -0.3, 0.3, 2))))
        .push(act)
        .push(Linear::new(uniform(&[3, 12], -0.8, 0.8, 3), Some(uniform(&[3], -0.3, 0.3, 4))))
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
fn gradient_methods_break_completeness_only() -> anyhow::Result<()> {
    let m = mlp(Activation::Tanh);
    let x = uniform(&[4, 5], -1.5, 1.5, 5);
    for (name, method) in [("saliency", Box::new(Saliency::signed()) as Box<dyn Attributor>), ("gradient × input", Box::new(InputXGradient::default()))] {
        let r = check_axioms(method.as_ref(), &m, &x, 2)?;
        let h = r.holds(1e-4);
        assert!(!h[0].1, "{name} should break completeness: {r:?}");
        assert!(h[1..].iter().all(|(_, ok)| *ok), "{name}: {r:?}");
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
    assert!(matches!(check_axioms(&Saliency::abs(), &m, &uniform(&[2, 1, 5], 0.0, 1.0, 1), 0), Err(Error::InvalidParameter { .. })));
    assert!(check_axioms(&Saliency::abs(), &m, &uniform(&[2, 5], 0.0, 1.0, 1), 7).is_err());
}
