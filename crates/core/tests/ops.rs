//! Every op's backward against a reference: stock autograd made of plain Candle ops where
//! Candle is right, a hand-built reference where it is not (max-pool), finite differences
//! for the activation derivatives, and the rule formulas written out with ordinary ops.

mod common;
use candle_core::{Device, Tensor, Var};
use candle_explain_core::ops::conv::ConvGeometry;
use candle_explain_core::ops::pool::PoolGeometry;
use candle_explain_core::{test_device, ActRule, Activation, RuleCtx};
use common::*;

/// Gradient of `Σ w ⊙ f(x)` w.r.t. `x` under a context.
fn vjp(
    x: &Tensor,
    w: &Tensor,
    ctx: &RuleCtx,
    f: impl Fn(&Tensor, &RuleCtx) -> candle_explain_core::Result<Tensor>,
) -> anyhow::Result<(Tensor, Tensor)> {
    let v = Var::from_tensor(x)?;
    let y = f(v.as_tensor(), ctx)?;
    let g = (&y * w)?.sum_all()?.backward()?;
    Ok((
        y.detach(),
        g.get(v.as_tensor()).expect("input gradient").clone(),
    ))
}

fn conv_input_grad_matches_autograd(dev: &Device) -> anyhow::Result<()> {
    // (cin, cout, k, h, w, geometry)
    let cases = [
        (1, 4, (3, 3), (9, 9), ConvGeometry::default()),
        (
            3,
            5,
            (3, 3),
            (10, 11),
            ConvGeometry {
                padding: 1,
                ..Default::default()
            },
        ),
        (
            2,
            4,
            (3, 3),
            (10, 12),
            ConvGeometry {
                padding: 1,
                stride: 2,
                ..Default::default()
            },
        ),
        (
            2,
            3,
            (5, 5),
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
            (3, 3),
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
            (3, 3),
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
            (3, 3),
            (9, 9),
            ConvGeometry {
                padding: 1,
                stride: 2,
                groups: 4,
                ..Default::default()
            },
        ),
        (3, 2, (1, 1), (7, 7), ConvGeometry::default()),
        (
            2,
            3,
            (2, 2),
            (7, 7),
            ConvGeometry {
                stride: 2,
                ..Default::default()
            },
        ),
        (
            2,
            3,
            (3, 3),
            (4, 4),
            ConvGeometry {
                padding: 3,
                ..Default::default()
            },
        ),
    ];
    for (i, (cin, cout, (kh, kw), (h, w), g)) in cases.into_iter().enumerate() {
        for batch in [1, 3] {
            let x = uniform(&[batch, cin, h, w], -1.0, 1.0, i as u64, dev);
            let k = uniform(
                &[cout, cin / g.groups, kh, kw],
                -1.0,
                1.0,
                100 + i as u64,
                dev,
            );
            let b = uniform(&[cout], -1.0, 1.0, 200 + i as u64, dev);
            let f = |x: &Tensor, ctx: &RuleCtx| ctx.conv2d(x, &k, Some(&b), g);
            let y = f(&x, &RuleCtx::plain())?;
            let wt = uniform(y.dims(), -1.0, 1.0, 300 + i as u64, dev);
            let (y1, g1) = vjp(&x, &wt, &RuleCtx::rule(ActRule::Gradient)?, f)?;
            assert_close(&y1, &y, 1e-6, &format!("conv case {i} forward"));
            // Reference 1: Candle's transposed convolution with the right output padding.
            let rem =
                |n: usize, k: usize| (n + 2 * g.padding - g.dilation * (k - 1) - 1) % g.stride;
            if g.groups == 1 && rem(h, kh) == rem(w, kw) {
                let reference =
                    wt.conv_transpose2d(&k, g.padding, rem(h, kh), g.stride, g.dilation)?;
                assert_close(
                    &g1,
                    &reference,
                    1e-5,
                    &format!("conv case {i} (batch {batch}) vs conv_transpose2d"),
                );
            }
            // Reference 2: the adjoint identity <conv(x) − b, wt> = <x, Jᵀ wt> for fresh inputs.
            for probe in 0..3 {
                let xp = uniform(x.dims(), -1.0, 1.0, 1000 + probe, dev);
                let lhs = (xp.conv2d(&k, g.padding, g.stride, g.dilation, g.groups)? * &wt)?
                    .sum_all()?
                    .to_scalar::<f32>()?;
                let rhs = (&xp * &g1)?.sum_all()?.to_scalar::<f32>()?;
                assert!(
                    (lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0),
                    "conv case {i}: adjoint {lhs} vs {rhs}"
                );
            }
        }
    }
    // A non-contiguous input (a transposed view) gives the same gradient.
    let x = uniform(&[2, 3, 9, 9], -1.0, 1.0, 7, dev).transpose(2, 3)?;
    assert!(!x.is_contiguous());
    let k = uniform(&[4, 3, 3, 3], -1.0, 1.0, 8, dev);
    let g = ConvGeometry {
        padding: 1,
        stride: 2,
        ..Default::default()
    };
    let f = |x: &Tensor, ctx: &RuleCtx| ctx.conv2d(x, &k, None, g);
    let wt = uniform(f(&x, &RuleCtx::plain())?.dims(), -1.0, 1.0, 9, dev);
    let (_, g0) = vjp(&x, &wt, &RuleCtx::plain(), f)?;
    let (_, g1) = vjp(&x, &wt, &RuleCtx::rule(ActRule::Gradient)?, f)?;
    assert_close(&g1, &g0, 1e-5, "conv non-contiguous input");
    Ok(())
}
test_device!(
    conv_input_grad_matches_autograd,
    conv_cpu,
    conv_cuda,
    conv_metal
);

