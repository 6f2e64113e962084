//! KernelSHAP, LIME and DeepSHAP against theory: the exact KernelSHAP fit is the exact
//! Shapley values (Lundberg & Lee's theorem) and sampling converges to them; LIME recovers a
//! linear model's group contributions exactly; DeepSHAP is DeepLIFT averaged over the
//! baselines and complete against their mean output.

mod common;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::nn::{Linear, Sequential};
use candle_explain_core::prelude::*;
use common::{assert_close, cnn, uniform};

fn blocks(dev: &Device) -> anyhow::Result<Tensor> {
    // 6 groups of 2×12 rows... as (1, 12, 12): group = row / 2.
    Ok(Tensor::arange(0u32, 144, dev)?
        .reshape((1, 12, 12))?
        .to_dtype(DType::F32)?
        .affine(1.0 / 24.0, 0.0)?
        .floor()?
        .to_dtype(DType::U32)?)
}

#[test]
fn exact_kernel_shap_is_the_shapley_values() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let model = cnn(Activation::Relu, true, 3, &dev);
    let x = uniform(&[3, 1, 12, 12], -1.0, 1.0, 4, &dev);
    let t = Target::PerExample(vec![0, 1, 2]);
    let mask = blocks(&dev)?;
    let shapley = ShapleyValues::exact(mask.clone()).attribute(&model, &x, &t)?;
    let kernel = KernelShap::exact(mask.clone()).attribute(&model, &x, &t)?;
    assert_close(
        &kernel.attributions,
        &shapley.attributions,
        1e-4,
        "exact KernelSHAP",
    );
    // Sampling converges: 4,000 coalitions land near them, 40 do not pin them down as well.
    let err = |n: usize| -> anyhow::Result<f32> {
        let a = KernelShap::sampling(mask.clone(), n, 7)
            .attribute(&model, &x, &t)?
            .attributions;
        Ok(common::max_abs(&(a - &shapley.attributions)?) / common::max_abs(&shapley.attributions))
    };
    let (few, many) = (err(40)?, err(4000)?);
    assert!(many < 0.05, "4,000 samples: relative error {many}");
    assert!(many < few, "more samples, closer: {many} vs {few}");
    Ok(())
}

#[test]
fn lime_recovers_a_linear_models_group_contributions() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let w = uniform(&[2, 8], -1.0, 1.0, 1, &dev);
    let model = Sequential::new().push(Linear::new(
        w.clone(),
        Some(uniform(&[2], -1.0, 1.0, 2, &dev)),
    ));
    let x = uniform(&[2, 8], -1.0, 1.0, 3, &dev);
    let groups = Tensor::new(&[0u32, 0, 1, 1, 2, 2, 3, 3], &dev)?;
    let a = Lime::new(groups, 64, 5).attribute(&model, &x, &Target::Class(1))?;
    // Contribution of group g: Σ_{i∈g} w_1i (x_i − 0), given to each of its features.
    let c = (x.broadcast_mul(&w.get(1)?)?)
        .reshape((2, 4, 2))?
        .sum_keepdim(2)?;
    let want = c.broadcast_as((2, 4, 2))?.reshape((2, 8))?;
    assert_close(&a.attributions, &want, 1e-4, "LIME on a linear model");
    Ok(())
}

#[test]
fn deep_shap_averages_deeplift_over_the_baselines() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let model = cnn(Activation::Relu, true, 5, &dev);
    let x = uniform(&[2, 1, 12, 12], -1.0, 1.0, 6, &dev);
    let bl = uniform(&[3, 1, 12, 12], -1.0, 1.0, 7, &dev);
    let t = Target::PerExample(vec![2, 0]);
    let ds = DeepShap::new(bl.clone()).attribute(&model, &x, &t)?;
    let mut sum = ds.attributions.zeros_like()?;
    for b in 0..3 {
        let one = DeepLift::default()
            .with_baseline(Baseline::Tensor(bl.narrow(0, b, 1)?))
            .attribute(&model, &x, &t)?;
        sum = (sum + one.attributions)?;
    }
    assert_close(&ds.attributions, &(sum / 3.0)?, 1e-5, "mean of DeepLIFTs");
    let delta = common::max_abs(ds.delta.as_ref().expect("a delta"));
    assert!(
        delta < 1e-4,
        "completeness against the mean baseline output: {delta}"
    );
    Ok(())
}
