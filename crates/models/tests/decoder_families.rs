//! Decoder-only language models loaded from their Hugging Face folders, against
//! transformers: `scripts/golden/llm_families.py` made a random tiny checkpoint of each
//! variant with transformers itself (GPT-2; Llama with grouped-query attention; Llama 3 with
//! its RoPE scaling and tied embeddings; Mistral; Qwen2 with q/k/v biases; Qwen3 with q/k
//! norms and a head size that is not hidden / heads) and `golden.safetensors` beside it: the
//! logits of a prompt, of a left-padded batch, and the greedy continuation.

use candle_core::{DType, Device, Tensor, D};
use candle_explain_core::RuleCtx;
use candle_explain_models::decoder::{GenerateConfig, KvCache, Sampling, StopReason};
use candle_explain_models::CausalLm;
use std::collections::HashMap;
use std::path::PathBuf;

const VARIANTS: [&str; 6] = ["gpt2", "llama", "llama3", "mistral", "qwen2", "qwen3"];

fn folder(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hf")).join(name)
}

fn golden(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(folder(name).join("golden.safetensors"), &Device::Cpu)
        .expect("golden values are committed")
}

/// max |a − b| / max(1, max |b|).
fn err(a: &Tensor, b: &Tensor) -> f32 {
    let m = |t: &Tensor| t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    m(&(a - b).unwrap()) / m(b).max(1.0)
}

fn ids(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_dtype(DType::U32).unwrap().to_vec1().unwrap()
}

#[test]
fn logits_equal_transformers() -> anyhow::Result<()> {
    for name in VARIANTS {
        let model = CausalLm::from_dir(folder(name), DType::F32, &Device::Cpu)?;
        let g = golden(name);
        let ctx = RuleCtx::plain();
        let emb = model.embed(&g["prompt_ids"])?;
        let logits = model.forward_embeds(&emb, None, None, None, &ctx)?;
        let e = err(&logits, &g["logits"]);
        assert!(e < 1e-5, "{name}: logits differ by {e}");
        // A left-padded batch with its mask and transformers' positions: compare the real
        // tokens only (padding rows are unused).
        let mask = &g["batch_mask"];
        let emb = model.embed(&g["batch_ids"])?;
        let pos = CausalLm::positions_from_mask(mask)?;
        assert_eq!(ids(&pos), ids(&g["batch_position_ids"]), "{name}: positions");
        let logits = model.forward_embeds(&emb, Some(&pos), Some(mask), None, &ctx)?;
        let keep = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
        let e = err(&logits.broadcast_mul(&keep)?, &g["logits_batch"].broadcast_mul(&keep)?);
        assert!(e < 1e-5, "{name}: padded batch logits differ by {e}");
    }
    Ok(())
}

#[test]
fn greedy_generation_with_a_kv_cache_equals_transformers() -> anyhow::Result<()> {
    for name in VARIANTS {
        let model = CausalLm::from_dir(folder(name), DType::F32, &Device::Cpu)?;
        let g = golden(name);
        let prompt = ids(&g["prompt_ids"]);
        let want = ids(&g["greedy_ids"]);
        let out = model.generate(&prompt, &GenerateConfig::greedy(&model, 8))?;
        assert_eq!(out.ids, want[prompt.len()..], "{name}: greedy continuation");
        assert_eq!(out.stop, StopReason::MaxNewTokens);
        // Step by step through the cache, each step's logits equal transformers' (a stronger
        // check than the ids where a random model repeats one token).
        let ctx = RuleCtx::inference();
        let mut cache = KvCache::default();
        let mut input = g["prompt_ids"].clone();
        for step in 0..8 {
            let logits = model.forward_embeds(&model.embed(&input)?, None, None, Some(&mut cache), &ctx)?;
            let last = logits.narrow(1, logits.dim(1)? - 1, 1)?.squeeze(1)?;
            let e = err(&last, &g["greedy_logits"].narrow(1, step, 1)?.squeeze(1)?);
            assert!(e < 1e-5, "{name}: step {step} logits differ by {e}");
            input = Tensor::new(&[[want[prompt.len() + step] as i64]], &Device::Cpu)?;
        }
    }
    Ok(())
}

#[test]
fn sampling_is_seeded_and_stops_at_stop_tokens() -> anyhow::Result<()> {
    let model = CausalLm::from_dir(folder("llama"), DType::F32, &Device::Cpu)?;
    let prompt = ids(&golden("llama")["prompt_ids"]);
    let cfg = |seed| GenerateConfig {
        max_new_tokens: 12,
        sampling: Sampling::Sample { temperature: 1.5, top_k: Some(50), top_p: Some(0.95), seed },
        stop: vec![],
    };
    let (a, b, c) = (model.generate(&prompt, &cfg(1))?, model.generate(&prompt, &cfg(1))?, model.generate(&prompt, &cfg(2))?);
    assert_eq!(a.ids, b.ids, "a seed gives the same text");
    assert_ne!(a.ids, c.ids, "another seed, another text");
    // Stop at the third sampled token: it ends the generation and is its last token.
    let stop = GenerateConfig { stop: vec![a.ids[2]], ..cfg(1) };
    let s = model.generate(&prompt, &stop)?;
    let first = a.ids.iter().position(|&t| t == a.ids[2]).unwrap();
    assert_eq!(s.ids, a.ids[..=first], "stops at the stop token");
    assert_eq!(s.stop, StopReason::StopToken);
    let bad = GenerateConfig { sampling: Sampling::Sample { temperature: 0.0, top_k: None, top_p: None, seed: 0 }, ..cfg(1) };
    assert!(model.generate(&prompt, &bad).is_err());
    assert!(model.generate(&[], &cfg(1)).is_err());
    // The context is bounded by max_position_embeddings (64): the last token is predicted
    // from 64 positions, and nothing can follow it.
    let long = model.generate(&prompt, &GenerateConfig { max_new_tokens: 100, ..cfg(3) })?;
    assert_eq!(long.stop, StopReason::ContextFull);
    assert_eq!(prompt.len() + long.ids.len(), 65);
    Ok(())
}

#[test]
fn chat_templates_render_as_transformers() -> anyhow::Result<()> {
    use candle_explain_models::decoder::DecoderTokenizer;
    let user = "Where did the cat sleep?";
    for (name, messages) in [
        ("llama3", vec![("system", "You are a helpful assistant."), ("user", user)]),
        ("qwen2", vec![("user", user)]),
        ("qwen3", vec![("user", user)]),
    ] {
        let model = CausalLm::from_dir(folder(name), DType::F32, &Device::Cpu)?;
        let tok = DecoderTokenizer::from_dir(&folder(name), &model)?;
        let text = tok.chat_prompt(&messages)?;
        assert_eq!(tok.encode(&text, false)?, ids(&golden(name)["chat_ids"]), "{name}: {text:?}");
    }
    // Without a template, --chat is refused; the prompt's BOS comes from the tokenizer.
    let model = CausalLm::from_dir(folder("llama"), DType::F32, &Device::Cpu)?;
    let tok = DecoderTokenizer::from_dir(&folder("llama"), &model)?;
    assert!(tok.chat_prompt(&[("user", user)]).is_err());
    let prompt = tok.encode("The old cat slept on the warm mat by the", true)?;
    assert_eq!(prompt, ids(&golden("llama")["prompt_ids"]));
    assert_eq!(tok.stop_ids, vec![2]);
    Ok(())
}
