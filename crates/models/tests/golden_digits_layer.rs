//! Layer and neuron attribution on the trained digits CNN against Captum 0.9:
//! `scripts/golden/digits_layer_captum.py` made `tests/data/captum_digits_layer.safetensors`
//! (four digits, their classes, and Captum's Layer IG, Layer Conductance, Internal Influence
//! and Layer DeepLIFT at `conv_layers.3`, Layer Gradient × Activation at `fc_layers.0`,
//! Neuron Conductance and Neuron IG of unit (8, 3, 11) of `conv_layers.3`). The layer names
//! are the PyTorch module names our model taps.

use candle_core::{Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_models::DigitsCnn;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/captum_digits_layer.safetensors"
);

/// max |a − b| relative to max |b|.
fn rel_diff(a: &Tensor, b: &Tensor) -> anyhow::Result<f32> {
    let m = |t: &Tensor| -> anyhow::Result<f32> {
        Ok(t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
    };
    Ok(m(&(a - b)?)? / m(b)?.max(1e-12))
}

#[test]
fn layer_and_neuron_methods_match_captum_on_the_digits_cnn() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = DigitsCnn::from_file(format!("{ROOT}/weights/digits_cnn.safetensors"), &dev)?;
    let g = candle_core::safetensors::load(GOLDEN, &dev)?;
    let x = &g["input"];
    let t = Target::PerExample(
        g["target"]
            .to_vec1::<i64>()?
            .into_iter()
            .map(|c| c as usize)
            .collect(),
    );
    let neuron: Vec<i64> = g["neuron"].to_vec1()?;
    // (channel, row, column) of the (64, 14, 14) activation, flattened.
    let unit = (neuron[0] * 196 + neuron[1] * 14 + neuron[2]) as usize;
    let cases: Vec<(&str, Box<dyn Attributor>)> = vec![
        (
            "lig_conv3_gl50",
            Box::new(LayerIntegratedGradients::new("conv_layers.3", 50)),
        ),
        (
            "lgxa_fc0",
            Box::new(LayerGradientXActivation::new("fc_layers.0")),
        ),
        (
            "lcond_conv3_gl50",
            Box::new(LayerConductance::new("conv_layers.3", 50)),
        ),
        (
            "ii_conv3_gl50",
            Box::new(InternalInfluence::new("conv_layers.3", 50)),
        ),
        ("ldl_conv3", Box::new(LayerDeepLift::new("conv_layers.3"))),
        (
            "ncond_conv3_gl50",
            Box::new(
                NeuronConductance::new("conv_layers.3", unit, 50)
                    .with_quadrature(Quadrature::GaussLegendre),
            ),
        ),
        (
            "nig_conv3_gl50",
            Box::new(NeuronIntegratedGradients::new("conv_layers.3", unit, 50)),
        ),
    ];
    for (key, method) in cases {
        let a = method.attribute(&m, x, &t)?;
        let d = rel_diff(&a.attributions, &g[key])?;
        eprintln!("{key}: max |Δ| / max |Captum| = {d:.2e}");
        assert!(d < 1e-5, "{key}: {d}");
    }
    Ok(())
}