/// Documents a Candle bug our conv op avoids: the stock conv2d backward fails with a shape
/// error when a strided conv leaves input rows uncovered (it forgets the output padding).
/// If Candle fixes it, this test fails and the note can go.
#[test]
fn candle_conv_backward_fails_on_uncovered_rows() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&uniform(&[1, 2, 11, 10], -1.0, 1.0, 1, &dev))?;
    let k = uniform(&[3, 2, 3, 3], -1.0, 1.0, 2, &dev);
    let y = x.as_tensor().conv2d(&k, 1, 2, 1, 1)?;
    assert!(
        y.sum_all()?.backward().is_err(),
        "Candle's strided conv backward now works: revisit ops::conv's note"
    );
    let ours = RuleCtx::rule(ActRule::Gradient)?.conv2d(
        x.as_tensor(),
        &k,
        None,
        ConvGeometry {
            padding: 1,
            stride: 2,
            ..Default::default()
        },
    )?;
    let g = ours.sum_all()?.backward()?;
    assert_eq!(g.get(x.as_tensor()).unwrap().dims(), &[1, 2, 11, 10]);
    Ok(())
}

fn linear_input_grad_matches_autograd(dev: &Device) -> anyhow::Result<()> {
    let w = uniform(&[5, 7], -1.0, 1.0, 1, dev);
    let b = uniform(&[5], -1.0, 1.0, 2, dev);
    for shape in [vec![1, 7], vec![4, 7], vec![2, 3, 7]] {
        let x = uniform(&shape, -1.0, 1.0, 3, dev);
        let f = |x: &Tensor, ctx: &RuleCtx| ctx.linear(x, &w, Some(&b));
        let wt = uniform(f(&x, &RuleCtx::plain())?.dims(), -1.0, 1.0, 4, dev);
        let (y0, g0) = vjp(&x, &wt, &RuleCtx::plain(), f)?;
        let (y1, g1) = vjp(&x, &wt, &RuleCtx::rule(ActRule::Gradient)?, f)?;
        assert_close(&y1, &y0, 1e-6, "linear forward");
        assert_close(&g1, &g0, 1e-6, "linear input gradient");
    }
    Ok(())
}
test_device!(
    linear_input_grad_matches_autograd,
    linear_cpu,
    linear_cuda,
    linear_metal
);

/// Reference max-pool gradient by hand: each window's gradient goes to its first maximum.
fn pool_reference(x: &[f32], (h, w): (usize, usize), p: PoolGeometry, grad: &[f32]) -> Vec<f32> {
    let (kh, kw) = p.kernel;
    let (sh, sw) = p.stride;
    let (ho, wo) = ((h - kh) / sh + 1, (w - kw) / sw + 1);
    let mut dx = vec![0f32; h * w];
    for i in 0..ho {
        for j in 0..wo {
            let mut best = (f32::NEG_INFINITY, 0);
            for di in 0..kh {
                for dj in 0..kw {
                    let idx = (i * sh + di) * w + j * sw + dj;
                    if x[idx] > best.0 {
                        best = (x[idx], idx);
                    }
                }
            }
            dx[best.1] += grad[i * wo + j];
        }
    }
    dx
}

