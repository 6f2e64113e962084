//! Golden values from Zennit 0.5.1 (`scripts/golden/lrp_zennit.py` made
//! `tests/data/zennit_cnn.safetensors`): every layer rule alone on a linear and a conv layer,
//! and four composites on the Captum golden CNN, with output relevance = the target logit.

mod common;
use candle_core::{DType, Device, Tensor, Var};
use candle_explain_core::ops::conv::ConvGeometry;
use candle_explain_core::prelude::*;
use candle_explain_core::test_device;
use candle_nn::VarBuilder;
use common::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");

fn rules() -> Vec<(&'static str, LayerRule)> {
    vec![
        ("epsilon", LayerRule::Epsilon(1e-6)),
        ("epsilon_0.25", LayerRule::Epsilon(0.25)),
        ("zplus", LayerRule::ZPlus),
        (
            "alpha2_beta1",
            LayerRule::AlphaBeta {
                alpha: 2.0,
                beta: 1.0,
            },
        ),
        (
            "alpha1_beta0",
            LayerRule::AlphaBeta {
                alpha: 1.0,
                beta: 0.0,
            },
        ),
        ("gamma", LayerRule::Gamma(0.25)),
        ("flat", LayerRule::Flat),
        ("wsquare", LayerRule::WSquare),
        (
            "zbox",
            LayerRule::ZBox {
                low: -1.5,
                high: 2.0,
            },
        ),
    ]
}

fn single_layer_rules(dev: &Device) -> anyhow::Result<()> {
    let z = candle_core::safetensors::load(format!("{DIR}zennit_cnn.safetensors"), dev)?;
    let layers: [(
        &str,
        Box<dyn Fn(&Tensor, &RuleCtx) -> candle_explain_core::Result<Tensor>>,
    ); 2] = [
        (
            "lin",
            Box::new(|x, c| c.linear(x, &z["lin.weight"], Some(&z["lin.bias"]))),
        ),
        (
            "conv",
            Box::new(|x, c| {
                c.conv2d(
                    x,
                    &z["conv.weight"],
                    Some(&z["conv.bias"]),
                    ConvGeometry {
                        padding: 1,
                        stride: 2,
                        ..Default::default()
                    },
                )
            }),
        ),
    ];
    for (layer, f) in &layers {
        for (name, rule) in rules() {
            let ctx =
                RuleCtx::composite(Composite::new(ActRule::Pass).with(Selector::any(), rule))?;
            let v = Var::from_tensor(&z[&format!("{layer}.input")])?;
            let y = f(v.as_tensor(), &ctx)?;
            let g = (&y * &z[&format!("{layer}.relevance")])?
                .sum_all()?
                .backward()?;
            let got = g.get(v.as_tensor()).unwrap();
            // conv.epsilon (ε = 1e-6) divides by an output of 0.003: judge it relative to the
            // largest |R|, as every other case.
            assert_close(
                got,
                &z[&format!("{layer}.{name}")],
                2e-5,
                &format!("{layer}.{name}"),
            );
        }
    }
    Ok(())
}
test_device!(single_layer_rules, single_cpu, single_cuda, single_metal);

fn composites_on_the_golden_cnn(dev: &Device) -> anyhow::Result<()> {
    let t = candle_core::safetensors::load(format!("{DIR}captum_cnn.safetensors"), dev)?;
    let z = candle_core::safetensors::load(format!("{DIR}zennit_cnn.safetensors"), dev)?;
    let vb = VarBuilder::from_tensors(t.clone(), DType::F32, dev);
    let m = golden_cnn(vb);
    let target = Target::PerExample(
        t["target"]
            .to_vec1::<i64>()?
            .into_iter()
            .map(|c| c as usize)
            .collect(),
    );
    for (name, c) in [
        ("epsilon_plus", Composite::epsilon_plus()),
        ("epsilon_gamma_box", Composite::epsilon_gamma_box(-1.0, 2.0)),
        ("epsilon_alpha2_beta1", Composite::epsilon_alpha2_beta1()),
        ("epsilon_plus_flat", Composite::epsilon_plus_flat()),
    ] {
        let r = Lrp::new(c).attribute(&m, &t["input"], &target)?;
        assert_close(&r.attributions, &z[name], 1e-5, name);
    }
    // Deep Taylor decomposition: z^B first, z⁺ on every other conv and dense layer
    // (`scripts/golden/deep_taylor_zennit.py`).
    let dt = candle_core::safetensors::load(format!("{DIR}zennit_deep_taylor.safetensors"), dev)?;
    let r = Lrp::new(Composite::deep_taylor(-1.0, 2.0)).attribute(&m, &t["input"], &target)?;
    assert_close(&r.attributions, &dt["deep_taylor"], 1e-5, "deep_taylor");
    Ok(())
}
test_device!(
    composites_on_the_golden_cnn,
    composites_cpu,
    composites_cuda,
    composites_metal
);
