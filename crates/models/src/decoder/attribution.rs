//! Which earlier tokens made a language model write each token of a continuation: a
//! source × target matrix, for a continuation the model generated or one given (forced
//! decoding), with gradients, Integrated Gradients, token ablation and LRP.
//!
//! The sequence `prompt ++ continuation[..T-1]` runs once; target `k` is scored at the
//! position before it (`log p(y_k | x, y_<k)` by default). Causal attention makes one
//! sequence serve every target: the tokens after `y_k`'s position do not change its score, so
//! their attributions are exactly 0. The gradient methods explain the `T` targets as rows of
//! one batch (through the chunker); ablation scores every target from each perturbed
//! sequence in one forward.
//!
//! Sources are the token embeddings (the output of `get_input_embeddings()`, before GPT-2's
//! positions), as in Captum's `LLMGradientAttribution` on the embedding layer, and in inseq.

use super::perturbation;
pub use super::perturbation::{Features, ShapleySampling};
use super::CausalLm;
use crate::error::{Error, Result};
use candle_core::{DType, Tensor, D};
use candle_explain_core::prelude::*;
use candle_explain_core::{Batching, Explainable, RuleCtx};
use std::ops::Range;

/// What is explained for each target token `y_k` (inseq's step functions).
#[derive(Debug, Clone, PartialEq)]
pub enum Score {
    /// `log p(y_k | …)` (Captum's and inseq's default).
    LogProb,
    /// `p(y_k | …)`.
    Prob,
    /// The raw logit of `y_k`.
    Logit,
    /// `log p(y_k | …) − log p(a_k | …)`: why `y_k` rather than the alternative `a_k`
    /// (one per target).
    Contrast(Vec<u32>),
}

/// The scores of a continuation's targets as an [`Explainable`]: on token embeddings
/// `(B, P + T − 1, H)` of the prompt and the first `T − 1` targets, outputs `(B, T)`.
pub struct ContinuationScores<'a> {
    lm: &'a CausalLm,
    targets: usize,
    /// The position whose next-token distribution scores target 0: the prompt's last.
    first: usize,
    score: Score,
    /// `(T, V)` one-hot rows of the targets and, for a contrast, of the alternatives: made
    /// once, used by every forward (IG's chunks, ablation's perturbations).
    hot: Tensor,
    alternative_hot: Option<Tensor>,
}

impl<'a> ContinuationScores<'a> {
    /// Scores of `targets` after a prompt of `prompt_len` tokens, computed in `dtype`.
    pub fn new(lm: &'a CausalLm, targets: &[u32], prompt_len: usize, score: Score, dtype: DType) -> Result<Self> {
        let one_hot = |ids: &[u32]| -> Result<Tensor> {
            let v = lm.config.vocab_size;
            let mut m = vec![0f32; ids.len() * v];
            for (k, &id) in ids.iter().enumerate() {
                m[k * v + id as usize] = 1.0;
            }
            Ok(Tensor::from_vec(m, (ids.len(), v), lm.device())?.to_dtype(dtype)?.unsqueeze(0)?)
        };
        let alternative_hot = match &score {
            Score::Contrast(alt) => Some(one_hot(alt)?),
            _ => None,
        };
        Ok(Self {
            lm,
            targets: targets.len(),
            first: prompt_len - 1,
            hot: one_hot(targets)?,
            alternative_hot,
            score,
        })
    }
}

impl Explainable for ContinuationScores<'_> {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let t = self.targets;
        let l = x.dim(1)?;
        if l != self.first + t {
            return Err(candle_explain_core::Error::InputShape {
                expected: format!("(batch, {} tokens, hidden): the prompt and all targets but the last", self.first + t),
                got: x.dims().to_vec(),
            });
        }
        let hidden = self.lm.hidden(x, None, None, None, ctx)?;
        // Only the T scoring positions go through the vocabulary projection.
        let h = hidden.narrow(1, self.first, t)?;
        let logits = ctx.linear(&h, &self.lm.lm_head.weight, None)?;
        let pick = |hot: &Tensor, values: &Tensor| -> candle_explain_core::Result<Tensor> {
            Ok(values.broadcast_mul(&hot.to_dtype(values.dtype())?)?.sum(D::Minus1)?)
        };
        Ok(match (&self.score, &self.alternative_hot) {
            (Score::Logit, _) => pick(&self.hot, &logits)?,
            (Score::Prob, _) => pick(&self.hot, &candle_nn::ops::softmax_last_dim(&logits)?)?,
            (Score::Contrast(_), Some(alt)) => {
                let lp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
                (pick(&self.hot, &lp)? - pick(alt, &lp)?)?
            }
            (Score::LogProb | Score::Contrast(_), _) => {
                pick(&self.hot, &candle_nn::ops::log_softmax(&logits, D::Minus1)?)?
            }
        })
    }
}

