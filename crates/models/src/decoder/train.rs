//! Training a small Llama-architecture language model from a text corpus: a byte-level BPE
//! tokenizer learnt with the `tokenizers` crate, next-token cross-entropy on random windows of
//! the token stream, AdamW with warm-up and cosine decay, seeded throughout; the result is a
//! Hugging Face folder (`config.json`, `model.safetensors`, `tokenizer.json`,
//! `tokenizer_config.json`, `generation_config.json`) that [`CausalLm::from_dir`] and
//! transformers both load.

use super::{CausalLm, DecoderConfig};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain_core::RuleCtx;
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use std::path::Path;

/// The end-of-text token that separates documents (id 0).
pub const END_OF_TEXT: &str = "<|endoftext|>";

#[derive(Debug, Clone)]
pub struct LmTraining {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate_size: usize,
    /// Tokens per training window (and the model's maximum context).
    pub context: usize,
    pub batch_size: usize,
    pub steps: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// Fraction of the token stream held out for the validation loss.
    pub held_out: f64,
    pub progress: bool,
}

impl Default for LmTraining {
    fn default() -> Self {
        Self {
            vocab_size: 4096,
            hidden_size: 256,
            layers: 4,
            heads: 8,
            kv_heads: 4,
            intermediate_size: 704,
            context: 128,
            batch_size: 16,
            steps: 3000,
            learning_rate: 2e-3,
            seed: 0,
            held_out: 0.02,
            progress: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LmReport {
    /// Mean training loss per hundred steps.
    pub losses: Vec<f64>,
    /// Cross-entropy on the held-out tokens (nats per token) at the end.
    pub held_out_loss: f64,
    pub tokens: usize,
    pub parameters: usize,
    pub seconds: f64,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Explain(candle_explain_core::Error::Unsupported(msg.into()))
}

/// A byte-level BPE tokenizer of `vocab_size` tokens learnt from `documents` (GPT-2's
/// pre-tokenisation), `<|endoftext|>` first.
pub fn train_tokenizer(documents: &[String], vocab_size: usize) -> Result<tokenizers::Tokenizer> {
    use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::models::TrainerWrapper;
    use tokenizers::AddedToken;
    let mut tok = tokenizers::Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    tok.train(&mut trainer, documents.iter())
        .map_err(|e| invalid(format!("tokenizer training: {e}")))?;
    Ok(tok)
}

/// Trains a model on `documents` and writes it to `out` as a Hugging Face folder.
pub fn train_language_model(documents: &[String], cfg: &LmTraining, out: &Path) -> Result<LmReport> {
    let t0 = std::time::Instant::now();
    if documents.is_empty() || cfg.steps == 0 || cfg.batch_size == 0 || cfg.context < 2 {
        return Err(invalid("training needs documents, steps, a batch and a context of at least 2"));
    }
    let dev = Device::Cpu;
    let tok = train_tokenizer(documents, cfg.vocab_size)?;
    let eot = tok.token_to_id(END_OF_TEXT).ok_or_else(|| invalid("no end-of-text token"))?;
    // One stream: the documents, each followed by <|endoftext|>.
    let mut stream: Vec<u32> = vec![];
    for d in documents {
        let e = tok.encode(d.as_str(), false).map_err(|e| invalid(format!("tokenizer: {e}")))?;
        stream.extend_from_slice(e.get_ids());
        stream.push(eot);
    }
    let held = ((stream.len() as f64 * cfg.held_out) as usize).max(cfg.context + 1);
    if stream.len() < held + cfg.context + 1 {
        return Err(invalid(format!("{} tokens are too few for windows of {}", stream.len(), cfg.context)));
    }
    let (train, valid) = stream.split_at(stream.len() - held);
    let vocab = tok.get_vocab_size(true);
    let config_json = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": vocab, "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.layers,
        "num_attention_heads": cfg.heads, "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.hidden_size / cfg.heads, "intermediate_size": cfg.intermediate_size,
        "max_position_embeddings": cfg.context, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "hidden_act": "silu", "tie_word_embeddings": true, "attention_bias": false, "mlp_bias": false,
        "bos_token_id": eot, "eos_token_id": eot, "torch_dtype": "float16",
    });
    let config = DecoderConfig::from_json(&config_json.to_string())?;
    let vars = VarMap::new();
    let lm = CausalLm::load(VarBuilder::from_varmap(&vars, DType::F32, &dev), config)?;
    crate::train::init_seeded(&vars, cfg.seed)?;
    let parameters: usize = vars.all_vars().iter().map(|v| v.elem_count()).sum();
    let mut opt = AdamW::new(vars.all_vars(), ParamsAdamW { lr: cfg.learning_rate, weight_decay: 0.01, ..Default::default() })?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let bar = (cfg.progress && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
        let b = indicatif::ProgressBar::new(cfg.steps as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("training [{bar:30}] {pos}/{len} steps, loss {msg} ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let window = |start: usize, s: &[u32]| s[start..start + cfg.context + 1].to_vec();
    let batch_loss = |rows: Vec<Vec<u32>>, ctx: &RuleCtx| -> Result<Tensor> {
        let b = rows.len();
        let flat: Vec<u32> = rows.into_iter().flatten().collect();
        let ids = Tensor::from_vec(flat, (b, cfg.context + 1), &dev)?;
        let input = ids.narrow(1, 0, cfg.context)?;
        let labels = ids.narrow(1, 1, cfg.context)?.flatten_all()?;
        let logits = lm.forward_embeds(&lm.embed(&input)?, None, None, None, ctx)?;
        Ok(candle_nn::loss::cross_entropy(&logits.reshape((b * cfg.context, ()))?, &labels)?)
    };
    let (mut losses, mut acc) = (vec![], 0.0);
    let warmup = (cfg.steps / 20).max(1);
    for step in 0..cfg.steps {
        let lr = if step < warmup {
            cfg.learning_rate * (step + 1) as f64 / warmup as f64
        } else {
            let p = (step - warmup) as f64 / (cfg.steps - warmup).max(1) as f64;
            cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()))
        };
        opt.set_learning_rate(lr);
        let rows = (0..cfg.batch_size)
            .map(|_| window(rng.random_range(0..train.len() - cfg.context - 1), train))
            .collect();
        let loss = batch_loss(rows, &RuleCtx::plain())?;
        opt.backward_step(&loss)?;
        let l = loss.to_scalar::<f32>()? as f64;
        if !l.is_finite() {
            return Err(invalid(format!("the loss became {l} at step {step}: lower the learning rate")));
        }
        acc += l;
        if (step + 1) % 100 == 0 || step + 1 == cfg.steps {
            let n = (step % 100 + 1) as f64;
            losses.push(acc / n);
            acc = 0.0;
        }
        match &bar {
            Some(b) => {
                b.inc(1);
                b.set_message(format!("{l:.3}"));
            }
            // No terminal (a log file, CI): a plain line every hundred steps.
            None if cfg.progress && (step + 1) % 100 == 0 => {
                eprintln!("step {}/{}: loss {:.3}", step + 1, cfg.steps, losses.last().copied().unwrap_or(l));
            }
            None => {}
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // Held-out loss over consecutive windows.
    let ctx = RuleCtx::inference();
    let starts: Vec<usize> = (0..valid.len() - cfg.context - 1).step_by(cfg.context).collect();
    let mut total = 0.0;
    for chunk in starts.chunks(cfg.batch_size) {
        let rows = chunk.iter().map(|&s| window(s, valid)).collect();
        total += batch_loss(rows, &ctx)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
    }
    let held_out_loss = total / starts.len().max(1) as f64;
    std::fs::create_dir_all(out)?;
    // Stored in f16 (half the size; loaded back into f32 or any dtype), trained in f32.
    let data = vars.data().lock().map_err(|_| invalid("the VarMap's lock is poisoned"))?;
    let half = data
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().to_dtype(DType::F16)?)))
        .collect::<Result<std::collections::HashMap<_, _>>>()?;
    drop(data);
    candle_core::safetensors::save(&half, out.join("model.safetensors"))?;
    std::fs::write(out.join("config.json"), serde_json::to_string_pretty(&config_json).unwrap_or_default())?;
    tok.save(out.join("tokenizer.json"), false).map_err(|e| invalid(format!("cannot save the tokenizer: {e}")))?;
    std::fs::write(
        out.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": END_OF_TEXT, "eos_token": END_OF_TEXT,
            "model_max_length": cfg.context,
        }))
        .unwrap_or_default(),
    )?;
    std::fs::write(
        out.join("generation_config.json"),
        serde_json::json!({"bos_token_id": eot, "eos_token_id": eot}).to_string(),
    )?;
    Ok(LmReport { losses, held_out_loss, tokens: stream.len(), parameters, seconds: t0.elapsed().as_secs_f64() })
}
