//! The training forward (`RuleCtx::training`): the conv op whose backward gives the kernel's
//! gradient on our kernels, and BatchNorm on batch statistics with PyTorch's running-average
//! update.

mod common;
use candle_core::{Device, Tensor, Var};
use candle_explain_core::nn::BatchNorm;
use candle_explain_core::ops::conv::ConvGeometry;
use candle_explain_core::{test_device, Explainable, RuleCtx};
use common::*;

/// Gradients of `Σ r ⊙ conv(x, k)` w.r.t. `x` and `k` under a context.
fn conv_grads(
    x: &Tensor,
    k: &Tensor,
    r: &Tensor,
    g: ConvGeometry,
    ctx: &RuleCtx,
) -> anyhow::Result<(Tensor, Tensor)> {
    let (xv, kv) = (Var::from_tensor(x)?, Var::from_tensor(k)?);
    let y = ctx.conv2d(xv.as_tensor(), kv.as_tensor(), None, g)?;
    let grads = (&y * r)?.sum_all()?.backward()?;
    Ok((
        grads.get(xv.as_tensor()).expect("input gradient").clone(),
        grads.get(kv.as_tensor()).expect("kernel gradient").clone(),
    ))
}

fn training_conv_gradients(dev: &Device) -> anyhow::Result<()> {
    // (cin, cout, k, h, w, geometry)
    let cases = [
        (
            1,
            4,
            3,
            (9, 9),
            ConvGeometry {
                padding: 1,
                ..Default::default()
            },
        ),
        (
            3,
            5,
            3,
            (10, 11),
            ConvGeometry {
                padding: 1,
                stride: 2,
                ..Default::default()
            },
        ),
        (
            2,
            3,
            5,
            (12, 13),
            ConvGeometry {
                padding: 2,
                stride: 3,
                ..Default::default()
            },
        ),
        (
            2,
            2,
            3,
            (12, 12),
            ConvGeometry {
                padding: 2,
                dilation: 2,
                ..Default::default()
            },
        ),
        (
            4,
            6,
            3,
            (8, 8),
            ConvGeometry {
                padding: 1,
                groups: 2,
                ..Default::default()
            },
        ),
        (
            4,
            4,
            3,
            (9, 9),
            ConvGeometry {
                padding: 1,
                stride: 2,
                groups: 4,
                ..Default::default()
            },
        ),
        (
            3,
            2,
            1,
            (7, 7),
            ConvGeometry {
                stride: 2,
                ..Default::default()
            },
        ),
    ];
    for (i, (cin, cout, kk, (h, w), g)) in cases.into_iter().enumerate() {
        for batch in [1, 5] {
            let x = uniform(&[batch, cin, h, w], -1.0, 1.0, i as u64, dev);
            let k = uniform(
                &[cout, cin / g.groups, kk, kk],
                -1.0,
                1.0,
                100 + i as u64,
                dev,
            );
            let y = RuleCtx::plain().conv2d(&x, &k, None, g)?;
            let r = uniform(y.dims(), -1.0, 1.0, 300 + i as u64, dev);
            let (gx, gk) = conv_grads(&x, &k, &r, g, &RuleCtx::training())?;
            assert_close(
                &RuleCtx::training().conv2d(&x, &k, None, g)?,
                &y,
                1e-5,
                &format!("case {i} forward"),
            );
            // The conv is linear in each argument: <conv(x', k), r> = <x', ∂x> and
            // <conv(x, k'), r> = <k', ∂k> for fresh x', k'.
            for probe in 0..2u64 {
                let xp = uniform(x.dims(), -1.0, 1.0, 1000 + probe, dev);
                let kp = uniform(k.dims(), -1.0, 1.0, 2000 + probe, dev);
                let dot = |a: &Tensor, b: &Tensor| -> anyhow::Result<f32> {
                    Ok((a * b)?.sum_all()?.to_scalar::<f32>()?)
                };
                let (lx, rx) = (
                    dot(
                        &xp.conv2d(&k, g.padding, g.stride, g.dilation, g.groups)?,
                        &r,
                    )?,
                    dot(&xp, &gx)?,
                );
                let (lk, rk) = (
                    dot(
                        &x.conv2d(&kp, g.padding, g.stride, g.dilation, g.groups)?,
                        &r,
                    )?,
                    dot(&kp, &gk)?,
                );
                assert!(
                    (lx - rx).abs() < 1e-4 * lx.abs().max(1.0),
                    "case {i} batch {batch}: input adjoint {lx} vs {rx}"
                );
                assert!(
                    (lk - rk).abs() < 1e-4 * lk.abs().max(1.0),
                    "case {i} batch {batch}: kernel adjoint {lk} vs {rk}"
                );
            }
            // Candle's stock backward as a second reference where it works (no uncovered rows).
            let covered =
                |n: usize| (n + 2 * g.padding - g.dilation * (kk - 1) - 1) % g.stride == 0;
            if covered(h) && covered(w) {
                let (sx, sk) = conv_grads(&x, &k, &r, g, &RuleCtx::plain())?;
                assert_close(
                    &gx,
                    &sx,
                    1e-4,
                    &format!("case {i} batch {batch}: input gradient vs stock autograd"),
                );
                assert_close(
                    &gk,
                    &sk,
                    1e-4,
                    &format!("case {i} batch {batch}: kernel gradient vs stock autograd"),
                );
            }
        }
    }
    Ok(())
}
test_device!(
    training_conv_gradients,
    train_conv_cpu,
    train_conv_cuda,
    train_conv_metal
);

