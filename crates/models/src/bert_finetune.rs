//! Fine-tuning a Hugging Face BERT folder (all-MiniLM-L6-v2 by default) as a sentence-polarity
//! classifier on the Pang & Lee sentences with the project's trainer: every layer plus a
//! fresh two-class head, AdamW, the stratified 80/20 split of the LSTM (seed 7). The result
//! is a folder `BertClassifier::from_dir` loads. Used by `examples/finetune_bert_polarity` and
//! by `examples/explain_text` when no classifier exists yet.

use crate::bert::{load_tokenizer, BertOnIds};
use crate::error::{Error, Result};
use crate::text::{load_polarity_csv, split};
use crate::train::{save, train, OptimizerKind, TrainConfig};
use crate::{BertClassifier, BertConfig};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::path::{Path, PathBuf};

/// Token limit per sentence (the longest are ~90 WordPiece tokens; most under 40).
pub const MAX_TOKENS: usize = 64;

#[derive(Debug, Clone)]
pub struct PolarityFinetuning {
    /// The pretrained BERT folder (`config.json`, `model.safetensors`, `tokenizer.json`).
    pub encoder: PathBuf,
    /// `pang_lee_sentences.csv` (`scripts/fetch-assets.sh polarity`).
    pub data: PathBuf,
    pub epochs: usize,
    pub progress: bool,
}

#[derive(Debug, Clone)]
pub struct FinetuneReport {
    pub losses: Vec<f64>,
    pub held_out_accuracy: Vec<f64>,
    pub sentences: (usize, usize),
}

/// Sentences → right-padded ids `(n, longest)` (0 = `[PAD]`, masked by the model) and labels.
fn encode(
    tok: &tokenizers::Tokenizer,
    set: &[(String, u32)],
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let rows: Vec<Vec<u32>> = set
        .iter()
        .map(|(t, _)| {
            let mut ids = tok
                .encode(t.as_str(), true)
                .map_err(|e| Error::Data {
                    path: "polarity sentences".into(),
                    line: 0,
                    reason: format!("tokenizer: {e}"),
                })?
                .get_ids()
                .to_vec();
            if ids.len() > MAX_TOKENS {
                let sep = ids[ids.len() - 1];
                ids.truncate(MAX_TOKENS - 1);
                ids.push(sep); // keep [SEP] last
            }
            Ok(ids)
        })
        .collect::<Result<_>>()?;
    let len = rows.iter().map(Vec::len).max().unwrap_or(1);
    let flat: Vec<u32> = rows
        .iter()
        .flat_map(|r| r.iter().copied().chain(std::iter::repeat(0)).take(len))
        .collect();
    Ok((
        Tensor::from_vec(flat, (rows.len(), len), device)?,
        Tensor::new(set.iter().map(|(_, l)| *l).collect::<Vec<u32>>(), device)?,
    ))
}

/// Fine-tunes and writes `model.safetensors`, `config.json` (with `num_labels: 2` and the
/// labels' names in `id2label`) and
/// `tokenizer.json` into `out`.
pub fn finetune_polarity(
    t: &PolarityFinetuning,
    out: &Path,
    device: &Device,
) -> Result<FinetuneReport> {
    let file = |p: PathBuf| -> Result<PathBuf> {
        if p.exists() {
            Ok(p)
        } else {
            Err(Error::MissingFile(format!(
                "{} (scripts/fetch-assets.sh polarity minilm)",
                p.display()
            )))
        }
    };
    let config_text = std::fs::read_to_string(file(t.encoder.join("config.json"))?)?;
    let config = BertConfig::from_json(&config_text)?;
    let tok = load_tokenizer(file(t.encoder.join("tokenizer.json"))?, &config)?;
    let (train_set, test_set) = split(load_polarity_csv(file(t.data.clone())?)?, 0.2, 7)?;
    let ((xtr, ytr), (xte, yte)) = (
        encode(&tok, &train_set, device)?,
        encode(&tok, &test_set, device)?,
    );
    // Variables for every parameter, set from the checkpoint; the head starts fresh.
    let vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&vars, DType::F32, device);
    let model = BertClassifier::load(vb.clone(), vb, config)?;
    let weights = file(t.encoder.join("model.safetensors"))?;
    let pretrained =
        candle_core::safetensors::load(&weights, device).map_err(|e| Error::Checkpoint {
            path: weights.display().to_string(),
            reason: e.to_string(),
        })?;
    {
        let data = vars.data().lock().map_err(|_| Error::Data {
            path: "variables".into(),
            line: 0,
            reason: "lock poisoned".into(),
        })?;
        for (name, var) in data.iter() {
            // A missing tensor is the fresh head (`classifier.*`).
            if let Some(p) = pretrained
                .get(name)
                .or_else(|| pretrained.get(&format!("bert.{name}")))
            {
                var.set(p)?;
            }
        }
    }
    let cfg = TrainConfig {
        epochs: t.epochs,
        batch_size: 32,
        learning_rate: 5e-5,
        optimizer: OptimizerKind::AdamW { weight_decay: 1e-2 },
        seed: 1,
        progress: t.progress,
    };
    let report = train(
        &BertOnIds(&model),
        &vars,
        &xtr,
        &ytr,
        Some((&xte, &yte)),
        &cfg,
    )?;
    std::fs::create_dir_all(out)?;
    save(&vars, out.join("model.safetensors"))?;
    std::fs::write(
        out.join("config.json"),
        config_text.replacen(
            "\"model_type\"",
            "\"num_labels\": 2,\n  \"id2label\": {\"0\": \"negative\", \"1\": \"positive\"},\n  \"model_type\"",
            1,
        ),
    )?;
    std::fs::copy(t.encoder.join("tokenizer.json"), out.join("tokenizer.json"))?;
    Ok(FinetuneReport {
        losses: report.losses,
        held_out_accuracy: report.accuracy,
        sentences: (train_set.len(), test_set.len()),
    })
}
