//! Fine-tunes all-MiniLM-L6-v2 (a 6-layer BERT, `scripts/fetch-assets.sh minilm`) as a
//! sentence-polarity classifier on the Pang & Lee sentences (`… polarity`), with the
//! project's trainer: every layer plus a fresh head, AdamW, the same stratified 80/20 split as
//! the LSTM example. Writes the fine-tuned `model.safetensors` (encoder, pooler and
//! `classifier.*`) and the MiniLM `config.json` / `tokenizer.json` into the output folder,
//! which `BertClassifier::from_dir` loads. Not committed: the data are for research use only.
//!
//! ```text
//! cargo run --release --example finetune_bert_polarity -- [--out DIR] [--epochs N]
//! ```

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain::models::bert::{load_tokenizer, BertOnIds};
use candle_explain::models::text::{load_polarity_csv, split};
use candle_explain::models::train::{save, train, OptimizerKind, TrainConfig};
use candle_explain::models::{BertClassifier, BertConfig};
use candle_nn::{VarBuilder, VarMap};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Token limit per sentence (the longest are ~90 WordPiece tokens; most under 40).
const MAX_TOKENS: usize = 64;

fn main() -> Result<()> {
    let (mut out, mut epochs) = (std::path::PathBuf::from(format!("{ROOT}/assets/minilm-polarity")), 2usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--out" => out = it.next().context("--out needs a folder")?.into(),
            "--epochs" => epochs = it.next().context("--epochs needs a number")?.parse().context("--epochs takes a number")?,
            "-h" | "--help" => {
                println!("usage: finetune_bert_polarity [--out DIR (default assets/minilm-polarity)] [--epochs N (default 2)]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let dev = Device::Cpu;
    let minilm = format!("{ROOT}/assets/all-MiniLM-L6-v2");
    let config_text = std::fs::read_to_string(format!("{minilm}/config.json")).context("MiniLM: run scripts/fetch-assets.sh minilm")?;
    let config = BertConfig::from_json(&config_text)?;
    let tok = load_tokenizer(format!("{minilm}/tokenizer.json"), &config)?;
    let data = load_polarity_csv(format!("{ROOT}/assets/polarity/pang_lee_sentences.csv"))?;
    let (train_set, test_set) = split(data, 0.2, 7)?;
    // Ids padded with 0 ([PAD]) on the right to the longest sentence; the model masks them.
    let encode = |set: &[(String, u32)]| -> Result<(Tensor, Tensor)> {
        let rows: Vec<Vec<u32>> = set
            .iter()
            .map(|(t, _)| {
                let mut ids = tok.encode(t.as_str(), true).map_err(anyhow::Error::msg)?.get_ids().to_vec();
                if ids.len() > MAX_TOKENS {
                    ids.truncate(MAX_TOKENS - 1);
                    ids.push(102); // keep [SEP] last
                }
                Ok(ids)
            })
            .collect::<Result<_>>()?;
        let len = rows.iter().map(Vec::len).max().unwrap_or(1);
        let flat: Vec<u32> = rows.iter().flat_map(|r| r.iter().copied().chain(std::iter::repeat(0)).take(len)).collect();
        Ok((Tensor::from_vec(flat, (rows.len(), len), &dev)?, Tensor::new(set.iter().map(|(_, l)| *l).collect::<Vec<u32>>(), &dev)?))
    };
    let ((xtr, ytr), (xte, yte)) = (encode(&train_set)?, encode(&test_set)?);
    // Variables for every parameter, set from the checkpoint; the head starts fresh.
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, &dev);
    let model = BertClassifier::load(vb.clone(), vb, config)?;
    let pretrained = candle_core::safetensors::load(format!("{minilm}/model.safetensors"), &dev)?;
    let mut set = 0;
    for (name, var) in vars.data().lock().map_err(|_| anyhow::anyhow!("poisoned"))?.iter() {
        if let Some(t) = pretrained.get(name) {
            var.set(t)?;
            set += 1;
        }
    }
    println!("{set} tensors from MiniLM, {} fresh (the head)", vars.all_vars().len() - set);
    let cfg = TrainConfig { epochs, batch_size: 32, learning_rate: 5e-5, optimizer: OptimizerKind::AdamW { weight_decay: 1e-2 }, seed: 1, progress: true };
    let t0 = std::time::Instant::now();
    let report = train(&BertOnIds(&model), &vars, &xtr, &ytr, Some((&xte, &yte)), &cfg)?;
    for (e, (l, a)) in report.losses.iter().zip(&report.accuracy).enumerate() {
        println!("epoch {}: loss {l:.4}, held-out accuracy {:.2} %", e + 1, a * 100.0);
    }
    println!("{} train / {} held-out sentences, {:.0} s", train_set.len(), test_set.len(), t0.elapsed().as_secs_f64());
    std::fs::create_dir_all(&out)?;
    save(&vars, out.join("model.safetensors"))?;
    std::fs::write(out.join("config.json"), config_text.replacen("\"model_type\"", "\"num_labels\": 2,\n  \"model_type\"", 1))?;
    std::fs::copy(format!("{minilm}/tokenizer.json"), out.join("tokenizer.json"))?;
    println!("wrote {}", out.display());
    Ok(())
}
