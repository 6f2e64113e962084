//! A BERT sequence classifier from any Hugging Face BERT folder (`config.json`,
//! `model.safetensors`, `tokenizer.json`): embeddings, encoder, pooler and a linear head, with
//! Hugging Face's tensor names (with or without the `bert.` prefix of
//! `BertForSequenceClassification`).
//!
//! Methods attribute at the word embeddings: [`BertClassifier::embed`] looks the ids up, and
//! the `Explainable` forward takes `(B, L, H)` word vectors and adds the position and
//! token-type embeddings itself, so a zero baseline means "no word" with the positions kept.
//! That forward attends to every position: explain unpadded sentences (one at a time, or
//! batches of equal length); [`BertClassifier::forward_embeds`] takes a mask for padded batches.
//!
//! Every layer runs on the rule context's ops (`linear`, `layer_norm`, `attention`, `add`,
//! `activation`), so the LRP composites treat attention and LayerNorm conservatively.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain_core::nn::{LayerNorm, Linear};
use candle_explain_core::{Activation, Explainable, RuleCtx};
use candle_nn::VarBuilder;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    /// Classes of the head: `num_labels` or the size of `id2label`, else 2.
    pub num_labels: usize,
}

fn unsupported(reason: String) -> Error {
    candle_explain_core::Error::Unsupported(reason).into()
}

impl BertConfig {
    /// Parses a Hugging Face `config.json`; other `model_type`s, activations and position
    /// embedding types are clear errors.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| unsupported(format!("config.json is not JSON: {e}")))?;
        match v.get("model_type").and_then(|t| t.as_str()) {
            Some("bert") => {}
            other => {
                return Err(unsupported(format!(
                    "model_type {other:?} is not supported: only \"bert\""
                )))
            }
        }
        if let Some(p) = v.get("position_embedding_type").and_then(|p| p.as_str()) {
            if p != "absolute" {
                return Err(unsupported(format!(
                    "position_embedding_type {p:?} is not supported: only \"absolute\""
                )));
            }
        }
        let size = |k: &str| -> Result<usize> {
            v.get(k)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .filter(|x| *x > 0)
                .ok_or_else(|| {
                    unsupported(format!("config.json: {k:?} must be a positive integer"))
                })
        };
        // A field that is present must have the right type: falling back to a default would
        // run a different model than the checkpoint's.
        let string = |k: &str, default: &'static str| -> Result<String> {
            match v.get(k) {
                None | Some(serde_json::Value::Null) => Ok(default.to_string()),
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(unsupported(format!(
                    "config.json: {k:?} must be a string, got {other}"
                ))),
            }
        };
        let hidden_act = match string("hidden_act", "gelu")?.as_str() {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => {
                return Err(unsupported(format!(
                "hidden_act {other:?} is not supported: gelu, gelu_new, gelu_pytorch_tanh or relu"
            )))
            }
        };
        if let Some(n) = v.get("num_labels").filter(|n| !n.is_null()) {
            if n.as_u64().is_none_or(|n| n == 0) {
                return Err(unsupported(format!(
                    "config.json: \"num_labels\" must be a positive integer, got {n}"
                )));
            }
        }
        let num_labels = match (
            v.get("num_labels").and_then(|n| n.as_u64()),
            v.get("id2label").and_then(|m| m.as_object()),
        ) {
            (Some(n), _) => n as usize,
            (None, Some(m)) => m.len(),
            (None, None) => 2,
        };
        let layer_norm_eps = match v.get("layer_norm_eps") {
            None | Some(serde_json::Value::Null) => 1e-12,
            Some(e) => e
                .as_f64()
                .filter(|e| *e > 0.0 && e.is_finite())
                .ok_or_else(|| {
                    unsupported(format!(
                        "config.json: \"layer_norm_eps\" must be a positive number, got {e}"
                    ))
                })?,
        };
        let c = Self {
            vocab_size: size("vocab_size")?,
            hidden_size: size("hidden_size")?,
            num_hidden_layers: size("num_hidden_layers")?,
            num_attention_heads: size("num_attention_heads")?,
            intermediate_size: size("intermediate_size")?,
            hidden_act,
            max_position_embeddings: size("max_position_embeddings")?,
            type_vocab_size: size("type_vocab_size")?,
            layer_norm_eps,
            num_labels: num_labels.max(1),
        };
        if !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(unsupported(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden_size, c.num_attention_heads
            )));
        }
        Ok(c)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

