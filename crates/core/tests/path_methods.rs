//! Path methods beyond straight-line IG: Blur IG and Guided IG.

mod common;
use candle_core::{Device, Tensor};
use candle_explain_core::baseline::gaussian_blur_replicate;
use candle_explain_core::nn::{Flatten, Linear, Sequential};
use candle_explain_core::prelude::*;
use candle_explain_core::test_device;
use common::*;

fn linear_image_model(dev: &Device) -> (Sequential, Tensor) {
    let w = uniform(&[2, 2 * 9 * 9], -1.0, 1.0, 1, dev);
    (
        Sequential::new().push(Flatten).push(Linear::new(
            w.clone(),
            Some(uniform(&[2], -1.0, 1.0, 2, dev)),
        )),
        w,
    )
}

/// On S = w·x + b the integrand telescopes: Blur IG_i → w_i (x_i − blur(x, σ_max)_i).
fn blur_ig_on_a_linear_model(dev: &Device) -> anyhow::Result<()> {
    let (m, w) = linear_image_model(dev);
    let x = uniform(&[2, 2, 9, 9], 0.0, 1.0, 3, dev);
    let big = 3.0;
    let b = BlurIntegratedGradients {
        max_sigma: big,
        steps: 300,
        grad_step: 1e-3,
        ..Default::default()
    };
    let r = b.attribute(&m, &x, &Target::Class(1))?;
    let expect = (&x - gaussian_blur_replicate(&x, big)?)?
        .broadcast_mul(&w.narrow(0, 1, 1)?.reshape((1, 2, 9, 9))?)?;
    assert_close(&r.attributions, &expect, 2e-2, "Blur IG vs w ⊙ (x − blur)");
    assert!(
        max_abs(r.delta.as_ref().unwrap())
            < 1e-2 * max_abs(&(&r.output - r.baseline_output.as_ref().unwrap())?).max(1e-3)
    );
    Ok(())
}
test_device!(
    blur_ig_on_a_linear_model,
    blur_lin_cpu,
    blur_lin_cuda,
    blur_lin_metal
);

fn blur_ig_completeness_and_chunking(dev: &Device) -> anyhow::Result<()> {
    let m = cnn(Activation::Tanh, true, 3, dev);
    let x = uniform(&[2, 1, 12, 12], 0.0, 1.0, 4, dev);
    let t = Target::Class(0);
    let err = |steps| -> anyhow::Result<f32> {
        let r = BlurIntegratedGradients {
            max_sigma: 4.0,
            steps,
            ..Default::default()
        }
        .attribute(&m, &x, &t)?;
        Ok(max_abs(r.delta.as_ref().unwrap()))
    };
    let (e10, e80) = (err(10)?, err(80)?);
    assert!(e80 < e10 / 3.0, "Blur IG completeness error {e10} → {e80}");
    let a = BlurIntegratedGradients {
        max_sigma: 4.0,
        steps: 9,
        ..Default::default()
    }
    .attribute(&m, &x, &t)?;
    let b = BlurIntegratedGradients {
        max_sigma: 4.0,
        steps: 9,
        batching: Batching::with_max_rows(5),
        ..Default::default()
    }
    .attribute(&m, &x, &t)?;
    assert_close(&a.attributions, &b.attributions, 1e-5, "Blur IG chunked");
    Ok(())
}
test_device!(
    blur_ig_completeness_and_chunking,
    blur_conv_cpu,
    blur_conv_cuda,
    blur_conv_metal
);

#[test]
fn blur_ig_bad_input() {
    let dev = Device::Cpu;
    let m = cnn(Activation::Relu, true, 1, &dev);
    let x = uniform(&[1, 1, 12, 12], 0.0, 1.0, 1, &dev);
    for b in [
        BlurIntegratedGradients {
            steps: 0,
            ..Default::default()
        },
        BlurIntegratedGradients {
            max_sigma: -1.0,
            ..Default::default()
        },
        BlurIntegratedGradients {
            grad_step: 0.0,
            ..Default::default()
        },
    ] {
        assert!(b.attribute(&m, &x, &Target::Class(0)).is_err());
    }
    let mlp_m = mlp(&[4, 3, 2], Activation::Relu, true, 1, &dev);
    assert!(BlurIntegratedGradients::default()
        .attribute(
            &mlp_m,
            &uniform(&[1, 4], 0.0, 1.0, 1, &dev),
            &Target::Class(0)
        )
        .is_err());
}

/// Whatever path Guided IG takes, on a linear model every feature travels from x̄_i to x_i
/// with the constant gradient w_i: the attribution is (x − x̄) ⊙ w exactly.
fn guided_ig_on_a_linear_model(dev: &Device) -> anyhow::Result<()> {
    let (m, w) = linear_image_model(dev);
    let x = uniform(&[2, 2, 9, 9], -1.0, 1.0, 5, dev);
    let xb = uniform(&[2, 2, 9, 9], -0.5, 0.5, 6, dev);
    let gig = GuidedIntegratedGradients {
        steps: 12,
        baseline: Baseline::Tensor(xb.clone()),
        ..Default::default()
    };
    let r = gig.attribute(&m, &x, &Target::Class(0))?;
    let expect = (&x - &xb)?.broadcast_mul(&w.narrow(0, 0, 1)?.reshape((1, 2, 9, 9))?)?;
    assert_close(
        &r.attributions,
        &expect,
        1e-5,
        "Guided IG on a linear model",
    );
    Ok(())
}
test_device!(
    guided_ig_on_a_linear_model,
    gig_lin_cpu,
    gig_lin_cuda,
    gig_lin_metal
);

