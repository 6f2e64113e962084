//! The results of Ancona et al. (ICLR 2018, PAPERS.md §1) on random MLPs and CNNs.

mod common;
use candle_core::{Device, Tensor};
use candle_explain_core::nn::Sequential;
use candle_explain_core::prelude::*;
use candle_explain_core::test_device;
use common::*;

fn models(bias: bool, act: Activation, dev: &Device) -> Vec<(&'static str, Sequential, Tensor)> {
    vec![
        (
            "mlp",
            mlp(&[10, 16, 12, 4], act, bias, 1, dev),
            uniform(&[5, 10], -1.0, 1.0, 11, dev),
        ),
        (
            "cnn",
            cnn(act, bias, 2, dev),
            uniform(&[5, 1, 12, 12], 0.0, 1.0, 12, dev),
        ),
    ]
}

/// For ReLU, f(z)/z = f'(z): ε-LRP (ε → 0) equals Gradient × Input, biases or not.
fn epsilon_lrp_equals_gradient_times_input(dev: &Device) -> anyhow::Result<()> {
    for (name, m, x) in models(true, Activation::Relu, dev) {
        let t = Target::PerExample(vec![0, 1, 2, 0, 1]);
        let lrp = EpsilonLrp::new(1e-9).attribute(&m, &x, &t)?;
        let gxi = InputXGradient::default().attribute(&m, &x, &t)?;
        assert_close(
            &lrp.attributions,
            &gxi.attributions,
            1e-4,
            &format!("{name}: ε-LRP vs G×I"),
        );
        // With a large ε the rule really differs (the test can fail).
        let coarse = EpsilonLrp::new(10.0).attribute(&m, &x, &t)?;
        assert!(
            max_abs(&(&coarse.attributions - &gxi.attributions)?) > 1e-3,
            "{name}: ε = 10 should change LRP"
        );
    }
    Ok(())
}
test_device!(
    epsilon_lrp_equals_gradient_times_input,
    eps_gxi_cpu,
    eps_gxi_cuda,
    eps_gxi_metal
);

/// Without biases every reference pre-activation is 0 for a zero baseline, so DeepLIFT's
/// multipliers are f(z)/z: DeepLIFT (Rescale, zero baseline) = ε-LRP (ε → 0). And on such
/// networks ε-LRP conserves relevance: Σ R = S(x).
fn deeplift_equals_epsilon_lrp_without_biases(dev: &Device) -> anyhow::Result<()> {
    for (name, m, x) in models(false, Activation::Relu, dev) {
        let t = Target::Class(1);
        let dl = DeepLift::default().attribute(&m, &x, &t)?;
        let lrp = EpsilonLrp::new(1e-9).attribute(&m, &x, &t)?;
        assert_close(
            &dl.attributions,
            &lrp.attributions,
            1e-4,
            &format!("{name}: DeepLIFT vs ε-LRP"),
        );
        assert!(
            max_abs(lrp.delta.as_ref().unwrap()) < 1e-4 * max_abs(&lrp.output).max(1.0),
            "{name}: ε-LRP conservation"
        );
    }
    // With biases they differ (so the comparison above can fail).
    let (_, m, x) = models(true, Activation::Relu, dev).remove(0);
    let dl = DeepLift::default().attribute(&m, &x, &Target::Class(1))?;
    let lrp = EpsilonLrp::new(1e-9).attribute(&m, &x, &Target::Class(1))?;
    assert!(max_abs(&(&dl.attributions - &lrp.attributions)?) > 1e-3);
    Ok(())
}
test_device!(
    deeplift_equals_epsilon_lrp_without_biases,
    dl_lrp_cpu,
    dl_lrp_cuda,
    dl_lrp_metal
);

/// DeepLIFT (Rescale) is complete exactly, biases included, for every activation, for zero,
/// constant and random baselines, through max-pools (Captum's pool rule).
fn deeplift_is_complete(dev: &Device) -> anyhow::Result<()> {
    let acts = [
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Softplus,
        Activation::Elu(1.0),
        Activation::LeakyRelu(0.1),
        Activation::Gelu,
    ];
    for act in acts {
        for (name, m, x) in models(true, act, dev) {
            let rnd = uniform(x.dims(), -0.5, 0.5, 99, dev);
            for b in [
                Baseline::Zero,
                Baseline::Constant(0.3),
                Baseline::Tensor(rnd),
            ] {
                let r = DeepLift::default().with_baseline(b.clone()).attribute(
                    &m,
                    &x,
                    &Target::Class(2),
                )?;
                let scale = max_abs(&(&r.output - r.baseline_output.as_ref().unwrap())?).max(1e-2);
                let d = max_abs(r.delta.as_ref().unwrap());
                assert!(
                    d < 2e-5 * scale.max(1.0),
                    "{name} {}: DeepLIFT completeness error {d} (scale {scale}) with {b:?}",
                    act.name()
                );
            }
        }
    }
    Ok(())
}
test_device!(
    deeplift_is_complete,
    dl_complete_cpu,
    dl_complete_cuda,
    dl_complete_metal
);