fn max_pool_routes_gradient_to_the_argmax(dev: &Device) -> anyhow::Result<()> {
    let geoms = [
        ((2, 2), (2, 2)),
        ((3, 3), (2, 2)),
        ((3, 2), (1, 2)),
        ((2, 2), (3, 3)),
    ];
    for (n, &(kernel, stride)) in geoms.iter().enumerate() {
        let p = PoolGeometry { kernel, stride };
        let (h, w) = (9, 8);
        let x = uniform(&[1, 1, h, w], -1.0, 1.0, n as u64, dev);
        let f = |x: &Tensor, ctx: &RuleCtx| ctx.max_pool2d(x, p);
        let y = f(&x, &RuleCtx::plain())?;
        let wt = uniform(y.dims(), -1.0, 1.0, 10 + n as u64, dev);
        let expect = pool_reference(&vec1(&x), (h, w), p, &vec1(&wt));
        let expect = Tensor::from_vec(expect, x.dims(), dev)?;
        for ctx in [RuleCtx::plain(), RuleCtx::rule(ActRule::Gradient)?] {
            let (_, g) = vjp(&x, &wt, &ctx, f)?;
            assert_close(
                &g,
                &expect,
                1e-6,
                &format!("max-pool {kernel:?}/{stride:?}"),
            );
        }
        if kernel == stride {
            let stock = x.max_pool2d_with_stride(kernel, stride)?;
            assert_close(&y, &stock, 0.0, "max-pool forward equals Candle's");
        }
    }
    Ok(())
}
test_device!(
    max_pool_routes_gradient_to_the_argmax,
    pool_cpu,
    pool_cuda,
    pool_metal
);

/// Documents the Candle bug our pool fixes: its backward gives 1/(k·k) of the true gradient
/// for a unique maximum. If Candle fixes it, this test fails and the note can go.
#[test]
fn candle_max_pool_backward_is_scaled_by_one_over_k_squared() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &dev)?)?;
    let g = x.as_tensor().max_pool2d(2)?.sum_all()?.backward()?;
    let g = vec1(g.get(x.as_tensor()).unwrap());
    assert_eq!(
        g,
        vec![0.0, 0.0, 0.0, 0.25],
        "Candle's max-pool gradient changed: revisit ops::pool's note"
    );
    Ok(())
}

const ACTS: [Activation; 10] = [
    Activation::Relu,
    Activation::Relu6,
    Activation::LeakyRelu(0.1),
    Activation::Elu(1.0),
    Activation::Tanh,
    Activation::Sigmoid,
    Activation::Softplus,
    Activation::Gelu,
    Activation::GeluTanh,
    Activation::Silu,
];

#[test]
fn activation_derivatives_match_finite_differences() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    // Points away from the kinks at 0 (and ReLU6's at 6).
    let pts: Vec<f64> = (0..61).map(|i| -4.0 + 0.2 * i as f64 + 0.013).collect();
    let z = Tensor::new(pts.as_slice(), &dev)?;
    let h = 1e-5;
    for act in ACTS {
        let d = act.derivative(&z)?.to_vec1::<f64>()?;
        let up = act.forward(&z.affine(1.0, h)?)?.to_vec1::<f64>()?;
        let dn = act.forward(&z.affine(1.0, -h)?)?.to_vec1::<f64>()?;
        for i in 0..pts.len() {
            let fd = (up[i] - dn[i]) / (2.0 * h);
            assert!(
                (fd - d[i]).abs() < 1e-6,
                "{}: f'({}) = {} but finite difference = {fd}",
                act.name(),
                pts[i],
                d[i]
            );
        }
    }
    // PyTorch's convention at ReLU's kink.
    let zero = Tensor::new(&[0f32], &dev)?;
    assert_eq!(
        Activation::Relu.derivative(&zero)?.to_vec1::<f32>()?,
        vec![0.0]
    );
    let kinks = Tensor::new(&[0f32, 6.0], &dev)?;
    assert_eq!(
        Activation::Relu6.derivative(&kinks)?.to_vec1::<f32>()?,
        vec![0.0, 0.0]
    );
    Ok(())
}

