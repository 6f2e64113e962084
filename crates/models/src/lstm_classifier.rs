//! A sentence classifier: word embedding → LSTM (one or more layers, uni- or bidirectional)
//! → linear, in PyTorch's module names (`embedding.weight`, `lstm.weight_ih_l0`, …, `fc.*`).
//!
//! Attribution happens at the embedding output: [`LstmClassifier::embed`] turns ids into
//! `(B, L, E)` vectors and the `Explainable` forward takes those vectors, so IG and friends
//! interpolate in embedding space (the zero vector is the padding embedding, and the natural
//! baseline). Batches are padded on the left ([`encode_left_padded`]) so that the forward
//! direction's last state, which the head reads, comes after the last real word. A reverse
//! direction reads its state at position 0, after the padding; it is trained that way.

use crate::error::{Error, Result};
use crate::text::{Vocab, PAD_ID};
use candle_core::{Device, Tensor};
use candle_explain_core::nn::{Linear, Lstm};
use candle_explain_core::{Explainable, RuleCtx};
use candle_nn::VarBuilder;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct LstmConfig {
    pub vocab_size: usize,
    pub embed_dim: usize,
    pub hidden: usize,
    pub layers: usize,
    pub bidirectional: bool,
    pub classes: usize,
}

impl LstmConfig {
    fn bad(reason: String) -> Error {
        candle_explain_core::Error::InvalidParameter {
            name: "lstm config",
            reason,
        }
        .into()
    }

    pub fn validate(&self) -> Result<()> {
        let dims = [
            self.vocab_size,
            self.embed_dim,
            self.hidden,
            self.layers,
            self.classes,
        ];
        if dims.contains(&0) {
            return Err(Self::bad(format!(
                "every size must be at least 1, got {self:?}"
            )));
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::json!({
            "model_type": "lstm_classifier",
            "vocab_size": self.vocab_size, "embed_dim": self.embed_dim, "hidden": self.hidden,
            "layers": self.layers, "bidirectional": self.bidirectional, "classes": self.classes,
        })
        .to_string()
    }

    /// Reads a config written by [`LstmConfig::to_json`]; other `model_type`s are an error.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Self::bad(format!("not JSON: {e}")))?;
        match v.get("model_type").and_then(|t| t.as_str()) {
            Some("lstm_classifier") => {}
            other => {
                return Err(Self::bad(format!(
                    "model_type must be \"lstm_classifier\", got {other:?}"
                )))
            }
        }
        let size = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| Self::bad(format!("missing or non-integer {k:?}")))
        };
        let c = Self {
            vocab_size: size("vocab_size")?,
            embed_dim: size("embed_dim")?,
            hidden: size("hidden")?,
            layers: size("layers")?,
            bidirectional: v
                .get("bidirectional")
                .and_then(|b| b.as_bool())
                .ok_or_else(|| Self::bad("missing \"bidirectional\"".into()))?,
            classes: size("classes")?,
        };
        c.validate()?;
        Ok(c)
    }
}

#[derive(Debug, Clone)]
pub struct LstmClassifier {
    pub config: LstmConfig,
    pub embedding: Tensor,
    pub lstm: Lstm,
    pub fc: Linear,
}

