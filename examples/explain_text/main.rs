//! Explains sentences with a Hugging Face text classifier — BERT, DistilBERT, RoBERTa,
//! XLM-RoBERTa or ELECTRA, from a folder or a hub id (`org/name[@revision]`, from the hub
//! cache or downloaded; see `models::hub`): which words made it say what it says (its
//! `id2label` names)? Integrated Gradients (32 Gauss–Legendre points from the zero
//! embedding), LRP with the conservative transformer rules (softmax and LayerNorm scale held
//! constant, Ali et al. 2022) and Gradient × Input, at the word embeddings, summed per token
//! and per word (its pieces). Prints the word scores and writes `tokens.html` (coloured words,
//! legend) and `scores.json` (words and tokens).
//!
//! The default model is `assets/minilm-polarity` (MiniLM fine-tuned on the sentence-polarity
//! data); when that folder is missing it is fine-tuned first (one epoch, about 4 min on two
//! cores; fetches its data on first run).
//!
//! ```text
//! cargo run --release --example explain_text -- ["your sentence" ...] [--model DIR|ORG/NAME] [--out DIR]
//! ```

#[global_allocator]
static GLOBAL: candle_explain::alloc::Allocator = candle_explain::alloc::Allocator;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, D};
use candle_explain::models::bert::{encode_words, load_tokenizer};
use candle_explain::models::bert_finetune::{finetune_polarity, PolarityFinetuning};
use candle_explain::models::BertClassifier;
use candle_explain::prelude::*;
use std::path::PathBuf;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn main() -> Result<()> {
    candle_explain::alloc::retain_freed_memory();
    let (mut sentences, mut out, mut model_arg) = (
        Vec::<String>::new(),
        PathBuf::from("out/explain_text"),
        None::<String>,
    );
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = it.next().context("--out needs a folder")?.into(),
            "--model" => model_arg = Some(it.next().context("--model needs a folder or a hub id")?),
            "-h" | "--help" => {
                println!("usage: explain_text [SENTENCE ...] [--model DIR|ORG/NAME (default assets/minilm-polarity)] [--out DIR (default out/explain_text)]");
                return Ok(());
            }
            flag if flag.starts_with("--") => bail!("unknown flag {flag:?} (try --help)"),
            s => sentences.push(s.to_string()),
        }
    }
    if sentences.is_empty() {
        sentences = [
            "a gripping, beautifully acted film that never lets go.",
            "the plot is thin and the jokes fall flat.",
            "not bad at all.",
        ]
        .map(String::from)
        .to_vec();
    }
    let dev = Device::Cpu;
    let dir = match &model_arg {
        Some(m) if std::path::Path::new(m).is_dir() => PathBuf::from(m),
        Some(m) => candle_explain::models::hub::snapshot_spec(m)
            .with_context(|| format!("{m:?} is neither a folder nor a hub id that resolves"))?,
        None => {
            let d = PathBuf::from(format!("{ROOT}/assets/minilm-polarity"));
            if !d.join("model.safetensors").exists() {
                println!(
                    "no classifier in {}: fine-tuning MiniLM for one epoch first (about 4 min)",
                    d.display()
                );
                candle_explain::models::assets::ensure("minilm")?;
                candle_explain::models::assets::ensure("polarity")?;
                let t = PolarityFinetuning {
                    encoder: format!("{ROOT}/assets/all-MiniLM-L6-v2").into(),
                    data: format!("{ROOT}/assets/polarity/pang_lee_sentences.csv").into(),
                    epochs: 1,
                    progress: true,
                };
                let r = finetune_polarity(&t, &d, &dev)?;
                println!(
                    "held-out accuracy {:.2} %",
                    r.held_out_accuracy.last().copied().unwrap_or(0.0) * 100.0
                );
            }
            d
        }
    };
    let model = BertClassifier::from_dir(&dir, None, &dev)?;
    let tok = load_tokenizer(dir.join("tokenizer.json"), &model.config)?;
    // The checkpoint's names for its classes (`id2label`).
    let labels: Vec<String> = model.config.labels.clone();
    let ig = IntegratedGradients {
        quadrature: Quadrature::GaussLegendre,
        ..IntegratedGradients::new(32)
    };
    let lrp = Lrp::new(
        Composite::new(ActRule::Pass)
            .with(Selector::kind(LayerKind::Linear), LayerRule::Epsilon(1e-3))
            .with(Selector::kind(LayerKind::Sum), LayerRule::Epsilon(1e-3)),
    );
    let methods: [(&str, &dyn Attributor); 3] = [
        ("Integrated Gradients", &ig),
        ("LRP (conservative)", &lrp),
        ("Gradient × Input", &InputXGradient::default()),
    ];
    let (mut rows, mut json) = (vec![], vec![]);
    for s in &sentences {
        let (ids, tokens, words) = encode_words(&tok, s, &model.config, &dev)?;
        let word_text: Vec<String> = words.iter().map(|w| w.word.clone()).collect();
        let x = model.embed(&ids)?;
        let logits = model.forward(&x)?;
        let class = logits.argmax(D::Minus1)?.to_vec1::<u32>()?[0] as usize;
        let label = &labels[class];
        println!(
            "\n{s}\n  → {label} (logits {:?})",
            logits.squeeze(0)?.to_vec1::<f32>()?
        );
        let mut per_method = vec![];
        for (name, m) in methods {
            let a = m.attribute(&model, &x, &Target::Class(class))?;
            let scores: Vec<f64> = a
                .attributions
                .sum(2)?
                .squeeze(0)?
                .to_dtype(DType::F64)?
                .to_vec1()?;
            // Per word: the sum over its pieces (special tokens belong to no word).
            let word_scores: Vec<f64> = words
                .iter()
                .map(|w| w.tokens.iter().map(|&i| scores[i]).sum())
                .collect();
            let line: Vec<String> = word_text
                .iter()
                .zip(&word_scores)
                .map(|(w, v)| format!("{w} {v:+.3}"))
                .collect();
            let delta = a.largest_delta()?;
            println!(
                "  {name:<22} {}{}",
                line.join("  "),
                delta.map_or(String::new(), |d| format!(
                    "   (completeness error {d:.2e})"
                ))
            );
            rows.push((
                format!("{s} → {label} — {name}"),
                word_text.clone(),
                word_scores.clone(),
            ));
            per_method.push(serde_json::json!({ "method": name, "word_scores": word_scores, "token_scores": scores, "completeness_error": delta }));
        }
        json.push(serde_json::json!({ "sentence": s, "words": word_text, "tokens": tokens, "predicted": label, "methods": per_method }));
    }
    std::fs::create_dir_all(&out)?;
    let html = candle_explain::viz::token_html("Which words decided it?", &rows)
        .map_err(anyhow::Error::msg)?;
    std::fs::write(out.join("tokens.html"), html)?;
    std::fs::write(
        out.join("scores.json"),
        serde_json::to_string_pretty(
            &serde_json::json!({"model": dir.display().to_string(), "sentences": json}),
        )?,
    )?;
    println!("\nwrote {}/{{tokens.html, scores.json}}", out.display());
    Ok(())
}
