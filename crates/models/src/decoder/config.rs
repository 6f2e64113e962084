//! `config.json` of a Hugging Face decoder-only language model: GPT-2 and the Llama family
//! (Llama 2 / 3, Mistral, Qwen2 / 2.5, Qwen3, SmolLM, TinyLlama), read into one description.

use crate::error::{Error, Result};
use candle_explain_core::Activation;

/// The architecture a `model_type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Learned positions, LayerNorm, GELU MLP, fused `c_attn` (Conv1D weights, `in × out`).
    Gpt2,
    /// RMSNorm, rotary positions, grouped-query attention, SwiGLU MLP. Variants differ in
    /// biases (Qwen2: q/k/v), per-head q/k norms (Qwen3), RoPE scaling and tied embeddings.
    Llama,
}

pub const MODEL_TYPES: &str = "gpt2, llama, mistral, qwen2, qwen3";

/// How rotary frequencies are scaled for long contexts (`rope_scaling` / `rope_parameters`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    /// Every frequency divided by `factor` (position interpolation).
    Linear { factor: f64 },
    /// Llama 3.1's: low frequencies divided by `factor`, high ones kept, a smooth ramp between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

#[derive(Debug, Clone)]
pub struct DecoderConfig {
    pub family: Family,
    /// As written in config.json (llama, mistral, qwen2, qwen3, gpt2).
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub intermediate_size: usize,
    pub norm_eps: f64,
    pub max_positions: usize,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    /// q/k/v projections have biases (Qwen2; Llama's `attention_bias`), the output
    /// projection too (Llama's `attention_bias`).
    pub qkv_bias: bool,
    pub o_bias: bool,
    pub mlp_bias: bool,
    /// Qwen3: RMSNorm over each head's q and k before the rotation.
    pub qk_norm: bool,
    pub tie_word_embeddings: bool,
    pub hidden_act: Activation,
    /// Mistral's sliding window, when set: a token attends to the last `w` positions only.
    pub sliding_window: Option<usize>,
    /// GPT-2's `scale_attn_by_inverse_layer_idx`.
    pub scale_by_layer: bool,
    pub bos_token_id: Option<u32>,
    /// Every id that ends a generation.
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
}

fn unsupported(msg: impl Into<String>) -> Error {
    Error::Explain(candle_explain_core::Error::Unsupported(msg.into()))
}

fn activation(name: &str) -> Result<Activation> {
    Ok(match name {
        "silu" | "swish" => Activation::Silu,
        "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
        "gelu" => Activation::Gelu,
        "relu" => Activation::Relu,
        "tanh" => Activation::Tanh,
        other => return Err(unsupported(format!("hidden_act {other:?} is not supported"))),
    })
}

/// Token ids given as a number or a list of numbers (`eos_token_id`).
pub(crate) fn ids_of(v: Option<&serde_json::Value>) -> Vec<u32> {
    match v {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_u64()).map(|x| x as u32).collect(),
        Some(x) => x.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        None => vec![],
    }
}

