//! Trains the LSTM sentence classifier on the Pang & Lee sentence-polarity data (fetched by
//! `scripts/fetch-assets.sh polarity`: 4,000 movie-review sentences, 2,000 per class), with a
//! stratified 80/20 split, and writes `config.json`, `model.safetensors` and `vocab.json`
//! (the folder `LstmClassifier::from_dir` loads). The word vectors start from MiniLM's
//! WordPiece embeddings (`scripts/fetch-assets.sh minilm`) and stay frozen; the LSTM and the
//! head are trained. The data are licensed for research use
//! only, so neither the weights nor the vocabulary are committed: this example rebuilds them
//! deterministically (about a minute on two cores).
//!
//! ```text
//! cargo run --release --example train_lstm_polarity -- [--out DIR] [--epochs N] [--bidirectional]
//! ```

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain::models::lstm_classifier::{encode_left_padded, wordpiece_embeddings, OnIds};
use candle_explain::models::text::{load_polarity_csv, split, Vocab};
use candle_explain::models::train::{accuracy, save, train, OptimizerKind, TrainConfig};
use candle_explain::models::{LstmClassifier, LstmConfig};
use candle_nn::{VarBuilder, VarMap};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Sentences are short (median ≈ 20 words); longer ones keep their first 50.
const MAX_LEN: usize = 50;

fn main() -> Result<()> {
    let (mut out, mut epochs, mut bidirectional) = (std::path::PathBuf::from(format!("{ROOT}/assets/lstm-polarity")), 8usize, false);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--out" => out = it.next().context("--out needs a folder")?.into(),
            "--epochs" => epochs = it.next().context("--epochs needs a number")?.parse().context("--epochs takes a number")?,
            "--bidirectional" => bidirectional = true,
            "-h" | "--help" => {
                println!("usage: train_lstm_polarity [--out DIR (default assets/lstm-polarity)] [--epochs N (default 8)] [--bidirectional]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let dev = Device::Cpu;
    let data = load_polarity_csv(format!("{ROOT}/assets/polarity/pang_lee_sentences.csv"))?;
    let (train_set, test_set) = split(data, 0.2, 7)?;
    let vocab = Vocab::build(train_set.iter().map(|(t, _)| t.as_str()), 2, usize::MAX);
    let encode = |set: &[(String, u32)]| -> Result<(Tensor, Tensor)> {
        let texts: Vec<&str> = set.iter().map(|(t, _)| t.as_str()).collect();
        let ids = encode_left_padded(&vocab, &texts, MAX_LEN, &dev)?;
        let labels = Tensor::new(set.iter().map(|(_, l)| *l).collect::<Vec<u32>>(), &dev)?;
        Ok((ids, labels))
    };
    let (xtr, ytr) = encode(&train_set)?;
    let (xte, yte) = encode(&test_set)?;
    // 4,000 sentences are too few to learn word vectors from scratch (66.5 % held-out):
    // start from MiniLM's WordPiece embeddings, mapped onto our words, and keep them frozen.
    let minilm = format!("{ROOT}/assets/all-MiniLM-L6-v2");
    let bert = candle_core::safetensors::load(format!("{minilm}/model.safetensors"), &dev).context("MiniLM weights: run scripts/fetch-assets.sh minilm")?;
    let table = bert.get("embeddings.word_embeddings.weight").context("MiniLM checkpoint without embeddings.word_embeddings.weight")?;
    let pretrained = wordpiece_embeddings(&vocab, format!("{minilm}/vocab.txt"), table)?;
    let config = LstmConfig { vocab_size: vocab.len(), embed_dim: pretrained.dim(1)?, hidden: 64, layers: 1, bidirectional, classes: 2 };
    let mut vars = VarMap::new();
    let mut model = LstmClassifier::load(VarBuilder::from_varmap(&vars, DType::F32, &dev), config.clone())?;
    vars.set_one("embedding.weight", &pretrained)?;
    model.embedding = pretrained.detach();
    let cfg = TrainConfig { epochs, batch_size: 32, learning_rate: 2e-3, optimizer: OptimizerKind::AdamW { weight_decay: 1e-2 }, seed: 1, progress: true };
    let t0 = std::time::Instant::now();
    let report = train(&OnIds(&model), &vars, &xtr, &ytr, Some((&xte, &yte)), &cfg)?;
    for (e, (l, a)) in report.losses.iter().zip(&report.accuracy).enumerate() {
        println!("epoch {}: loss {l:.4}, held-out accuracy {:.2} %", e + 1, a * 100.0);
    }
    let train_acc = accuracy(&OnIds(&model), &xtr, &ytr, 256)?;
    println!(
        "{} train / {} held-out sentences, vocabulary {} words; train accuracy {:.2} %, held-out {:.2} % ({:.1} s)",
        train_set.len(), test_set.len(), vocab.len(), train_acc * 100.0, report.accuracy.last().copied().unwrap_or(0.0) * 100.0, t0.elapsed().as_secs_f64()
    );
    std::fs::create_dir_all(&out)?;
    save(&vars, out.join("model.safetensors"))?;
    std::fs::write(out.join("config.json"), config.to_json())?;
    vocab.save(out.join("vocab.json"))?;
    println!("wrote {}", out.display());
    Ok(())
}