fn batch_norm_training_step(dev: &Device) -> anyhow::Result<()> {
    let (b, c, h, w) = (4, 3, 5, 6);
    let x = uniform(&[b, c, h, w], -2.0, 3.0, 1, dev);
    let bn = BatchNorm {
        weight: Tensor::new(&[1.5f32, -0.5, 2.0], dev)?,
        bias: Tensor::new(&[0.1f32, 0.2, -0.3], dev)?,
        running_mean: Tensor::new(&[0.5f32, -1.0, 0.0], dev)?,
        running_var: Tensor::new(&[2.0f32, 1.0, 0.5], dev)?,
        eps: 1e-5,
    };
    let (old_mean, old_var) = (vec1(&bn.running_mean), vec1(&bn.running_var));
    let y = bn.forward_with(&x, &RuleCtx::training())?;
    assert_eq!(y.dims(), x.dims());
    // By hand, channel by channel.
    let xs = x.transpose(0, 1)?.flatten_from(1)?.to_vec2::<f32>()?;
    let ys = y.transpose(0, 1)?.flatten_from(1)?.to_vec2::<f32>()?;
    let (gamma, beta) = (vec1(&bn.weight), vec1(&bn.bias));
    let (new_mean, new_var) = (vec1(&bn.running_mean), vec1(&bn.running_var));
    for ch in 0..c {
        let n = xs[ch].len() as f64;
        let mean = xs[ch].iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = xs[ch]
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        for (xv, yv) in xs[ch].iter().zip(&ys[ch]) {
            let want =
                (*xv as f64 - mean) / (var + 1e-5).sqrt() * gamma[ch] as f64 + beta[ch] as f64;
            assert!(
                (want - *yv as f64).abs() < 1e-4,
                "channel {ch}: {yv} vs {want}"
            );
        }
        // PyTorch: running = (1 − m)·running + m·batch, with the unbiased variance.
        let want_mean = 0.9 * old_mean[ch] as f64 + 0.1 * mean;
        let want_var = 0.9 * old_var[ch] as f64 + 0.1 * var * n / (n - 1.0);
        assert!(
            (new_mean[ch] as f64 - want_mean).abs() < 1e-5,
            "running mean {ch}: {} vs {want_mean}",
            new_mean[ch]
        );
        assert!(
            (new_var[ch] as f64 - want_var).abs() < 1e-5,
            "running var {ch}: {} vs {want_var}",
            new_var[ch]
        );
    }
    // Outside training the layer uses the (updated) running statistics.
    let eval = bn.forward(&x)?;
    let (scale, shift) = bn.scale_shift()?;
    assert_close(
        &eval,
        &x.broadcast_mul(&scale.reshape((1, c, 1, 1))?)?
            .broadcast_add(&shift.reshape((1, c, 1, 1))?)?,
        1e-5,
        "eval mode",
    );
    // One value per channel cannot be normalised; the wrong channel count is named.
    let one = uniform(&[1, c, 1, 1], -1.0, 1.0, 2, dev);
    assert!(bn
        .forward_with(&one, &RuleCtx::training())
        .unwrap_err()
        .to_string()
        .contains("more than one value"));
    let wrong = uniform(&[2, c + 1, 2, 2], -1.0, 1.0, 3, dev);
    assert!(bn
        .forward_with(&wrong, &RuleCtx::training())
        .unwrap_err()
        .to_string()
        .contains("need (batch, 3"));
    Ok(())
}
test_device!(
    batch_norm_training_step,
    bn_train_cpu,
    bn_train_cuda,
    bn_train_metal
);

