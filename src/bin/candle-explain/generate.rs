//! `candle-explain generate`: a language model continues a prompt (or is given the
//! continuation), and every generated token is explained by the tokens before it.

use crate::explain::spinner;
use crate::RunArgs;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use candle_explain::core::Batching;
use candle_explain::models::decoder::attribution::{
    attribute_continuation, Features, LlmMethod, Score, ShapleySampling, Sources, TokenBaseline,
};
use candle_explain::models::decoder::{DecoderTokenizer, GenerateConfig, Sampling};
use candle_explain::models::CausalLm;
use candle_explain::viz::generation::GenerationPage;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const LLM_METHODS: &[&str] = &[
    "attnlrp",
    "cp-lrp",
    "integrated-gradients",
    "gradient-x-input",
    "saliency",
    "ablation",
    "shapley",
];

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// tiny-llama (the built-in model, `weights/tiny-llama`), a Hugging Face folder (GPT-2,
    /// Llama, Mistral, Qwen2, Qwen3: config.json, weights, tokenizer.json) or a hub id
    /// (org/name[@revision]).
    #[arg(long, default_value = "tiny-llama")]
    pub model: String,
    #[arg(long)]
    pub prompt: String,
    /// Wrap the prompt in the tokenizer's chat template as a user turn.
    #[arg(long)]
    pub chat: bool,
    /// A system turn before the prompt (with --chat).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// Explain this continuation instead of generating one (forced decoding).
    #[arg(long)]
    pub continuation: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub max_new_tokens: usize,
    /// Sample instead of greedy decoding (seeded).
    #[arg(long)]
    pub sample: bool,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long)]
    pub top_p: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// attnlrp, cp-lrp, integrated-gradients, gradient-x-input, saliency, ablation, shapley,
    /// or none.
    #[arg(long, default_value = "attnlrp")]
    pub method: String,
    /// Integrated Gradients: Gauss–Legendre nodes.
    #[arg(long, default_value_t = 32)]
    pub steps: usize,
    /// Shapley: random orders of the features (Captum's n_samples), seeded by --seed; 0 for
    /// exact values (at most 16 features).
    #[arg(long, default_value_t = 25)]
    pub permutations: usize,
    /// What ablation and Shapley perturb together, and the columns of `span_matrix` in
    /// result.json: tokens, or words (spaces and punctuation split them).
    #[arg(long, default_value = "tokens")]
    pub spans: String,
    /// What replaces a token (IG's path start, ablation, Shapley): "zero" (the zero embedding), or a
    /// token id, or "unk" / "eos" (the tokenizer's).
    #[arg(long, default_value = "zero")]
    pub baseline: String,
    /// log-prob, prob or logit of each generated token.
    #[arg(long, default_value = "log-prob")]
    pub score: String,
    /// Explain each generated token against an alternative (its log-probability minus the
    /// alternative's): a text whose tokens pair up with the generated ones, one each.
    #[arg(long, conflicts_with = "score")]
    pub contrast: Option<String>,
    /// all (every earlier token, generated ones included) or prompt.
    #[arg(long, default_value = "all")]
    pub sources: String,
    /// Memory budget of one chunk, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory_mb: usize,
    #[command(flatten)]
    pub run: RunArgs,
    #[arg(long, default_value = "out/generate")]
    pub out: PathBuf,
}

fn model_dir(spec: &str) -> Result<PathBuf> {
    if spec == "tiny-llama" {
        let dir = crate::model::weights("tiny-llama");
        if !dir.join("model.safetensors").exists() {
            bail!(
                "the built-in model is not in {}: train it with `cargo run --release --example train_tiny_llama` (about 20 min on two cores)",
                dir.display()
            );
        }
        return Ok(dir);
    }
    if Path::new(spec).is_dir() {
        return Ok(PathBuf::from(spec));
    }
    candle_explain::models::hub::snapshot_spec(spec)
        .with_context(|| format!("--model {spec:?} is neither a folder nor a hub id that could be resolved"))
}

