//! KernelSHAP (Lundberg & Lee 2017, Captum's `KernelShap`): Shapley values of feature groups
//! as the weighted least-squares fit of a linear model to coalition scores, with the Shapley
//! kernel `π(z) = (G − 1) / (C(G, |z|) · |z| · (G − |z|))` as weights. The empty and the full
//! coalition carry a weight large enough to pin `φ₀ = f(x̄)` and `Σ φ = f(x) − f(x̄)`.
//! [`KernelShap::exact`] fits every coalition (the fit is then the exact Shapley values, the
//! paper's theorem; tested); [`KernelShap::sampling`] draws coalition sizes in proportion to
//! the kernel's mass and the members uniformly, each drawn coalition weighted 1 (Captum's
//! sampler), and converges to them.

use super::common::sample_rng;
use super::surrogate::{choose, fit, given_coalitions, Plan};
use crate::{Attribution, Attributor, Baseline, Batching, Error, Explainable, Result, Target};
use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand::Rng;

/// Weight of the empty and full coalitions (the fit's two constraints).
const ANCHOR: f64 = 1e8;
/// Largest group count for the exact fit (2^16 coalitions per example).
pub const MAX_EXACT_GROUPS: usize = 16;

#[derive(Debug, Clone)]
pub struct KernelShap {
    pub feature_mask: Tensor,
    pub baseline: Baseline,
    /// Coalitions drawn per example (`None`: every coalition, exact).
    pub samples: Option<usize>,
    pub seed: u64,
    /// The coalitions to fit instead of drawn ones (bit `i` set: group `i` present), the same
    /// for every example, each weighted 1 as a drawn one (the empty and the full coalition
    /// as anchors): to reproduce another tool's samples.
    pub coalitions: Option<Vec<u64>>,
    pub batching: Batching,
}

impl KernelShap {
    /// Every coalition of the (at most 16) groups: the exact Shapley values.
    pub fn exact(feature_mask: Tensor) -> Self {
        Self {
            feature_mask,
            baseline: Baseline::Zero,
            samples: None,
            seed: 0,
            coalitions: None,
            batching: Batching::default(),
        }
    }

    /// `samples` coalitions drawn from the Shapley kernel (the same for every example).
    pub fn sampling(feature_mask: Tensor, samples: usize, seed: u64) -> Self {
        Self {
            samples: Some(samples),
            seed,
            ..Self::exact(feature_mask)
        }
    }

    /// Fit these coalitions (the empty and the full one among them pin the ends).
    pub fn with_coalitions(mut self, coalitions: Vec<u64>) -> Self {
        self.samples = Some(coalitions.len());
        self.coalitions = Some(coalitions);
        self
    }

    pub fn with_baseline(mut self, b: Baseline) -> Self {
        self.baseline = b;
        self
    }
}

/// The kernel's weight of one coalition of size `k` among `g` groups (the anchors at 0, g).
fn kernel(g: usize, k: usize) -> f64 {
    if k == 0 || k == g {
        ANCHOR
    } else {
        (g - 1) as f64 / (choose(g, k) * k as f64 * (g - k) as f64)
    }
}

impl Attributor for KernelShap {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        if let (Some(n), None) = (self.samples, &self.coalitions) {
            crate::validate::positive("samples", n)?;
        }
        let seed = self.seed;
        let samples = self.samples;
        let given = self.coalitions.as_deref();
        fit(
            model,
            input,
            target,
            &self.feature_mask,
            &self.baseline,
            &self.batching,
            "KernelSHAP",
            0.0,
            &|g, _| -> Result<Plan> {
                if g < 2 {
                    return Err(Error::InvalidParameter {
                        name: "feature_mask",
                        reason: format!("KernelSHAP needs at least 2 groups, got {g}"),
                    });
                }
                if let Some(list) = given {
                    given_coalitions(list, g)?;
                    let full = if g == 64 { u64::MAX } else { (1u64 << g) - 1 };
                    return Ok(Plan {
                        per_example: list.len(),
                        coalition: Box::new(move |k| list[k]),
                        weight: Box::new(move |_, _, bits| {
                            if bits == 0 || bits == full {
                                ANCHOR
                            } else {
                                1.0
                            }
                        }),
                    });
                }
                Ok(match samples {
                    None => {
                        if g > MAX_EXACT_GROUPS {
                            return Err(Error::InvalidParameter { name: "samples", reason: format!("the exact fit needs 2^{g} coalitions per example; at most {MAX_EXACT_GROUPS} groups, use KernelShap::sampling") });
                        }
                        Plan {
                            per_example: 1 << g,
                            coalition: Box::new(|k| k as u64),
                            weight: Box::new(move |_, _, bits| {
                                kernel(g, bits.count_ones() as usize)
                            }),
                        }
                    }
                    Some(n) => {
                        let total = n
                            .checked_add(2)
                            .ok_or_else(|| crate::error::invalid("samples", "too many"))?;
                        // Size k (1..g-1) with probability ∝ the kernel's mass at k: (g−1)/(k(g−k)).
                        let mass: Vec<f64> = (1..g).map(|k| 1.0 / (k * (g - k)) as f64).collect();
                        let sum: f64 = mass.iter().sum();
                        Plan {
                            per_example: total,
                            coalition: Box::new(move |k| match k {
                                0 => 0,
                                1 => {
                                    if g == 64 {
                                        u64::MAX
                                    } else {
                                        (1u64 << g) - 1
                                    }
                                }
                                _ => {
                                    let mut rng = sample_rng(seed, k);
                                    let mut u: f64 = rng.random::<f64>() * sum;
                                    let mut size = g - 1;
                                    for (i, m) in mass.iter().enumerate() {
                                        if u < *m {
                                            size = i + 1;
                                            break;
                                        }
                                        u -= m;
                                    }
                                    let mut order: Vec<usize> = (0..g).collect();
                                    order.shuffle(&mut rng);
                                    order[..size].iter().fold(0u64, |b, &i| b | 1 << i)
                                }
                            }),
                            weight: Box::new(move |_, k, _| if k < 2 { ANCHOR } else { 1.0 }),
                        }
                    }
                })
            },
        )
    }
}
