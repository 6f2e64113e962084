//! Inputs beside the attributed one reach every method's rows: each row gets the inputs of
//! the example it comes from (IG's steps, noise samples, perturbations, permutations,
//! several classes), so an example's attributions are the same in a batch as alone, and
//! features its mask drops get exactly 0.

mod common;
use candle_core::{Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_core::{Explainable, RuleCtx, WithInputs};
use common::{assert_close, uniform};

/// `W₂ relu(W₁ (x ⊙ mask) + b₁)`, the mask given beside x; every layer through the context.
struct Masked {
    w1: Tensor,
    w2: Tensor,
    b1: Tensor,
}

impl Explainable for Masked {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let mask = ctx
            .input("mask")
            .ok_or_else(|| candle_explain_core::Error::Unsupported("the mask is missing".into()))?;
        let h = ctx.linear(&(x * mask)?, &self.w1, Some(&self.b1))?;
        ctx.linear(&ctx.activation(Activation::Relu, &h)?, &self.w2, None)
    }
}

#[test]
fn every_method_gives_each_row_its_examples_inputs() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = Masked {
        w1: uniform(&[5, 6], -1.0, 1.0, 1, &dev),
        w2: uniform(&[3, 5], -1.0, 1.0, 2, &dev),
        b1: uniform(&[5], 0.0, 0.5, 3, &dev),
    };
    let x = uniform(&[3, 6], 0.1, 1.0, 4, &dev);
    let mask = Tensor::new(
        &[
            [1f32, 1., 1., 1., 0., 0.],
            [1., 0., 1., 0., 1., 0.],
            [1., 1., 1., 1., 1., 1.],
        ],
        &dev,
    )?;
    let groups = Tensor::new(&[0u32, 0, 1, 1, 2, 2], &dev)?;
    let bg = uniform(&[4, 6], 0.0, 1.0, 5, &dev);
    let methods: Vec<(&str, Box<dyn Attributor>)> = vec![
        ("saliency", Box::new(Saliency::signed())),
        ("ig", Box::new(IntegratedGradients::new(8))),
        (
            "ig adaptive",
            Box::new(IntegratedGradients::new(2).with_adaptive(1e-9, 8)),
        ),
        (
            "smoothgrad",
            Box::new(NoiseTunnel::smooth_grad(Saliency::signed(), 5, 1)),
        ),
        ("gradient shap", Box::new(GradientShap::new(bg, 5, 0.1, 2))),
        ("deeplift", Box::new(DeepLift::default())),
        ("lrp", Box::new(EpsilonLrp::default())),
        ("occlusion", Box::new(Occlusion::new(&[1], &[1]))),
        (
            "feature ablation",
            Box::new(FeatureAblation::new(groups.clone())),
        ),
        ("shapley", Box::new(ShapleyValues::exact(groups.clone()))),
        (
            "shapley sampling",
            Box::new(ShapleyValues::sampling(groups, 4, 3)),
        ),
        ("ggig", Box::new(GeometricallyGuidedIg::default())),
        ("guided ig", Box::new(GuidedIntegratedGradients::default())),
    ];
    for target in [
        Target::PerExample(vec![0, 1, 2]),
        Target::Classes(vec![0, 2]),
    ] {
        for (name, method) in &methods {
            let batch = WithInputs::new(&m).with("mask", mask.clone())?;
            let all = method
                .attribute(&batch, &x, &target)
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?
                .attributions;
            for e in 0..3 {
                let alone = WithInputs::new(&m).with("mask", mask.narrow(0, e, 1)?)?;
                let t = match &target {
                    Target::PerExample(v) => Target::Class(v[e]),
                    t => t.clone(),
                };
                let one = method
                    .attribute(&alone, &x.narrow(0, e, 1)?, &t)?
                    .attributions;
                assert_close(
                    &all.narrow(0, e, 1)?,
                    &one,
                    1e-5,
                    &format!("{name} {target:?} example {e}"),
                );
            }
            // Dropped features get exactly 0 (example 0's last two, example 1's odd ones).
            let a0: Vec<f32> = all.get(0)?.flatten_all()?.to_vec1()?;
            let f = 6;
            for (k, v) in a0.iter().enumerate() {
                if k % f >= 4 {
                    assert_eq!(*v, 0.0, "{name} {target:?}: masked feature {k} got {v}");
                }
            }
        }
    }
    Ok(())
}
