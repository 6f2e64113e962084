//! Golden values from Zennit 0.5.1 on a CNN with BatchNorm and a residual block
//! (`scripts/golden/lrp_zennit_resnet.py` made `tests/data/zennit_resnet.safetensors`):
//! Zennit merges each BatchNorm into its conv (SequentialMergeBatchNorm) and gives the
//! residual sum and the average pool its Norm rule; here `canonize::fold_conv_batch_norm`,
//! `RuleCtx::add` and `RuleCtx::avg_pool2d` do the same.

mod common;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::canonize::fold_conv_batch_norm;
use candle_explain_core::nn::{AvgPool2d, BatchNorm, Conv2d, Linear};
use candle_explain_core::ops::conv::ConvGeometry;
use candle_explain_core::prelude::*;
use candle_explain_core::test_device;
use candle_nn::VarBuilder;
use common::*;

struct Net {
    convs: [Conv2d; 3],
    fc: Linear,
}

impl Explainable for Net {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let h = ctx.activation(Activation::Relu, &self.convs[0].forward_with(x, ctx)?)?;
        let b = ctx.activation(Activation::Relu, &self.convs[1].forward_with(&h, ctx)?)?;
        let b = self.convs[2].forward_with(&b, ctx)?;
        let s = ctx.activation(Activation::Relu, &ctx.add(&h, &b)?)?;
        let p = AvgPool2d::new(2).forward_with(&s, ctx)?.flatten_from(1)?;
        self.fc.forward_with(&p, ctx)
    }
}

fn zennit_resnet(dev: &Device) -> anyhow::Result<()> {
    let t = candle_core::safetensors::load(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/zennit_resnet.safetensors"
        ),
        dev,
    )?;
    let vb = VarBuilder::from_tensors(t.clone(), DType::F32, dev);
    let g = ConvGeometry {
        padding: 1,
        ..Default::default()
    };
    let mut convs = vec![];
    for (i, cin) in [(1, 1), (2, 4), (3, 4)] {
        let conv = Conv2d::load(vb.pp(format!("conv{i}")), cin, 4, 3, g)?;
        let folded =
            fold_conv_batch_norm(&conv, &BatchNorm::load(vb.pp(format!("bn{i}")), 4, 1e-5)?)?;
        // Our folding equals Zennit's canonizer's.
        assert_close(
            &folded.weight,
            &t[&format!("folded.conv{i}.weight")],
            1e-6,
            "folded weight",
        );
        assert_close(
            folded.bias.as_ref().unwrap(),
            &t[&format!("folded.conv{i}.bias")],
            1e-6,
            "folded bias",
        );
        convs.push(folded);
    }
    let m = Net {
        convs: convs
            .try_into()
            .map_err(|_| anyhow::anyhow!("three convs"))?,
        fc: Linear::load(vb.pp("fc"), 100, 3)?,
    };
    let x = &t["input"];
    assert_close(
        &m.forward(x)?,
        &t["logits"],
        1e-5,
        "logits of the folded model",
    );
    let target = Target::PerExample(
        t["target"]
            .to_vec1::<i64>()?
            .into_iter()
            .map(|c| c as usize)
            .collect(),
    );
    let mut nosum = Composite::epsilon_plus();
    nosum.layers.insert(
        0,
        (Selector::kind(LayerKind::Sum), LayerRule::Gradient.into()),
    );
    for (name, c) in [
        ("epsilon_plus", Composite::epsilon_plus()),
        ("epsilon_gamma_box", Composite::epsilon_gamma_box(-1.0, 2.0)),
        ("epsilon_plus_nosum", nosum),
    ] {
        let r = Lrp::new(c).attribute(&m, x, &target)?;
        assert_close(&r.attributions, &t[name], 1e-5, name);
    }
    Ok(())
}
test_device!(zennit_resnet, resnet_cpu, resnet_cuda, resnet_metal);