impl LstmClassifier {
    pub fn load(vb: VarBuilder, config: LstmConfig) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let embedding = vb.pp("embedding").get_with_hints(
            (c.vocab_size, c.embed_dim),
            "weight",
            candle_nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        )?;
        let lstm = Lstm::load(
            vb.pp("lstm"),
            c.embed_dim,
            c.hidden,
            c.layers,
            c.bidirectional,
        )?;
        let dirs = if c.bidirectional { 2 } else { 1 };
        let fc = Linear::load(vb.pp("fc"), c.hidden * dirs, c.classes)?;
        Ok(Self {
            config,
            embedding,
            lstm,
            fc,
        })
    }

    /// A folder with `config.json`, `model.safetensors` and `vocab.json`.
    pub fn from_dir(dir: impl AsRef<Path>, device: &Device) -> Result<(Self, Vocab)> {
        let dir = dir.as_ref();
        let file = |name: &str| -> Result<std::path::PathBuf> {
            let p = dir.join(name);
            if p.exists() {
                Ok(p)
            } else {
                Err(Error::MissingFile(p.display().to_string()))
            }
        };
        let config = LstmConfig::from_json(&std::fs::read_to_string(file("config.json")?)?)?;
        let vocab = Vocab::load(file("vocab.json")?)?;
        if vocab.len() != config.vocab_size {
            return Err(LstmConfig::bad(format!(
                "the vocabulary has {} tokens but the model {}",
                vocab.len(),
                config.vocab_size
            )));
        }
        let weights = file("model.safetensors")?;
        let model = crate::checkpoint::load(&weights, candle_core::DType::F32, device, |vb| {
            Self::load(vb, config)
        })?;
        Ok((model, vocab))
    }

    /// Word ids `(B, L)` → embeddings `(B, L, E)`; ids outside the vocabulary are an error.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2().map_err(|_| {
            LstmConfig::bad(format!("ids must be (batch, length), got {:?}", ids.dims()))
        })?;
        let flat = ids.flatten_all()?.to_dtype(candle_core::DType::U32)?;
        let max = flat.max(0)?.to_scalar::<u32>()? as usize;
        if max >= self.config.vocab_size {
            return Err(LstmConfig::bad(format!(
                "token id {max} is outside the vocabulary of {}",
                self.config.vocab_size
            )));
        }
        // Padding embeds to exactly zero whatever row 0 holds (PyTorch's `padding_idx`).
        let keep = flat
            .ne(PAD_ID)?
            .to_dtype(self.embedding.dtype())?
            .unsqueeze(1)?;
        Ok(self
            .embedding
            .index_select(&flat, 0)?
            .broadcast_mul(&keep)?
            .reshape((b, l, self.config.embed_dim))?)
    }

    /// Logits from embeddings `(B, L, E)`.
    pub fn forward_embeds(
        &self,
        emb: &Tensor,
        ctx: &RuleCtx,
    ) -> candle_explain_core::Result<Tensor> {
        self.forward_embeds_masked(emb, None, ctx)
    }

    /// [`LstmClassifier::forward_embeds`] over a padded batch: `mask (B, L)` is 1 for words
    /// and 0 for padding (on either side), which the LSTM steps over; each row's logits are
    /// those of its words alone.
    pub fn forward_embeds_masked(
        &self,
        emb: &Tensor,
        mask: Option<&Tensor>,
        ctx: &RuleCtx,
    ) -> candle_explain_core::Result<Tensor> {
        let h = self.lstm.forward_masked(emb, mask, ctx)?;
        let (t, hs) = (h.dim(1)?, self.config.hidden);
        let last = h.narrow(1, t - 1, 1)?.squeeze(1)?.narrow(1, 0, hs)?;
        let read = if self.config.bidirectional {
            Tensor::cat(
                &[&last, &h.narrow(1, 0, 1)?.squeeze(1)?.narrow(1, hs, hs)?],
                1,
            )?
        } else {
            last
        };
        self.fc.forward_with(&read, ctx)
    }
}

impl Explainable for LstmClassifier {
    /// `x` is the embedding output `(B, L, E)`; a padded batch comes with its
    /// `"attention_mask"` `(B, L)` beside it (`candle_explain_core::WithInputs`).
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        if x.rank() != 3 || x.dim(2)? != self.config.embed_dim || x.dim(1)? == 0 {
            return Err(candle_explain_core::Error::InputShape {
                expected: format!("(batch, length ≥ 1, {}) embeddings", self.config.embed_dim),
                got: x.dims().to_vec(),
            });
        }
        // A padded batch: the mask given beside the input (`WithInputs`, "attention_mask").
        let mask = ctx.input("attention_mask");
        self.forward_embeds_masked(x, mask.as_ref(), ctx)
    }
}

/// The classifier on word ids (for training and prediction): `embed` then the forward.
pub struct OnIds<'a>(pub &'a LstmClassifier);

