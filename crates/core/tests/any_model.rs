//! Models as they are: `candle_nn` layers in a closure or a `Module`, explained without
//! rewriting them. Gradients come from Candle's autograd, checked once against finite
//! differences, so Candle's max-pool backward (1/(k·k) of the gradient) is refused, never
//! returned.

mod common;
use candle_core::{DType, Device, Module, Tensor};
use candle_explain_core::any_model::from_module;
use candle_explain_core::nn::{Linear, Sequential};
use candle_explain_core::prelude::*;
use candle_explain_core::Error;
use common::{assert_close, uniform};

fn weights(dev: &Device) -> [Tensor; 4] {
    [
        uniform(&[6, 5], -1.0, 1.0, 1, dev),
        uniform(&[6], -0.5, 0.5, 2, dev),
        uniform(&[3, 6], -1.0, 1.0, 3, dev),
        uniform(&[3], -0.5, 0.5, 4, dev),
    ]
}

/// The same MLP twice: plain `candle_nn` layers in a `Module`, and our explainable layers.
struct CandleMlp(candle_nn::Linear, candle_nn::Linear);

impl Module for CandleMlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.1.forward(&self.0.forward(x)?.relu()?)
    }
}

#[test]
fn a_candle_nn_module_gets_the_explainable_models_attributions() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let [w1, b1, w2, b2] = weights(&dev);
    let plain = from_module(CandleMlp(
        candle_nn::Linear::new(w1.clone(), Some(b1.clone())),
        candle_nn::Linear::new(w2.clone(), Some(b2.clone())),
    ));
    let ours = Sequential::new()
        .push(Linear::new(w1, Some(b1)))
        .push(Activation::Relu)
        .push(Linear::new(w2, Some(b2)));
    let x = uniform(&[4, 5], -1.0, 1.0, 9, &dev);
    let t = Target::PerExample(vec![0, 1, 2, 1]);
    let methods: Vec<(&str, Box<dyn Attributor>)> = vec![
        ("saliency", Box::new(Saliency::signed())),
        ("input x gradient", Box::new(InputXGradient::default())),
        (
            "integrated gradients",
            Box::new(IntegratedGradients::new(16)),
        ),
        (
            "smoothgrad",
            Box::new(NoiseTunnel::smooth_grad(Saliency::signed(), 8, 1)),
        ),
        ("occlusion", Box::new(Occlusion::new(&[2], &[1]))),
        (
            "shapley",
            Box::new(ShapleyValues::exact(Tensor::new(
                &[0u32, 0, 1, 2, 2],
                &dev,
            )?)),
        ),
    ];
    for (name, m) in methods {
        let a = m.attribute(&plain, &x, &t)?.attributions;
        let b = m.attribute(&ours, &x, &t)?.attributions;
        assert_close(&a, &b, 1e-5, name);
    }
    // Rules cannot apply to it: a clear error, not a silent gradient.
    assert!(matches!(
        Lrp::new(Composite::epsilon_plus()).attribute(&plain, &x, &t),
        Err(Error::RulesNotApplied { .. })
    ));
    Ok(())
}

/// A `candle_nn` CNN with Candle's max-pool: its autograd gradient is 1/4 of the true one, so
/// gradient methods refuse it with the check's error; forward-only methods still work.
#[test]
fn candles_max_pool_backward_is_refused_not_returned() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let conv = uniform(&[3, 1, 3, 3], -1.0, 1.0, 5, &dev);
    let fc = uniform(&[2, 3 * 3 * 3], -1.0, 1.0, 6, &dev);
    let cnn = candle_explain_core::AnyModel::new(move |x: &Tensor| {
        let h = x.conv2d(&conv, 0, 1, 1, 1)?.relu()?.max_pool2d(2)?;
        h.flatten_from(1)?.matmul(&fc.t()?)
    });
    let x = uniform(&[2, 1, 8, 8], 0.0, 1.0, 7, &dev);
    let e = IntegratedGradients::new(8)
        .attribute(&cnn, &x, &Target::Class(0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("disagrees with finite differences") && e.contains("max_pool2d"),
        "{e}"
    );
    // The check is remembered: Saliency gets the same answer without a second check.
    assert!(Saliency::signed()
        .attribute(&cnn, &x, &Target::Class(0))
        .is_err());
    let occ = Occlusion::new(&[1, 2, 2], &[1, 2, 2]).attribute(&cnn, &x, &Target::Class(0))?;
    assert_eq!(occ.attributions.dims(), x.dims());
    Ok(())
}

/// The chunker cannot see inside such a model: small chunks, or the model's own figure.
#[test]
fn chunks_follow_the_models_row_bytes() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::zeros((1, 4), DType::F32, &dev)?;
    let f = |x: &Tensor| x.sum_keepdim(1);
    let unknown = candle_explain_core::AnyModel::new(f);
    let known = candle_explain_core::AnyModel::new(f).with_row_bytes(1 << 20);
    let b = Batching::with_budget(30 << 20);
    assert_eq!(
        b.rows_per_chunk(&unknown, &x, false)?,
        candle_explain_core::batch::UNMEASURED_ROWS
    );
    assert_eq!(b.rows_per_chunk(&known, &x, false)?, 30);
    assert_eq!(b.rows_per_chunk(&known, &x, true)?, 10);
    Ok(())
}
