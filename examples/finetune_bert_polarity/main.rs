//! Fine-tunes all-MiniLM-L6-v2 (a 6-layer BERT, `scripts/fetch-assets.sh minilm`) as a
//! sentence-polarity classifier on the Pang & Lee sentences (`… polarity`), with the
//! project's trainer (`bert_finetune::finetune_polarity`): every layer plus a fresh head,
//! AdamW, the same stratified 80/20 split as the LSTM example. Writes the fine-tuned
//! `model.safetensors` (encoder, pooler and `classifier.*`) and the MiniLM `config.json` /
//! `tokenizer.json` into the output folder, which `BertClassifier::from_dir` loads. Not
//! committed: the data are for research use only.
//!
//! ```text
//! cargo run --release --example finetune_bert_polarity -- [--out DIR] [--epochs N]
//! ```

#[global_allocator]
static GLOBAL: candle_explain::alloc::Allocator = candle_explain::alloc::Allocator;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use candle_explain::models::bert_finetune::{finetune_polarity, PolarityFinetuning};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn main() -> Result<()> {
    candle_explain::alloc::retain_freed_memory();
    let mut out = std::path::PathBuf::from(format!("{ROOT}/assets/minilm-polarity"));
    candle_explain::models::assets::ensure("minilm")?;
    candle_explain::models::assets::ensure("polarity")?;
    let mut t = PolarityFinetuning {
        encoder: format!("{ROOT}/assets/all-MiniLM-L6-v2").into(),
        data: format!("{ROOT}/assets/polarity/pang_lee_sentences.csv").into(),
        epochs: 2,
        progress: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--out" => out = it.next().context("--out needs a folder")?.into(),
            "--epochs" => {
                t.epochs = it
                    .next()
                    .context("--epochs needs a number")?
                    .parse()
                    .context("--epochs takes a number")?
            }
            "-h" | "--help" => {
                println!("usage: finetune_bert_polarity [--out DIR (default assets/minilm-polarity)] [--epochs N (default 2)]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let t0 = std::time::Instant::now();
    let r = finetune_polarity(&t, &out, &Device::Cpu)?;
    for (e, (l, a)) in r.losses.iter().zip(&r.held_out_accuracy).enumerate() {
        println!(
            "epoch {}: loss {l:.4}, held-out accuracy {:.2} %",
            e + 1,
            a * 100.0
        );
    }
    println!(
        "{} train / {} held-out sentences, {:.0} s",
        r.sentences.0,
        r.sentences.1,
        t0.elapsed().as_secs_f64()
    );
    println!("wrote {}", out.display());
    Ok(())
}