#[derive(Debug, Clone)]
pub struct BertClassifier {
    pub config: BertConfig,
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    token_type_embeddings: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
    pooler: Linear,
    classifier: Linear,
}

impl BertClassifier {
    /// The encoder and pooler from `encoder` (the checkpoint; a `bert.` prefix is found by
    /// itself) and the classification head `classifier.{weight,bias}` from `head`.
    pub fn load(encoder: VarBuilder, head: VarBuilder, config: BertConfig) -> Result<Self> {
        let vb = if encoder.contains_tensor("bert.embeddings.word_embeddings.weight") {
            encoder.pp("bert")
        } else {
            encoder
        };
        let c = &config;
        let (h, eps) = (c.hidden_size, c.layer_norm_eps);
        // A checkpoint with more layers than the config says would silently run a truncated
        // encoder (a missing layer fails below, when its weights are looked up).
        let extra = format!(
            "encoder.layer.{}.attention.self.query.weight",
            c.num_hidden_layers
        );
        if vb.contains_tensor(&extra) {
            return Err(unsupported(format!(
                "config.json says num_hidden_layers = {} but the checkpoint has more layers \
                 ({extra} exists): the config does not belong to these weights",
                c.num_hidden_layers
            )));
        }
        let e = vb.pp("embeddings");
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                Ok(Layer {
                    query: Linear::load(l.pp("attention.self.query"), h, h)?,
                    key: Linear::load(l.pp("attention.self.key"), h, h)?,
                    value: Linear::load(l.pp("attention.self.value"), h, h)?,
                    attention_out: Linear::load(l.pp("attention.output.dense"), h, h)?,
                    attention_norm: LayerNorm::load(l.pp("attention.output.LayerNorm"), h, eps)?,
                    intermediate: Linear::load(l.pp("intermediate.dense"), h, c.intermediate_size)?,
                    output: Linear::load(l.pp("output.dense"), c.intermediate_size, h)?,
                    output_norm: LayerNorm::load(l.pp("output.LayerNorm"), h, eps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        Ok(Self {
            word_embeddings: e.get_with_hints((c.vocab_size, h), "word_embeddings.weight", init)?,
            position_embeddings: e.get_with_hints(
                (c.max_position_embeddings, h),
                "position_embeddings.weight",
                init,
            )?,
            token_type_embeddings: e.get_with_hints(
                (c.type_vocab_size, h),
                "token_type_embeddings.weight",
                init,
            )?,
            embeddings_norm: LayerNorm::load(e.pp("LayerNorm"), h, eps)?,
            layers,
            pooler: Linear::load(vb.pp("pooler.dense"), h, h)?,
            classifier: Linear::load(head.pp("classifier"), h, c.num_labels)?,
            config,
        })
    }

    /// A Hugging Face folder: `config.json` and `model.safetensors`, the head from
    /// `head` (a safetensors file with `classifier.*`) or, if `None`, from the checkpoint.
    pub fn from_dir(dir: impl AsRef<Path>, head: Option<&Path>, device: &Device) -> Result<Self> {
        Self::from_dir_as(dir, head, DType::F32, device)
    }

    /// [`BertClassifier::from_dir`] computing in `dtype` (f32, bf16 or f16).
    pub fn from_dir_as(
        dir: impl AsRef<Path>,
        head: Option<&Path>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let file = |p: std::path::PathBuf| -> Result<std::path::PathBuf> {
            if p.exists() {
                Ok(p)
            } else {
                Err(Error::MissingFile(p.display().to_string()))
            }
        };
        let config =
            BertConfig::from_json(&std::fs::read_to_string(file(dir.join("config.json"))?)?)?;
        let mmap = |p: &Path| crate::checkpoint::mmap(p, dtype, device);
        let weights = file(dir.join("model.safetensors"))?;
        let enc = mmap(&weights)?;
        let head_vb = match head {
            Some(h) => mmap(&file(h.to_path_buf())?)?,
            None => enc.clone(),
        };
        Self::load(enc, head_vb, config)
            .map_err(|e| crate::checkpoint::checkpoint_error(&weights, e))
    }

    /// A hub id (`org/name`) at `revision`, from the local Hugging Face cache (offline; see
    /// [`crate::hub`]), with the head as in [`BertClassifier::from_dir`].
    pub fn from_hub(
        repo_id: &str,
        revision: &str,
        head: Option<&Path>,
        device: &Device,
    ) -> Result<Self> {
        Self::from_dir(crate::hub::snapshot(repo_id, revision)?, head, device)
    }

    /// Word ids `(B, L)` → word embeddings `(B, L, H)`. Ids outside the vocabulary and
    /// sequences longer than `max_position_embeddings` are errors (truncate before).
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2().map_err(|_| {
            unsupported(format!("ids must be (batch, length), got {:?}", ids.dims()))
        })?;
        self.check_length(l)?;
        let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
        let max = flat.max(0)?.to_scalar::<u32>()? as usize;
        if max >= self.config.vocab_size {
            return Err(unsupported(format!("token id {max} is outside the vocabulary of {}: does the tokenizer match the model?", self.config.vocab_size)));
        }
        Ok(self
            .word_embeddings
            .index_select(&flat, 0)?
            .reshape((b, l, self.config.hidden_size))?)
    }

    fn check_length(&self, l: usize) -> Result<()> {
        if l == 0 || l > self.config.max_position_embeddings {
            return Err(unsupported(format!("sequence length {l} must be in 1..={} (max_position_embeddings): truncate the text", self.config.max_position_embeddings)));
        }
        Ok(())
    }

    /// The encoder's output `(B, L, H)` from word embeddings; `mask (B, L)` is 1 for tokens
    /// and 0 for padding.
    pub fn sequence_output(
        &self,
        word: &Tensor,
        mask: Option<&Tensor>,
        ctx: &RuleCtx,
    ) -> candle_explain_core::Result<Tensor> {
        let (b, l, h) = word.dims3()?;
        let heads = self.config.num_attention_heads;
        let hd = h / heads;
        let pos = self.position_embeddings.narrow(0, 0, l)?.unsqueeze(0)?;
        // Token types given beside the input (`WithInputs`, "token_type_ids" (B, L)), else 0.
        let types = match ctx.input("token_type_ids") {
            Some(t) => {
                if t.dims() != [b, l] {
                    return Err(candle_explain_core::Error::InputShape {
                        expected: format!("token_type_ids ({b}, {l}), as the word embeddings"),
                        got: t.dims().to_vec(),
                    });
                }
                let ids = t.flatten_all()?.to_dtype(DType::U32)?;
                if ids.max(0)?.to_scalar::<u32>()? as usize >= self.config.type_vocab_size {
                    return Err(unsupported(format!(
                        "a token type id is ≥ type_vocab_size {}",
                        self.config.type_vocab_size
                    ))
                    .into());
                }
                self.token_type_embeddings
                    .index_select(&ids, 0)?
                    .reshape((b, l, h))?
            }
            None => self.token_type_embeddings.narrow(0, 0, 1)?.unsqueeze(0)?,
        };
        // Layers are tapped under Hugging Face's module names (layer attribution, e.g.
        // Layer Integrated Gradients at "embeddings").
        let mut x = ctx.tap(
            "embeddings",
            &self
                .embeddings_norm
                .forward_with(&word.broadcast_add(&pos)?.broadcast_add(&types)?, ctx)?,
        )?;
        // Additive mask over keys: 0 to attend, a large negative number for padding.
        let mask = mask
            .map(|m| -> candle_explain_core::Result<Tensor> {
                Ok(((m.to_dtype(word.dtype())? - 1.0)? * 1e9)?.reshape((b, 1, 1, l))?)
            })
            .transpose()?;
        // Views: the attention op reads the heads through their strides (and makes them
        // contiguous itself where it needs to).
        let split = |t: Tensor| -> candle_explain_core::Result<Tensor> {
            Ok(t.reshape((b, l, heads, hd))?.transpose(1, 2)?)
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let q = split(layer.query.forward_with(&x, ctx)?)?;
            let k = split(layer.key.forward_with(&x, ctx)?)?;
            let v = split(layer.value.forward_with(&x, ctx)?)?;
            let a = ctx
                .attention(&q, &k, &v, mask.as_ref(), 1.0 / (hd as f64).sqrt())?
                .transpose(1, 2)?
                .reshape((b, l, h))?;
            x = layer.attention_norm.forward_with(
                &ctx.add(&layer.attention_out.forward_with(&a, ctx)?, &x)?,
                ctx,
            )?;
            let m = ctx.activation(
                self.config.hidden_act,
                &layer.intermediate.forward_with(&x, ctx)?,
            )?;
            x = ctx.tap(
                &format!("encoder.layer.{i}"),
                &layer
                    .output_norm
                    .forward_with(&ctx.add(&layer.output.forward_with(&m, ctx)?, &x)?, ctx)?,
            )?;
        }
        Ok(x)
    }

    /// Logits `(B, classes)` from word embeddings: the pooler (tanh of a dense layer on the
    /// first token, `[CLS]`) and the head.
    pub fn forward_embeds(
        &self,
        word: &Tensor,
        mask: Option<&Tensor>,
        ctx: &RuleCtx,
    ) -> candle_explain_core::Result<Tensor> {
        let x = self.sequence_output(word, mask, ctx)?;
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = ctx.activation(Activation::Tanh, &self.pooler.forward_with(&cls, ctx)?)?;
        self.classifier.forward_with(&pooled, ctx)
    }
}

impl Explainable for BertClassifier {
    /// `x` is the word embeddings `(B, L, H)`; a padded batch comes with its
    /// `"attention_mask"` (and optionally `"token_type_ids"`) beside it, through
    /// `candle_explain_core::WithInputs`.
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        if x.rank() != 3
            || x.dim(2)? != self.config.hidden_size
            || x.dim(1)? == 0
            || x.dim(1)? > self.config.max_position_embeddings
        {
            return Err(candle_explain_core::Error::InputShape {
                expected: format!(
                    "(batch, 1..={} tokens, {}) word embeddings",
                    self.config.max_position_embeddings, self.config.hidden_size
                ),
                got: x.dims().to_vec(),
            });
        }
        // A padded batch: the mask given beside the input (`WithInputs`, "attention_mask"
        // (B, L), 1 for tokens, 0 for padding).
        let mask = ctx.input("attention_mask");
        if let Some(m) = &mask {
            let want = [x.dim(0)?, x.dim(1)?];
            if m.dims() != want {
                return Err(candle_explain_core::Error::InputShape {
                    expected: format!("attention_mask {want:?}, one 0/1 per token"),
                    got: m.dims().to_vec(),
                });
            }
        }
        self.forward_embeds(x, mask.as_ref(), ctx)
    }
}

/// The classifier on token ids `(B, L)` with padding id 0 masked out (training, prediction).
pub struct BertOnIds<'a>(pub &'a BertClassifier);