/// IG's completeness error comes from quadrature only: it shrinks as steps grow.
fn ig_completeness_error_shrinks_with_steps(dev: &Device) -> anyhow::Result<()> {
    for act in [Activation::Tanh, Activation::Relu] {
        let m = cnn(act, true, 5, dev);
        let x = uniform(&[3, 1, 12, 12], 0.0, 1.0, 6, dev);
        let errs: Vec<f32> = [2usize, 8, 32, 128]
            .iter()
            .map(|&n| {
                let r = IntegratedGradients::new(n)
                    .with_quadrature(Quadrature::RiemannTrapezoid)
                    .attribute(&m, &x, &Target::Class(0))
                    .unwrap();
                max_abs(r.delta.as_ref().unwrap())
            })
            .collect();
        assert!(
            errs[3] < errs[0] / 10.0,
            "{}: IG errors {errs:?} do not shrink",
            act.name()
        );
        if act == Activation::Tanh {
            // Smooth integrand: the trapezoid error is O(1/n²), so it drops at every step.
            assert!(
                errs.windows(2).all(|w| w[1] < w[0]),
                "tanh: IG errors {errs:?} not decreasing"
            );
        }
    }
    Ok(())
}
test_device!(
    ig_completeness_error_shrinks_with_steps,
    ig_conv_cpu,
    ig_conv_cuda,
    ig_conv_metal
);

/// Occlusion-1 is, by definition, the output drop when one feature is set to the baseline:
/// checked against forwards computed here, one feature at a time.
fn occlusion_one_is_the_output_drop(dev: &Device) -> anyhow::Result<()> {
    let m = mlp(&[6, 10, 3], Activation::Relu, true, 3, dev);
    let x = uniform(&[2, 6], -1.0, 1.0, 4, dev);
    let occ = Occlusion::single(1)
        .with_baseline(Baseline::Constant(0.25))
        .attribute(&m, &x, &Target::Class(1))?;
    let got = vec1(&occ.attributions);
    let full: Vec<Vec<f32>> = m.forward(&x)?.to_vec2()?;
    let xs: Vec<Vec<f32>> = x.to_vec2()?;
    for b in 0..2 {
        for i in 0..6 {
            let mut xi = xs[b].clone();
            xi[i] = 0.25;
            let out: Vec<Vec<f32>> = m
                .forward(&Tensor::new(xi.as_slice(), dev)?.unsqueeze(0)?)?
                .to_vec2()?;
            let drop = full[b][1] - out[0][1];
            assert!(
                (got[b * 6 + i] - drop).abs() < 1e-5,
                "occlusion-1 [{b},{i}] = {} vs drop {drop}",
                got[b * 6 + i]
            );
        }
    }
    Ok(())
}
test_device!(
    occlusion_one_is_the_output_drop,
    occ1_cpu,
    occ1_cuda,
    occ1_metal
);

/// Shapley values are complete per group, exactly and with permutation sampling.
fn shapley_is_complete(dev: &Device) -> anyhow::Result<()> {
    let m = cnn(Activation::Relu, true, 7, dev);
    let x = uniform(&[2, 1, 12, 12], 0.0, 1.0, 8, dev);
    // 3×3 grid of 4×4 superpixels.
    let ids: Vec<u32> = (0..144)
        .map(|i| ((i / 12) / 4 * 3 + (i % 12) / 4) as u32)
        .collect();
    let mask = Tensor::from_vec(ids, (1, 12, 12), dev)?;
    for sv in [
        ShapleyValues::exact(mask.clone()),
        ShapleyValues::sampling(mask.clone(), 5, 3),
    ] {
        let r = sv.attribute(&m, &x, &Target::Class(0))?;
        assert!(
            max_abs(r.delta.as_ref().unwrap()) < 1e-4,
            "{:?}: Σφ ≠ S(x) − S(x̄)",
            sv.mode
        );
    }
    Ok(())
}
test_device!(
    shapley_is_complete,
    shapley_cpu,
    shapley_cuda,
    shapley_metal
);
