//! Closed-form values on toy models, derived by hand in the comments.

mod common;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::nn::{Linear, Sequential};
use candle_explain_core::prelude::*;
use candle_explain_core::test_device;
use common::*;

/// f(x) = relu(x0 − x1) − 2·relu(x1 − 0.5), at x = (3, 1), zero baseline.
///   pre-activations z = (2, 0.5), f(x) = 2 − 1 = 1, f(0) = 0.
///   gradient: (1, −1) − 2·(0, 1) = (1, −3); Gradient × Input = (3, −3).
///   IG: unit 2 is active for α > 0.5 only: ∫∇ = (1, −1) + 0.5·(0, −2) = (1, −2) → IG = (3, −2).
///   DeepLIFT: z̄ = (0, −0.5), multipliers (2/2, 0.5/1) = (1, 0.5):
///     ∇̃ = (1, −2·0.5)·W1 = (1, −2) → (3, −2), sums to f(x) − f(0) = 1.
///   ε-LRP (ε → 0): f(z)/z = 1 on both active units → equals Gradient × Input, Σ = 0, delta −1.
///   Guided backprop: hidden gradient (1, −2) → relu → (1, 0) → ·W1 = (1, −1).
///   Occlusion-1: f(0, 1) = −1 → drop 2; f(3, 0) = 3 → drop −2.
///   Shapley (per feature): v(∅) = 0, v{0} = 3, v{1} = −1, v{0,1} = 1 →
///     φ0 = ½(3 + 2) = 2.5, φ1 = ½(−1 − 2) = −1.5.
fn two_layer_relu(dev: &Device) -> Sequential {
    let w1 = Tensor::new(&[[1f32, -1.], [0., 1.]], dev).unwrap();
    let b1 = Tensor::new(&[0f32, -0.5], dev).unwrap();
    let w2 = Tensor::new(&[[1f32, -2.]], dev).unwrap();
    Sequential::new()
        .with_input_shape(&[2])
        .push(Linear::new(w1, Some(b1)))
        .push(Activation::Relu)
        .push(Linear::new(w2, None))
}

fn check(a: &Attribution, expect: &[f32], what: &str) {
    let got = vec1(&a.attributions);
    for (g, e) in got.iter().zip(expect) {
        assert!(
            (g - e).abs() < 1e-5,
            "{what}: got {got:?}, expected {expect:?}"
        );
    }
}

fn two_layer_relu_by_hand(dev: &Device) -> anyhow::Result<()> {
    let m = two_layer_relu(dev);
    let x = Tensor::new(&[[3f32, 1.]], dev)?;
    let t = Target::Class(0);
    check(
        &Saliency::signed().attribute(&m, &x, &t)?,
        &[1., -3.],
        "saliency",
    );
    check(
        &Saliency::abs().attribute(&m, &x, &t)?,
        &[1., 3.],
        "|saliency|",
    );
    check(
        &InputXGradient::default().attribute(&m, &x, &t)?,
        &[3., -3.],
        "gradient × input",
    );
    // The kink at α = 0.5 falls between midpoint nodes, so the midpoint rule is exact.
    let ig = IntegratedGradients::new(4)
        .with_quadrature(Quadrature::RiemannMiddle)
        .attribute(&m, &x, &t)?;
    check(&ig, &[3., -2.], "integrated gradients");
    assert!(max_abs(ig.delta.as_ref().unwrap()) < 1e-5);
    let dl = DeepLift::default().attribute(&m, &x, &t)?;
    check(&dl, &[3., -2.], "deeplift");
    assert!(max_abs(dl.delta.as_ref().unwrap()) < 1e-6);
    let lrp = EpsilonLrp::new(1e-9).attribute(&m, &x, &t)?;
    check(&lrp, &[3., -3.], "ε-LRP");
    assert!(
        (vec1(lrp.delta.as_ref().unwrap())[0] + 1.0).abs() < 1e-5,
        "ε-LRP conservation error is the bias share"
    );
    check(
        &GuidedBackprop::default().attribute(&m, &x, &t)?,
        &[1., -1.],
        "guided backprop",
    );
    check(
        &Deconvnet::default().attribute(&m, &x, &t)?,
        &[1., -1.],
        "deconvnet",
    );
    check(
        &Occlusion::single(1).attribute(&m, &x, &t)?,
        &[2., -2.],
        "occlusion-1",
    );
    let mask = Tensor::new(&[0u32, 1], dev)?;
    check(
        &ShapleyValues::exact(mask.clone()).attribute(&m, &x, &t)?,
        &[2.5, -1.5],
        "exact shapley",
    );
    check(
        &FeatureAblation::new(mask).attribute(&m, &x, &t)?,
        &[2., -2.],
        "feature ablation",
    );
    Ok(())
}
test_device!(two_layer_relu_by_hand, relu2_cpu, relu2_cuda, relu2_metal);