fn method(a: &GenerateArgs, tok: &DecoderTokenizer, vocab: usize, features: Features) -> Result<Option<LlmMethod>> {
    let baseline = match a.baseline.as_str() {
        "zero" => TokenBaseline::Zero,
        "unk" => TokenBaseline::Token(tok.tokenizer.token_to_id("<unk>").context("--baseline unk: the tokenizer has no <unk> token")?),
        "eos" => TokenBaseline::Token(
            tok.eos_token.as_deref().and_then(|t| tok.tokenizer.token_to_id(t)).or(tok.stop_ids.first().copied())
                .context("--baseline eos: the tokenizer names no end-of-sequence token")?,
        ),
        id => {
            let id: u32 = id.parse().with_context(|| format!("--baseline {id:?}: zero, unk, eos or a token id"))?;
            if id as usize >= vocab {
                bail!("--baseline {id}: the vocabulary has {vocab} ids");
            }
            TokenBaseline::Token(id)
        }
    };
    Ok(Some(match a.method.as_str() {
        "none" => return Ok(None),
        "attnlrp" => LlmMethod::AttnLrp { epsilon: 1e-10 },
        "cp-lrp" => LlmMethod::CpLrp { epsilon: 1e-10 },
        "integrated-gradients" => {
            if a.steps == 0 {
                bail!("--steps must be at least 1");
            }
            LlmMethod::IntegratedGradients { steps: a.steps, baseline }
        }
        "gradient-x-input" => LlmMethod::GradientXInput,
        "saliency" => LlmMethod::Saliency,
        "ablation" => LlmMethod::Ablation { baseline, features },
        "shapley" => LlmMethod::Shapley {
            baseline,
            features,
            sampling: match a.permutations {
                0 => ShapleySampling::Exact,
                count => ShapleySampling::Permutations { count, seed: a.seed },
            },
        },
        m => bail!("--method {m}: one of {}, or none", LLM_METHODS.join(", ")),
    }))
}

