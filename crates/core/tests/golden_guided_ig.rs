//! Guided IG against PAIR's reference implementation (`saliency` 0.2.1, in float64):
//! `scripts/golden/guided_ig_pair.py` made `tests/data/guided_ig_pair.safetensors` on the
//! Captum golden CNN with a zero baseline, for three (steps, fraction, max_dist) settings.

mod common;
use candle_core::{DType, Device};
use candle_explain_core::prelude::*;
use candle_explain_core::test_device;
use candle_nn::VarBuilder;
use common::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");

fn pair_reference(dev: &Device) -> anyhow::Result<()> {
    // f64 like the reference, so that feature selections (quantile ties) cannot flip.
    let t = candle_core::safetensors::load(format!("{DIR}captum_cnn.safetensors"), dev)?;
    let g = candle_core::safetensors::load(format!("{DIR}guided_ig_pair.safetensors"), dev)?;
    let vb = VarBuilder::from_tensors(t.clone(), DType::F64, dev);
    let m = golden_cnn(vb);
    let x = t["input"].to_dtype(DType::F64)?;
    let target = Target::PerExample(
        t["target"]
            .to_vec1::<i64>()?
            .into_iter()
            .map(|c| c as usize)
            .collect(),
    );
    for (name, steps, fraction, max_dist) in [
        ("gig_s20", 20, 0.25, 0.02),
        ("gig_s50_f10", 50, 0.1, 0.1),
        ("gig_s10_d1", 10, 0.25, 1.0),
    ] {
        let r = GuidedIntegratedGradients {
            steps,
            fraction,
            max_dist,
            ..Default::default()
        }
        .attribute(&m, &x, &target)?;
        assert_close(&r.attributions.to_dtype(DType::F32)?, &g[name], 1e-4, name);
    }
    Ok(())
}
test_device!(pair_reference, pair_cpu, pair_cuda, pair_metal);