impl DecoderConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| unsupported(format!("config.json is not JSON: {e}")))?;
        let model_type = v.get("model_type").and_then(|t| t.as_str()).unwrap_or("");
        let family = match model_type {
            "gpt2" => Family::Gpt2,
            "llama" | "mistral" | "qwen2" | "qwen3" => Family::Llama,
            other => {
                return Err(unsupported(format!(
                    "model_type {other:?} is not a supported decoder: one of {MODEL_TYPES}"
                )))
            }
        };
        let usize_of = |keys: &[&str]| -> Result<usize> {
            keys.iter()
                .find_map(|k| v.get(*k).and_then(|x| x.as_u64()))
                .map(|x| x as usize)
                .ok_or_else(|| unsupported(format!("config.json has no {}", keys.join(" / "))))
        };
        let opt_usize = |k: &str| v.get(k).and_then(|x| x.as_u64()).map(|x| x as usize);
        let f64_of = |k: &str| v.get(k).and_then(|x| x.as_f64());
        let bool_of = |k: &str| v.get(k).and_then(|x| x.as_bool());
        let gpt2 = family == Family::Gpt2;
        let hidden_size = usize_of(&["hidden_size", "n_embd"])?;
        let num_heads = usize_of(&["num_attention_heads", "n_head"])?;
        let num_kv_heads = opt_usize("num_key_value_heads").unwrap_or(num_heads);
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(unsupported(format!(
                "{num_heads} attention heads cannot share {num_kv_heads} key/value heads evenly"
            )));
        }
        let head_dim = opt_usize("head_dim").unwrap_or(hidden_size / num_heads);
        if head_dim == 0 || head_dim % 2 != 0 && !gpt2 {
            return Err(unsupported(format!("head_dim {head_dim}: rotary embeddings need an even size")));
        }
        // transformers 5 writes `rope_parameters`; older configs `rope_theta` and `rope_scaling`.
        let rope = v.get("rope_parameters").or_else(|| v.get("rope_scaling")).filter(|r| !r.is_null());
        let rope_theta = rope
            .and_then(|r| r.get("rope_theta"))
            .and_then(|x| x.as_f64())
            .or_else(|| f64_of("rope_theta"))
            .unwrap_or(10_000.0);
        let rope_scaling = match rope {
            None => RopeScaling::None,
            Some(r) => {
                let kind = r.get("rope_type").or_else(|| r.get("type")).and_then(|t| t.as_str()).unwrap_or("default");
                let f = |k: &str| -> Result<f64> {
                    r.get(k).and_then(|x| x.as_f64()).ok_or_else(|| unsupported(format!("rope scaling {kind:?} needs {k}")))
                };
                match kind {
                    "default" => RopeScaling::None,
                    "linear" => RopeScaling::Linear { factor: f("factor")? },
                    "llama3" => RopeScaling::Llama3 {
                        factor: f("factor")?,
                        low_freq_factor: f("low_freq_factor")?,
                        high_freq_factor: f("high_freq_factor")?,
                        original_max_position_embeddings: f("original_max_position_embeddings")?,
                    },
                    other => return Err(unsupported(format!("rope scaling {other:?} is not supported (default, linear, llama3)"))),
                }
            }
        };
        let intermediate_size = match family {
            Family::Gpt2 => opt_usize("n_inner").unwrap_or(4 * hidden_size),
            Family::Llama => usize_of(&["intermediate_size"])?,
        };
        let attention_bias = bool_of("attention_bias").unwrap_or(false);
        let act_name = v
            .get("hidden_act")
            .or_else(|| v.get("activation_function"))
            .and_then(|a| a.as_str())
            .unwrap_or(if gpt2 { "gelu_new" } else { "silu" });
        // Mistral's window applies only when set (and Qwen's only with use_sliding_window).
        let sliding_window = match (model_type, bool_of("use_sliding_window")) {
            ("qwen2" | "qwen3", Some(false) | None) => None,
            _ => opt_usize("sliding_window"),
        };
        Ok(Self {
            family,
            model_type: model_type.to_string(),
            vocab_size: usize_of(&["vocab_size"])?,
            hidden_size,
            num_layers: usize_of(&["num_hidden_layers", "n_layer"])?,
            num_heads,
            num_kv_heads,
            head_dim,
            intermediate_size,
            norm_eps: f64_of("rms_norm_eps").or_else(|| f64_of("layer_norm_epsilon")).unwrap_or(1e-5),
            max_positions: usize_of(&["max_position_embeddings", "n_positions"])?,
            rope_theta,
            rope_scaling,
            qkv_bias: gpt2 || model_type == "qwen2" || attention_bias,
            o_bias: gpt2 || attention_bias,
            mlp_bias: gpt2 || bool_of("mlp_bias").unwrap_or(false),
            qk_norm: model_type == "qwen3",
            tie_word_embeddings: bool_of("tie_word_embeddings").unwrap_or(gpt2),
            hidden_act: activation(act_name)?,
            sliding_window,
            scale_by_layer: bool_of("scale_attn_by_inverse_layer_idx").unwrap_or(false),
            bos_token_id: ids_of(v.get("bos_token_id")).first().copied(),
            eos_token_ids: ids_of(v.get("eos_token_id")),
            pad_token_id: ids_of(v.get("pad_token_id")).first().copied(),
        })
    }
}
