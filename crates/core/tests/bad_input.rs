//! Bad input gets a clear error that says what was expected, never a panic.

mod common;
use candle_core::{Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_core::Error;
use common::*;

fn err_text(r: candle_explain_core::Result<Attribution>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn wrong_shapes_and_targets() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = cnn(Activation::Relu, true, 1, &dev);
    let x = uniform(&[2, 1, 12, 12], 0.0, 1.0, 2, &dev);
    let ig = IntegratedGradients::new(4);
    let t = Target::Class(0);
    // Wrong rank, wrong per-example shape, empty batch.
    assert!(matches!(
        ig.attribute(&m, &uniform(&[12], 0.0, 1.0, 1, &dev), &t),
        Err(Error::InputShape { .. })
    ));
    let e = err_text(ig.attribute(&m, &uniform(&[2, 3, 12, 12], 0.0, 1.0, 1, &dev), &t));
    assert!(e.contains("(batch, 1, 12, 12)"), "{e}");
    assert!(matches!(
        ig.attribute(&m, &x.narrow(0, 0, 0)?, &t),
        Err(Error::InputShape { .. })
    ));
    // Targets.
    let e = err_text(ig.attribute(&m, &x, &Target::Class(3)));
    assert!(e.contains("class 3") && e.contains("3 outputs"), "{e}");
    assert!(matches!(
        ig.attribute(&m, &x, &Target::PerExample(vec![0])),
        Err(Error::Target(_))
    ));
    assert!(matches!(
        ig.attribute(&m, &x, &Target::Classes(vec![])),
        Err(Error::Target(_))
    ));
    assert!(matches!(
        ig.attribute(&m, &x, &Target::Classes(vec![1, 7])),
        Err(Error::TargetOutOfRange { class: 7, .. })
    ));
    assert!(matches!(
        ig.attribute(
            &m,
            &x,
            &Target::Seed(Tensor::zeros((2, 4), candle_core::DType::F32, &dev)?)
        ),
        Err(Error::Target(_))
    ));
    // Baselines.
    let bad = Baseline::Tensor(uniform(&[2, 1, 11, 12], 0.0, 1.0, 1, &dev));
    assert!(matches!(
        ig.clone().with_baseline(bad.clone()).attribute(&m, &x, &t),
        Err(Error::BaselineShape { .. })
    ));
    assert!(matches!(
        DeepLift::default().with_baseline(bad).attribute(&m, &x, &t),
        Err(Error::BaselineShape { .. })
    ));
    // A per-example baseline broadcasts.
    assert!(ig
        .clone()
        .with_baseline(Baseline::Tensor(uniform(&[1, 12, 12], 0.0, 1.0, 1, &dev)))
        .attribute(&m, &x, &t)
        .is_ok());
    assert!(matches!(
        GradientShap::new(uniform(&[3, 12, 12], 0.0, 1.0, 1, &dev), 2, 0.0, 0)
            .attribute(&m, &x, &t),
        Err(Error::BaselineShape { .. })
    ));
    // A model without a declared input shape still fails cleanly on the wrong channel count.
    let m2 = mlp(&[6, 4, 2], Activation::Relu, true, 1, &dev);
    let undeclared = candle_explain_core::nn::Sequential::new()
        .push(Activation::Relu)
        .push(candle_explain_core::nn::Linear::new(
            uniform(&[2, 6], 0.0, 1.0, 1, &dev),
            None,
        ));
    assert!(Saliency::abs()
        .attribute(&undeclared, &uniform(&[2, 5], 0.0, 1.0, 1, &dev), &t)
        .is_err());
    assert!(Saliency::abs()
        .attribute(&m2, &uniform(&[2, 6], 0.0, 1.0, 1, &dev), &t)
        .is_ok());
    Ok(())
}

#[test]
fn non_finite_input() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = mlp(&[4, 8, 2], Activation::Relu, true, 1, &dev);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let x = Tensor::new(&[[0.1f32, 0.2, bad, 0.4]], &dev)?;
        let methods: Vec<Box<dyn Attributor>> = vec![
            Box::new(Saliency::abs()),
            Box::new(IntegratedGradients::new(4)),
            Box::new(DeepLift::default()),
            Box::new(Occlusion::single(1)),
            Box::new(NoiseTunnel::smooth_grad(Saliency::abs(), 2, 0)),
        ];
        for method in methods {
            let e = method.attribute(&m, &x, &Target::Class(0));
            assert!(
                matches!(e, Err(Error::NonFinite { count: 1, .. })),
                "{bad}: {e:?}"
            );
        }
    }
    let x = uniform(&[1, 4], 0.0, 1.0, 1, &dev);
    let nan_base = Baseline::Tensor(Tensor::new(&[[0f32, f32::NAN, 0., 0.]], &dev)?);
    assert!(matches!(
        IntegratedGradients::new(4)
            .with_baseline(nan_base)
            .attribute(&m, &x, &Target::Class(0)),
        Err(Error::NonFinite {
            what: "baseline",
            ..
        })
    ));
    Ok(())
}

