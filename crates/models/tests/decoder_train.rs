//! A tiny Llama trained from scratch (`decoder::train`) on a small regular corpus: the loss
//! falls far below chance, the folder it writes loads back (model and tokenizer) and
//! continues a sentence the way the corpus does.

use candle_core::{DType, Device};
use candle_explain_models::decoder::train::{train_language_model, LmTraining};
use candle_explain_models::decoder::{DecoderTokenizer, GenerateConfig};
use candle_explain_models::CausalLm;

#[test]
fn a_tiny_llama_learns_a_regular_corpus() -> anyhow::Result<()> {
    let animals = ["cat", "dog", "bird", "fox", "cow", "hen"];
    let places = ["mat", "rug", "bed", "box", "log", "hill"];
    let mut docs = vec![];
    for i in 0..600 {
        let (a, p) = (animals[i % 6], places[(i / 6) % 6]);
        docs.push(format!("the {a} sat on the {p}. the {a} was happy on the {p}."));
    }
    let cfg = LmTraining {
        vocab_size: 300,
        hidden_size: 32,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        intermediate_size: 64,
        context: 24,
        batch_size: 16,
        steps: 200,
        learning_rate: 1e-2,
        progress: false,
        ..LmTraining::default()
    };
    let out = std::env::temp_dir().join(format!("candle-explain-tiny-llama-{}", std::process::id()));
    let report = train_language_model(&docs, &cfg, &out)?;
    let chance = (300f64).ln();
    assert!(report.held_out_loss < 0.3 * chance, "held-out loss {} vs chance {chance}", report.held_out_loss);
    assert!(report.losses.last() < report.losses.first(), "{:?}", report.losses);
    let lm = CausalLm::from_dir(&out, DType::F32, &Device::Cpu)?;
    let tok = DecoderTokenizer::from_dir(&out, &lm)?;
    let prompt = tok.encode("the dog sat on the rug. the dog was", false)?;
    let g = lm.generate(&prompt, &GenerateConfig { max_new_tokens: 4, ..GenerateConfig::greedy(&lm, 4) })?;
    let text = tok.decode(&g.ids)?;
    assert!(text.starts_with(" happy on the rug"), "{text:?}");
    std::fs::remove_dir_all(out).ok();
    Ok(())
}
