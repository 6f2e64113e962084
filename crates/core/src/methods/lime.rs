//! LIME (Ribeiro et al. 2016), in Captum's default form: interpretable binary features over
//! feature groups, each sample switching every group on with probability ½ (off = the
//! baseline's values), weighted by the exponential kernel of the cosine distance between the
//! perturbed and the original input, `exp(−d² / (2 width²))` (Captum's
//! `get_exp_kernel_similarity_function`), and a linear model fitted by
//! weighted least squares. Captum's default surrogate is a Lasso (α = 0.01); here the fit is
//! least squares with an optional ridge penalty (`ridge`, 0 by default), which a linear model
//! recovers exactly (tested).

use super::common::sample_rng;
use super::surrogate::{fit, given_coalitions, Plan};
use crate::{Attribution, Attributor, Baseline, Batching, Explainable, Result, Target};
use candle_core::Tensor;
use rand::Rng;

#[derive(Debug, Clone)]
pub struct Lime {
    pub feature_mask: Tensor,
    pub baseline: Baseline,
    /// Perturbed samples per example.
    pub samples: usize,
    /// Width of the similarity kernel on the cosine distance (Captum: 1.0).
    pub kernel_width: f64,
    /// L2 penalty of the linear fit (not on the intercept).
    pub ridge: f64,
    pub seed: u64,
    /// The coalitions to fit instead of drawn ones (bit `i` set: group `i` present), the same
    /// for every example: to reproduce another tool's samples, or a design of one's own.
    pub coalitions: Option<Vec<u64>>,
    pub batching: Batching,
}

impl Lime {
    pub fn new(feature_mask: Tensor, samples: usize, seed: u64) -> Self {
        Self {
            feature_mask,
            baseline: Baseline::Zero,
            samples,
            kernel_width: 1.0,
            ridge: 0.0,
            seed,
            coalitions: None,
            batching: Batching::default(),
        }
    }

    pub fn with_coalitions(mut self, coalitions: Vec<u64>) -> Self {
        self.samples = coalitions.len();
        self.coalitions = Some(coalitions);
        self
    }

    pub fn with_baseline(mut self, b: Baseline) -> Self {
        self.baseline = b;
        self
    }
}

impl Attributor for Lime {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        match &self.coalitions {
            // An empty list is named as such by the fit's check, not as "samples = 0".
            Some(_) => {}
            None => crate::validate::positive("samples", self.samples)?,
        }
        for (name, v) in [
            ("kernel_width", self.kernel_width),
            ("ridge", self.ridge + 1.0),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(crate::error::invalid(
                    name,
                    format!("must be a positive number, got {v}"),
                ));
            }
        }
        let (seed, n, width) = (self.seed, self.samples, self.kernel_width);
        let given = self.coalitions.as_deref();
        fit(
            model,
            input,
            target,
            &self.feature_mask,
            &self.baseline,
            &self.batching,
            "LIME",
            self.ridge,
            &|g, dots| -> Result<Plan> {
                if let Some(list) = given {
                    given_coalitions(list, g)?;
                }
                Ok(Plan {
                    per_example: given.map_or(n, |l| l.len()),
                    coalition: Box::new(move |k| match given {
                        Some(list) => list[k],
                        None => {
                            let mut rng = sample_rng(seed, k);
                            (0..g).fold(0u64, |b, i| b | ((rng.random::<bool>() as u64) << i))
                        }
                    }),
                    weight: Box::new(move |e, _, bits| {
                        // Cosine distance between x and the perturbed input, from per-group sums.
                        let (mut dot, mut pp, mut xx) = (0.0, 0.0, 0.0);
                        for i in 0..g {
                            xx += dots.xx[e][i];
                            if bits >> i & 1 == 1 {
                                dot += dots.xx[e][i];
                                pp += dots.xx[e][i];
                            } else {
                                dot += dots.xb[e][i];
                                pp += dots.bb[e][i];
                            }
                        }
                        let cos = if pp > 0.0 && xx > 0.0 {
                            dot / (pp * xx).sqrt()
                        } else {
                            0.0
                        };
                        let d = 1.0 - cos;
                        (-d * d / (2.0 * width * width)).exp()
                    }),
                })
            },
        )
    }
}
