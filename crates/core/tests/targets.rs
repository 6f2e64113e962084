//! Targets: several classes in one batched pass, per-example classes, arbitrary seeds; and
//! NoiseTunnel's statistics on models where they are known.

mod common;
use candle_core::{Device, Tensor};
use candle_explain_core::nn::{Linear, Sequential};
use candle_explain_core::prelude::*;
use candle_explain_core::test_device;
use common::*;

fn classes_in_one_pass_equal_separate_runs(dev: &Device) -> anyhow::Result<()> {
    let m = cnn(Activation::Relu, true, 1, dev);
    let x = uniform(&[3, 1, 12, 12], 0.0, 1.0, 2, dev);
    let methods: Vec<Box<dyn Attributor>> = vec![
        Box::new(IntegratedGradients::new(8)),
        Box::new(DeepLift::default()),
        Box::new(Saliency::signed()),
        Box::new(Occlusion::new(&[1, 4, 4], &[1, 4, 4])),
    ];
    for method in methods {
        let both = method.attribute(&m, &x, &Target::Classes(vec![2, 0]))?;
        assert_eq!(both.attributions.dims(), &[3, 2, 1, 12, 12]);
        assert_eq!(both.output.dims(), &[3, 2]);
        for (k, c) in [2usize, 0].into_iter().enumerate() {
            let one = method.attribute(&m, &x, &Target::Class(c))?;
            assert_close(
                &both.attributions.narrow(1, k, 1)?.squeeze(1)?,
                &one.attributions,
                1e-5,
                &format!("class {c}"),
            );
            assert_close(
                &both.output.narrow(1, k, 1)?.squeeze(1)?,
                &one.output,
                1e-5,
                "output",
            );
        }
    }
    Ok(())
}
test_device!(
    classes_in_one_pass_equal_separate_runs,
    classes_cpu,
    classes_cuda,
    classes_metal
);

/// A seed explains Σ_c s_c S_c: by linearity of the gradient methods, the same combination
/// of per-class attributions.
fn seed_is_a_linear_combination(dev: &Device) -> anyhow::Result<()> {
    let m = mlp(&[6, 12, 3], Activation::Tanh, true, 3, dev);
    let x = uniform(&[2, 6], -1.0, 1.0, 4, dev);
    let seed = Tensor::new(&[[0.5f32, 0., -2.], [1., 1., 0.]], dev)?;
    let ig = IntegratedGradients::new(16);
    let s = ig.attribute(&m, &x, &Target::Seed(seed.clone()))?;
    let per: Vec<Tensor> = (0..3)
        .map(|c| {
            ig.attribute(&m, &x, &Target::Class(c))
                .unwrap()
                .attributions
        })
        .collect();
    let expect = Tensor::stack(
        &[
            (per[0].narrow(0, 0, 1)? * 0.5 - (per[2].narrow(0, 0, 1)? * 2.0)?)?,
            (per[0].narrow(0, 1, 1)? + per[1].narrow(0, 1, 1)?)?,
        ],
        0,
    )?
    .squeeze(1)?;
    assert_close(&s.attributions, &expect, 1e-5, "seed");
    let out = m.forward(&x)?;
    let expect_out = (&out * &seed)?.sum(1)?;
    assert_close(&s.output, &expect_out, 1e-5, "seed output");
    Ok(())
}
test_device!(
    seed_is_a_linear_combination,
    seed_cpu,
    seed_cuda,
    seed_metal
);

/// On S(x) = Σ a_i x_i² the noisy saliency is 2a(x + ε): SmoothGrad → 2ax, VarGrad → 4a²σ²,
/// SmoothGrad² → 4a²(x² + σ²), with σ = fraction × (max x − min x).
#[test]
fn noise_tunnel_statistics() -> anyhow::Result<()> {
    struct Quadratic(Tensor);
    impl Explainable for Quadratic {
        fn forward_with(&self, x: &Tensor, _: &RuleCtx) -> candle_explain_core::Result<Tensor> {
            Ok(x.sqr()?.broadcast_mul(&self.0)?.sum_keepdim(1)?)
        }
    }
    let dev = Device::Cpu;
    let a = [1.0f32, -0.5, 2.0];
    let m = Quadratic(Tensor::new(&a, &dev)?);
    let xs = [0.5f32, -1.0, 1.5];
    let x = Tensor::new(&[xs], &dev)?;
    let sigma = 0.2 * (1.5 - -1.0);
    let n = 4000;
    let run = |k| {
        NoiseTunnel::new(Saliency::signed(), k, n, 0.2, 11)
            .attribute(&m, &x, &Target::Class(0))
            .map(|r| vec1(&r.attributions))
    };
    let (sg, vg, sq) = (
        run(NoiseKind::SmoothGrad)?,
        run(NoiseKind::VarGrad)?,
        run(NoiseKind::SmoothGradSquared)?,
    );
    for i in 0..3 {
        let sd_mean = 2.0 * a[i].abs() * sigma / (n as f32).sqrt();
        assert!(
            (sg[i] - 2.0 * a[i] * xs[i]).abs() < 4.0 * sd_mean,
            "SmoothGrad[{i}] = {}",
            sg[i]
        );
        let var = 4.0 * a[i] * a[i] * sigma * sigma;
        assert!(
            (vg[i] - var).abs() < 0.1 * var,
            "VarGrad[{i}] = {} vs {var}",
            vg[i]
        );
        let sq_expect = 4.0 * a[i] * a[i] * (xs[i] * xs[i] + sigma * sigma);
        assert!(
            (sq[i] - sq_expect).abs() < 0.1 * sq_expect,
            "SmoothGrad²[{i}] = {} vs {sq_expect}",
            sq[i]
        );
    }
    // No noise: SmoothGrad is the base method.
    let lin = Sequential::new().push(Linear::new(uniform(&[2, 3], -1.0, 1.0, 1, &dev), None));
    let plain = Saliency::signed().attribute(&lin, &x, &Target::Class(1))?;
    let nt = NoiseTunnel::new(Saliency::signed(), NoiseKind::SmoothGrad, 5, 0.0, 1).attribute(
        &lin,
        &x,
        &Target::Class(1),
    )?;
    assert_close(&nt.attributions, &plain.attributions, 1e-6, "σ = 0");
    Ok(())
}

#[test]
fn adaptive_ig_meets_the_tolerance_with_fewer_steps_where_possible() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = cnn(Activation::Relu, true, 5, &dev);
    let x = uniform(&[4, 1, 12, 12], 0.0, 1.0, 6, &dev);
    let tol = 1e-3;
    let r = IntegratedGradients::new(4)
        .with_adaptive(tol, 1024)
        .attribute(&m, &x, &Target::Class(0))?;
    let d = vec1(r.delta.as_ref().unwrap());
    let steps = r.steps.clone().unwrap();
    for (i, (d, s)) in d.iter().zip(&steps).enumerate() {
        assert!(
            d.abs() <= tol as f32 || *s == 1024,
            "example {i}: delta {d} with {s} steps"
        );
    }
    assert!(
        steps.iter().any(|&s| s > 4),
        "some example should need more than 4 steps: {steps:?}"
    );
    // Each example's attributions equal a fixed-step run with the steps it used.
    for (i, &s) in steps.iter().enumerate() {
        let fixed =
            IntegratedGradients::new(s).attribute(&m, &x.narrow(0, i, 1)?, &Target::Class(0))?;
        assert_close(
            &r.attributions.narrow(0, i, 1)?,
            &fixed.attributions,
            1e-5,
            &format!("example {i}"),
        );
    }
    Ok(())
}