struct Quadratic(Tensor);
impl Explainable for Quadratic {
    fn forward_with(&self, x: &Tensor, _: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        Ok(x.flatten_from(1)?
            .sqr()?
            .broadcast_mul(&self.0)?
            .sum_keepdim(1)?)
    }
}

/// Guided IG is a path method: on S = Σ a_i x_i² its left-Riemann error per feature is
/// −a_i Σ (Δx_i)², which vanishes as the steps (and so every move) get small. (With a fixed
/// band the moves stay up to 2·max_dist long, and on networks with max-pools the adaptive
/// path crosses many kinks: there the error plateaus, as it does in PAIR's implementation.)
fn guided_ig_completeness(dev: &Device) -> anyhow::Result<()> {
    let m = Quadratic(uniform(&[50], -1.0, 1.0, 1, dev));
    let x = uniform(&[3, 50], 0.0, 1.0, 9, dev);
    let err = |steps, max_dist| -> anyhow::Result<f32> {
        let r = GuidedIntegratedGradients {
            steps,
            max_dist,
            ..Default::default()
        }
        .attribute(&m, &x, &Target::Class(0))?;
        Ok(max_abs(r.delta.as_ref().unwrap()))
    };
    let (coarse, fine) = (err(10, 0.1)?, err(320, 0.02)?);
    assert!(
        fine < coarse / 20.0,
        "Guided IG completeness error {coarse} → {fine}"
    );
    Ok(())
}
test_device!(
    guided_ig_completeness,
    gig_conv_cpu,
    gig_conv_cuda,
    gig_conv_metal
);

#[test]
fn guided_ig_bad_input() {
    let dev = Device::Cpu;
    let m = cnn(Activation::Relu, true, 1, &dev);
    let x = uniform(&[1, 1, 12, 12], 0.0, 1.0, 1, &dev);
    for g in [
        GuidedIntegratedGradients {
            steps: 0,
            ..Default::default()
        },
        GuidedIntegratedGradients {
            fraction: 0.0,
            ..Default::default()
        },
        GuidedIntegratedGradients {
            max_dist: 1.5,
            ..Default::default()
        },
    ] {
        assert!(g.attribute(&m, &x, &Target::Class(0)).is_err());
    }
}

/// Every GGIG candidate on a linear model is (x − x̄) ⊙ w, whatever the refinement does.
fn ggig_on_a_linear_model(dev: &Device) -> anyhow::Result<()> {
    let (m, w) = linear_image_model(dev);
    let x = uniform(&[2, 2, 9, 9], -1.0, 1.0, 5, dev);
    let r = GeometricallyGuidedIg {
        scales: 5,
        refine_steps: 2,
        ..Default::default()
    }
    .attribute(&m, &x, &Target::Class(1))?;
    assert_close(
        &r.attributions,
        &x.broadcast_mul(&w.narrow(0, 1, 1)?.reshape((1, 2, 9, 9))?)?,
        1e-5,
        "GGIG linear",
    );
    Ok(())
}
test_device!(
    ggig_on_a_linear_model,
    ggig_lin_cpu,
    ggig_lin_cuda,
    ggig_lin_metal
);

/// On S = Σ a_i x_i² with no refinement, the candidates are 2 a_i α_j x_i²: the largest
/// magnitude is at α = 1, so GGIG = 2 a ⊙ x² (Gradient × Input), independent of the scale count.
#[test]
fn ggig_keeps_the_largest_candidate() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let a = uniform(&[50], -1.0, 1.0, 1, &dev);
    let m = Quadratic(a.clone());
    let x = uniform(&[3, 50], -1.0, 1.0, 2, &dev);
    let r = GeometricallyGuidedIg {
        scales: 7,
        refine_steps: 0,
        ..Default::default()
    }
    .attribute(&m, &x, &Target::Class(0))?;
    assert_close(
        &r.attributions,
        &(x.sqr()?.broadcast_mul(&a)? * 2.0)?,
        1e-5,
        "GGIG quadratic",
    );
    // Chunking does not change it (refinement included).
    let a1 = GeometricallyGuidedIg {
        scales: 4,
        ..Default::default()
    }
    .attribute(&m, &x, &Target::Class(0))?;
    let a2 = GeometricallyGuidedIg {
        scales: 4,
        batching: Batching::with_max_rows(5),
        ..Default::default()
    }
    .attribute(&m, &x, &Target::Class(0))?;
    assert_close(&a1.attributions, &a2.attributions, 1e-6, "GGIG chunked");
    assert!(GeometricallyGuidedIg {
        scales: 0,
        ..Default::default()
    }
    .attribute(&m, &x, &Target::Class(0))
    .is_err());
    Ok(())
}