fn rules_match_their_formulas(dev: &Device) -> anyhow::Result<()> {
    let z = uniform(&[4, 9], -3.0, 3.0, 1, dev);
    let zref = uniform(&[4, 9], -3.0, 3.0, 2, dev);
    let wt = uniform(&[4, 9], -1.0, 1.0, 3, dev);
    for act in ACTS {
        let f = |x: &Tensor, ctx: &RuleCtx| ctx.activation(act, x);
        let a = act.forward(&z)?;
        let fprime = act.derivative(&z)?;
        let eps = 0.01;
        let sign = z.ge(0.0)?.to_dtype(z.dtype())?.affine(2.0, -1.0)?;
        let expect_eps = (&wt * (&a / (&z + (sign * eps)?)?)?)?;
        let expect_guided = (wt.relu()? * &fprime)?;
        let expect_deconv = wt.relu()?;
        let expect_grad = (&wt * &fprime)?;
        let da = (&a - act.forward(&zref)?)?;
        let expect_rescale = (&wt * (da / (&z - &zref)?)?)?;
        for (rule, expect) in [
            (ActRule::Gradient, expect_grad.clone()),
            (ActRule::Epsilon(eps), expect_eps),
            (ActRule::GuidedBackprop, expect_guided),
            (ActRule::Deconvnet, expect_deconv),
        ] {
            let (y, g) = vjp(&z, &wt, &RuleCtx::rule(rule)?, f)?;
            assert_close(&y, &a, 0.0, "rule forward is the plain forward");
            assert_close(&g, &expect, 1e-5, &format!("{} under {rule:?}", act.name()));
        }
        let (_, g0) = vjp(&z, &wt, &RuleCtx::plain(), f)?;
        assert_close(
            &g0,
            &expect_grad,
            1e-5,
            &format!("{} plain autograd", act.name()),
        );
        // Rescale: record the baseline, replay it.
        let rec = RuleCtx::recording();
        f(&zref, &rec)?;
        let (_, g) = vjp(&z, &wt, &RuleCtx::rescale(rec, 1e-5), f)?;
        assert_close(
            &g,
            &expect_rescale,
            1e-4,
            &format!("{} under Rescale", act.name()),
        );
    }
    Ok(())
}
test_device!(
    rules_match_their_formulas,
    rules_cpu,
    rules_cuda,
    rules_metal
);

#[test]
fn rescale_uses_the_midpoint_derivative_when_the_difference_vanishes() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let z = Tensor::new(&[0.5f32, -1.0, 2.0], &dev)?;
    let zref = Tensor::new(&[0.5f32, -1.0 + 1e-7, 1.0], &dev)?;
    let wt = Tensor::new(&[1f32, 1., 1.], &dev)?;
    let rec = RuleCtx::recording();
    rec.activation(Activation::Tanh, &zref)?;
    let (_, g) = vjp(&z, &wt, &RuleCtx::rescale(rec, 1e-5), |x, c| {
        c.activation(Activation::Tanh, x)
    })?;
    let g = vec1(&g);
    let d = |v: f32| 1.0 - v.tanh().powi(2);
    assert!(
        (g[0] - d(0.5)).abs() < 1e-6 && (g[1] - d(-1.0)).abs() < 1e-5,
        "{g:?}"
    );
    assert!((g[2] - (2f32.tanh() - 1f32.tanh())).abs() < 1e-6);
    Ok(())
}

