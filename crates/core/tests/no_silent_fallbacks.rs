//! Rules never silently become the gradient: a model whose forward ignores the context gets
//! an error from every rule-based method (and a memory probe that is not "0 bytes"), and a
//! DeepLIFT replay that does not match its recording is an error, not a wrong result.

use candle_core::{DType, Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_core::{Error, Explainable, RuleCtx};

/// A two-layer ReLU net on 2×2 images written with plain Candle ops: only its tap goes
/// through the context.
struct Plain {
    w1: Tensor,
    w2: Tensor,
}

impl Explainable for Plain {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        // Feature maps of 1×1 for Grad-CAM's tap.
        let h = x.flatten_from(1)?.matmul(&self.w1.t()?)?.relu()?;
        let h = ctx.tap("hidden", &h.reshape((h.dim(0)?, 6, 1, 1))?)?;
        Ok(h.flatten_from(1)?.matmul(&self.w2.t()?)?)
    }
}

fn plain(dev: &Device) -> Plain {
    let w = |r: usize, c: usize, k: f32| {
        Tensor::from_vec(
            (0..r * c).map(|i| ((i as f32 + 1.0) * k).sin()).collect(),
            (r, c),
            dev,
        )
        .unwrap()
    };
    Plain {
        w1: w(6, 4, 0.7),
        w2: w(3, 6, 1.1),
    }
}

#[test]
fn rule_based_methods_refuse_a_model_that_ignores_the_context() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = plain(&dev);
    let x = Tensor::rand(0f32, 1., (2, 1, 2, 2), &dev)?;
    let t = Target::Class(1);
    let methods: Vec<(&str, Box<dyn Attributor>)> = vec![
        (
            "lrp epsilon_plus",
            Box::new(Lrp::new(Composite::epsilon_plus())),
        ),
        (
            "lrp epsilon_plus_flat",
            Box::new(Lrp::new(Composite::epsilon_plus_flat())),
        ),
        (
            "lrp epsilon_gamma_box",
            Box::new(Lrp::new(Composite::epsilon_gamma_box(0.0, 1.0))),
        ),
        (
            "lrp epsilon_alpha2_beta1",
            Box::new(Lrp::new(Composite::epsilon_alpha2_beta1())),
        ),
        (
            "lrp guided_backprop",
            Box::new(Lrp::new(Composite::guided_backprop())),
        ),
        ("lrp deconvnet", Box::new(Lrp::new(Composite::deconvnet()))),
        ("epsilon lrp", Box::new(EpsilonLrp::default())),
        ("deeplift", Box::new(DeepLift::default())),
        ("guided backprop", Box::new(GuidedBackprop::default())),
        ("deconvnet", Box::new(Deconvnet::default())),
        (
            "guided grad-cam",
            Box::new(GuidedGradCam(GradCam::new("hidden"))),
        ),
    ];
    for (name, method) in methods {
        match method.attribute(&m, &x, &t) {
            Err(Error::RulesNotApplied { method }) => assert!(!method.is_empty(), "{name}"),
            Err(e) => panic!("{name}: another error: {e}"),
            Ok(_) => panic!("{name}: returned a result for a model whose forward routes no op"),
        }
    }
    // Methods that need only gradients or forward passes still work on it.
    Saliency::signed().attribute(&m, &x, &t)?;
    IntegratedGradients::new(8).attribute(&m, &x, &t)?;
    GradCam::new("hidden").attribute(&m, &x, &t)?;
    // The probe saw nothing: small chunks, not one chunk of everything.
    assert_eq!(
        Batching::default().rows_per_chunk(&m, &x, true)?,
        candle_explain_core::batch::UNMEASURED_ROWS
    );
    Ok(())
}

/// A ReLU, then a tanh for inputs summing above `t`, a max-pool below `−t`, nothing in
/// between: the baseline and the input can take different paths.
struct Branching {
    t: f32,
}

impl Explainable for Branching {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let h = ctx.activation(candle_explain_core::Activation::Relu, x)?;
        let s = x.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let h = if s > self.t {
            ctx.activation(candle_explain_core::Activation::Tanh, &h)?
        } else if s < -self.t {
            let p = candle_explain_core::ops::pool::PoolGeometry {
                kernel: (1, 1),
                stride: (1, 1),
            };
            let n = h.dim(0)?;
            ctx.max_pool2d(&h.reshape((n, 1, 1, 4))?, p)?
                .reshape((n, 4))?
        } else {
            h
        };
        Ok(h.narrow(1, 0, 2)?)
    }
}

#[test]
fn a_deeplift_replay_that_does_not_match_is_an_error() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let up = Tensor::new(&[[1f32, 2., 3., 4.]], &dev)?;
    let cases = [
        // The input runs more operations than the (zero) baseline recorded.
        (
            Branching { t: 0.5 },
            up.clone(),
            Baseline::Zero,
            "recorded only",
        ),
        // Fewer: the baseline (all 5) branches, the input does not.
        (
            Branching { t: 12.0 },
            up.clone(),
            Baseline::Constant(5.0),
            "ran 1 recorded operations but the baseline's ran 2",
        ),
        // Another kind of operation at the same position.
        (
            Branching { t: 2.0 },
            (up.clone() * 2.0)?,
            Baseline::Constant(-1.0),
            "is a nonlinearity for the input but was a max-pool",
        ),
    ];
    for (model, x, baseline, expect) in cases {
        let e = DeepLift::default()
            .with_baseline(baseline)
            .attribute(&model, &x, &Target::Class(0))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("DeepLIFT replay") && e.contains(expect),
            "expected {expect:?} in {e}"
        );
    }
    // The same model on inputs that take the baseline's path is fine.
    let ok = DeepLift::default().attribute(&Branching { t: 100.0 }, &up, &Target::Class(0))?;
    assert_eq!(ok.attributions.dims(), &[1, 4]);
    Ok(())
}