/// A linear model S(x) = W x + b: every gradient method is exact and they coincide.
fn linear_model(dev: &Device) -> anyhow::Result<()> {
    let w = uniform(&[3, 5], -1.0, 1.0, 1, dev);
    let b = uniform(&[3], -1.0, 1.0, 2, dev);
    let m = Sequential::new().push(Linear::new(w.clone(), Some(b.clone())));
    let x = uniform(&[4, 5], -2.0, 2.0, 3, dev);
    let xbar = uniform(&[4, 5], -1.0, 1.0, 4, dev);
    let t = Target::Class(2);
    let wc = w.narrow(0, 2, 1)?;
    let gxi = x.broadcast_mul(&wc)?;
    let diff = (&x - &xbar)?.broadcast_mul(&wc)?;
    assert_close(
        &Saliency::signed().attribute(&m, &x, &t)?.attributions,
        &wc.broadcast_as(x.dims())?.contiguous()?,
        1e-6,
        "saliency = w",
    );
    assert_close(
        &InputXGradient::default()
            .attribute(&m, &x, &t)?
            .attributions,
        &gxi,
        1e-6,
        "G×I",
    );
    for q in [
        Quadrature::RiemannLeft,
        Quadrature::RiemannTrapezoid,
        Quadrature::GaussLegendre,
    ] {
        let ig = IntegratedGradients::new(3)
            .with_quadrature(q)
            .with_baseline(Baseline::Tensor(xbar.clone()))
            .attribute(&m, &x, &t)?;
        assert_close(&ig.attributions, &diff, 1e-5, "IG on a linear model");
    }
    let dl = DeepLift::default()
        .with_baseline(Baseline::Tensor(xbar.clone()))
        .attribute(&m, &x, &t)?;
    assert_close(&dl.attributions, &diff, 1e-5, "DeepLIFT on a linear model");
    // Occlusion-1 with a zero baseline removes w_i x_i exactly.
    assert_close(
        &Occlusion::single(1).attribute(&m, &x, &t)?.attributions,
        &gxi,
        1e-5,
        "occlusion-1",
    );
    // Expected gradients with a single baseline and no noise: (x − x̄) ⊙ w.
    let eg = GradientShap::expected_gradients(xbar.narrow(0, 0, 1)?, 8, 1).attribute(&m, &x, &t)?;
    let d0 = x
        .broadcast_sub(&xbar.narrow(0, 0, 1)?)?
        .broadcast_mul(&wc)?;
    assert_close(
        &eg.attributions,
        &d0,
        1e-5,
        "expected gradients on a linear model",
    );
    Ok(())
}
test_device!(linear_model, linear_cpu, linear_cuda, linear_metal);

/// S(x) = Σ a_i x_i², written with plain tensor ops (autograd does the backward).
struct Quadratic(Tensor);
impl Explainable for Quadratic {
    fn forward_with(&self, x: &Tensor, _: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        Ok(x.sqr()?.broadcast_mul(&self.0)?.sum_keepdim(1)?)
    }
}

/// Zero baseline: the integrand along the path is 2 a_i x_i² α, so
/// IG_i = a_i x_i² for midpoint, trapezoid and Gauss–Legendre (exact for linear integrands),
/// a_i x_i² (n − 1)/n for the left rule and a_i x_i² (n + 1)/n for the right rule.
fn quadratic_model(dev: &Device) -> anyhow::Result<()> {
    let a = Tensor::new(&[1.5f32, -0.5, 2.0], dev)?;
    let m = Quadratic(a.clone());
    let x = Tensor::new(&[[1f32, 2., -1.], [0.5, -3., 2.]], dev)?;
    let exact = x.sqr()?.broadcast_mul(&a)?;
    let t = Target::Class(0);
    let n = 5usize;
    for (q, factor) in [
        (Quadrature::RiemannMiddle, 1.0),
        (Quadrature::RiemannTrapezoid, 1.0),
        (Quadrature::GaussLegendre, 1.0),
        (Quadrature::RiemannLeft, (n as f64 - 1.0) / n as f64),
        (Quadrature::RiemannRight, (n as f64 + 1.0) / n as f64),
    ] {
        let ig = IntegratedGradients::new(n)
            .with_quadrature(q)
            .attribute(&m, &x, &t)?;
        assert_close(
            &ig.attributions,
            &(&exact * factor)?,
            1e-5,
            &format!("IG {q:?}"),
        );
    }
    assert_close(
        &Saliency::signed().attribute(&m, &x, &t)?.attributions,
        &x.broadcast_mul(&a)?.affine(2.0, 0.0)?,
        1e-5,
        "saliency = 2 a x",
    );
    Ok(())
}
test_device!(
    quadratic_model,
    quadratic_cpu,
    quadratic_cuda,
    quadratic_metal
);