/// How the embeddings of the attributed tokens are replaced (IG's path start, ablation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TokenBaseline {
    /// The zero vector.
    Zero,
    /// The embedding of this token id (Captum's `TextTokenInput(baselines=…)`; inseq's
    /// default is the pad / unk token).
    Token(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub enum LlmMethod {
    /// The gradient's L2 norm over the embedding (inseq's saliency aggregation).
    Saliency,
    /// `Σ_h x_h · ∂S/∂x_h`.
    GradientXInput,
    /// Gauss–Legendre IG with `steps` nodes from the baseline at the attributed tokens.
    IntegratedGradients { steps: usize, baseline: TokenBaseline },
    /// `S(x) − S(x with feature g replaced)`, one token (or span) at a time (Captum's
    /// `LLMAttribution(FeatureAblation)`).
    Ablation { baseline: TokenBaseline, features: Features },
    /// Shapley values of the tokens (or spans), replaced features taking the baseline
    /// (Captum's `LLMAttribution(ShapleyValues | ShapleyValueSampling)`).
    Shapley { baseline: TokenBaseline, features: Features, sampling: ShapleySampling },
    /// AttnLRP (Achtibat et al. 2024), as LXT computes it: `Σ_h x_h · R_h` at the
    /// embeddings after one modified backward (`candle_explain_core::methods::AttnLrp`).
    AttnLrp { epsilon: f64 },
    /// Conservative propagation (CP-LRP, Ali et al. 2022): attention weights, normalisers
    /// and gates held constant, the ε / identity rule on nonlinearities.
    CpLrp { epsilon: f64 },
    /// A composite's relevance (rules chosen per layer kind and name).
    Lrp(Composite),
}

impl LlmMethod {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Saliency => "saliency",
            Self::GradientXInput => "gradient-x-input",
            Self::IntegratedGradients { .. } => "integrated-gradients",
            Self::Ablation { .. } => "ablation",
            Self::Shapley { .. } => "shapley",
            Self::AttnLrp { .. } => "attnlrp",
            Self::CpLrp { .. } => "cp-lrp",
            Self::Lrp(_) => "lrp",
        }
    }
}

/// A continuation explained: `matrix[k][i]` is source token `i`'s attribution to target `k`.
#[derive(Debug, Clone)]
pub struct ContinuationAttribution {
    /// The whole sequence: the prompt then the targets.
    pub ids: Vec<u32>,
    pub prompt_len: usize,
    /// The explained score of each target.
    pub scores: Vec<f32>,
    /// The score at the baseline, per target (IG).
    pub baseline_scores: Option<Vec<f32>>,
    /// `(T, P + T − 1)`: targets × sources (sources at or after a target's own position
    /// are 0).
    pub matrix: Tensor,
    /// `(T, P + T − 1, H)` per embedding dimension, for who needs more than the sum.
    pub per_dimension: Tensor,
    /// The spans a perturbation method moved together (each position of a span holds the
    /// span's value in `matrix`, as Captum gives a group's value to each of its features);
    /// `None` for one token at a time and for the gradient methods.
    pub spans: Option<Vec<Range<usize>>>,
}

impl ContinuationAttribution {
    /// `(T, P)`: only the prompt's columns (Captum's `token_attr`).
    pub fn prompt_columns(&self) -> Result<Tensor> {
        Ok(self.matrix.narrow(1, 0, self.prompt_len)?)
    }

