//! A Hugging Face encoder classifier from its folder (`config.json`, `model.safetensors`,
//! `tokenizer.json`): BERT, DistilBERT, RoBERTa / XLM-RoBERTa and ELECTRA (the family from
//! `model_type`, see [`crate::encoder_family`]), with a sequence-classification head (each
//! family's own) or a token-classification head, under Hugging Face's tensor names (with or
//! without the family's prefix, `bert.`, `roberta.`, …).
//!
//! Methods attribute at the word embeddings: [`BertClassifier::embed`] looks the ids up, and
//! the `Explainable` forward takes `(B, L, E)` word vectors and adds the position and
//! token-type embeddings itself, so a zero baseline means "no word" with the positions kept.
//! A padded batch comes with its attention mask beside it (`WithInputs`).
//!
//! Every layer runs on the rule context's ops (`linear`, `layer_norm`, `attention`, `add`,
//! `activation`), so the LRP composites treat attention and LayerNorm conservatively.

use crate::encoder_family::{Family, HeadKind, MODEL_TYPES};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain_core::nn::{LayerNorm, Linear};
use candle_explain_core::{Activation, Explainable, RuleCtx};
use candle_nn::VarBuilder;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    /// The encoder family (`model_type`) and the head (`architectures`).
    pub family: Family,
    pub head: HeadKind,
    /// Width of the word embeddings (ELECTRA's `embedding_size`, projected to `hidden_size`;
    /// else `hidden_size`).
    pub embedding_size: usize,
    /// RoBERTa's padding index (its positions start after it).
    pub pad_token_id: usize,
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
    /// The classes' names, from `id2label` (`"class i"` where it names none).
    pub labels: Vec<String>,
}

/// `id2label` (`{"0": "negative", …}`) as one name per class; ids it lacks are `"class i"`,
/// ids beyond the head an error.
pub(crate) fn labels(config: &serde_json::Value, classes: usize) -> Result<Vec<String>> {
    let mut names: Vec<String> = (0..classes).map(|i| format!("class {i}")).collect();
    if let Some(m) = config.get("id2label").and_then(|m| m.as_object()) {
        for (k, v) in m {
            let i: usize = k.parse().map_err(|_| {
                unsupported(format!(
                    "config.json: id2label key {k:?} is not a class index"
                ))
            })?;
            let name = v.as_str().ok_or_else(|| {
                unsupported(format!("config.json: id2label[{k:?}] is not a string"))
            })?;
            match names.get_mut(i) {
                Some(n) => *n = name.to_string(),
                None => {
                    return Err(unsupported(format!(
                        "config.json: id2label names class {i}, but the head has {classes} classes"
                    )))
                }
            }
        }
    }
    Ok(names)
}

fn unsupported(reason: String) -> Error {
    candle_explain_core::Error::Unsupported(reason).into()
}

impl BertConfig {
    /// The most tokens a sequence may have: the position table's rows (after RoBERTa's
    /// padding offset).
    pub fn max_tokens(&self) -> usize {
        match self.family.offsets_positions() {
            true => self
                .max_position_embeddings
                .saturating_sub(self.pad_token_id + 1),
            false => self.max_position_embeddings,
        }
    }

