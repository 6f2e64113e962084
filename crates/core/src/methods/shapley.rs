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
use rand::SeedableRng;

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

impl Attributor for ShapleyValues {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        let x = &s.p.x;
        let groups = Groups::new(&self.feature_mask, x)?;
        let g = groups.count;
        // Coalitions as bitmasks, in evaluation order.
        let coalitions: Vec<u64> = match self.mode {
            ShapleyMode::Exact => {
                if g > MAX_EXACT_GROUPS {
                    return Err(Error::InvalidParameter { name: "mode", reason: format!("exact Shapley values need 2^{g} coalitions per example; at most {MAX_EXACT_GROUPS} groups are allowed, use Permutations") });
                }
                (0..1u64 << g).collect()
            }
            ShapleyMode::Permutations(p) => {
                crate::validate::positive("permutations", p)?;
                if g > 64 {
                    return Err(Error::InvalidParameter {
                        name: "feature_mask",
                        reason: format!("at most 64 groups, got {g}"),
                    });
                }
                let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
                let mut order: Vec<usize> = (0..g).collect();
                let mut c = Vec::with_capacity(p * (g + 1));
                for _ in 0..p {
                    order.shuffle(&mut rng);
                    let mut bits = 0u64;
                    c.push(bits);
                    for &i in &order {
                        bits |= 1 << i;
                        c.push(bits);
                    }
                }
                c
            }
        };
        let e = coalitions.len();
        let xbar = self.baseline.resolve(x)?;
        let out = chunked_scores(model, x, &s.seed, &self.batching)?;
        let base_out = chunked_scores(model, &xbar, &s.seed, &self.batching)?;
        let (n, dev) = (x.dim(0)?, x.device());
        let v = groups.coalition_scores(
            model,
            x,
            &xbar,
            &s.seed,
            &coalitions,
            &self.batching,
            "shapley",
        )?;
        let mut phi = vec![0f64; n * g];
        for b in 0..n {
            let vb = &v[b * e..(b + 1) * e];
            match self.mode {
                ShapleyMode::Exact => {
                    let w: Vec<f64> = (0..g)
                        .map(|k| factorial(k) * factorial(g - k - 1) / factorial(g))
                        .collect();
                    for (sidx, &bits) in coalitions.iter().enumerate() {
                        for i in 0..g {
                            if bits >> i & 1 == 0 {
                                let with = (bits | 1 << i) as usize;
                                phi[b * g + i] +=
                                    w[bits.count_ones() as usize] * (vb[with] - vb[sidx]);
                            }
                        }
                    }
                }
                ShapleyMode::Permutations(p) => {
                    for k in 1..e {
                        if k % (g + 1) == 0 {
                            continue;
                        }
                        let added = (coalitions[k] ^ coalitions[k - 1]).trailing_zeros() as usize;
                        phi[b * g + added] += (vb[k] - vb[k - 1]) / p as f64;
                    }
                }
            }
        }
        let phi_t = Tensor::from_vec(phi, (n, 1, g), dev)?.to_dtype(x.dtype())?;
        let all = Tensor::arange(0u32, n as u32, dev)?;
        let attr = phi_t
            .matmul(&groups.for_examples(&all)?.contiguous()?)?
            .reshape(x.dims())?;
        let delta = ((phi_t.sum((1, 2))? - (&out - &base_out)?)?).to_dtype(x.dtype())?;
        Attribution::finish(&s.p, attr, out, Some(base_out), Some(delta))
    }
}