/// On the CPU, conv layers run on our im2col/col2im + gemm kernels; elsewhere on the generic
/// path (Candle's conv for the forward, a forward conv of the flipped kernel for the input
/// gradient). Both must agree on every geometry, in f32 and f64.
#[test]
fn cpu_conv_kernels_match_the_generic_path() -> anyhow::Result<()> {
    use candle_explain_core::ops::conv::{conv2d_input_grad, flipped_kernel};
    let dev = Device::Cpu;
    let cases = [
        (1, 4, 3, (9, 9), ConvGeometry::default()),
        (
            3,
            5,
            3,
            (10, 11),
            ConvGeometry {
                padding: 1,
                ..Default::default()
            },
        ),
        (
            2,
            4,
            3,
            (10, 12),
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
            2,
            3,
            3,
            (4, 4),
            ConvGeometry {
                padding: 3,
                ..Default::default()
            },
        ),
    ];
    for dt in [candle_core::DType::F32, candle_core::DType::F64] {
        for (i, (cin, cout, k, (h, w), g)) in cases.into_iter().enumerate() {
            for batch in [1, 5, 9] {
                let x = uniform(&[batch, cin, h, w], -1.0, 1.0, i as u64, &dev).to_dtype(dt)?;
                let kern = uniform(
                    &[cout, cin / g.groups, k, k],
                    -1.0,
                    1.0,
                    50 + i as u64,
                    &dev,
                )
                .to_dtype(dt)?;
                let ctx = RuleCtx::rule(ActRule::Gradient)?;
                let v = Var::from_tensor(&x)?;
                let y = ctx.conv2d(v.as_tensor(), &kern, None, g)?;
                let y_ref = x.conv2d(&kern, g.padding, g.stride, g.dilation, g.groups)?;
                assert_close(
                    &y.to_dtype(candle_core::DType::F32)?,
                    &y_ref.to_dtype(candle_core::DType::F32)?,
                    1e-5,
                    &format!("{dt:?} case {i} forward"),
                );
                // The fused bias (forward-only kernel, images sharing a gemm).
                let bias = uniform(&[cout], -1.0, 1.0, 70 + i as u64, &dev).to_dtype(dt)?;
                let yb = RuleCtx::inference().conv2d(&x, &kern, Some(&bias), g)?;
                let yb_ref = y_ref.broadcast_add(&bias.reshape((1, cout, 1, 1))?)?;
                assert_close(
                    &yb.to_dtype(candle_core::DType::F32)?,
                    &yb_ref.to_dtype(candle_core::DType::F32)?,
                    1e-5,
                    &format!("{dt:?} case {i} forward with bias"),
                );
                let dy = uniform(y.dims(), -1.0, 1.0, 90 + i as u64, &dev).to_dtype(dt)?;
                let dx = (&y * &dy)?
                    .sum_all()?
                    .backward()?
                    .get(v.as_tensor())
                    .unwrap()
                    .clone();
                let dx_ref =
                    conv2d_input_grad(&dy, &flipped_kernel(&kern, g.groups)?, (k, k), g, (h, w))?;
                assert_close(
                    &dx.to_dtype(candle_core::DType::F32)?,
                    &dx_ref.to_dtype(candle_core::DType::F32)?,
                    1e-5,
                    &format!("{dt:?} case {i} input gradient"),
                );
            }
        }
    }
    Ok(())
}

/// The CPU max-pool kernels equal the generic tensor-op path (including ties, which both
/// send to the first maximum).
#[test]
fn cpu_pool_kernels_match_the_generic_path() -> anyhow::Result<()> {
    use candle_explain_core::ops::pool::{
        max_pool, max_pool_input_grad, max_pool_input_grad_generic, max_pool_no_grad,
    };
    let dev = Device::Cpu;
    for (n, &(kernel, stride)) in [
        ((2, 2), (2, 2)),
        ((3, 3), (2, 2)),
        ((3, 2), (1, 2)),
        ((2, 2), (3, 3)),
    ]
    .iter()
    .enumerate()
    {
        let p = PoolGeometry { kernel, stride };
        // Quantised values make ties common.
        let x = (uniform(&[3, 2, 9, 8], 0.0, 4.0, n as u64, &dev).floor()?)
            .to_dtype(candle_core::DType::F32)?;
        let y = max_pool_no_grad(&x, p)?;
        assert_close(&y, &max_pool(&x, p)?, 0.0, "forward");
        let g = uniform(y.dims(), -1.0, 1.0, 7, &dev);
        assert_close(
            &max_pool_input_grad(&x, p, &g)?,
            &max_pool_input_grad_generic(&x, p, &g)?,
            1e-6,
            &format!("grad {kernel:?}/{stride:?}"),
        );
    }
    Ok(())
}
