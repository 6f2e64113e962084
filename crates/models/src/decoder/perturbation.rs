//! Perturbation methods over a continuation's sources (Captum's `LLMAttribution`): token or
//! span ablation and Shapley values (exact, or sampled over permutations). A coalition keeps
//! the embeddings of the features it holds and gives the others the baseline's; every
//! coalition is one row of a chunked batch and scores all targets at once.

use super::attribution::ContinuationScores;
use crate::error::{Error, Result};
use candle_core::{DType, Tensor};
use candle_explain_core::Batching;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::ops::Range;

/// Which source positions are perturbed together (Captum's features).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Features {
    /// Each attributed token alone.
    #[default]
    Tokens,
    /// These spans of positions of `prompt ++ targets[..T-1]` (words, phrases, turns of a
    /// chat); positions in no span are never perturbed.
    Spans(Vec<Range<usize>>),
}

/// How Shapley values are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapleySampling {
    /// Every coalition (2^G rows): exact values, for at most [`MAX_EXACT_FEATURES`] features.
    Exact,
    /// Random orders of the features (Captum's `ShapleyValueSampling`, `n_samples`),
    /// G − 1 rows each; seeded.
    Permutations { count: usize, seed: u64 },
}

pub const MAX_EXACT_FEATURES: usize = candle_explain_core::methods::shapley::MAX_EXACT_GROUPS;

fn invalid(msg: String) -> Error {
    Error::Explain(candle_explain_core::Error::Unsupported(msg))
}

/// The spans the method perturbs: one per attributed position, or the user's, checked to
/// be non-empty, in the sequence, disjoint and over attributed positions only.
pub(crate) fn resolve(features: &Features, attributed: &[bool]) -> Result<Vec<Range<usize>>> {
    let l = attributed.len();
    let spans = match features {
        Features::Tokens => (0..l).filter(|&i| attributed[i]).map(|i| i..i + 1).collect(),
        Features::Spans(s) => s.clone(),
    };
    let mut seen = vec![false; l];
    for s in &spans {
        if s.is_empty() || s.end > l {
            return Err(invalid(format!("span {s:?} must be a non-empty range within the {l} source positions")));
        }
        for i in s.clone() {
            if !attributed[i] {
                return Err(invalid(format!("span {s:?} covers position {i}, which is not attributed (a skipped token, or a target with sources = prompt)")));
            }
            if std::mem::replace(&mut seen[i], true) {
                return Err(invalid(format!("spans overlap at position {i}")));
            }
        }
    }
    if spans.is_empty() {
        return Err(invalid("no tokens or spans to attribute to (every source position is skipped or not a source)".into()));
    }
    Ok(spans)
}

/// The targets' scores `(rows, T)` of coalitions `first..first + n`: `keeps(j)` says which
/// features row `j` keeps; the rows run through the chunker.
struct Coalitions<'a> {
    model: &'a ContinuationScores<'a>,
    x: &'a Tensor,
    baseline: &'a Tensor,
    spans: &'a [Range<usize>],
    batching: &'a Batching,
    per_chunk: usize,
}

impl<'a> Coalitions<'a> {
    fn new(model: &'a ContinuationScores<'a>, x: &'a Tensor, baseline: &'a Tensor, spans: &'a [Range<usize>], batching: &'a Batching) -> Result<Self> {
        Ok(Self {
            model,
            x,
            baseline,
            spans,
            batching,
            per_chunk: batching.rows_per_chunk(model, x, false)?,
        })
    }

    fn scores(&self, n: usize, label: &str, keeps: impl Fn(usize) -> Vec<bool>) -> Result<Vec<Vec<f32>>> {
        let l = self.x.dim(1)?;
        let mut out = Vec::with_capacity(n);
        self.batching.try_run(n, self.per_chunk, label, |r| -> Result<()> {
            let mut m = vec![0u8; r.len() * l];
            for (row, j) in r.clone().enumerate() {
                for (s, keep) in self.spans.iter().zip(keeps(j)) {
                    if keep {
                        m[row * l + s.start..row * l + s.end].fill(1);
                    }
                }
            }
            // Positions in no span are never perturbed.
            let mut fixed = vec![1u8; l];
            for s in self.spans {
                fixed[s.clone()].fill(0);
            }
            for (at, v) in m.iter_mut().enumerate() {
                *v = (*v).max(fixed[at % l]);
            }
            // Kept positions take x's embeddings exactly (the full coalition is x itself).
            let shape = (r.len(), l, self.x.dim(2)?);
            let keep = Tensor::from_vec(m, (r.len(), l, 1), self.x.device())?.broadcast_as(shape)?;
            let rows = keep.where_cond(&self.x.broadcast_as(shape)?, &self.baseline.broadcast_as(shape)?)?;
            let s = candle_explain_core::batch::logits(self.model, &rows)?;
            out.extend(s.to_dtype(DType::F32)?.to_vec2::<f32>()?);
            Ok(())
        })?;
        Ok(out)
    }
}