impl Explainable for OnIds<'_> {
    fn forward_with(&self, ids: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let emb = self.0.embed(ids)?;
        self.0.forward_embeds(&emb, ctx)
    }
}

/// Ids `(B, L)` padded on the left with [`PAD_ID`] to the longest text (at most `max_len`
/// words; longer texts keep their first `max_len`).
pub fn encode_left_padded<S: AsRef<str>>(
    vocab: &Vocab,
    texts: &[S],
    max_len: usize,
    device: &Device,
) -> Result<Tensor> {
    if texts.is_empty() || max_len == 0 {
        return Err(LstmConfig::bad(
            "need at least one text and max_len ≥ 1".into(),
        ));
    }
    let rows: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| vocab.encode(t.as_ref(), max_len))
        .collect();
    let len = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut ids = Vec::with_capacity(rows.len() * len);
    for r in &rows {
        ids.extend(std::iter::repeat_n(PAD_ID, len - r.len()));
        ids.extend_from_slice(r);
    }
    Ok(Tensor::from_vec(ids, (rows.len(), len), device)?)
}

/// Word vectors for `vocab` taken from a BERT checkpoint's WordPiece embeddings (`table`
/// `(pieces, dim)`, its `vocab.txt` one piece per line): a word in the WordPiece vocabulary
/// gets its row; any other word the mean of the rows of its greedy longest-match pieces
/// (`##` marks continuations); a word with no match, like `<unk>`, gets zeros, as `<pad>`.
pub fn wordpiece_embeddings(
    vocab: &Vocab,
    wordpiece_vocab: impl AsRef<Path>,
    table: &Tensor,
) -> Result<Tensor> {
    let path = wordpiece_vocab.as_ref();
    if !path.exists() {
        return Err(Error::MissingFile(format!(
            "{} (run `scripts/fetch-assets.sh minilm` to fetch it)",
            path.display()
        )));
    }
    let pieces: std::collections::HashMap<String, u32> = std::fs::read_to_string(path)?
        .lines()
        .enumerate()
        .map(|(i, l)| (l.to_string(), i as u32))
        .collect();
    let (rows, dim) = table.dims2()?;
    if pieces.len() != rows {
        return Err(LstmConfig::bad(format!(
            "{} has {} pieces but the embedding table {rows} rows",
            path.display(),
            pieces.len()
        )));
    }
    let split = |word: &str| -> Option<Vec<u32>> {
        let chars: Vec<char> = word.chars().collect();
        let (mut out, mut start) = (vec![], 0);
        while start < chars.len() {
            let found = (start + 1..=chars.len()).rev().find_map(|end| {
                let s: String = chars[start..end].iter().collect();
                pieces
                    .get(&if start == 0 { s } else { format!("##{s}") })
                    .map(|&id| (id, end))
            });
            let (id, end) = found?;
            out.push(id);
            start = end;
        }
        Some(out)
    };
    let host: Vec<f32> = table
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let mut out = vec![0f32; vocab.len() * dim];
    for (w, tok) in vocab.tokens().iter().enumerate() {
        let ids = if tok.starts_with('<') {
            None
        } else {
            split(tok)
        };
        let ids = ids.unwrap_or_default();
        for id in &ids {
            for (o, v) in out[w * dim..(w + 1) * dim]
                .iter_mut()
                .zip(&host[*id as usize * dim..][..dim])
            {
                *o += v / ids.len() as f32;
            }
        }
    }
    Ok(Tensor::from_vec(out, (vocab.len(), dim), table.device())?)
}

/// How [`train_polarity`] trains the classifier.
#[derive(Debug, Clone)]
pub struct PolarityTraining {
    /// The folder `scripts/fetch-assets.sh` fills (`polarity/`, `all-MiniLM-L6-v2/`).
    pub assets: std::path::PathBuf,
    pub epochs: usize,
    pub bidirectional: bool,
    pub progress: bool,
}

