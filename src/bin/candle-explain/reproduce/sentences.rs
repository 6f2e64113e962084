//! The text side of the papers' experiments: the polarity LSTM (word embeddings → LSTM →
//! linear) and held-out movie-review sentences of a given length, explained one sentence at a
//! time at the word embeddings, each word a feature group.

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use candle_explain::models::lstm_classifier::{encode_left_padded, train_polarity, OnIds, PolarityTraining};
use candle_explain::models::text::{load_polarity_csv, split, Vocab};
use candle_explain::models::LstmClassifier;
use candle_explain::prelude::*;

pub(crate) struct Sentence {
    pub words: Vec<String>,
    /// `(1, L, E)` word embeddings; the zero vector (padding) is the baseline.
    pub x: Tensor,
    /// `(1, L, E)` word ids per element: the feature groups.
    pub mask: Tensor,
    /// The predicted class, explained.
    pub target: Target,
}

pub(crate) struct Sentences {
    pub model: LstmClassifier,
    pub sentences: Vec<Sentence>,
    /// Accuracy on the held-out 20 % the sentences come from.
    pub accuracy: f64,
    /// Where the classifier came from, for the report.
    pub source: String,
}

/// The classifier of `assets/lstm-polarity/` (what `train_lstm_polarity` writes), trained
/// there first when missing (8 epochs, about 40 s). `--quick` without that folder trains 2
/// epochs and keeps them in memory only.
fn classifier(quick: bool, dev: &Device) -> Result<(LstmClassifier, Vocab, String)> {
    let assets = candle_explain::models::assets::assets_dir();
    let dir = assets.join("lstm-polarity");
    if dir.join("model.safetensors").exists() {
        let (m, v) = LstmClassifier::from_dir(&dir, dev)?;
        return Ok((m, v, format!("loaded from `{}`", "assets/lstm-polarity")));
    }
    candle_explain::models::assets::ensure("minilm")?;
    let epochs = if quick { 2 } else { 8 };
    let t = PolarityTraining { assets, epochs, bidirectional: false, progress: false };
    let trained = train_polarity(&t, dev).context("training the polarity LSTM")?;
    if !quick {
        trained.save(&dir)?;
    }
    Ok((trained.model, trained.vocab, format!("trained here ({epochs} epochs, `train_polarity`)")))
}

/// `count` held-out sentences of `min..=max` words (after the vocabulary's tokenisation),
/// in the order of the split, and the classifier's held-out accuracy.
pub(crate) fn polarity(quick: bool, count: usize, min: usize, max: usize, dev: &Device) -> Result<Sentences> {
    let data_dir = candle_explain::models::assets::ensure("polarity")?;
    let (model, vocab, source) = classifier(quick, dev)?;
    let (_, test) = split(load_polarity_csv(data_dir.join("pang_lee_sentences.csv"))?, 0.2, 7)?;
    let texts: Vec<&str> = test.iter().map(|(s, _)| s.as_str()).collect();
    let logits = OnIds(&model).forward(&encode_left_padded(&vocab, &texts, 50, dev)?)?;
    let pred = logits.argmax(1)?.to_vec1::<u32>()?;
    let right = test.iter().zip(&pred).filter(|((_, y), p)| y == *p).count();
    let mut sentences = vec![];
    for (text, _) in &test {
        let ids = encode_left_padded(&vocab, &[text.as_str()], 50, dev)?;
        let l = ids.dim(1)?;
        if l < min || l > max {
            continue;
        }
        let x = model.embed(&ids)?;
        let class = OnIds(&model).forward(&ids)?.argmax(1)?.to_vec1::<u32>()?[0] as usize;
        let e = x.dim(2)?;
        let mask = Tensor::arange(0u32, l as u32, dev)?.reshape((1, l, 1))?.broadcast_as((1, l, e))?.contiguous()?;
        let words = vocab.decode(&ids.squeeze(0)?.to_vec1::<u32>()?).iter().map(|w| w.to_string()).collect();
        sentences.push(Sentence { words, x, mask, target: Target::Class(class) });
        if sentences.len() == count {
            break;
        }
    }
    if sentences.len() < count {
        anyhow::bail!("only {} held-out sentences have {min}..={max} words; {count} asked for", sentences.len());
    }
    Ok(Sentences { model, sentences, accuracy: right as f64 / test.len() as f64, source })
}
