//! Decoder-only language models from Hugging Face folders: GPT-2 and the Llama family
//! (Llama 2 / 3, Mistral, Qwen2 / 2.5, Qwen3, SmolLM, TinyLlama) as one implementation,
//! explainable at the token embeddings. Every rule-replaceable op goes through the
//! [`RuleCtx`] (linear layers, LayerNorm / RMSNorm, attention, activations, the SwiGLU
//! product), so the gradient methods, conservative LRP and AttnLRP all run on them.

pub mod attribution;
pub mod config;
pub mod generate;
pub mod perturbation;
pub mod rope;
pub mod text;
pub mod train;

use crate::error::{Error, Result};
pub use config::{DecoderConfig, Family, RopeScaling};
pub use generate::{GenerateConfig, Generation, Sampling, StopReason};
pub use text::DecoderTokenizer;
use candle_core::{DType, Device, Tensor, D};
use candle_explain_core::nn::Linear;
use candle_explain_core::{Explainable, RuleCtx};
use candle_nn::VarBuilder;
use rope::Rope;
use std::path::Path;

type CoreResult<T> = candle_explain_core::Result<T>;

#[derive(Debug, Clone)]
enum Norm {
    Layer { weight: Tensor, bias: Tensor, eps: f64 },
    Rms { weight: Tensor, eps: f64 },
}

impl Norm {
    fn load(vb: VarBuilder, c: &DecoderConfig, size: usize) -> Result<Self> {
        Ok(match c.family {
            config::Family::Gpt2 => Norm::Layer {
                weight: vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?,
                bias: vb.get(size, "bias")?,
                eps: c.norm_eps,
            },
            // A fresh model (a VarMap behind the builder, `decoder::train`) starts at 1.
            config::Family::Llama => Norm::Rms {
                weight: vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?,
                eps: c.norm_eps,
            },
        })
    }

