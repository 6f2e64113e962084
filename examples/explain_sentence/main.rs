//! Explains sentences with the LSTM sentiment classifier: which words made it say positive or
//! negative? Integrated Gradients (64 Gauss–Legendre points, zero baseline), LRP with the
//! conservative LSTM rules (signal-take-all gates) and Gradient × Input, all at the word
//! embeddings and summed over each word's vector. Prints the scores and writes
//! `tokens.html` (coloured words, a legend) and `scores.json`.
//!
//! The classifier comes from `assets/lstm-polarity/`; when that folder is missing it is
//! trained first (about 40 s; fetches its data on first run).
//!
//! ```text
//! cargo run --release --example explain_sentence -- ["your sentence" ...] [--out DIR]
//! ```

#[global_allocator]
static GLOBAL: candle_explain::alloc::Allocator = candle_explain::alloc::Allocator;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use candle_explain::models::lstm_classifier::{
    encode_left_padded, train_polarity, OnIds, PolarityTraining,
};
use candle_explain::models::LstmClassifier;
use candle_explain::prelude::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn main() -> Result<()> {
    candle_explain::alloc::retain_freed_memory();
    let (mut sentences, mut out) = (
        Vec::<String>::new(),
        std::path::PathBuf::from("out/explain_sentence"),
    );
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = it.next().context("--out needs a folder")?.into(),
            "-h" | "--help" => {
                println!("usage: explain_sentence [SENTENCE ...] [--out DIR (default out/explain_sentence)]");
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
    let dir = std::path::PathBuf::from(format!("{ROOT}/assets/lstm-polarity"));
    if !dir.join("model.safetensors").exists() {
        println!(
            "no classifier in {}: training it (about 40 s)",
            dir.display()
        );
        candle_explain::models::assets::ensure("minilm")?;
        candle_explain::models::assets::ensure("polarity")?;
        let t = PolarityTraining {
            assets: format!("{ROOT}/assets").into(),
            epochs: 8,
            bidirectional: false,
            progress: true,
        };
        let trained = train_polarity(&t, &dev)?;
        println!(
            "held-out accuracy {:.2} %",
            trained.held_out_accuracy.last().copied().unwrap_or(0.0) * 100.0
        );
        trained.save(&dir)?;
    }
    let (model, vocab) = LstmClassifier::from_dir(&dir, &dev)?;
    let ig = IntegratedGradients {
        quadrature: Quadrature::GaussLegendre,
        ..IntegratedGradients::new(64)
    };
    let lrp = Lrp::new(
        Composite::new(ActRule::Pass)
            .with(Selector::kind(LayerKind::Linear), LayerRule::Epsilon(1e-3))
            .with(Selector::kind(LayerKind::Sum), LayerRule::Epsilon(1e-3)),
    );
    let methods: [(&str, &dyn Attributor); 3] = [
        ("Integrated Gradients", &ig),
        ("LRP (signal-take-all)", &lrp),
        ("Gradient × Input", &InputXGradient::default()),
    ];
    let (mut rows, mut json) = (vec![], vec![]);
    for s in &sentences {
        // One sentence at a time: no padding, every position a word.
        let ids = encode_left_padded(&vocab, &[s.as_str()], 50, &dev)?;
        let words: Vec<String> = vocab
            .decode(&ids.squeeze(0)?.to_vec1::<u32>()?)
            .iter()
            .map(|w| w.to_string())
            .collect();
        let logits: Vec<f32> = OnIds(&model).forward(&ids)?.squeeze(0)?.to_vec1()?;
        let class = if logits[1] > logits[0] { 1 } else { 0 };
        let label = ["negative", "positive"][class];
        println!(
            "\n{s}\n  → {label} (logits {:.3} / {:.3})",
            logits[0], logits[1]
        );
        let x = model.embed(&ids)?;
        let mut per_method = vec![];
        for (name, m) in methods {
            let a = m.attribute(&model, &x, &Target::Class(class))?;
            let scores: Vec<f64> = a
                .attributions
                .sum(2)?
                .squeeze(0)?
                .to_dtype(candle_core::DType::F64)?
                .to_vec1()?;
            let line: Vec<String> = words
                .iter()
                .zip(&scores)
                .map(|(w, v)| format!("{w} {v:+.3}"))
                .collect();
            let delta = a.largest_delta()?;
            println!(
                "  {name:<24} {}{}",
                line.join("  "),
                delta.map_or(String::new(), |d| format!(
                    "   (completeness error {d:.2e})"
                ))
            );
            rows.push((
                format!("{s} → {label} — {name}"),
                words.clone(),
                scores.clone(),
            ));
            per_method.push(serde_json::json!({ "method": name, "scores": scores }));
        }
        json.push(serde_json::json!({ "sentence": s, "words": words, "predicted": label, "logits": logits, "methods": per_method }));
    }
    std::fs::create_dir_all(&out)?;
    let html = candle_explain::viz::token_html("Which words decided the sentiment?", &rows)
        .map_err(anyhow::Error::msg)?;
    std::fs::write(out.join("tokens.html"), html)?;
    std::fs::write(
        out.join("scores.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    println!("\nwrote {}/{{tokens.html, scores.json}}", out.display());
    Ok(())
}