pub fn run(a: &GenerateArgs) -> Result<()> {
    let (device, dtype) = (a.run.device()?, a.run.dtype());
    let dir = model_dir(&a.model)?;
    let lm = CausalLm::from_dir(&dir, dtype, &device)?;
    let tok = DecoderTokenizer::from_dir(&dir, &lm)?;
    let score = match a.score.as_str() {
        "log-prob" => Score::LogProb,
        "prob" => Score::Prob,
        "logit" => Score::Logit,
        s => bail!("--score {s}: log-prob, prob or logit"),
    };
    let sources = match a.sources.as_str() {
        "all" => Sources::All,
        "prompt" => Sources::Prompt,
        s => bail!("--sources {s}: all or prompt"),
    };
    if !["tokens", "words"].contains(&a.spans.as_str()) {
        bail!("--spans {}: tokens or words", a.spans);
    }
    // Checked before generating: a bad --method or --baseline fails fast.
    method(a, &tok, lm.config.vocab_size, Features::Tokens)?;
    let contrast = a.contrast.as_deref().map(|c| tok.encode(c, false)).transpose()?;
    let prompt_text = match (a.chat, &a.system) {
        (false, _) => a.prompt.clone(),
        (true, None) => tok.chat_prompt(&[("user", &a.prompt)])?,
        (true, Some(s)) => tok.chat_prompt(&[("system", s), ("user", &a.prompt)])?,
    };
    // A chat template writes its own special tokens.
    let prompt = tok.encode(&prompt_text, !a.chat)?;
    if prompt.is_empty() {
        bail!("the prompt encodes to no tokens");
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let t0 = std::time::Instant::now();
    let (targets, stop) = match &a.continuation {
        Some(c) => {
            let ids = tok.encode(c, false)?;
            if ids.is_empty() {
                bail!("--continuation encodes to no tokens");
            }
            (ids, "given".to_string())
        }
        None => {
            if a.max_new_tokens == 0 {
                bail!("--max-new-tokens must be at least 1");
            }
            let sampling = match a.sample {
                false => Sampling::Greedy,
                true => Sampling::Sample { temperature: a.temperature, top_k: a.top_k, top_p: a.top_p, seed: a.seed },
            };
            let cfg = GenerateConfig { max_new_tokens: a.max_new_tokens, sampling, stop: tok.stop_ids.clone() };
            let bar = spinner(format!("generating up to {} tokens", a.max_new_tokens));
            let g = lm.generate(&prompt, &cfg)?;
            bar.finish_and_clear();
            (g.ids, format!("{:?}", g.stop))
        }
    };
    let gen_secs = t0.elapsed().as_secs_f64();
    let score = match contrast {
        None => score,
        Some(alt) if alt.len() == targets.len() => Score::Contrast(alt),
        Some(alt) => bail!(
            "--contrast has {} tokens but the continuation {}: give one alternative token per generated token",
            alt.len(),
            targets.len()
        ),
    };
    let continuation = tok.decode(&targets)?;
    println!("{}{}", prompt_text, continuation);
    let all_ids: Vec<u32> = prompt.iter().chain(&targets).copied().collect();
    let pieces = tok.pieces(&all_ids)?;
    let mut json = serde_json::json!({
        "model": a.model, "prompt": a.prompt, "prompt_text": prompt_text, "continuation": continuation,
        "ids": all_ids, "tokens": pieces, "prompt_len": prompt.len(), "targets": targets,
        "stop": stop, "generation_seconds": gen_secs, "device": format!("{:?}", a.run.device), "dtype": format!("{:?}", a.run.dtype),
    });
    // Special tokens of the prompt (a BOS, a chat template's markers) are not attributed.
    let special: Vec<u32> = tok.tokenizer.get_added_tokens_decoder().iter().filter(|(_, t)| t.special).map(|(id, _)| *id).collect();
    let skip: Vec<usize> = prompt.iter().enumerate().filter(|(_, id)| special.contains(id)).map(|(i, _)| i).collect();
    // The attributed sources: the explained sequence is the prompt and all targets but the last.
    let sources_len = prompt.len() + targets.len() - 1;
    let attributable: Vec<bool> = (0..sources_len).map(|i| !skip.contains(&i) && (sources == Sources::All || i < prompt.len())).collect();
    let words = match a.spans.as_str() {
        "words" => Some(tok.word_spans(&all_ids[..sources_len], &attributable)?),
        _ => None,
    };
    let features = words.clone().map_or(Features::Tokens, Features::Spans);
    let Some(method) = method(a, &tok, lm.config.vocab_size, features)? else {
        crate::write_file(&a.out.join("result.json"), serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    };
    let batching = Batching { budget_bytes: a.memory_mb << 20, max_rows: None, progress: true };
    let bar = spinner(format!("{} over {} generated tokens", method.name(), targets.len()));
    let t1 = std::time::Instant::now();
    let r = attribute_continuation(&lm, &prompt, &targets, &method, score.clone(), sources, &skip, &batching)?;
    let secs = t1.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let matrix: Vec<Vec<f64>> = r.matrix.to_dtype(DType::F64)?.to_vec2()?;
    let scores: Vec<f64> = r.scores.iter().map(|&s| s as f64).collect();
    let note = format!(
        "{} of each generated token's {} to {} before it{}; {}. {} generated tokens explained in {secs:.2} s.",
        a.method,
        match &a.contrast {
            Some(c) => format!("log-probability minus that of its alternative in {c:?}"),
            None => a.score.clone(),
        },
        if sources == Sources::All { "every token" } else { "the prompt's tokens" },
        if skip.is_empty() { String::new() } else { format!(", special tokens at {skip:?} skipped") },
        match &method {
            LlmMethod::IntegratedGradients { steps, .. } => format!("{steps} Gauss–Legendre nodes from baseline {}", a.baseline),
            LlmMethod::Ablation { .. } => format!("each {} replaced by baseline {}", &a.spans[..a.spans.len() - 1], a.baseline),
            LlmMethod::Shapley { sampling, .. } => format!(
                "Shapley values of the {}, absent ones replaced by baseline {}, {}",
                a.spans,
                a.baseline,
                match sampling {
                    ShapleySampling::Exact => "exact".to_string(),
                    ShapleySampling::Permutations { count, seed } => format!("{count} sampled orders (seed {seed})"),
                }
            ),
            LlmMethod::Saliency => "L2 norm of the gradient over the embedding".into(),
            _ => "summed over the embedding".into(),
        },
        targets.len()
    );
    let title = format!("{} — {} on {}", continuation.trim(), a.method, a.model);
    let html = GenerationPage { title: &title, note: &note, tokens: &pieces, prompt_len: prompt.len(), matrix: &matrix, scores: &scores }
        .render()
        .map_err(anyhow::Error::msg)?;
    crate::write_file(&a.out.join("generation.html"), html)?;
    let mut tensors = HashMap::new();
    tensors.insert("matrix".to_string(), r.matrix.clone());
    tensors.insert("per_dimension".to_string(), r.per_dimension.clone());
    tensors.insert("ids".to_string(), Tensor::new(all_ids.as_slice(), &candle_core::Device::Cpu)?);
    let st = a.out.join("attributions.safetensors");
    candle_core::safetensors::save(&tensors, &st).with_context(|| format!("cannot write {}", st.display()))?;
    json["method"] = serde_json::json!(a.method);
    json["parameters"] = serde_json::json!({"steps": a.steps, "permutations": a.permutations, "seed": a.seed, "spans": a.spans, "baseline": a.baseline, "score": a.score, "contrast": a.contrast, "sources": a.sources, "memory_mb": a.memory_mb, "skipped": skip});
    json["scores"] = serde_json::json!(scores);
    json["baseline_scores"] = serde_json::json!(r.baseline_scores);
    json["matrix"] = serde_json::json!(matrix);
    if let Some(w) = &words {
        let m: Vec<Vec<f64>> = r.span_columns(w)?.to_dtype(DType::F64)?.to_vec2()?;
        json["spans"] = serde_json::json!(w.iter().map(|s| [s.start, s.end]).collect::<Vec<_>>());
        json["span_text"] = serde_json::json!(w.iter().map(|s| pieces[s.clone()].concat()).collect::<Vec<_>>());
        json["span_matrix"] = serde_json::json!(m);
    }
    json["attribution_seconds"] = serde_json::json!(secs);
    json["seconds_per_token"] = serde_json::json!(secs / targets.len() as f64);
    crate::write_file(&a.out.join("result.json"), serde_json::to_string_pretty(&json)?)?;
    eprintln!(
        "{} tokens explained with {} in {secs:.2} s ({:.3} s per token); wrote {}/{{generation.html, result.json, attributions.safetensors}}",
        targets.len(),
        a.method,
        secs / targets.len() as f64,
        a.out.display()
    );
    Ok(())
}