    fn forward(&self, x: &Tensor, ctx: &RuleCtx) -> CoreResult<Tensor> {
        match self {
            Norm::Layer { weight, bias, eps } => ctx.layer_norm(x, weight, Some(bias), *eps),
            Norm::Rms { weight, eps } => ctx.rms_norm(x, weight, *eps),
        }
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    /// Qwen3's per-head norms of q and k.
    q_norm: Option<Norm>,
    k_norm: Option<Norm>,
}

#[derive(Debug, Clone)]
enum Mlp {
    /// GPT-2: `proj(act(fc(x)))`.
    Plain { fc: Linear, proj: Linear },
    /// Llama: `down(act(gate(x)) ⊙ up(x))`.
    SwiGlu { gate: Linear, up: Linear, down: Linear },
}

#[derive(Debug, Clone)]
struct Block {
    norm1: Norm,
    attention: Attention,
    norm2: Norm,
    mlp: Mlp,
}

/// Per layer, the keys and values `(B, kv_heads, T, head_dim)` of the tokens seen so far.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// Tokens held (0 for a new cache).
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .and_then(|(k, _)| k.dim(2).ok())
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A decoder-only language model.
pub struct CausalLm {
    pub config: DecoderConfig,
    embed: Tensor,
    /// GPT-2's learned positions.
    positions: Option<Tensor>,
    blocks: Vec<Block>,
    norm: Norm,
    lm_head: Linear,
    rope: Option<Rope>,
}

fn unsupported(msg: impl Into<String>) -> Error {
    Error::Explain(candle_explain_core::Error::Unsupported(msg.into()))
}

/// A GPT-2 Conv1D (`weight (in, out)`): as a Linear, its weight transposed; `cols` picks
/// the columns of a fused layer (`c_attn`'s q, k, v).
fn conv1d(vb: &VarBuilder, name: &str, (n_in, n_out): (usize, usize), cols: Option<(usize, usize)>) -> Result<Linear> {
    let w = vb.get((n_in, n_out), &format!("{name}.weight"))?;
    let b = vb.get(n_out, &format!("{name}.bias"))?;
    let (w, b) = match cols {
        Some((start, len)) => (w.narrow(1, start, len)?, b.narrow(0, start, len)?),
        None => (w, b),
    };
    Ok(Linear::new(w.t()?.contiguous()?, Some(b)).with_name(format!("{}.{name}", vb.prefix())))
}

fn linear(vb: VarBuilder, n_in: usize, n_out: usize, bias: bool) -> Result<Linear> {
    Ok(match bias {
        true => Linear::load(vb, n_in, n_out)?,
        false => Linear::load_no_bias(vb, n_in, n_out)?,
    })
}

impl CausalLm {
    /// Loads a model from a `VarBuilder` over a checkpoint with Hugging Face's names (GPT-2's
    /// with or without the `transformer.` prefix).
    pub fn load(vb: VarBuilder, config: DecoderConfig) -> Result<Self> {
        let c = &config;
        let (h, hd) = (c.hidden_size, c.head_dim);
        let (q_out, kv_out) = (c.num_heads * hd, c.num_kv_heads * hd);
        match c.family {
            config::Family::Gpt2 => {
                let t = if vb.contains_tensor("transformer.wte.weight") { vb.pp("transformer") } else { vb.clone() };
                let embed = t.get((c.vocab_size, h), "wte.weight")?;
                let positions = t.get((c.max_positions, h), "wpe.weight")?;
                let blocks = (0..c.num_layers)
                    .map(|i| -> Result<Block> {
                        let b = t.pp(format!("h.{i}"));
                        let a = b.pp("attn");
                        Ok(Block {
                            norm1: Norm::load(b.pp("ln_1"), c, h)?,
                            attention: Attention {
                                q: conv1d(&a, "c_attn", (h, 3 * h), Some((0, h)))?,
                                k: conv1d(&a, "c_attn", (h, 3 * h), Some((h, h)))?,
                                v: conv1d(&a, "c_attn", (h, 3 * h), Some((2 * h, h)))?,
                                o: conv1d(&a, "c_proj", (h, h), None)?,
                                q_norm: None,
                                k_norm: None,
                            },
                            norm2: Norm::load(b.pp("ln_2"), c, h)?,
                            mlp: Mlp::Plain {
                                fc: conv1d(&b.pp("mlp"), "c_fc", (h, c.intermediate_size), None)?,
                                proj: conv1d(&b.pp("mlp"), "c_proj", (c.intermediate_size, h), None)?,
                            },
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let norm = Norm::load(t.pp("ln_f"), c, h)?;
                let head = match vb.contains_tensor("lm_head.weight") && !c.tie_word_embeddings {
                    true => vb.get((c.vocab_size, h), "lm_head.weight")?,
                    false => embed.clone(),
                };
                Ok(Self {
                    embed,
                    positions: Some(positions),
                    blocks,
                    norm,
                    lm_head: Linear::new(head, None).with_name("lm_head"),
                    rope: None,
                    config,
                })
            }
            config::Family::Llama => {
                let m = vb.pp("model");
                let embed = m.get_with_hints(
                    (c.vocab_size, h),
                    "embed_tokens.weight",
                    candle_nn::Init::Randn { mean: 0.0, stdev: 0.02 },
                )?;
                let blocks = (0..c.num_layers)
                    .map(|i| -> Result<Block> {
                        let b = m.pp(format!("layers.{i}"));
                        let a = b.pp("self_attn");
                        let mlp = b.pp("mlp");
                        Ok(Block {
                            norm1: Norm::load(b.pp("input_layernorm"), c, h)?,
                            attention: Attention {
                                q: linear(a.pp("q_proj"), h, q_out, c.qkv_bias)?,
                                k: linear(a.pp("k_proj"), h, kv_out, c.qkv_bias)?,
                                v: linear(a.pp("v_proj"), h, kv_out, c.qkv_bias)?,
                                o: linear(a.pp("o_proj"), q_out, h, c.o_bias)?,
                                q_norm: c.qk_norm.then(|| Norm::load(a.pp("q_norm"), c, hd)).transpose()?,
                                k_norm: c.qk_norm.then(|| Norm::load(a.pp("k_norm"), c, hd)).transpose()?,
                            },
                            norm2: Norm::load(b.pp("post_attention_layernorm"), c, h)?,
                            mlp: Mlp::SwiGlu {
                                gate: linear(mlp.pp("gate_proj"), h, c.intermediate_size, c.mlp_bias)?,
                                up: linear(mlp.pp("up_proj"), h, c.intermediate_size, c.mlp_bias)?,
                                down: linear(mlp.pp("down_proj"), c.intermediate_size, h, c.mlp_bias)?,
                            },
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let norm = Norm::load(m.pp("norm"), c, h)?;
                let head = match c.tie_word_embeddings {
                    true => embed.clone(),
                    false => vb.get((c.vocab_size, h), "lm_head.weight")?,
                };
                Ok(Self {
                    embed,
                    positions: None,
                    blocks,
                    norm,
                    lm_head: Linear::new(head, None).with_name("lm_head"),
                    rope: Some(Rope::new(c)),
                    config,
                })
            }
        }
    }

    /// A Hugging Face folder (`config.json` and `model.safetensors`, shards, or
    /// `pytorch_model.bin`), computing in `dtype`.
    pub fn from_dir(dir: impl AsRef<Path>, dtype: DType, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg = dir.join("config.json");
        if !cfg.exists() {
            return Err(Error::MissingFile(cfg.display().to_string()));
        }
        let config = DecoderConfig::from_json(&std::fs::read_to_string(&cfg)?)
            .map_err(|e| crate::checkpoint::checkpoint_error(&cfg, e))?;
        let (vb, weights) = crate::checkpoint::mmap_folder(dir, dtype, device)?;
        Self::load(vb, config).map_err(|e| crate::checkpoint::checkpoint_error(&weights, e))
    }

    /// The output projection's weight `(V, H)` (the token embeddings when tied).
    pub fn lm_head_weight(&self) -> &Tensor {
        &self.lm_head.weight
    }

    pub fn dtype(&self) -> DType {
        self.embed.dtype()
    }

    pub fn device(&self) -> &Device {
        self.embed.device()
    }

    /// Token ids `(B, L)` → token embeddings `(B, L, H)`, the point methods attribute at (the
    /// output of `get_input_embeddings()`, before GPT-2 adds its positions).
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
        if flat.elem_count() == 0 {
            return Err(unsupported("no tokens"));
        }
        let max = flat.max(0)?.to_scalar::<u32>()? as usize;
        if max >= self.config.vocab_size {
            return Err(unsupported(format!(
                "token id {max} is outside the vocabulary of {} ids",
                self.config.vocab_size
            )));
        }
        let mut dims = ids.dims().to_vec();
        dims.push(self.config.hidden_size);
        Ok(self.embed.index_select(&flat, 0)?.reshape(dims)?)
    }

    /// Logits `(B, L, V)` from token embeddings `(B, L, H)`.
    ///
    /// `positions (B, L)`: each token's position (`None`: `cache.len()..`, the same for every
    /// row). `key_mask (B, T)`: 1 for real tokens and 0 for padding over every key, the cached
    /// ones included (`None`: no padding). With `cache`, the new keys and values are appended
    /// to it and attention covers the cached tokens too.
    pub fn forward_embeds(
        &self,
        emb: &Tensor,
        positions: Option<&Tensor>,
        key_mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
        ctx: &RuleCtx,
    ) -> CoreResult<Tensor> {
        let h = self.hidden(emb, positions, key_mask, cache, ctx)?;
        ctx.linear(&h, &self.lm_head.weight, None)
    }

    /// The final hidden states `(B, L, H)` (after the last norm); see
    /// [`CausalLm::forward_embeds`].
    pub fn hidden(
        &self,
        emb: &Tensor,
        positions: Option<&Tensor>,
        key_mask: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
        ctx: &RuleCtx,
    ) -> CoreResult<Tensor> {
        let c = &self.config;
        let (b, l, hidden) = emb.dims3()?;
        if hidden != c.hidden_size {
            return Err(candle_explain_core::Error::InputShape {
                expected: format!("(batch, tokens, {}) token embeddings", c.hidden_size),
                got: emb.dims().to_vec(),
            });
        }
        let past = cache.as_ref().map_or(0, |c| c.len());
        let total = past + l;
        if total > c.max_positions {
            return Err(Error::from(unsupported(format!(
                "{total} tokens: the model takes at most max_position_embeddings = {}",
                c.max_positions
            )))
            .into());
        }
        let dev = emb.device();
        let positions = match positions {
            Some(p) => {
                if p.dims() != [b, l] {
                    return Err(candle_explain_core::Error::InputShape {
                        expected: format!("positions ({b}, {l})"),
                        got: p.dims().to_vec(),
                    });
                }
                p.to_dtype(DType::U32)?
            }
            None => Tensor::arange(past as u32, total as u32, dev)?
                .unsqueeze(0)?
                .repeat((b, 1))?,
        };
        let mut x = emb.clone();
        if let Some(table) = &self.positions {
            let p = table
                .index_select(&positions.flatten_all()?, 0)?
                .reshape((b, l, hidden))?;
            x = x.broadcast_add(&p.to_dtype(x.dtype())?)?;
        }
        let mask = self.attention_mask(&positions, key_mask, past, b, l, x.dtype())?;
        let cos_sin = match &self.rope {
            Some(r) => Some(r.cos_sin(&positions, x.dtype(), dev)?),
            None => None,
        };
        if let Some(cache) = cache.as_deref_mut() {
            cache.layers.resize(self.blocks.len(), None);
        }
        for (i, block) in self.blocks.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            let a = self.attend(block, i, &block.norm1.forward(&x, ctx)?, &mask, cos_sin.as_ref(), layer_cache, ctx)?;
            x = ctx.add(&x, &a)?;
            let m = self.mlp(&block.mlp, &block.norm2.forward(&x, ctx)?, ctx)?;
            x = ctx.tap(&format!("layers.{i}"), &ctx.add(&x, &m)?)?;
        }
        self.norm.forward(&x, ctx)
    }

    /// The additive mask `(B, 1, L, T)`: a query sees the keys at or before its position
    /// (within the sliding window, if any) that are not padding.
    fn attention_mask(
        &self,
        positions: &Tensor,
        key_mask: Option<&Tensor>,
        past: usize,
        b: usize,
        l: usize,
        dtype: DType,
    ) -> CoreResult<Tensor> {
        let total = past + l;
        let dev = positions.device();
        // Causality by slot in the sequence (what transformers does): query slot past + i
        // sees key slots 0..=past + i.
        let q = Tensor::arange(past as i64, total as i64, dev)?.reshape((l, 1))?;
        let k = Tensor::arange(0i64, total as i64, dev)?.reshape((1, total))?;
        let diff = q.broadcast_sub(&k)?;
        let mut allowed = diff.ge(0i64)?;
        if let Some(w) = self.config.sliding_window {
            allowed = allowed.mul(&diff.lt(w as i64)?)?;
        }
        let mut allowed = allowed.reshape((1, 1, l, total))?.to_dtype(DType::F32)?;
        if let Some(m) = key_mask {
            if m.dims() != [b, total] {
                return Err(candle_explain_core::Error::InputShape {
                    expected: format!("attention mask ({b}, {total}): one 0/1 per token, cached ones included"),
                    got: m.dims().to_vec(),
                });
            }
            let m = m.to_dtype(DType::F32)?.reshape((b, 1, 1, total))?;
            allowed = allowed.broadcast_mul(&m)?;
        }
        // A large finite negative, not -inf: a padding query that sees no key gets a uniform
        // (unused) row instead of NaN. f16 cannot hold -1e9.
        let big = if dtype == DType::F16 { 6.0e4 } else { 1.0e9 };
        Ok(((allowed - 1.0)? * big)?.to_dtype(dtype)?)
    }

    #[allow(clippy::too_many_arguments)]
    fn attend(
        &self,
        block: &Block,
        layer: usize,
        x: &Tensor,
        mask: &Tensor,
        cos_sin: Option<&(Tensor, Tensor)>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        ctx: &RuleCtx,
    ) -> CoreResult<Tensor> {
        let c = &self.config;
        let (b, l, _) = x.dims3()?;
        let (heads, kv, hd) = (c.num_heads, c.num_kv_heads, c.head_dim);
        let a = &block.attention;
        let split = |t: Tensor, n: usize| -> CoreResult<Tensor> {
            Ok(t.reshape((b, l, n, hd))?.transpose(1, 2)?)
        };
        let mut q = split(a.q.forward_with(x, ctx)?, heads)?;
        let mut k = split(a.k.forward_with(x, ctx)?, kv)?;
        let mut v = split(a.v.forward_with(x, ctx)?, kv)?;
        if let (Some(qn), Some(kn)) = (&a.q_norm, &a.k_norm) {
            q = qn.forward(&q, ctx)?;
            k = kn.forward(&k, ctx)?;
        }
        if let Some((cos, sin)) = cos_sin {
            q = rope::rotate(&q, cos, sin)?;
            k = rope::rotate(&k, cos, sin)?;
        }
        if let Some(slot) = cache {
            if let Some((pk, pv)) = slot.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *slot = Some((k.clone(), v.clone()));
        }
        // Grouped-query attention: each key/value head serves heads / kv query heads in a row.
        let expand = |t: Tensor| -> CoreResult<Tensor> {
            if kv == heads {
                return Ok(t);
            }
            let (b, _, t_len, d) = t.dims4()?;
            Ok(t.unsqueeze(2)?
                .broadcast_as((b, kv, heads / kv, t_len, d))?
                .reshape((b, heads, t_len, d))?)
        };
        let (k, v) = (expand(k)?, expand(v)?);
        let mut scale = 1.0 / (hd as f64).sqrt();
        if c.scale_by_layer {
            scale /= (layer + 1) as f64;
        }
        let y = ctx
            .attention(&q.contiguous()?, &k.contiguous()?, &v.contiguous()?, Some(mask), scale)?
            .transpose(1, 2)?
            .reshape((b, l, heads * hd))?;
        a.o.forward_with(&y, ctx)
    }

    fn mlp(&self, mlp: &Mlp, x: &Tensor, ctx: &RuleCtx) -> CoreResult<Tensor> {
        let act = self.config.hidden_act;
        match mlp {
            Mlp::Plain { fc, proj } => proj.forward_with(&ctx.activation(act, &fc.forward_with(x, ctx)?)?, ctx),
            Mlp::SwiGlu { gate, up, down } => {
                let g = ctx.activation(act, &gate.forward_with(x, ctx)?)?;
                let u = up.forward_with(x, ctx)?;
                down.forward_with(&ctx.gate(&g, &u)?, ctx)
            }
        }
    }

    /// Token positions of a left-padded batch from its mask `(B, L)`: each row counts from 0
    /// at its first real token (padding gets 0), as transformers' `generate` does.
    pub fn positions_from_mask(mask: &Tensor) -> Result<Tensor> {
        let m = mask.to_dtype(DType::F32)?;
        let p = (m.cumsum(D::Minus1)? - 1.0)?.relu()?;
        Ok(p.to_dtype(DType::U32)?)
    }
}

/// The model as an `Explainable` of its last position's next-token logits `(B, V)`, on token
/// embeddings `(B, L, H)`; a padded batch's `"attention_mask"` comes beside it
/// (`WithInputs`).
impl Explainable for CausalLm {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> CoreResult<Tensor> {
        let mask = ctx.input("attention_mask");
        let positions = mask.as_ref().map(Self::positions_from_mask).transpose()?;
        let logits = self.forward_embeds(x, positions.as_ref(), mask.as_ref(), None, ctx)?;
        let l = logits.dim(1)?;
        Ok(logits.narrow(1, l - 1, 1)?.squeeze(1)?)
    }
}
