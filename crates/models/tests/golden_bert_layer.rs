//! Layer attribution at BERT's embeddings against Captum 0.9 on the real all-MiniLM-L6-v2
//! (transformers' `BertModel`, a seeded 2-class head): Layer Integrated Gradients from the
//! embeddings of `[CLS] [PAD]… [SEP]` and Layer Gradient × Activation, on a padded batch of
//! two sentences with its attention mask. `scripts/golden/bert_layer_captum.py` made
//! `tests/data/captum_bert_layer.safetensors` (head, ids, mask, reference ids, targets,
//! logits and the attributions).

use candle_core::{DType, Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_core::WithInputs;
use candle_explain_models::BertClassifier;

const MINILM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/all-MiniLM-L6-v2");
const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/captum_bert_layer.safetensors"
);

fn max_abs_diff(a: &Tensor, b: &Tensor) -> anyhow::Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

#[test]
fn layer_methods_at_bert_embeddings_match_captum() -> anyhow::Result<()> {
    candle_explain_models::assets::ensure("minilm")?;
    let dev = Device::Cpu;
    let model = BertClassifier::from_dir(MINILM, Some(GOLDEN.as_ref()), &dev)?;
    let g = candle_core::safetensors::load(GOLDEN, &dev)?;
    let ids = g["input_ids"].to_dtype(DType::U32)?;
    let x = model.embed(&ids)?;
    let xbar = model.embed(&g["ref_ids"].to_dtype(DType::U32)?)?;
    let mask = g["attention_mask"].to_dtype(DType::F32)?;
    let m = WithInputs::new(&model).with("attention_mask", mask.clone())?;
    let logits = m.forward(&x)?;
    let d = max_abs_diff(&logits, &g["logits"])?;
    assert!(d < 1e-5, "logits differ by {d}");
    let t = Target::PerExample(
        g["target"]
            .to_vec1::<i64>()?
            .into_iter()
            .map(|c| c as usize)
            .collect(),
    );
    // S(x) − S(x̄) is ~0.03 (a random head): absolute tolerances, against values of ~1e-3.
    let lig = LayerIntegratedGradients::new("embeddings", 50)
        .with_baseline(Baseline::Tensor(xbar))
        .attribute(&m, &x, &t)?;
    let want = &g["lig_embeddings_gl50"];
    let scale = want.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let d = max_abs_diff(&lig.attributions, want)?;
    eprintln!("layer IG at the embeddings: max |Δ| {d} against values up to {scale}");
    assert!(
        scale > 1e-3 && d < 1e-7,
        "layer IG: max |Δ| {d} (values up to {scale})"
    );
    let d = max_abs_diff(
        lig.delta.as_ref().expect("delta"),
        &g["lig_embeddings_gl50_delta"],
    )?;
    assert!(d < 1e-5, "layer IG delta differs by {d}");
    let gxa = LayerGradientXActivation::new("embeddings").attribute(&m, &x, &t)?;
    let d = max_abs_diff(&gxa.attributions, &g["lgxa_embeddings"])?;
    eprintln!("layer gradient × activation: max |Δ| {d}");
    assert!(d < 1e-7, "layer gradient × activation: max |Δ| {d}");
    // Padding (sentence 0 after its 8 tokens) gets exactly 0.
    let pad = gxa.attributions.get(0)?.narrow(0, 8, 9)?;
    assert_eq!(pad.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?, 0.0);
    Ok(())
}