/// `(G, T)` values and the targets' scores: feature ablation, `S(x) − S(x without g)`.
pub(crate) fn ablation(model: &ContinuationScores, x: &Tensor, baseline: &Tensor, spans: &[Range<usize>], batching: &Batching) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
    let c = Coalitions::new(model, x, baseline, spans, batching)?;
    let full = c.scores(1, "full", |_| vec![true; spans.len()])?.remove(0);
    let without = c.scores(spans.len(), "ablation", |g| (0..spans.len()).map(|i| i != g).collect())?;
    let values = without.iter().map(|w| full.iter().zip(w).map(|(f, w)| f - w).collect()).collect();
    Ok((values, full))
}

/// `(G, T)` Shapley values and the targets' scores.
pub(crate) fn shapley(model: &ContinuationScores, x: &Tensor, baseline: &Tensor, spans: &[Range<usize>], sampling: ShapleySampling, batching: &Batching) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
    let g = spans.len();
    let c = Coalitions::new(model, x, baseline, spans, batching)?;
    match sampling {
        ShapleySampling::Exact => {
            if g > MAX_EXACT_FEATURES {
                return Err(invalid(format!("exact Shapley values need 2^{g} forwards; at most {MAX_EXACT_FEATURES} features are allowed: sample permutations, or group the tokens into spans")));
            }
            let v = c.scores(1 << g, "Shapley coalitions", |mask| (0..g).map(|i| mask >> i & 1 == 1).collect())?;
            let t = v[0].len();
            let w = candle_explain_core::methods::shapley::coalition_weights(g);
            let mut phi = vec![vec![0f64; t]; g];
            for mask in 0..1usize << g {
                for (i, p) in phi.iter_mut().enumerate() {
                    if mask >> i & 1 == 1 {
                        continue;
                    }
                    let (with, without) = (&v[mask | 1 << i], &v[mask]);
                    let wt = w[mask.count_ones() as usize];
                    for k in 0..t {
                        p[k] += wt * (with[k] as f64 - without[k] as f64);
                    }
                }
            }
            let full = v[(1 << g) - 1].clone();
            Ok((phi.iter().map(|p| p.iter().map(|&v| v as f32).collect()).collect(), full))
        }
        ShapleySampling::Permutations { count, seed } => {
            if count == 0 {
                return Err(invalid("Shapley sampling needs at least one permutation".into()));
            }
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let orders: Vec<Vec<usize>> = (0..count)
                .map(|_| {
                    let mut o: Vec<usize> = (0..g).collect();
                    o.shuffle(&mut rng);
                    o
                })
                .collect();
            // The empty and the full coalition once; then each order's G − 1 proper prefixes.
            let ends = c.scores(2, "Shapley ends", |j| vec![j == 1; g])?;
            let inner = g.saturating_sub(1);
            let v = c.scores(count * inner, "Shapley permutations", |j| {
                let (o, len) = (&orders[j / inner], j % inner + 1);
                let mut keep = vec![false; g];
                for &f in &o[..len] {
                    keep[f] = true;
                }
                keep
            })?;
            let t = ends[0].len();
            let mut phi = vec![vec![0f64; t]; g];
            for (p, o) in orders.iter().enumerate() {
                // prefix(len) for len in 0..=G.
                let prefix = |len: usize| -> &Vec<f32> {
                    match len {
                        0 => &ends[0],
                        l if l == g => &ends[1],
                        l => &v[p * inner + l - 1],
                    }
                };
                for (i, &f) in o.iter().enumerate() {
                    let (after, before) = (prefix(i + 1), prefix(i));
                    for k in 0..t {
                        phi[f][k] += after[k] as f64 - before[k] as f64;
                    }
                }
            }
            let values = phi.iter().map(|p| p.iter().map(|&v| (v / count as f64) as f32).collect()).collect();
            Ok((values, ends[1].clone()))
        }
    }
}