    /// Parses a Hugging Face `config.json`; other `model_type`s, activations and position
    /// embedding types are clear errors.
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| unsupported(format!("config.json is not JSON: {e}")))?;
        let family = match v.get("model_type").and_then(|t| t.as_str()) {
            Some(t) => Family::from_model_type(t),
            None => None,
        }
        .ok_or_else(|| {
            unsupported(format!(
                "model_type {:?} is not supported: one of {MODEL_TYPES}",
                v.get("model_type")
            ))
        })?;
        let architecture = v
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(|a| a.as_str());
        if let Some(a) = architecture {
            // Pre-training checkpoints (…ForMaskedLM, …ForPreTraining: bert-base-uncased,
            // roberta-base, the ELECTRA discriminators) are encoders whose classification head
            // comes from elsewhere (`from_dir`'s `head`, fine-tuning).
            let known = [
                "Model",
                "ForSequenceClassification",
                "ForTokenClassification",
                "ForMaskedLM",
                "ForPreTraining",
            ];
            if !known.iter().any(|k| a.ends_with(k)) {
                return Err(unsupported(format!(
                    "architectures {a:?} is not supported: a bare or pre-training encoder \
                     (…Model, …ForMaskedLM, …ForPreTraining, with a head from a file), \
                     …ForSequenceClassification or …ForTokenClassification"
                )));
            }
        }
        // DistilBERT names its sizes differently; the rest are BERT's keys.
        let distil = family == Family::DistilBert;
        let key =
            |bert: &'static str, distilbert: &'static str| if distil { distilbert } else { bert };
        if distil && v.get("sinusoidal_pos_embds").and_then(|b| b.as_bool()) == Some(true) {
            return Err(unsupported(
                "sinusoidal_pos_embds = true is not supported: learned positions only".into(),
            ));
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
        let hidden_act = match string(key("hidden_act", "activation"), "gelu")?.as_str() {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => {
                return Err(unsupported(format!(
                    "{} {other:?} is not supported: gelu, gelu_new, gelu_pytorch_tanh or relu",
                    key("hidden_act", "activation")
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
        let hidden_size = size(key("hidden_size", "dim"))?;
        let optional = |k: &str, default: usize| -> Result<usize> {
            match v.get(k) {
                None | Some(serde_json::Value::Null) => Ok(default),
                Some(_) => size(k),
            }
        };
        let pad_token_id = match v.get("pad_token_id") {
            // transformers' defaults: 1 for RoBERTa and XLM-RoBERTa, 0 for the others.
            None | Some(serde_json::Value::Null) => family.offsets_positions() as u64 as usize,
            Some(p) => p.as_u64().ok_or_else(|| {
                unsupported(format!(
                    "config.json: \"pad_token_id\" must be a token index, got {p}"
                ))
            })? as usize,
        };
        let c = Self {
            family,
            head: family.head(architecture),
            embedding_size: optional("embedding_size", hidden_size)?,
            pad_token_id,
            vocab_size: size("vocab_size")?,
            hidden_size,
            num_hidden_layers: size(key("num_hidden_layers", "n_layers"))?,
            num_attention_heads: size(key("num_attention_heads", "n_heads"))?,
            intermediate_size: size(key("intermediate_size", "hidden_dim"))?,
            hidden_act,
            max_position_embeddings: size("max_position_embeddings")?,
            // DistilBERT has no token types.
            type_vocab_size: if distil { 0 } else { size("type_vocab_size")? },
            layer_norm_eps,
            num_labels: num_labels.max(1),
            labels: labels(&v, num_labels.max(1))?,
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
    /// `None` in DistilBERT.
    token_type_embeddings: Option<Tensor>,
    embeddings_norm: LayerNorm,
    /// ELECTRA's projection of `embedding_size` to `hidden_size`.
    embeddings_project: Option<Linear>,
    layers: Vec<Layer>,
    head: Head,
}

#[derive(Debug, Clone)]
enum Head {
    Pooler {
        pooler: Linear,
        classifier: Linear,
    },
    Dense {
        dense: Linear,
        act: Activation,
        out: Linear,
    },
    PreClassifier {
        pre: Linear,
        classifier: Linear,
    },
    Token {
        classifier: Linear,
    },
}

impl BertClassifier {
    /// The encoder (and BERT's pooler) from `encoder`, the checkpoint (the family's prefix,
    /// `bert.`, `roberta.`, …, is found by itself), and the head (`classifier.*`,
    /// `pre_classifier.*`) from `head`: the same checkpoint, or a separate file for a bare
    /// encoder.
    pub fn load(encoder: VarBuilder, head: VarBuilder, config: BertConfig) -> Result<Self> {
        let c = &config;
        let prefix = c.family.prefix();
        let vb = if encoder.contains_tensor(&format!("{prefix}.embeddings.word_embeddings.weight"))
        {
            encoder.pp(prefix)
        } else {
            encoder
        };
        let names = c.family.names();
        let (h, e_dim, eps) = (c.hidden_size, c.embedding_size, c.layer_norm_eps);
        // A checkpoint with more layers than the config says would silently run a truncated
        // encoder (a missing layer fails below, when its weights are looked up).
        let extra = format!(
            "{}.{}.{}.weight",
            names.layers, c.num_hidden_layers, names.query
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
                let l = vb.pp(format!("{}.{i}", names.layers));
                Ok(Layer {
                    query: Linear::load(l.pp(names.query), h, h)?,
                    key: Linear::load(l.pp(names.key), h, h)?,
                    value: Linear::load(l.pp(names.value), h, h)?,
                    attention_out: Linear::load(l.pp(names.attention_out), h, h)?,
                    attention_norm: LayerNorm::load(l.pp(names.attention_norm), h, eps)?,
                    intermediate: Linear::load(l.pp(names.intermediate), h, c.intermediate_size)?,
                    output: Linear::load(l.pp(names.output), c.intermediate_size, h)?,
                    output_norm: LayerNorm::load(l.pp(names.output_norm), h, eps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let labels = c.num_labels;
        let head = match c.head {
            HeadKind::Pooler => Head::Pooler {
                pooler: Linear::load(vb.pp("pooler.dense"), h, h)?,
                classifier: Linear::load(head.pp("classifier"), h, labels)?,
            },
            HeadKind::Dense(act) => Head::Dense {
                dense: Linear::load(head.pp("classifier.dense"), h, h)?,
                act,
                out: Linear::load(head.pp("classifier.out_proj"), h, labels)?,
            },
            HeadKind::PreClassifier => Head::PreClassifier {
                pre: Linear::load(head.pp("pre_classifier"), h, h)?,
                classifier: Linear::load(head.pp("classifier"), h, labels)?,
            },
            HeadKind::Token => Head::Token {
                classifier: Linear::load(head.pp("classifier"), h, labels)?,
            },
        };
        let embeddings_project = match e_dim != h || vb.contains_tensor("embeddings_project.weight")
        {
            true => Some(Linear::load(vb.pp("embeddings_project"), e_dim, h)?),
            false => None,
        };
        Ok(Self {
            word_embeddings: e.get_with_hints(
                (c.vocab_size, e_dim),
                "word_embeddings.weight",
                init,
            )?,
            position_embeddings: e.get_with_hints(
                (c.max_position_embeddings, e_dim),
                "position_embeddings.weight",
                init,
            )?,
            token_type_embeddings: match c.type_vocab_size {
                0 => None,
                n => Some(e.get_with_hints((n, e_dim), "token_type_embeddings.weight", init)?),
            },
            embeddings_norm: LayerNorm::load(e.pp("LayerNorm"), e_dim, eps)?,
            embeddings_project,
            layers,
            head,
            config,
        })
    }

    /// A Hugging Face folder: `config.json` and `model.safetensors` (or shards with their
    /// `model.safetensors.index.json`), the head from
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
        let (enc, weights) = crate::checkpoint::mmap_folder(dir, dtype, device)?;
        let head_vb = match head {
            Some(h) => crate::checkpoint::mmap(&file(h.to_path_buf())?, dtype, device)?,
            None => enc.clone(),
        };
        Self::load(enc, head_vb, config)
            .map_err(|e| crate::checkpoint::checkpoint_error(&weights, e))
    }

    /// A hub id (`org/name`) at `revision`: from the Hugging Face cache, downloading what is
    /// missing unless `HF_HUB_OFFLINE` (see [`crate::hub`]); the head as in
    /// [`BertClassifier::from_dir`].
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
        Ok(self.word_embeddings.index_select(&flat, 0)?.reshape((
            b,
            l,
            self.config.embedding_size,
        ))?)
    }

    /// The most tokens a sequence may have: the position table's rows (after RoBERTa's
    /// padding offset).
    pub fn max_tokens(&self) -> usize {
        self.config.max_tokens()
    }

    fn check_length(&self, l: usize) -> Result<()> {
        if l == 0 || l > self.max_tokens() {
            return Err(unsupported(format!(
                "sequence length {l} must be in 1..={} (the model's positions): truncate the text",
                self.max_tokens()
            )));
        }
        Ok(())
    }

    /// Position embeddings `(1 or B, L, E)`: `0..L`, or RoBERTa's `pad + cumsum(mask)` at
    /// tokens and `pad` at padding (as `create_position_ids_from_input_ids`).
    fn positions(&self, b: usize, l: usize, mask: Option<&Tensor>) -> Result<Tensor> {
        let c = &self.config;
        if !c.family.offsets_positions() {
            return Ok(self.position_embeddings.narrow(0, 0, l)?.unsqueeze(0)?);
        }
        let pad = c.pad_token_id as f64;
        let ids = match mask {
            None => Tensor::arange(0u32, l as u32, self.position_embeddings.device())?
                .to_dtype(DType::F32)?
                .affine(1.0, pad + 1.0)?
                .unsqueeze(0)?,
            Some(m) => {
                let m = m.to_dtype(DType::F32)?;
                ((m.cumsum(1)? * &m)? + pad)?
            }
        };
        let rows = ids.dim(0)?;
        let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
        let e = self.config.embedding_size;
        debug_assert!(rows == 1 || rows == b);
        Ok(self
            .position_embeddings
            .index_select(&flat, 0)?
            .reshape((rows, l, e))?)
    }

    /// The encoder's output `(B, L, H)` from word embeddings; `mask (B, L)` is 1 for tokens
    /// and 0 for padding.
    pub fn sequence_output(
        &self,
        word: &Tensor,
        mask: Option<&Tensor>,
        ctx: &RuleCtx,
    ) -> candle_explain_core::Result<Tensor> {
        let (b, l, e) = word.dims3()?;
        let h = self.config.hidden_size;
        let heads = self.config.num_attention_heads;
        let hd = h / heads;
        let pos = self.positions(b, l, mask)?.to_dtype(word.dtype())?;
        // Token types given beside the input (`WithInputs`, "token_type_ids" (B, L)), else 0;
        // none in DistilBERT.
        let types = match (&self.token_type_embeddings, ctx.input("token_type_ids")) {
            (None, Some(_)) => {
                return Err(unsupported(format!(
                    "token_type_ids were given, but {:?} has no token types",
                    self.config.family
                ))
                .into())
            }
            (None, None) => None,
            (Some(table), Some(t)) => {
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
                Some(table.index_select(&ids, 0)?.reshape((b, l, e))?)
            }
            (Some(table), None) => Some(table.narrow(0, 0, 1)?.unsqueeze(0)?),
        };
        let mut sum = word.broadcast_add(&pos)?;
        if let Some(t) = types {
            sum = sum.broadcast_add(&t)?;
        }
        // Layers are tapped under Hugging Face's module names (layer attribution, e.g.
        // Layer Integrated Gradients at "embeddings").
        let mut x = ctx.tap("embeddings", &self.embeddings_norm.forward_with(&sum, ctx)?)?;
        if let Some(p) = &self.embeddings_project {
            x = p.forward_with(&x, ctx)?;
        }
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
                &format!("{}.{i}", self.config.family.names().layers),
                &layer
                    .output_norm
                    .forward_with(&ctx.add(&layer.output.forward_with(&m, ctx)?, &x)?, ctx)?,
            )?;
        }
        Ok(x)
    }

    /// Logits from word embeddings: `(B, classes)` from the first token (`[CLS]`, `<s>`)
    /// through the family's head, or for token classification `(B, L · labels)`, token `t`'s
    /// label `c` at `t · labels + c` ([`BertClassifier::token_output`]).
    pub fn forward_embeds(
        &self,
        word: &Tensor,
        mask: Option<&Tensor>,
        ctx: &RuleCtx,
    ) -> candle_explain_core::Result<Tensor> {
        let x = self.sequence_output(word, mask, ctx)?;
        let first =
            || -> candle_explain_core::Result<Tensor> { Ok(x.narrow(1, 0, 1)?.squeeze(1)?) };
        match &self.head {
            Head::Pooler { pooler, classifier } => {
                let pooled =
                    ctx.activation(Activation::Tanh, &pooler.forward_with(&first()?, ctx)?)?;
                classifier.forward_with(&pooled, ctx)
            }
            Head::Dense { dense, act, out } => out.forward_with(
                &ctx.activation(*act, &dense.forward_with(&first()?, ctx)?)?,
                ctx,
            ),
            Head::PreClassifier { pre, classifier } => classifier.forward_with(
                &ctx.activation(Activation::Relu, &pre.forward_with(&first()?, ctx)?)?,
                ctx,
            ),
            Head::Token { classifier } => {
                let logits = classifier.forward_with(&x, ctx)?;
                Ok(logits.flatten_from(1)?)
            }
        }
    }

    /// The output index of token `token`'s label `label` (token classification), for
    /// `Target::Class`: why token 5 is B-PER is `Target::Class(model.token_output(5, b_per))`.
    pub fn token_output(&self, token: usize, label: usize) -> usize {
        token * self.config.num_labels + label
    }
}

impl Explainable for BertClassifier {
    /// `x` is the word embeddings `(B, L, H)`; a padded batch comes with its
    /// `"attention_mask"` (and optionally `"token_type_ids"`) beside it, through
    /// `candle_explain_core::WithInputs`.
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        if x.rank() != 3
            || x.dim(2)? != self.config.embedding_size
            || x.dim(1)? == 0
            || x.dim(1)? > self.max_tokens()
        {
            return Err(candle_explain_core::Error::InputShape {
                expected: format!(
                    "(batch, 1..={} tokens, {}) word embeddings",
                    self.max_tokens(),
                    self.config.embedding_size
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

/// The classifier on token ids `(B, L)` with the model's padding id masked out (training,
/// prediction).
pub struct BertOnIds<'a>(pub &'a BertClassifier);

impl Explainable for BertOnIds<'_> {
    fn forward_with(&self, ids: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let emb = self.0.embed(ids)?;
        // Padding is the model's pad id (RoBERTa: 1; its id 0 is `<s>`).
        let mask = ids.ne(self.0.config.pad_token_id as u32)?;
        self.0.forward_embeds(&emb, Some(&mask), ctx)
    }
}

/// A Hugging Face `tokenizer.json` with padding and truncation off, checked against the model's
/// vocabulary size.
pub fn load_tokenizer(
    path: impl AsRef<Path>,
    config: &BertConfig,
) -> Result<tokenizers::Tokenizer> {
    let t = read_tokenizer(path.as_ref(), config.vocab_size)?;
    Ok(t)
}

/// A Hugging Face `tokenizer.json`, padding and truncation off, that fits a vocabulary of
/// `vocab_size` ids.
pub fn read_tokenizer(path: &Path, vocab_size: usize) -> Result<tokenizers::Tokenizer> {
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
    // Embedding tables are often padded beyond the tokenizer (a multiple of 8 or 64): a
    // tokenizer no larger than the vocabulary fits (`embed` range-checks every id).
    let n = t.get_vocab_size(true);
    if n > vocab_size {
        return Err(unsupported(format!("the tokenizer has {n} tokens but the model's vocabulary only {vocab_size}: they do not belong together")));
    }
    Ok(t)
}

/// A word of the text and the tokens (pieces) it was split into.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub word: String,
    /// Indices of its pieces among the encoded tokens (special tokens belong to no word).
    pub tokens: Vec<usize>,
}

/// [`encode`], with the token strings and the words they make up (the tokenizer's word ids
/// and byte offsets): attributions per word are the sums over its pieces.
pub fn encode_words(
    tokenizer: &tokenizers::Tokenizer,
    text: &str,
    config: &BertConfig,
    device: &Device,
) -> Result<(Tensor, Vec<String>, Vec<Word>)> {
    let ids = encode(tokenizer, text, config, device)?;
    let enc = tokenizer
        .encode(text, true)
        .map_err(|e| unsupported(format!("tokenizer: {e}")))?;
    let mut words: Vec<Word> = vec![];
    let mut last: Option<u32> = None;
    let mut spans: Vec<(usize, usize)> = vec![];
    for (i, (w, &(start, end))) in enc.get_word_ids().iter().zip(enc.get_offsets()).enumerate() {
        let Some(w) = *w else {
            last = None;
            continue;
        };
        if last == Some(w) {
            if let (Some(word), Some(span)) = (words.last_mut(), spans.last_mut()) {
                word.tokens.push(i);
                *span = (span.0.min(start), span.1.max(end));
            }
        } else {
            words.push(Word {
                word: String::new(),
                tokens: vec![i],
            });
            spans.push((start, end));
        }
        last = Some(w);
    }
    for (word, (start, end)) in words.iter_mut().zip(spans) {
        word.word = text.get(start..end).unwrap_or_default().trim().to_string();
    }
    Ok((ids, enc.get_tokens().to_vec(), words))
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
    if ids.len() > config.max_tokens() {
        return Err(unsupported(format!(
            "{} tokens, more than the model's {} positions: truncate the text",
            ids.len(),
            config.max_tokens()
        )));
    }
    Ok(Tensor::new(ids, device)?.unsqueeze(0)?)
}