    /// `(T, G)`: one column per span (words, phrases): the sum of its tokens' attributions
    /// (completeness carries over to the sums). After a run on spans, whose every position
    /// holds its span's value, a requested span sums the values of the run's spans inside it,
    /// each once, and may not cut one of them.
    pub fn span_columns(&self, spans: &[Range<usize>]) -> Result<Tensor> {
        let l = self.matrix.dim(1)?;
        let bad = |msg: String| Error::Explain(candle_explain_core::Error::Unsupported(msg));
        if let Some(s) = spans.iter().find(|s| s.is_empty() || s.end > l) {
            return Err(bad(format!("span {s:?} is not a non-empty range of the {l} source positions")));
        }
        // The positions whose columns count: all, or the first of each span the method ran on
        // (the others repeat it); positions outside those spans hold 0 either way.
        let mut counted = vec![1f32; l];
        if let Some(run) = &self.spans {
            for r in run {
                if let Some(s) = spans.iter().find(|s| s.start < r.end && r.start < s.end && !(s.start <= r.start && r.end <= s.end)) {
                    return Err(bad(format!("span {s:?} cuts the span {r:?} the method perturbed as one")));
                }
                counted[r.start + 1..r.end].fill(0.0);
            }
        }
        let mut sel = vec![0f32; spans.len() * l];
        for (g, s) in spans.iter().enumerate() {
            for i in s.clone() {
                sel[g * l + i] = counted[i];
            }
        }
        let sel = Tensor::from_vec(sel, (spans.len(), l), self.matrix.device())?;
        Ok(self.matrix.matmul(&sel.t()?)?)
    }
}

/// What to attribute to: the sources whose embeddings the method moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sources {
    /// Every earlier token, the generated ones included (inseq's matrix).
    All,
    /// The prompt only; earlier targets stay as they are (Captum's `LLMAttribution`).
    Prompt,
}

