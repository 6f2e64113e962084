//! Sensitivity-n (Ancona et al. 2018, PAPERS.md §1): for random subsets S of n features,
//! the Pearson correlation between `Σ_{i∈S} R_i` and the output drop `S_c(x) − S_c(x_{S←x̄})`,
//! per example and n, averaged over examples. A method satisfies Sensitivity-n when the
//! correlation is 1. All (n, subset) pairs of all examples are rows of one chunked sweep.
//! With a feature mask the features are its groups (a word's embedding, a superpixel): a
//! subset of n groups is set to the baseline and `R` is summed over their elements.

use crate::perturb::{hash_keys, masked_scores, prepare, smallest_k_masks};
use crate::{invalid, Result};
use candle_core::{DType, Tensor};
use candle_explain_core::methods::FeatureGroups;
use candle_explain_core::{Baseline, Batching, Explainable, Target};

#[derive(Debug, Clone)]
pub struct SensitivityN {
    /// Subset sizes to test.
    pub ns: Vec<usize>,
    /// Random subsets per n and example (about 1000 in the paper; 100 is common).
    pub subsets: usize,
    pub baseline: Baseline,
    pub seed: u64,
    pub batching: Batching,
    /// Group ids (as for `FeatureAblation`): subsets are drawn over groups, not elements.
    pub feature_mask: Option<Tensor>,
}

#[derive(Debug, Clone)]
pub struct SensitivityNResult {
    pub n: Vec<usize>,
    /// Mean over examples of the per-example correlation, for each n.
    pub correlation: Vec<f64>,
    /// `[example][n]`; NaN where the attributions or the drops are constant over the subsets.
    pub per_example: Vec<Vec<f64>>,
}

impl SensitivityN {
    pub fn new(ns: Vec<usize>, subsets: usize, seed: u64) -> Self {
        Self {
            ns,
            subsets,
            baseline: Baseline::Zero,
            seed,
            batching: Batching::default(),
            feature_mask: None,
        }
    }

    /// `points` subset sizes spaced logarithmically from 1 to `max_fraction` of `features`.
    pub fn log_grid(features: usize, points: usize, max_fraction: f64) -> Result<Vec<usize>> {
        if !(max_fraction > 0.0 && max_fraction <= 1.0) {
            return Err(invalid(
                "max_fraction",
                format!("must be in (0, 1], got {max_fraction}"),
            ));
        }
        if points == 0 || features == 0 {
            return Err(invalid("points", "need at least one point and one feature"));
        }
        let top = (features as f64 * max_fraction).max(1.0);
        let mut v: Vec<usize> = (0..points)
            .map(|i| {
                if points == 1 {
                    top
                } else {
                    top.powf(i as f64 / (points - 1) as f64)
                }
                .round()
                .max(1.0) as usize
            })
            .collect();
        v.dedup();
        Ok(v)
    }

    pub fn evaluate(
        &self,
        model: &dyn Explainable,
        x: &Tensor,
        attributions: &Tensor,
        target: &Target,
    ) -> Result<SensitivityNResult> {
        let p = prepare(model, x, target)?;
        if attributions.dims() != x.dims() {
            return Err(invalid(
                "attributions",
                format!(
                    "shape {:?} must equal the input's {:?}",
                    attributions.dims(),
                    x.dims()
                ),
            ));
        }
        crate::perturb::check_attributions(attributions)?;
        let b = x.dim(0)?;
        let groups = match &self.feature_mask {
            Some(mask) => Some(FeatureGroups::new(mask, x)?),
            None => None,
        };
        let f = match &groups {
            Some(g) => g.count,
            None => x.elem_count() / b,
        };
        if self.subsets < 2 {
            return Err(invalid("subsets", "a correlation needs at least 2 subsets"));
        }
        if let Some(&n) = self.ns.iter().find(|&&n| n == 0 || n > f) {
            return Err(invalid(
                "ns",
                format!(
                    "subset size {n} must be in 1..={f} (the number of {})",
                    if groups.is_some() { "feature groups" } else { "features" }
                ),
            ));
        }
        if self.ns.is_empty() {
            return Err(invalid("ns", "no subset sizes"));
        }
        let per_ex = self.ns.len() * self.subsets;
        let xbar = self.baseline.resolve(x)?;
        let attr = attributions.to_dtype(x.dtype())?.flatten_from(1)?;
        let mut attr_sums = Vec::new();
        let scores = masked_scores(
            model,
            &p,
            &xbar,
            per_ex,
            &self.batching,
            "sensitivity-n",
            |r, ex| {
                let ns: Vec<usize> = r
                    .clone()
                    .map(|i| self.ns[(i % per_ex) / self.subsets])
                    .collect();
                let mut m = smallest_k_masks(&hash_keys(r, f, self.seed, x.device())?, &ns)?
                    .to_dtype(x.dtype())?;
                if let Some(g) = &groups {
                    // Each element takes its group's bit: (rows, G) → (rows, F).
                    let ids = match g.ids.dim(0)? {
                        1 => g.ids.broadcast_as((r.len(), g.ids.dim(1)?))?.contiguous()?,
                        _ => g.ids.index_select(ex, 0)?,
                    };
                    m = m.contiguous()?.gather(&ids, 1)?;
                }
                attr_sums.push((&m * attr.index_select(ex, 0)?)?.sum(1)?);
                Ok(m)
            },
        )?;
        let sums: Vec<f64> = Tensor::cat(&attr_sums, 0)?
            .to_dtype(DType::F64)?
            .to_vec1()?;
        let sc: Vec<f64> = scores.to_dtype(DType::F64)?.to_vec1()?;
        let base: Vec<f64> = p.score.to_dtype(DType::F64)?.to_vec1()?;
        let mut per_example = vec![vec![0.0; self.ns.len()]; b];
        for e in 0..b {
            for (j, row) in per_example[e].iter_mut().enumerate() {
                let lo = e * per_ex + j * self.subsets;
                let a = &sums[lo..lo + self.subsets];
                let d: Vec<f64> = sc[lo..lo + self.subsets]
                    .iter()
                    .map(|s| base[e] - s)
                    .collect();
                *row = pearson(a, &d);
            }
        }
        let correlation = (0..self.ns.len())
            .map(|j| per_example.iter().map(|r| r[j]).sum::<f64>() / b as f64)
            .collect();
        Ok(SensitivityNResult {
            n: self.ns.clone(),
            correlation,
            per_example,
        })
    }
}

/// Pearson correlation; NaN when either side is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::NAN;
    }
    sab / (saa * sbb).sqrt()
}