/// A trained classifier, its vocabulary and its accuracy per epoch on the held-out sentences.
pub struct TrainedPolarity {
    pub model: LstmClassifier,
    pub vocab: Vocab,
    pub vars: candle_nn::VarMap,
    pub held_out_accuracy: Vec<f64>,
    pub sentences: (usize, usize),
}

/// Trains the sentence-polarity LSTM deterministically: the Pang & Lee sentences, a stratified
/// 80/20 split (seed 7), a vocabulary of the training words seen twice, frozen MiniLM
/// WordPiece vectors mapped onto the words (from 3,200 sentences, learnt vectors overfit:
/// 66.5 % held-out against 74 %), an LSTM(384→64) and a linear head, left padding at ≤ 50 words,
/// AdamW (lr 2e-3, weight decay 1e-2), batch 32, seed 1.
pub fn train_polarity(t: &PolarityTraining, device: &Device) -> Result<TrainedPolarity> {
    use crate::text::{load_polarity_csv, split};
    use crate::train::{train, OptimizerKind, TrainConfig};
    let data = load_polarity_csv(t.assets.join("polarity/pang_lee_sentences.csv"))?;
    let (train_set, test_set) = split(data, 0.2, 7)?;
    let vocab = Vocab::build(train_set.iter().map(|(s, _)| s.as_str()), 2, usize::MAX);
    let encode = |set: &[(String, u32)]| -> Result<(Tensor, Tensor)> {
        let texts: Vec<&str> = set.iter().map(|(s, _)| s.as_str()).collect();
        Ok((
            encode_left_padded(&vocab, &texts, 50, device)?,
            Tensor::new(set.iter().map(|(_, l)| *l).collect::<Vec<u32>>(), device)?,
        ))
    };
    let ((xtr, ytr), (xte, yte)) = (encode(&train_set)?, encode(&test_set)?);
    let minilm = t.assets.join("all-MiniLM-L6-v2");
    let weights = minilm.join("model.safetensors");
    if !weights.exists() {
        return Err(Error::MissingFile(format!(
            "{} (run `scripts/fetch-assets.sh minilm`)",
            weights.display()
        )));
    }
    let bert = candle_core::safetensors::load(&weights, device)?;
    let table = bert
        .get("embeddings.word_embeddings.weight")
        .ok_or_else(|| Error::Checkpoint {
            path: weights.display().to_string(),
            reason: "no embeddings.word_embeddings.weight".into(),
        })?;
    let pretrained = wordpiece_embeddings(&vocab, minilm.join("vocab.txt"), table)?;
    let config = LstmConfig {
        vocab_size: vocab.len(),
        embed_dim: pretrained.dim(1)?,
        hidden: 64,
        layers: 1,
        bidirectional: t.bidirectional,
        classes: 2,
    };
    let mut vars = candle_nn::VarMap::new();
    let mut model = LstmClassifier::load(
        VarBuilder::from_varmap(&vars, candle_core::DType::F32, device),
        config,
    )?;
    // Frozen: the model reads a copy the optimiser does not see; the saved file gets the values.
    vars.set_one("embedding.weight", &pretrained)?;
    model.embedding = pretrained.detach();
    let cfg = TrainConfig {
        epochs: t.epochs,
        batch_size: 32,
        learning_rate: 2e-3,
        optimizer: OptimizerKind::AdamW { weight_decay: 1e-2 },
        seed: 1,
        progress: t.progress,
    };
    let report = train(&OnIds(&model), &vars, &xtr, &ytr, Some((&xte, &yte)), &cfg)?;
    Ok(TrainedPolarity {
        model,
        vocab,
        vars,
        held_out_accuracy: report.accuracy,
        sentences: (train_set.len(), test_set.len()),
    })
}

impl TrainedPolarity {
    /// Writes `config.json`, `model.safetensors` and `vocab.json` (what [`LstmClassifier::from_dir`] reads).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        crate::train::save(&self.vars, dir.join("model.safetensors"))?;
        std::fs::write(dir.join("config.json"), self.model.config.to_json())?;
        self.vocab.save(dir.join("vocab.json"))
    }
}
