//! Canonizers (BatchNorm folding), average pooling and residual sums under rules.

mod common;
use candle_core::{Device, Tensor, Var};
use candle_explain_core::canonize::{fold_conv_batch_norm, fold_linear_batch_norm};
use candle_explain_core::nn::{AvgPool2d, BatchNorm, Conv2d, Linear, Sequential};
use candle_explain_core::ops::conv::ConvGeometry;
use candle_explain_core::ops::pool::PoolGeometry;
use candle_explain_core::prelude::*;
use candle_explain_core::{test_device, Error};
use common::*;

fn bn(c: usize, seed: u64, dev: &Device) -> BatchNorm {
    BatchNorm {
        weight: uniform(&[c], 0.5, 1.5, seed, dev),
        bias: uniform(&[c], -0.2, 0.2, seed + 1, dev),
        running_mean: uniform(&[c], -0.3, 0.3, seed + 2, dev),
        running_var: uniform(&[c], 0.5, 2.0, seed + 3, dev),
        eps: 1e-5,
    }
}

fn folding_is_exact(dev: &Device) -> anyhow::Result<()> {
    let conv = Conv2d::new(
        uniform(&[4, 2, 3, 3], -1.0, 1.0, 1, dev),
        Some(uniform(&[4], -1.0, 1.0, 2, dev)),
        ConvGeometry {
            padding: 1,
            ..Default::default()
        },
    );
    let b = bn(4, 10, dev);
    let x = uniform(&[3, 2, 6, 6], -1.0, 1.0, 3, dev);
    let two = Sequential::new().push(conv.clone()).push(b.clone());
    assert_close(
        &fold_conv_batch_norm(&conv, &b)?.forward(&x)?,
        &two.forward(&x)?,
        1e-5,
        "conv + bn",
    );
    // By hand for one channel: (conv − mean)/sqrt(var + eps)·γ + β.
    let y = conv.forward(&x)?.narrow(1, 2, 1)?;
    let g = |t: &Tensor| t.narrow(0, 2, 1).unwrap().to_vec1::<f32>().unwrap()[0];
    let hand = ((((y - g(&b.running_mean) as f64)?
        / ((g(&b.running_var) + 1e-5) as f64).sqrt())?
        * g(&b.weight) as f64)?
        + g(&b.bias) as f64)?;
    assert_close(
        &two.forward(&x)?.narrow(1, 2, 1)?,
        &hand,
        1e-5,
        "batch norm by hand",
    );
    let lin = Linear::new(uniform(&[4, 5], -1.0, 1.0, 4, dev), None);
    let xl = uniform(&[2, 5], -1.0, 1.0, 5, dev);
    assert_close(
        &fold_linear_batch_norm(&lin, &b)?.forward(&xl)?,
        &Sequential::new()
            .push(lin.clone())
            .push(b.clone())
            .forward(&xl)?,
        1e-5,
        "linear + bn",
    );
    assert!(matches!(
        fold_conv_batch_norm(&conv, &bn(3, 1, dev)),
        Err(Error::InvalidParameter { .. })
    ));
    Ok(())
}
test_device!(folding_is_exact, fold_cpu, fold_cuda, fold_metal);

fn avg_pool_matches_candle_and_its_gradient(dev: &Device) -> anyhow::Result<()> {
    for (kernel, stride) in [((2, 2), (2, 2)), ((3, 3), (2, 2))] {
        let p = PoolGeometry { kernel, stride };
        let x = uniform(&[2, 3, 9, 8], -1.0, 1.0, 1, dev);
        let ours = RuleCtx::plain().avg_pool2d(&x, p)?;
        assert_close(
            &ours,
            &x.avg_pool2d_with_stride(kernel, stride)?,
            1e-6,
            "forward",
        );
        let wt = uniform(ours.dims(), -1.0, 1.0, 2, dev);
        let grad = |ctx: RuleCtx| -> anyhow::Result<Tensor> {
            let v = Var::from_tensor(&x)?;
            let y = ctx.avg_pool2d(v.as_tensor(), p)?;
            Ok((y * &wt)?
                .sum_all()?
                .backward()?
                .get(v.as_tensor())
                .unwrap()
                .clone())
        };
        assert_close(
            &grad(RuleCtx::rule(ActRule::Gradient)?)?,
            &grad(RuleCtx::plain())?,
            1e-6,
            "input gradient",
        );
    }
    Ok(())
}
test_device!(
    avg_pool_matches_candle_and_its_gradient,
    avg_cpu,
    avg_cuda,
    avg_metal
);