/// Saliency (the plain gradient through our ops) against central finite differences, in f64,
/// on smooth MLPs with every smooth activation.
#[test]
fn gradient_matches_finite_differences() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    for (k, act) in [
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Softplus,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Silu,
        Activation::Elu(1.0),
    ]
    .into_iter()
    .enumerate()
    {
        let m = mlp_dt(&[6, 8, 8, 3], act, true, k as u64, &dev, DType::F64);
        let x = uniform_dt(&[2, 6], -1.5, 1.5, 40 + k as u64, &dev, DType::F64);
        let g: Vec<f64> = Saliency::signed()
            .attribute(&m, &x, &Target::PerExample(vec![1, 2]))?
            .attributions
            .flatten_all()?
            .to_vec1()?;
        let xs: Vec<f64> = x.flatten_all()?.to_vec1()?;
        let h = 1e-6;
        for i in 0..xs.len() {
            let mut up = xs.clone();
            let mut dn = xs.clone();
            up[i] += h;
            dn[i] -= h;
            let f = |v: Vec<f64>| -> anyhow::Result<Vec<f64>> {
                Ok(m.forward(&Tensor::from_vec(v, (2, 6), &dev)?)?
                    .to_vec2::<f64>()?
                    .into_iter()
                    .enumerate()
                    .map(|(r, o)| o[[1, 2][r]])
                    .collect())
            };
            let (fu, fd) = (f(up)?, f(dn)?);
            let row = i / 6;
            let fdv = (fu[row] - fd[row]) / (2.0 * h);
            assert!(
                (fdv - g[i]).abs() < 1e-6,
                "{}: ∂/∂x{i} = {} vs finite difference {fdv}",
                act.name(),
                g[i]
            );
        }
    }
    Ok(())
}

/// Sobel on a horizontal ramp, by hand: Gy = 0 everywhere.
#[test]
fn sobel_on_a_ramp() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    // x[i, j] = j: interior Gx = (1·2 + 2·2 + 1·2) = 8; at the left/right border the replicated
    // column makes the difference 1 instead of 2: Gx = 4.
    let v: Vec<f32> = (0..25).map(|i| (i % 5) as f32).collect();
    let x = Tensor::from_vec(v, (1, 1, 5, 5), &dev)?;
    let m = Sequential::new()
        .push(candle_explain_core::nn::Flatten)
        .push(Linear::new(Tensor::zeros((1, 25), DType::F32, &dev)?, None));
    let s = vec1(&SobelEdge.attribute(&m, &x, &Target::Class(0))?.attributions);
    for r in 0..5 {
        assert_eq!(&s[r * 5..r * 5 + 5], &[4., 8., 8., 8., 4.], "row {r}");
    }
    Ok(())
}

/// The blurred baseline: a normalised Gaussian, so a constant image stays constant away from
/// the zero-padded border; a single bright pixel spreads symmetrically with total mass kept.
#[test]
fn blurred_baseline() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let flat = Tensor::full(0.7f32, (1, 2, 15, 15), &dev)?;
    let b = candle_explain_core::baseline::gaussian_blur(&flat, 1.0)?;
    let centre = b.narrow(2, 4, 7)?.narrow(3, 4, 7)?;
    assert!(max_abs(&(centre - 0.7)?) < 1e-6);
    let mut v = vec![0f32; 15 * 15];
    v[7 * 15 + 7] = 1.0;
    let spot = candle_explain_core::baseline::gaussian_blur(
        &Tensor::from_vec(v, (1, 1, 15, 15), &dev)?,
        1.5,
    )?;
    assert!(
        (spot.sum_all()?.to_scalar::<f32>()? - 1.0).abs() < 1e-5,
        "mass kept"
    );
    let s: Vec<Vec<f32>> = spot.squeeze(0)?.squeeze(0)?.to_vec2()?;
    assert!(
        (s[7][5] - s[7][9]).abs() < 1e-7 && (s[5][7] - s[7][5]).abs() < 1e-7 && s[7][7] > s[7][6]
    );
    // Its ratio between neighbours is the Gaussian's: exp(−(1² − 0²)/(2σ²)) along one axis.
    assert!((s[7][8] / s[7][7] - (-1.0f32 / (2.0 * 2.25)).exp()).abs() < 1e-5);
    Ok(())
}

/// The per-channel mean baseline of `(B, C, H, W)` inputs averages each example's channel over
/// its pixels; `(B, F)` inputs get each example's mean feature.
#[test]
fn channel_mean_baseline() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::new(&[[[[1f32, 2.], [3., 6.]], [[0., 0.], [0., 8.]]]], &dev)?;
    let b: Vec<f32> = Baseline::ChannelMean
        .resolve(&x)?
        .flatten_all()?
        .to_vec1()?;
    assert_eq!(b, [3., 3., 3., 3., 2., 2., 2., 2.]);
    let flat = Tensor::new(&[[1f32, 2., 6.], [0., -3., 0.]], &dev)?;
    let b: Vec<Vec<f32>> = Baseline::ChannelMean.resolve(&flat)?.to_vec2()?;
    assert_eq!(b, [[3., 3., 3.], [-1., -1., -1.]]);
    Ok(())
}
