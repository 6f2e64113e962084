//! Candle interop: our layers are `candle_core::Module`s, made from `candle_nn` layers already
//! loaded with the weights shared (same tensor, no copy), computing the same function.

mod common;
use candle_core::{Device, Module, Tensor};
use candle_explain_core::nn::{Conv2d, Embedding, LayerNorm, Linear, Sequential};
use candle_explain_core::Activation;
use common::{assert_close, uniform};

#[test]
fn candle_nn_layers_convert_with_their_weights_shared() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    // Linear.
    let cl = candle_nn::Linear::new(
        uniform(&[4, 6], -1.0, 1.0, 1, &dev),
        Some(uniform(&[4], -1.0, 1.0, 2, &dev)),
    );
    let ours = Linear::from(&cl);
    assert_eq!(
        ours.weight.id(),
        cl.weight().id(),
        "the weight is shared, not copied"
    );
    let x = uniform(&[3, 6], -1.0, 1.0, 3, &dev);
    assert_close(
        &Module::forward(&ours, &x)?,
        &cl.forward(&x)?,
        1e-6,
        "linear",
    );
    // Conv2d with a stride, padding and dilation from Candle's own config.
    let cfg = candle_nn::Conv2dConfig {
        padding: 1,
        stride: 2,
        dilation: 2,
        ..Default::default()
    };
    let cc = candle_nn::Conv2d::new(
        uniform(&[5, 2, 3, 3], -1.0, 1.0, 4, &dev),
        Some(uniform(&[5], -1.0, 1.0, 5, &dev)),
        cfg,
    );
    let conv = Conv2d::from(&cc);
    assert_eq!(conv.weight.id(), cc.weight().id());
    let img = uniform(&[2, 2, 11, 11], -1.0, 1.0, 6, &dev);
    assert_close(
        &Module::forward(&conv, &img)?,
        &cc.forward(&img)?,
        1e-5,
        "conv2d",
    );
    // LayerNorm, and an RMS norm refused.
    let cn = candle_nn::LayerNorm::new(
        uniform(&[6], 0.5, 1.5, 7, &dev),
        uniform(&[6], -1.0, 1.0, 8, &dev),
        1e-5,
    );
    let ln = LayerNorm::try_from(&cn)?;
    assert_close(
        &Module::forward(&ln, &x)?,
        &cn.forward(&x)?,
        1e-5,
        "layer norm",
    );
    let rms = candle_nn::LayerNorm::rms_norm(uniform(&[6], 0.5, 1.5, 9, &dev), 1e-5);
    assert!(LayerNorm::try_from(&rms)
        .unwrap_err()
        .to_string()
        .contains("RMS"));
    // Embedding.
    let ce = candle_nn::Embedding::new(uniform(&[10, 4], -1.0, 1.0, 10, &dev), 4);
    let emb = Embedding::from(&ce);
    let ids = Tensor::new(&[[1u32, 9, 0]], &dev)?;
    assert_close(&emb.embed(&ids)?, &ce.forward(&ids)?, 0.0, "embedding");
    assert!(emb.embed(&Tensor::new(&[[10u32]], &dev)?).is_err());
    // A Sequential of them is a Module too.
    let seq = Sequential::new()
        .push(Linear::from(&cl))
        .push(Activation::Relu);
    assert_close(
        &Module::forward(&seq, &x)?,
        &cl.forward(&x)?.relu()?,
        1e-6,
        "sequential",
    );
    Ok(())
}
