//! Text generation with a KV cache: greedy or seeded sampling (temperature, top-k, top-p),
//! stopping at the model's end-of-sequence ids or at `max_new_tokens`. Forward-only
//! (`RuleCtx::inference`): no graph is kept.

use super::{CausalLm, KvCache};
use crate::error::{Error, Result};
use candle_core::{DType, Tensor, D};
use candle_explain_core::RuleCtx;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone, PartialEq)]
pub enum Sampling {
    /// The most likely token each step (ties: the lowest id, as `argmax`).
    Greedy,
    /// A token drawn from the softmax of `logits / temperature`, restricted to the `top_k`
    /// most likely and then to the smallest set whose probability reaches `top_p`, from a
    /// generator seeded with `seed`.
    Sample {
        temperature: f64,
        top_k: Option<usize>,
        top_p: Option<f64>,
        seed: u64,
    },
}

#[derive(Debug, Clone)]
pub struct GenerateConfig {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Ids that end the generation (included in the output); default: the model's EOS ids.
    pub stop: Vec<u32>,
}

impl GenerateConfig {
    pub fn greedy(model: &CausalLm, max_new_tokens: usize) -> Self {
        Self {
            max_new_tokens,
            sampling: Sampling::Greedy,
            stop: model.config.eos_token_ids.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A stop id was generated (it is the last token).
    StopToken,
    MaxNewTokens,
    /// The model's context is full.
    ContextFull,
}

#[derive(Debug, Clone)]
pub struct Generation {
    /// The generated ids (the prompt not included).
    pub ids: Vec<u32>,
    pub stop: StopReason,
    /// The log-probability of each generated token under the model (before any
    /// temperature), for the record.
    pub log_probs: Vec<f32>,
}

impl CausalLm {
    /// Continues `prompt` (token ids): one forward over the prompt, then one per new token
    /// over the cache.
    pub fn generate(&self, prompt: &[u32], cfg: &GenerateConfig) -> Result<Generation> {
        if prompt.is_empty() {
            return Err(Error::Explain(candle_explain_core::Error::Unsupported(
                "generation needs a prompt of at least one token".into(),
            )));
        }
        if let Sampling::Sample { temperature, top_p, top_k, .. } = &cfg.sampling {
            if !(*temperature > 0.0 && temperature.is_finite())
                || top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0))
                || *top_k == Some(0)
            {
                return Err(Error::Explain(candle_explain_core::Error::Unsupported(format!(
                    "sampling needs temperature > 0, 0 < top_p <= 1 and top_k >= 1; got {:?}",
                    cfg.sampling
                ))));
            }
        }
        let ctx = RuleCtx::inference();
        let mut rng = match cfg.sampling {
            Sampling::Sample { seed, .. } => Some(rand::rngs::StdRng::seed_from_u64(seed)),
            Sampling::Greedy => None,
        };
        let mut cache = KvCache::default();
        let mut next_input = Tensor::new(prompt, self.device())?.unsqueeze(0)?;
        let mut out = Generation {
            ids: vec![],
            stop: StopReason::MaxNewTokens,
            log_probs: vec![],
        };
        for _ in 0..cfg.max_new_tokens {
            if cache.len() + next_input.dim(1)? > self.config.max_positions {
                out.stop = StopReason::ContextFull;
                break;
            }
            let emb = self.embed(&next_input)?;
            let logits = self.forward_embeds(&emb, None, None, Some(&mut cache), &ctx)?;
            let last = logits.narrow(1, logits.dim(1)? - 1, 1)?.flatten_all()?.to_dtype(DType::F32)?;
            let log_p = candle_nn::ops::log_softmax(&last, D::Minus1)?.to_vec1::<f32>()?;
            let id = match (&cfg.sampling, rng.as_mut()) {
                (Sampling::Sample { temperature, top_k, top_p, .. }, Some(rng)) => {
                    sample(&last.to_vec1::<f32>()?, *temperature, *top_k, *top_p, rng)
                }
                _ => argmax(&log_p),
            };
            out.ids.push(id);
            out.log_probs.push(log_p[id as usize]);
            if cfg.stop.contains(&id) {
                out.stop = StopReason::StopToken;
                break;
            }
            next_input = Tensor::new(&[id], self.device())?.unsqueeze(0)?;
        }
        Ok(out)
    }
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn sample(
    logits: &[f32],
    temperature: f64,
    top_k: Option<usize>,
    top_p: Option<f64>,
    rng: &mut impl Rng,
) -> u32 {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut p: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i, ((l as f64 - max) / temperature).exp()))
        .collect();
    // Most likely first; ties by id, so that a seed gives the same draw everywhere.
    p.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if let Some(k) = top_k {
        p.truncate(k.max(1));
    }
    let total: f64 = p.iter().map(|x| x.1).sum();
    if let Some(top) = top_p {
        let mut acc = 0.0;
        let mut keep = 0;
        for (_, w) in &p {
            acc += w / total;
            keep += 1;
            if acc >= top {
                break;
            }
        }
        p.truncate(keep.max(1));
    }
    let total: f64 = p.iter().map(|x| x.1).sum();
    let mut u = rng.random::<f64>() * total;
    for (i, w) in &p {
        if u < *w {
            return *i as u32;
        }
        u -= w;
    }
    p.last().map_or(0, |x| x.0 as u32)
}
