//! Grad-CAM against CAM's closed form, and its errors.

mod common;
use candle_core::{Device, Tensor};
use candle_explain_core::nn::{Conv2d, Linear, Sequential};
use candle_explain_core::ops::conv::ConvGeometry;
use candle_explain_core::prelude::*;
use candle_explain_core::{test_device, Error};
use common::*;

struct GlobalAvgPool;
impl Explainable for GlobalAvgPool {
    fn forward_with(&self, x: &Tensor, _: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        Ok(x.mean((2, 3))?)
    }
}

/// With features A → global average pooling → linear W, S_c = Σ_k W_ck mean(A_k), so
/// ∂S_c/∂A_k = W_ck/(h·w) everywhere and Grad-CAM = relu(Σ_k W_ck A_k)/(h·w): CAM
/// (Zhou et al. 2016) up to the constant.
fn grad_cam_is_cam_on_gap_models(dev: &Device) -> anyhow::Result<()> {
    let conv_w = uniform(&[3, 1, 3, 3], -1.0, 1.0, 1, dev);
    let conv_b = uniform(&[3], -0.5, 0.5, 2, dev);
    let fc = uniform(&[2, 3], -1.0, 1.0, 3, dev);
    let m = Sequential::new()
        .push(Conv2d::new(
            conv_w.clone(),
            Some(conv_b.clone()),
            ConvGeometry {
                padding: 1,
                stride: 2,
                ..Default::default()
            },
        ))
        .push_named("features", Activation::Relu)
        .push(GlobalAvgPool)
        .push(Linear::new(fc.clone(), None));
    let x = uniform(&[2, 1, 8, 8], -1.0, 1.0, 4, dev);
    let c = 1;
    let a = x
        .conv2d(&conv_w, 1, 2, 1, 1)?
        .broadcast_add(&conv_b.reshape((1, 3, 1, 1))?)?
        .relu()?; // (2, 3, 4, 4)
    let wc = fc.narrow(0, c, 1)?.reshape((1, 3, 1, 1))?;
    let cam = (a.broadcast_mul(&wc)?.sum_keepdim(1)?.relu()? / 16.0)?; // (2, 1, 4, 4)
    let got = GradCam::new("features").attribute(&m, &x, &Target::Class(c))?;
    assert_eq!(got.attributions.dims(), &[2, 1, 8, 8]);
    // Nearest upsampling: every 2×2 block of the input-sized map is one cell of the CAM.
    let down = got
        .attributions
        .reshape((2, 1, 4, 2, 4, 2))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((2, 1, 4, 4))?;
    assert_close(&down, &cam, 1e-5, "Grad-CAM vs CAM");
    let blocks = got.attributions.reshape((2, 1, 4, 2, 4, 2))?;
    assert_close(
        &blocks.narrow(3, 1, 1)?,
        &blocks.narrow(3, 0, 1)?,
        0.0,
        "nearest upsampling",
    );
    // Without the ReLU, the signed map.
    let signed = GradCam {
        relu: false,
        ..GradCam::new("features")
    }
    .attribute(&m, &x, &Target::Class(c))?;
    let signed_down = signed
        .attributions
        .reshape((2, 1, 4, 2, 4, 2))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((2, 1, 4, 4))?;
    assert_close(
        &signed_down,
        &(a.broadcast_mul(&wc)?.sum_keepdim(1)? / 16.0)?,
        1e-5,
        "signed Grad-CAM",
    );
    // Guided Grad-CAM = guided backprop ⊙ Grad-CAM.
    let gg = GuidedGradCam(GradCam::new("features")).attribute(&m, &x, &Target::Class(c))?;
    let gb = GuidedBackprop::default().attribute(&m, &x, &Target::Class(c))?;
    assert_close(
        &gg.attributions,
        &(gb.attributions * &got.attributions)?,
        1e-6,
        "guided Grad-CAM",
    );
    Ok(())
}
test_device!(grad_cam_is_cam_on_gap_models, cam_cpu, cam_cuda, cam_metal);

#[test]
fn unknown_layers_name_the_known_ones() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = Sequential::new()
        .push(Conv2d::new(
            uniform(&[2, 1, 3, 3], -1.0, 1.0, 1, &dev),
            None,
            ConvGeometry::default(),
        ))
        .push_named("relu1", Activation::Relu)
        .push(GlobalAvgPool);
    let x = uniform(&[1, 1, 6, 6], -1.0, 1.0, 2, &dev);
    match GradCam::new("conv9").attribute(&m, &x, &Target::Class(0)) {
        Err(Error::InvalidParameter { reason, .. }) => {
            assert!(reason.contains("relu1"), "{reason}")
        }
        other => panic!("expected an error naming the layers, got {other:?}"),
    }
    let unnamed = cnn(Activation::Relu, true, 1, &dev);
    match GradCam::new("conv1").attribute(
        &unnamed,
        &uniform(&[1, 1, 12, 12], 0.0, 1.0, 3, &dev),
        &Target::Class(0),
    ) {
        Err(Error::InvalidParameter { reason, .. }) => {
            assert!(reason.contains("marks no layers"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // A layer that is not a feature map.
    let flat = Sequential::new().push_named(
        "fc",
        Linear::new(uniform(&[2, 4], -1.0, 1.0, 1, &dev), None),
    );
    assert!(matches!(
        GradCam::new("fc").attribute(
            &flat,
            &uniform(&[1, 4], 0.0, 1.0, 1, &dev),
            &Target::Class(0)
        ),
        Err(Error::InvalidParameter { .. })
    ));
    Ok(())
}