#[test]
fn bad_parameters() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = cnn(Activation::Relu, true, 1, &dev);
    let x = uniform(&[1, 1, 12, 12], 0.0, 1.0, 2, &dev);
    let t = Target::Class(0);
    let invalid = |r: candle_explain_core::Result<Attribution>, what: &str| {
        assert!(
            matches!(r, Err(Error::InvalidParameter { .. })),
            "{what}: {r:?}"
        );
    };
    invalid(
        IntegratedGradients::new(0).attribute(&m, &x, &t),
        "zero steps",
    );
    invalid(
        IntegratedGradients::new(1)
            .with_quadrature(Quadrature::RiemannTrapezoid)
            .attribute(&m, &x, &t),
        "trapezoid with 1 step",
    );
    invalid(
        IntegratedGradients::new(8)
            .with_adaptive(1e-3, 4)
            .attribute(&m, &x, &t),
        "max_steps < steps",
    );
    invalid(
        IntegratedGradients::new(8)
            .with_adaptive(-1.0, 64)
            .attribute(&m, &x, &t),
        "negative tolerance",
    );
    invalid(
        IntegratedGradients::new(8)
            .with_baseline(Baseline::Blurred { sigma: 0.0 })
            .attribute(&m, &x, &t),
        "σ = 0 blur",
    );
    invalid(
        IntegratedGradients::new(8)
            .with_baseline(Baseline::UniformNoise {
                low: 1.0,
                high: 0.0,
                seed: 0,
            })
            .attribute(&m, &x, &t),
        "empty noise range",
    );
    invalid(EpsilonLrp::new(-1.0).attribute(&m, &x, &t), "negative ε");
    invalid(
        NoiseTunnel::new(Saliency::abs(), NoiseKind::SmoothGrad, 0, 0.1, 0).attribute(&m, &x, &t),
        "zero samples",
    );
    invalid(
        NoiseTunnel::new(Saliency::abs(), NoiseKind::SmoothGrad, 3, f64::NAN, 0)
            .attribute(&m, &x, &t),
        "NaN σ",
    );
    invalid(
        GradientShap::new(x.clone(), 0, 0.0, 0).attribute(&m, &x, &t),
        "zero samples",
    );
    invalid(
        Occlusion::new(&[3, 3], &[1, 1]).attribute(&m, &x, &t),
        "window rank",
    );
    invalid(
        Occlusion::new(&[1, 13, 3], &[1, 1, 1]).attribute(&m, &x, &t),
        "window larger than input",
    );
    invalid(
        Occlusion::new(&[1, 3, 3], &[1, 0, 1]).attribute(&m, &x, &t),
        "zero stride",
    );
    invalid(
        FeatureAblation::new(Tensor::new(&[1f32, -1.], &dev)?).attribute(&m, &x, &t),
        "mask shape",
    );
    invalid(
        FeatureAblation::new(Tensor::full(-1f32, (1, 12, 12), &dev)?).attribute(&m, &x, &t),
        "negative group id",
    );
    invalid(
        FeatureAblation::new(Tensor::full(0.5f32, (1, 12, 12), &dev)?).attribute(&m, &x, &t),
        "fractional group id",
    );
    let many: Vec<u32> = (0..144).map(|i| (i % 17) as u32).collect();
    invalid(
        ShapleyValues::exact(Tensor::from_vec(many, (1, 12, 12), &dev)?).attribute(&m, &x, &t),
        "2^17 coalitions",
    );
    invalid(
        ShapleyValues::sampling(
            Tensor::zeros((1, 12, 12), candle_core::DType::U32, &dev)?,
            0,
            0,
        )
        .attribute(&m, &x, &t),
        "zero permutations",
    );
    assert!(matches!(
        RuleCtx::rule(ActRule::Rescale { threshold: 1e-5 }),
        Err(Error::InvalidParameter { .. })
    ));
    // Blurred baselines need images.
    let m2 = mlp(&[4, 3, 2], Activation::Relu, true, 1, &dev);
    assert!(matches!(
        IntegratedGradients::new(2)
            .with_baseline(Baseline::Blurred { sigma: 1.0 })
            .attribute(&m2, &uniform(&[1, 4], 0.0, 1.0, 1, &dev), &t),
        Err(Error::InputShape { .. })
    ));
    assert!(matches!(
        SobelEdge.attribute(&m2, &uniform(&[1, 4], 0.0, 1.0, 1, &dev), &t),
        Err(Error::InputShape { .. })
    ));
    Ok(())
}

/// A model whose output is not (batch, classes).
#[test]
fn bad_model_output() {
    struct Flat;
    impl Explainable for Flat {
        fn forward_with(&self, x: &Tensor, _: &RuleCtx) -> candle_explain_core::Result<Tensor> {
            Ok(x.sum_all()?)
        }
    }
    let x = Tensor::new(&[[1f32, 2.]], &Device::Cpu).unwrap();
    assert!(matches!(
        Saliency::abs().attribute(&Flat, &x, &Target::Class(0)),
        Err(Error::OutputShape { .. })
    ));
}