/// The fused BatchNorm's gradients (input, weight, bias) against autograd through the
/// formula written with plain Candle ops.
fn batch_norm_training_gradients(dev: &Device) -> anyhow::Result<()> {
    for (shape, seed) in [
        (vec![4usize, 3, 5, 6], 1u64),
        (vec![7, 5], 2),
        (vec![2, 4, 3, 1, 5], 3),
    ] {
        let c = shape[1];
        let x = Var::from_tensor(&uniform(&shape, -2.0, 3.0, seed, dev))?;
        let gamma = Var::from_tensor(&uniform(&[c], 0.5, 2.0, seed + 10, dev))?;
        let beta = Var::from_tensor(&uniform(&[c], -1.0, 1.0, seed + 20, dev))?;
        let bn = BatchNorm {
            weight: gamma.as_tensor().clone(),
            bias: beta.as_tensor().clone(),
            running_mean: Tensor::zeros(c, candle_core::DType::F32, dev)?,
            running_var: Tensor::ones(c, candle_core::DType::F32, dev)?,
            eps: 1e-3,
        };
        let r = uniform(&shape, -1.0, 1.0, seed + 30, dev);
        let y = bn.forward_with(x.as_tensor(), &RuleCtx::training())?;
        let g = (&y * &r)?.sum_all()?.backward()?;
        // Reference: statistics over every axis but 1, as ordinary differentiable ops.
        let axes: Vec<usize> = (0..shape.len()).filter(|&a| a != 1).collect();
        let mut bshape = vec![1; shape.len()];
        bshape[1] = c;
        let mean = x.as_tensor().mean_keepdim(axes.as_slice())?;
        let centred = x.as_tensor().broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(axes.as_slice())?;
        let yr = centred
            .broadcast_div(&(var + 1e-3)?.sqrt()?)?
            .broadcast_mul(&gamma.as_tensor().reshape(bshape.as_slice())?)?
            .broadcast_add(&beta.as_tensor().reshape(bshape.as_slice())?)?;
        let gr = (&yr * &r)?.sum_all()?.backward()?;
        assert_close(&y, &yr, 1e-5, &format!("{shape:?} forward"));
        for (v, what) in [(&x, "input"), (&gamma, "weight"), (&beta, "bias")] {
            let (a, b) = (
                g.get(v.as_tensor()).expect("gradient"),
                gr.get(v.as_tensor()).expect("reference gradient"),
            );
            assert_close(a, b, 1e-4, &format!("{shape:?} {what} gradient"));
        }
    }
    Ok(())
}
test_device!(
    batch_norm_training_gradients,
    bn_grad_cpu,
    bn_grad_cuda,
    bn_grad_metal
);