/// Under Norm (ε) a sum splits R in proportion: R_a = a·R/(a + b), R_a + R_b = R.
fn sum_rule_shares_relevance(dev: &Device) -> anyhow::Result<()> {
    let a = uniform(&[2, 5], 0.1, 1.0, 1, dev);
    let b = uniform(&[2, 5], -0.5, 1.0, 2, dev);
    let r = uniform(&[2, 5], -1.0, 1.0, 3, dev);
    let ctx = RuleCtx::composite(Composite::epsilon_plus())?;
    let (va, vb) = (Var::from_tensor(&a)?, Var::from_tensor(&b)?);
    let y = ctx.add(va.as_tensor(), vb.as_tensor())?;
    assert_close(&y, &(&a + &b)?, 0.0, "forward");
    let g = (y * &r)?.sum_all()?.backward()?;
    let (ra, rb) = (
        g.get(va.as_tensor()).unwrap(),
        g.get(vb.as_tensor()).unwrap(),
    );
    assert_close(ra, &((&a * &r)? / (&a + &b)?)?, 1e-4, "R_a");
    assert_close(&(ra + rb)?, &r, 1e-4, "R_a + R_b = R");
    // Without a composite the sum passes the gradient to both branches.
    let ctx = RuleCtx::rule(ActRule::Gradient)?;
    let (va, vb) = (Var::from_tensor(&a)?, Var::from_tensor(&b)?);
    let g = (ctx.add(va.as_tensor(), vb.as_tensor())? * &r)?
        .sum_all()?
        .backward()?;
    assert_close(
        g.get(vb.as_tensor()).unwrap(),
        &r,
        0.0,
        "gradient through a sum",
    );
    Ok(())
}
test_device!(sum_rule_shares_relevance, sum_cpu, sum_cuda, sum_metal);

/// conv → relu → [conv → relu → conv] + skip → relu → avg-pool → fc, bias-free: every rule
/// of EpsilonPlus conserves, including Norm on the sum and the pool.
struct ResNetLike {
    c1: Conv2d,
    c2: Conv2d,
    c3: Conv2d,
    fc: Linear,
}

impl Explainable for ResNetLike {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let h = ctx.activation(Activation::Relu, &self.c1.forward_with(x, ctx)?)?;
        let branch = self.c3.forward_with(
            &ctx.activation(Activation::Relu, &self.c2.forward_with(&h, ctx)?)?,
            ctx,
        )?;
        let s = ctx.activation(Activation::Relu, &ctx.add(&h, &branch)?)?;
        let p = AvgPool2d::new(2).forward_with(&s, ctx)?.flatten_from(1)?;
        self.fc.forward_with(&p, ctx)
    }
}

fn residual_network_conserves(dev: &Device) -> anyhow::Result<()> {
    let g = ConvGeometry {
        padding: 1,
        ..Default::default()
    };
    let m = ResNetLike {
        c1: Conv2d::new(uniform(&[4, 1, 3, 3], -0.6, 0.6, 1, dev), None, g),
        c2: Conv2d::new(uniform(&[4, 4, 3, 3], -0.3, 0.3, 2, dev), None, g),
        c3: Conv2d::new(uniform(&[4, 4, 3, 3], -0.3, 0.3, 3, dev), None, g),
        fc: Linear::new(uniform(&[3, 100], -0.3, 0.3, 4, dev), None),
    };
    let x = uniform(&[3, 1, 10, 10], 0.0, 1.0, 5, dev);
    for c in [
        Composite::epsilon_plus(),
        Composite::epsilon_gamma_box(0.0, 1.0),
    ] {
        let r = Lrp::new(c.clone()).attribute(&m, &x, &Target::Class(0))?;
        let d = max_abs(r.delta.as_ref().unwrap());
        assert!(
            d < 1e-4 * max_abs(&r.output).max(1.0),
            "{c:?}: conservation error {d}"
        );
    }
    // A gradient through the sum instead of Norm double counts: conservation breaks.
    let mut c = Composite::epsilon_plus();
    c.layers.insert(
        0,
        (Selector::kind(LayerKind::Sum), LayerRule::Gradient.into()),
    );
    let r = Lrp::new(c).attribute(&m, &x, &Target::Class(0))?;
    assert!(max_abs(r.delta.as_ref().unwrap()) > 1e-3);
    // Rules that need weights cannot go on a pool.
    let bad =
        Composite::new(ActRule::Pass).with(Selector::kind(LayerKind::AvgPool2d), LayerRule::ZPlus);
    match Lrp::new(bad).attribute(&m, &x, &Target::Class(0)) {
        Err(Error::InvalidParameter { reason, .. }) => {
            assert!(reason.contains("AvgPool2d"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}
test_device!(
    residual_network_conserves,
    residual_cpu,
    residual_cuda,
    residual_metal
);