impl Explainable for BertOnIds<'_> {
    fn forward_with(&self, ids: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let emb = self.0.embed(ids)?;
        let mask = ids.ne(0u32)?;
        self.0.forward_embeds(&emb, Some(&mask), ctx)
    }
}

/// A Hugging Face `tokenizer.json` with padding and truncation off, checked against the model's
/// vocabulary size.
pub fn load_tokenizer(
    path: impl AsRef<Path>,
    config: &BertConfig,
) -> Result<tokenizers::Tokenizer> {
    let path = path.as_ref();
    if !path.exists() {
        return Err(Error::MissingFile(path.display().to_string()));
    }
    // tokenizers 0.23 panics (`expect("Helper")`) instead of returning its error when the
    // JSON is malformed inside "decoder" (found by fuzz/): the syntax is checked here first.
    let text = std::fs::read(path)?;
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&text) {
        return Err(Error::Checkpoint {
            path: path.display().to_string(),
            reason: format!("not valid JSON: {e}"),
        });
    }
    // Other panics of the crate on well-formed but wrong values (a "Precompiled" normaliser
    // whose charsmap is not base64) are caught and made errors.
    let parsed = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(&text))
        .unwrap_or_else(|_| Err("a malformed entry (the tokenizers crate panicked on it)".into()));
    let mut t = parsed.map_err(|e| Error::Checkpoint {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    t.with_padding(None);
    t.with_truncation(None).map_err(|e| Error::Checkpoint {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let n = t.get_vocab_size(true);
    if n != config.vocab_size {
        return Err(unsupported(format!("the tokenizer has {n} tokens but the model's vocabulary {}: they do not belong together", config.vocab_size)));
    }
    Ok(t)
}

/// Token ids `(1, L)` of one text, `[CLS] … [SEP]`; texts longer than the model's positions
/// are an error (the caller decides how to truncate).
pub fn encode(
    tokenizer: &tokenizers::Tokenizer,
    text: &str,
    config: &BertConfig,
    device: &Device,
) -> Result<Tensor> {
    let enc = tokenizer
        .encode(text, true)
        .map_err(|e| unsupported(format!("tokenizer: {e}")))?;
    let ids = enc.get_ids();
    if ids.len() > config.max_position_embeddings {
        return Err(unsupported(format!(
            "{} tokens, more than the model's {} positions: truncate the text",
            ids.len(),
            config.max_position_embeddings
        )));
    }
    Ok(Tensor::new(ids, device)?.unsqueeze(0)?)
}
