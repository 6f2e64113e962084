//! Golden values from an independent implementation: Captum 0.9 on PyTorch, for a small
//! fixed CNN. `scripts/golden/core_captum.py` made `tests/data/captum_cnn.safetensors`
//! (weights, inputs, targets, and every method's attributions); its docstring has the model.
//!
//! Captum's DeepLift leaves a max-pool fed directly by a ReLU on the plain gradient, which
//! breaks completeness (|delta| ≈ 1e-2); the `*_poolrule` references are Captum with its
//! own max-pool rule in effect, which is the rule this crate applies (complete).

mod common;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_core::test_device;
use candle_nn::VarBuilder;
use common::*;
use std::collections::HashMap;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/captum_cnn.safetensors"
);

struct Golden {
    model: candle_explain_core::nn::Sequential,
    t: HashMap<String, Tensor>,
    target: Target,
}

fn load(dev: &Device) -> anyhow::Result<Golden> {
    let t = candle_core::safetensors::load(DATA, dev)?;
    let vb = VarBuilder::from_tensors(t.clone(), DType::F32, dev);
    let model = golden_cnn(vb);
    let target = Target::PerExample(
        t["target"]
            .to_vec1::<i64>()?
            .into_iter()
            .map(|c| c as usize)
            .collect(),
    );
    Ok(Golden { model, t, target })
}

fn golden_values(dev: &Device) -> anyhow::Result<()> {
    let g = load(dev)?;
    let x = &g.t["input"];
    let m = &g.model;
    let check =
        |a: &Attribution, key: &str, tol: f32| assert_close(&a.attributions, &g.t[key], tol, key);
    assert_close(&m.forward(x)?, &g.t["logits"], 1e-5, "logits");
    check(
        &Saliency::abs().attribute(m, x, &g.target)?,
        "saliency_abs",
        1e-5,
    );
    check(
        &Saliency::signed().attribute(m, x, &g.target)?,
        "saliency_signed",
        1e-5,
    );
    check(
        &InputXGradient::default().attribute(m, x, &g.target)?,
        "input_x_gradient",
        1e-5,
    );
    let ig = IntegratedGradients::new(50).attribute(m, x, &g.target)?;
    check(&ig, "ig_gl50", 1e-5);
    assert_close(
        ig.delta.as_ref().unwrap(),
        &g.t["ig_gl50_delta"],
        1e-4,
        "ig_gl50_delta",
    );
    for (q, key) in [
        (Quadrature::RiemannLeft, "ig_left20"),
        (Quadrature::RiemannRight, "ig_right20"),
        (Quadrature::RiemannMiddle, "ig_middle20"),
    ] {
        check(
            &IntegratedGradients::new(20)
                .with_quadrature(q)
                .attribute(m, x, &g.target)?,
            key,
            1e-5,
        );
    }
    // Captum's `riemann_trapezoid` gives every step the weight 1/n (ends halved): the weights
    // sum to (n − 1)/n, not 1, so its result is (n − 1)/n times the trapezoid rule's.
    let trap = IntegratedGradients::new(20)
        .with_quadrature(Quadrature::RiemannTrapezoid)
        .attribute(m, x, &g.target)?;
    assert_close(
        &(trap.attributions * (19.0 / 20.0))?,
        &g.t["ig_trap20"],
        1e-5,
        "ig_trap20 × 19/20",
    );
    check(
        &IntegratedGradients::new(32)
            .with_baseline(Baseline::Constant(0.5))
            .attribute(m, x, &g.target)?,
        "ig_const_gl32",
        1e-5,
    );
    let dl = DeepLift::default().attribute(m, x, &g.target)?;
    check(&dl, "deeplift_zero_poolrule", 1e-4);
    assert!(max_abs(dl.delta.as_ref().unwrap()) < 1e-5);
    check(
        &DeepLift::default()
            .with_baseline(Baseline::Constant(0.3))
            .attribute(m, x, &g.target)?,
        "deeplift_const_poolrule",
        1e-4,
    );
    check(
        &EpsilonLrp::new(1e-9).attribute(m, x, &g.target)?,
        "lrp_eps",
        1e-4,
    );
    check(
        &GuidedBackprop::default().attribute(m, x, &g.target)?,
        "guided_backprop",
        1e-5,
    );
    check(
        &Deconvnet::default().attribute(m, x, &g.target)?,
        "deconvolution",
        1e-5,
    );
    check(
        &Occlusion::single(3).attribute(m, x, &g.target)?,
        "occlusion_1",
        1e-5,
    );
    check(
        &Occlusion::new(&[1, 3, 3], &[1, 1, 1]).attribute(m, x, &g.target)?,
        "occlusion_w3s1",
        1e-5,
    );
    check(
        &Occlusion::new(&[1, 2, 2], &[1, 2, 2]).attribute(m, x, &g.target)?,
        "occlusion_w2s2",
        1e-5,
    );
    let mask = g.t["feature_mask"].clone();
    check(
        &FeatureAblation::new(mask.clone()).attribute(m, x, &g.target)?,
        "feature_ablation",
        1e-5,
    );
    check(
        &ShapleyValues::exact(mask).attribute(m, x, &g.target)?,
        "shapley_exact",
        1e-5,
    );
    Ok(())
}
test_device!(golden_values, golden_cpu, golden_cuda, golden_metal);

/// Captum's as-configured DeepLift (plain gradient through the pool) differs from ours by
/// more than rounding: the golden test above would catch a rule mix-up.
#[test]
fn captum_pool_rules_really_differ() -> anyhow::Result<()> {
    let g = load(&Device::Cpu)?;
    let d = max_abs(&(&g.t["deeplift_zero"] - &g.t["deeplift_zero_poolrule"])?);
    assert!(d > 1e-3, "{d}");
    Ok(())
}
