//! Explains sentences with a BERT sentence classifier from a Hugging Face folder or a hub id
//! (resolved in the local Hugging Face cache, offline): which WordPiece tokens made it say
//! positive or negative? Integrated Gradients (32 Gauss–Legendre points from the zero
//! embedding), LRP with the conservative transformer rules (softmax and LayerNorm scale held
//! constant, Ali et al. 2022) and Gradient × Input, at the word embeddings, summed per token.
//! Prints the scores and writes `tokens.html` (coloured tokens, legend) and `scores.json`.
//!
//! The default model is `assets/minilm-polarity` (MiniLM fine-tuned on the sentence-polarity
//! data); when that folder is missing it is fine-tuned first (one epoch, about 4 min on two
//! cores; fetches its data on first run).
//!
//! ```text
//! cargo run --release --example explain_bert -- ["your sentence" ...] [--model DIR|ORG/NAME] [--out DIR]
//! ```

#[global_allocator]
static GLOBAL: candle_explain::alloc::Allocator = candle_explain::alloc::Allocator;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, D};
use candle_explain::models::bert::{encode, load_tokenizer};
use candle_explain::models::bert_finetune::{finetune_polarity, PolarityFinetuning};
use candle_explain::models::BertClassifier;
use candle_explain::prelude::*;
use std::path::PathBuf;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn main() -> Result<()> {
    candle_explain::alloc::retain_freed_memory();
    let (mut sentences, mut out, mut model_arg) = (
        Vec::<String>::new(),
        PathBuf::from("out/explain_bert"),
        None::<String>,
    );
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = it.next().context("--out needs a folder")?.into(),
            "--model" => model_arg = Some(it.next().context("--model needs a folder or a hub id")?),
            "-h" | "--help" => {
                println!("usage: explain_bert [SENTENCE ...] [--model DIR|ORG/NAME (default assets/minilm-polarity)] [--out DIR (default out/explain_bert)]");
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
        Some(m) => candle_explain::models::hub::snapshot(m, "main").with_context(|| {
            format!("{m:?} is neither a folder nor a hub id in the local Hugging Face cache")
        })?,
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
        let ids = encode(&tok, s, &model.config, &dev)?;
        let tokens: Vec<String> = ids
            .squeeze(0)?
            .to_vec1::<u32>()?
            .into_iter()
            .map(|i| tok.id_to_token(i).unwrap_or_else(|| format!("#{i}")))
            .collect();
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
            let line: Vec<String> = tokens
                .iter()
                .zip(&scores)
                .map(|(w, v)| format!("{w} {v:+.3}"))
                .collect();
            let delta = a
                .delta
                .as_ref()
                .map(|d| {
                    d.abs()
                        .and_then(|d| d.max(0))
                        .and_then(|d| d.to_scalar::<f32>())
                })
                .transpose()?;
            println!(
                "  {name:<22} {}{}",
                line.join("  "),
                delta.map_or(String::new(), |d| format!(
                    "   (completeness error {d:.2e})"
                ))
            );
            rows.push((
                format!("{s} → {label} — {name}"),
                tokens.clone(),
                scores.clone(),
            ));
            per_method.push(serde_json::json!({ "method": name, "scores": scores, "completeness_error": delta }));
        }
        json.push(serde_json::json!({ "sentence": s, "tokens": tokens, "predicted": label, "methods": per_method }));
    }
    std::fs::create_dir_all(&out)?;
    let html = candle_explain::viz::token_html("Which tokens decided the sentiment? (BERT)", &rows)
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
