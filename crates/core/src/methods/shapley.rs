//! Shapley values over feature groups (Shapley 1953; Štrumbelj & Kononenko 2010 for the
//! permutation sampling). Every coalition is a row of one chunked batch; the values are
//! assembled on the host from the coalition scores (tiny: one number per row).
//!
//! As in Captum, every feature of a group gets the group's value; completeness holds per
//! group, `Σ_g φ_g = S(x) − S(x̄)`, and `delta` reports that sum's error.

use super::common::{chunked_scores, setup};
use super::groups::Groups;
use crate::{Attribution, Attributor, Baseline, Batching, Error, Explainable, Result, Target};
use candle_core::Tensor;
use rand::seq::SliceRandom;
use std::cell::RefCell;

/// Largest group count for exact Shapley values (2^16 coalitions per example).
pub const MAX_EXACT_GROUPS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapleyMode {
    /// All 2^G coalitions: exact values.
    Exact,
    /// This many random permutations (the same for every example), G + 1 coalitions each.
    Permutations(usize),
}

#[derive(Debug, Clone)]
pub struct ShapleyValues {
    pub feature_mask: Tensor,
    pub baseline: Baseline,
    pub mode: ShapleyMode,
    pub seed: u64,
    pub batching: Batching,
}

impl ShapleyValues {
    pub fn exact(feature_mask: Tensor) -> Self {
        Self {
            feature_mask,
            baseline: Baseline::Zero,
            mode: ShapleyMode::Exact,
            seed: 0,
            batching: Batching::default(),
        }
    }

    pub fn sampling(feature_mask: Tensor, permutations: usize, seed: u64) -> Self {
        Self {
            mode: ShapleyMode::Permutations(permutations),
            seed,
            ..Self::exact(feature_mask)
        }
    }
}

fn factorial(n: usize) -> f64 {
    (1..=n).map(|v| v as f64).product()
}

/// The weight `|S|! (g − |S| − 1)! / g!` of a player's marginal contribution to a coalition
/// `S` of the other players, indexed by `|S|` (`0..g`).
pub fn coalition_weights(g: usize) -> Vec<f64> {
    (0..g)
        .map(|k| factorial(k) * factorial(g - k - 1) / factorial(g))
        .collect()
}

impl Attributor for ShapleyValues {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let x = &s.p.x;
        let groups = Groups::new(&self.feature_mask, x)?;
        let g = groups.count;
        // Rows per example, and the coalition (a bitmask) of each: generated per chunk, so
        // that memory does not grow with the number of permutations.
        let per_example = match self.mode {
            ShapleyMode::Exact => {
                if g > MAX_EXACT_GROUPS {
                    return Err(Error::InvalidParameter { name: "mode", reason: format!("exact Shapley values need 2^{g} coalitions per example; at most {MAX_EXACT_GROUPS} groups are allowed, use Permutations") });
                }
                1usize << g
            }
            ShapleyMode::Permutations(p) => {
                crate::validate::positive("permutations", p)?;
                if g > 64 {
                    return Err(Error::InvalidParameter {
                        name: "feature_mask",
                        reason: format!("at most 64 groups, got {g}"),
                    });
                }
                p.checked_mul(g + 1).ok_or_else(|| Error::TooLarge {
                    what: "Shapley permutations".into(),
                    needed: format!("{p} permutations × {} coalitions", g + 1),
                    limit: format!("{} rows", usize::MAX),
                    hint: "use fewer permutations".into(),
                })?
            }
        };
        // Permutation `k` is drawn from `seed` and `k` alone (the same for every example).
        let perm = RefCell::new((usize::MAX, Vec::<usize>::new()));
        let permutation = |k: usize| -> std::cell::Ref<'_, (usize, Vec<usize>)> {
            if perm.borrow().0 != k {
                let mut order: Vec<usize> = (0..g).collect();
                order.shuffle(&mut super::common::sample_rng(self.seed, k));
                *perm.borrow_mut() = (k, order);
            }
            perm.borrow()
        };
        let coalition = |row: usize| -> u64 {
            match self.mode {
                ShapleyMode::Exact => row as u64,
                ShapleyMode::Permutations(_) => {
                    let (k, t) = (row / (g + 1), row % (g + 1));
                    permutation(k).1[..t].iter().fold(0u64, |b, &i| b | 1 << i)
                }
            }
        };
        let xbar = self.baseline.resolve(x)?;
        let out = chunked_scores(model, x, &s.seed, &self.batching)?;
        let base_out = chunked_scores(model, &xbar, &s.seed, &self.batching)?;
        let (n, dev) = (x.dim(0)?, x.device());
        crate::validate::host_alloc(n.saturating_mul(g), 8, "the Shapley values")?;
        let mut phi = vec![0f64; n * g];
        let weights = coalition_weights(g);
        // Exact: one example's 2^g values at a time; sampling: the previous row's score.
        let mut values = vec![
            0f64;
            if self.mode == ShapleyMode::Exact {
                per_example
            } else {
                0
            }
        ];
        let mut prev = 0f64;
        groups.coalition_sweep(
            model,
            x,
            &xbar,
            &s.seed,
            per_example,
            &coalition,
            &self.batching,
            "shapley",
            |rows, scores| {
                for (row, &v) in rows.clone().zip(scores) {
                    let (b, k) = (row / per_example, row % per_example);
                    match self.mode {
                        ShapleyMode::Exact => {
                            values[k] = v;
                            if k + 1 < per_example {
                                continue;
                            }
                            for (bits, &vs) in values.iter().enumerate() {
                                for i in 0..g {
                                    if bits >> i & 1 == 0 {
                                        let with = bits | 1 << i;
                                        phi[b * g + i] += weights
                                            [(bits as u64).count_ones() as usize]
                                            * (values[with] - vs);
                                    }
                                }
                            }
                        }
                        ShapleyMode::Permutations(p) => {
                            let t = k % (g + 1);
                            if t > 0 {
                                let added = permutation(k / (g + 1)).1[t - 1];
                                phi[b * g + added] += (v - prev) / p as f64;
                            }
                            prev = v;
                        }
                    }
                }
                Ok(())
            },
        )?;
        let phi_t = Tensor::from_vec(phi, (n, 1, g), dev)?.to_dtype(x.dtype())?;
        let all = Tensor::arange(0u32, n as u32, dev)?;
        let attr = phi_t
            .matmul(&groups.for_examples(&all)?.contiguous()?)?
            .reshape(x.dims())?;
        let delta = ((phi_t.sum((1, 2))? - (&out - &base_out)?)?).to_dtype(x.dtype())?;
        Attribution::finish(
            &s.p,
            "Shapley values",
            attr,
            out,
            Some(base_out),
            Some(delta),
        )
    }
}
