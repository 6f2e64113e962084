//! The smoke matrix shared by the model tests: every core method on one model family.
#![allow(dead_code)]

use candle_core::Tensor;
use candle_explain_core::prelude::*;

/// `(name, method, completeness tolerance relative to |output| if the method promises it)`.
pub type Method = (&'static str, Box<dyn Attributor>, Option<f32>);

/// Every method of the core crate, configured for `x`;
/// tolerances are relative to the larger of |output| and the output's change from the
/// baseline. IG with 64 points is exact only on smooth models: the ReLU kinks leave under
/// 1 % on the digits CNN and 1.2 % on the Fashion ResNet (0.1 % at 512 points, measured), so
/// 2e-2; Guided IG's 16 adaptive steps leave up to 6 %.
/// `groups` is a feature mask (group id per feature) for the group methods; `window` the
/// occlusion window over the per-example shape.
pub fn methods(x: &Tensor, groups: &Tensor, window: &[usize]) -> anyhow::Result<Vec<Method>> {
    let lrp = Composite::new(ActRule::Pass)
        .with(Selector::kind(LayerKind::Linear), LayerRule::Epsilon(1e-6))
        .with(Selector::kind(LayerKind::Sum), LayerRule::Epsilon(1e-6));
    Ok(vec![
        ("saliency", Box::new(Saliency::signed()), None),
        (
            "gradient × input",
            Box::new(InputXGradient::default()),
            None,
        ),
        (
            "integrated gradients",
            Box::new(IntegratedGradients {
                quadrature: Quadrature::GaussLegendre,
                ..IntegratedGradients::new(64)
            }),
            Some(2e-2),
        ),
        ("ε-LRP", Box::new(EpsilonLrp::new(1e-6)), None),
        ("LRP ε composite", Box::new(Lrp::new(lrp)), None),
        ("deeplift", Box::new(DeepLift::default()), None),
        ("guided backprop", Box::new(GuidedBackprop::default()), None),
        ("deconvnet", Box::new(Deconvnet::default()), None),
        (
            "gradient shap",
            Box::new(GradientShap::new(
                x.zeros_like()?.narrow(0, 0, 1)?,
                8,
                0.1,
                1,
            )),
            None,
        ),
        (
            "smoothgrad",
            Box::new(NoiseTunnel::smooth_grad(Saliency::signed(), 4, 2)),
            None,
        ),
        ("occlusion", Box::new(Occlusion::new(window, window)), None),
        (
            "feature ablation",
            Box::new(FeatureAblation::new(groups.clone())),
            None,
        ),
        (
            "shapley",
            Box::new(ShapleyValues::exact(groups.clone())),
            Some(1e-4),
        ),
        ("random", Box::new(RandomAttribution { seed: 3 }), None),
        (
            "guided IG",
            Box::new(GuidedIntegratedGradients {
                steps: 16,
                ..Default::default()
            }),
            Some(0.1),
        ),
        ("GGIG", Box::new(GeometricallyGuidedIg::default()), None),
    ])
}

/// Runs every method of [`methods`] on `model` at `x`: shapes, and completeness where promised.
pub fn smoke(
    model: &dyn Explainable,
    x: &Tensor,
    t: &Target,
    groups: &Tensor,
    window: &[usize],
    what: &str,
) -> anyhow::Result<()> {
    smoke_except(model, x, t, groups, window, what, &[])
}

/// [`smoke`] without the completeness check of the methods named in `unchecked` (the caller
/// says why).
pub fn smoke_except(
    model: &dyn Explainable,
    x: &Tensor,
    t: &Target,
    groups: &Tensor,
    window: &[usize],
    what: &str,
    unchecked: &[&str],
) -> anyhow::Result<()> {
    for (name, m, complete) in methods(x, groups, window)? {
        let complete = complete.filter(|_| !unchecked.contains(&name));
        let a = m
            .attribute(model, x, t)
            .map_err(|e| anyhow::anyhow!("{name} ({what}): {e}"))?;
        assert_eq!(a.attributions.dims(), x.dims(), "{name} ({what})");
        assert_eq!(a.output.dims(), &[x.dim(0)?], "{name} ({what})");
        if let Some(tol) = complete {
            let delta = a
                .delta
                .as_ref()
                .expect("a complete method reports its delta")
                .abs()?
                .max(0)?
                .to_scalar::<f32>()?;
            let mut scale = a.output.abs()?.max(0)?.to_scalar::<f32>()?.max(1e-3);
            if let Some(b) = &a.baseline_output {
                scale = scale.max((&a.output - b)?.abs()?.max(0)?.to_scalar::<f32>()?);
            }
            assert!(
                delta / scale < tol,
                "{name} ({what}): completeness error {delta} against outputs up to {scale}"
            );
        }
    }
    Ok(())
}