/// Explains `targets` (a continuation of `prompt`) with `method`. `skip` names source
/// positions that are never attributed (a BOS token: Captum's `skip_tokens`).
pub fn attribute_continuation(
    lm: &CausalLm,
    prompt: &[u32],
    targets: &[u32],
    method: &LlmMethod,
    score: Score,
    sources: Sources,
    skip: &[usize],
    batching: &Batching,
) -> Result<ContinuationAttribution> {
    let invalid = |msg: String| Error::Explain(candle_explain_core::Error::Unsupported(msg));
    if prompt.is_empty() || targets.is_empty() {
        return Err(invalid("a continuation needs a prompt and at least one target token".into()));
    }
    if let Score::Contrast(alt) = &score {
        if alt.len() != targets.len() {
            return Err(invalid(format!("a contrast needs one alternative per target: {} for {} targets", alt.len(), targets.len())));
        }
    }
    let vocab = lm.config.vocab_size as u32;
    if let Some(bad) = targets.iter().chain(match &score { Score::Contrast(a) => a.as_slice(), _ => &[] }).find(|&&t| t >= vocab) {
        return Err(invalid(format!("target id {bad} is outside the vocabulary of {vocab} ids")));
    }
    let (p, t) = (prompt.len(), targets.len());
    let seq: Vec<u32> = prompt.iter().chain(&targets[..t - 1]).copied().collect();
    let dev = lm.device().clone();
    let ids = Tensor::new(seq.as_slice(), &dev)?.unsqueeze(0)?;
    let x = lm.embed(&ids)?;
    let model = ContinuationScores::new(lm, targets, p, score, x.dtype())?;
    let l = seq.len();
    // Which positions are attributed (moved by the method): 1, else 0.
    let attributed: Vec<f32> = (0..l)
        .map(|i| (!skip.contains(&i) && (sources == Sources::All || i < p)) as u8 as f32)
        .collect();
    let moved = Tensor::from_vec(attributed.clone(), (1, l, 1), &dev)?.to_dtype(x.dtype())?;
    let baseline_of = |b: &TokenBaseline| -> Result<Tensor> {
        let fill = match b {
            TokenBaseline::Zero => x.zeros_like()?,
            TokenBaseline::Token(id) => {
                if *id >= vocab {
                    return Err(invalid(format!("baseline token {id} is outside the vocabulary")));
                }
                lm.embed(&Tensor::new(&[*id], &dev)?.unsqueeze(0)?)?.broadcast_as(x.shape())?.contiguous()?
            }
        };
        // Unmoved positions keep their embeddings.
        Ok((&x + (fill - &x)?.broadcast_mul(&moved)?)?)
    };
    let all = Target::Classes((0..t).collect());
    let (per_dim, scores, baseline_scores, spans) = match method {
        LlmMethod::Saliency
        | LlmMethod::GradientXInput
        | LlmMethod::AttnLrp { .. }
        | LlmMethod::CpLrp { .. }
        | LlmMethod::Lrp(_)
        | LlmMethod::IntegratedGradients { .. } => {
            let (a, base) = match method {
                LlmMethod::Saliency => (Saliency { abs: false, batching: batching.clone() }.attribute(&model, &x, &all)?, None),
                LlmMethod::GradientXInput => (InputXGradient { batching: batching.clone() }.attribute(&model, &x, &all)?, None),
                LlmMethod::AttnLrp { epsilon } => (AttnLrp { epsilon: *epsilon, batching: batching.clone() }.attribute(&model, &x, &all)?, None),
                LlmMethod::CpLrp { epsilon } => (EpsilonLrp { epsilon: *epsilon, batching: batching.clone() }.attribute(&model, &x, &all)?, None),
                LlmMethod::Lrp(c) => (Lrp { composite: c.clone(), batching: batching.clone() }.attribute(&model, &x, &all)?, None),
                LlmMethod::IntegratedGradients { steps, baseline } => {
                    let ig = IntegratedGradients {
                        steps: *steps,
                        baseline: Baseline::Tensor(baseline_of(baseline)?),
                        batching: batching.clone(),
                        ..Default::default()
                    };
                    let a = ig.attribute(&model, &x, &all)?;
                    let b = a.baseline_output.clone();
                    (a, b)
                }
                LlmMethod::Ablation { .. } | LlmMethod::Shapley { .. } => unreachable!(),
            };
            // (1, T, L, H) → (T, L, H); only the moved positions carry attributions.
            let per_dim = a.attributions.squeeze(0)?.broadcast_mul(&moved)?;
            let scores: Vec<f32> = a.output.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
            let base = base.map(|b| b.flatten_all()?.to_dtype(DType::F32)?.to_vec1()).transpose()?;
            (per_dim, scores, base, None)
        }
        LlmMethod::Ablation { baseline, features } | LlmMethod::Shapley { baseline, features, .. } => {
            let attributed: Vec<bool> = attributed.iter().map(|a| *a > 0.0).collect();
            let spans = perturbation::resolve(features, &attributed)?;
            let b = baseline_of(baseline)?;
            let (values, scores) = match method {
                LlmMethod::Shapley { sampling, .. } => perturbation::shapley(&model, &x, &b, &spans, *sampling, batching)?,
                _ => perturbation::ablation(&model, &x, &b, &spans, batching)?,
            };
            // Each position of a feature holds the feature's value; ablation has one value
            // per position: per_dimension holds it in the first dimension.
            let mut per_tok = vec![0f32; t * l];
            for (s, v) in spans.iter().zip(&values) {
                for (k, v) in v.iter().enumerate() {
                    per_tok[k * l + s.start..k * l + s.end].fill(*v);
                }
            }
            let h = x.dim(2)?;
            let per_tok = Tensor::from_vec(per_tok, (t, l), &dev)?.to_dtype(x.dtype())?;
            let per_dim = per_tok.unsqueeze(D::Minus1)?.pad_with_zeros(D::Minus1, 0, h - 1)?;
            let spans = matches!(features, Features::Spans(_)).then_some(spans);
            (per_dim, scores, None, spans)
        }
    };
    let matrix = match method {
        LlmMethod::Saliency => per_dim.sqr()?.sum(D::Minus1)?.sqrt()?.broadcast_mul(&moved.squeeze(D::Minus1)?)?,
        _ => per_dim.sum(D::Minus1)?,
    };
    Ok(ContinuationAttribution {
        ids: prompt.iter().chain(targets).copied().collect(),
        prompt_len: p,
        scores,
        baseline_scores,
        matrix: matrix.to_dtype(DType::F32)?,
        per_dimension: per_dim.to_dtype(DType::F32)?,
        spans,
    })
}
