//! Layer and neuron attribution, latent relevance, DeepSHAP, KernelSHAP and LIME against
//! Captum 0.9 on the CNN of `golden_captum.rs` (same weights, inputs and targets).
//! `scripts/golden/layer_captum.py` made `tests/data/captum_layer.safetensors`; its
//! docstring quotes the Captum formulas. The layers are Captum's `model.conv2` (the conv's
//! output, before its ReLU) and `model.fc1`; the neuron is (channel 0, row 1, column 6) of
//! conv2 (Captum's (2, 3, 4) is a dead unit on this model: its conductance is exactly 0).
//! KernelSHAP and LIME are fitted on the coalitions Captum was given (`ks_coalitions`,
//! `lime_coalitions`), so the two fits see the same design.

mod common;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::nn::{Conv2d, Flatten, Linear, MaxPool2d, Named, Sequential};
use candle_explain_core::prelude::*;
use candle_explain_core::test_device;
use candle_nn::VarBuilder;
use common::*;
use std::collections::HashMap;

const CNN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/captum_cnn.safetensors"
);
const LAYER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/captum_layer.safetensors"
);

/// The golden CNN with `conv2` and `fc1` named as Captum's modules.
fn model(vb: VarBuilder) -> anyhow::Result<Sequential> {
    let pad = candle_nn::Conv2dConfig {
        padding: 1,
        ..Default::default()
    };
    Ok(Sequential::new()
        .with_input_shape(&[1, 10, 10])
        .push(Conv2d::load(vb.pp("conv1"), 1, 4, 3, Default::default())?)
        .push(Activation::Relu)
        .push(Named {
            name: "conv2".into(),
            layer: Conv2d::load(vb.pp("conv2"), 4, 6, 3, pad)?,
        })
        .push(Activation::Relu)
        .push(MaxPool2d::new(2))
        .push(Flatten)
        .push(Named {
            name: "fc1".into(),
            layer: Linear::load(vb.pp("fc1"), 96, 16)?,
        })
        .push(Activation::Relu)
        .push(Linear::load(vb.pp("fc2"), 16, 3)?))
}

fn coalitions(t: &Tensor) -> anyhow::Result<Vec<u64>> {
    Ok(t.to_vec1::<i64>()?.into_iter().map(|b| b as u64).collect())
}

fn golden_layer_values(dev: &Device) -> anyhow::Result<()> {
    let cnn = candle_core::safetensors::load(CNN, dev)?;
    let g: HashMap<String, Tensor> = candle_core::safetensors::load(LAYER, dev)?;
    let m = model(VarBuilder::from_tensors(cnn.clone(), DType::F32, dev))?;
    let x = &cnn["input"];
    let t = Target::PerExample(
        cnn["target"]
            .to_vec1::<i64>()?
            .into_iter()
            .map(|c| c as usize)
            .collect(),
    );
    assert_close(&m.forward(x)?, &cnn["logits"], 1e-5, "logits");
    let check =
        |a: Attribution, key: &str, tol: f32| assert_close(&a.attributions, &g[key], tol, key);
    for layer in ["conv2", "fc1"] {
        check(
            LayerGradientXActivation::new(layer).attribute(&m, x, &t)?,
            &format!("layer_gxa_{layer}"),
            1e-5,
        );
        let lig = LayerIntegratedGradients::new(layer, 50).attribute(&m, x, &t)?;
        assert_close(
            lig.delta.as_ref().expect("delta"),
            &g[&format!("layer_ig_{layer}_gl50_delta")],
            1e-4,
            "layer IG delta",
        );
        check(lig, &format!("layer_ig_{layer}_gl50"), 1e-5);
        let lrp = Composite::new(ActRule::Pass).with(Selector::any(), LayerRule::Epsilon(1e-9));
        check(
            LayerLrp::new(layer, lrp).attribute(&m, x, &t)?,
            &format!("layer_lrp_{layer}"),
            1e-4,
        );
        check(
            LayerDeepLift::new(layer).attribute(&m, x, &t)?,
            &format!("layer_deeplift_{layer}_poolrule"),
            1e-4,
        );
    }
    check(
        LayerConductance::new("conv2", 50).attribute(&m, x, &t)?,
        "layer_conductance_conv2_gl50",
        1e-5,
    );
    check(
        LayerConductance::new("conv2", 50)
            .with_quadrature(Quadrature::RiemannTrapezoid)
            .attribute(&m, x, &t)?,
        "layer_conductance_conv2_trap50",
        1e-5,
    );
    check(
        InternalInfluence::new("conv2", 50).attribute(&m, x, &t)?,
        "internal_influence_conv2_gl50",
        1e-5,
    );
    // Captum's neuron (2, 3, 4) of conv2's (6, 8, 8): flat 2·64 + 3·8 + 4.
    check(
        NeuronGradient::new("conv2", 156).attribute(&m, x, &t)?,
        "neuron_gradient_conv2",
        1e-5,
    );
    check(
        NeuronIntegratedGradients::new("conv2", 156, 50).attribute(&m, x, &t)?,
        "neuron_ig_conv2_gl50",
        1e-5,
    );
    // Neuron (0, 1, 6): flat 14.
    let nc = NeuronConductance::new("conv2", 14, 50);
    let gl = nc
        .clone()
        .with_quadrature(Quadrature::GaussLegendre)
        .attribute(&m, x, &t)?;
    assert!(max_abs(&gl.attributions) > 1e-3, "a live neuron");
    check(gl, "neuron_conductance_conv2_016_gl50", 1e-5);
    // Captum's trapezoid weights are 1/n (ends halved) and sum to (n − 1)/n; ours are the
    // trapezoid rule's, 1/(n − 1): the results differ by that factor exactly.
    let trap = nc
        .attribute(&m, x, &t)?
        .attributions
        .affine(49.0 / 50.0, 0.0)?;
    assert_close(
        &trap,
        &g["neuron_conductance_conv2_016_trap50"],
        1e-5,
        "neuron conductance, trapezoid",
    );
    check(
        DeepShap::new(g["dls_baselines"].clone()).attribute(&m, x, &t)?,
        "deep_lift_shap_poolrule",
        1e-4,
    );
    let mask = &g["ks_mask"];
    check(
        KernelShap::exact(mask.clone())
            .with_coalitions(coalitions(&g["ks_coalitions"])?)
            .attribute(&m, x, &t)?,
        "kernel_shap_fixed",
        1e-4,
    );
    check(
        Lime::new(mask.clone(), 1, 0)
            .with_coalitions(coalitions(&g["lime_coalitions"])?)
            .attribute(&m, x, &t)?,
        "lime_fixed",
        1e-4,
    );
    Ok(())
}

test_device!(
    golden_layer_values,
    golden_layer_cpu,
    golden_layer_cuda,
    golden_layer_metal
);
