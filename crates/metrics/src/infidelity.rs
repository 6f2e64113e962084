//! Infidelity and max-sensitivity (Yeh et al. 2019, "On the (In)fidelity and Sensitivity of
//! Explanations"; Captum's `infidelity` / `sensitivity_max`).
//!
//! - Infidelity: `E_I[(Iᵀ A − (S(x) − S(x − I)))²]` with Gaussian perturbations
//!   `I ∼ N(0, σ²)`; with `normalize`, A is first scaled by the β that minimises it
//!   (`β = E[Iᵀ A · Δ] / E[(Iᵀ A)²]`), as Captum does.
//! - Max-sensitivity: `max_{‖y − x‖_∞ ≤ r} ‖A(y) − A(x)‖ / ‖A(x)‖`, estimated over uniformly
//!   sampled y; all samples are explained in one batch (the method chunks it).
//!
//! Perturbations come from hashes of (seed, row, feature) evaluated on the device.

use crate::perturb::{hash_keys, normal_noise, prepare};
use crate::{invalid, Result};
use candle_core::{DType, Tensor};
use candle_explain_core::{Attributor, Batching, Explainable, RuleCtx, Target};

#[derive(Debug, Clone)]
pub struct Infidelity {
    pub samples: usize,
    pub sigma: f64,
    pub normalize: bool,
    pub seed: u64,
    pub batching: Batching,
}

impl Infidelity {
    pub fn new(samples: usize, sigma: f64, seed: u64) -> Self {
        Self {
            samples,
            sigma,
            normalize: false,
            seed,
            batching: Batching::default(),
        }
    }

    /// Infidelity per example.
    pub fn evaluate(
        &self,
        model: &dyn Explainable,
        x: &Tensor,
        attributions: &Tensor,
        target: &Target,
    ) -> Result<Vec<f64>> {
        crate::perturb::check_attributions(attributions)?;
        if self.samples == 0 || !(self.sigma > 0.0 && self.sigma.is_finite()) {
            return Err(invalid(
                "infidelity",
                format!(
                    "need samples ≥ 1 and σ > 0, got {} and {}",
                    self.samples, self.sigma
                ),
            ));
        }
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
        let (b, f, j) = (x.dim(0)?, x.elem_count() / x.dim(0)?, self.samples);
        let flat = x.flatten_from(1)?;
        let attr = attributions.to_dtype(x.dtype())?.flatten_from(1)?;
        let per = self.batching.rows_per_chunk(model, x, false)?;
        let (mut ia, mut drop) = (vec![], vec![]);
        self.batching
            .try_run(b * j, per, "infidelity", |r| -> Result<()> {
                let ex = Tensor::new(
                    r.clone().map(|i| (i / j) as u32).collect::<Vec<_>>(),
                    x.device(),
                )?;
                let noise = (normal_noise(&r, f, self.seed, x.device())?.to_dtype(x.dtype())?
                    * self.sigma)?;
                let xi = flat.index_select(&ex, 0)?;
                let mut dims = x.dims().to_vec();
                dims[0] = r.len();
                let pert = (&xi - &noise)?.reshape(dims)?;
                let rows = candle_explain_core::batch::view(model, &ex)?;
                let s = (rows.forward_with(&pert, &RuleCtx::inference())?
                    * p.seed.index_select(&ex, 0)?)?
                .sum(1)?;
                drop.push((p.score.index_select(&ex, 0)? - s)?);
                ia.push((noise * attr.index_select(&ex, 0)?)?.sum(1)?);
                Ok(())
            })?;
        let ia: Vec<f64> = Tensor::cat(&ia, 0)?.to_dtype(DType::F64)?.to_vec1()?;
        let dr: Vec<f64> = Tensor::cat(&drop, 0)?.to_dtype(DType::F64)?.to_vec1()?;
        Ok((0..b)
            .map(|e| {
                let (a, d) = (&ia[e * j..(e + 1) * j], &dr[e * j..(e + 1) * j]);
                let beta = if self.normalize {
                    let den: f64 = a.iter().map(|v| v * v).sum();
                    if den > 0.0 {
                        a.iter().zip(d).map(|(p, q)| p * q).sum::<f64>() / den
                    } else {
                        1.0
                    }
                } else {
                    1.0
                };
                a.iter()
                    .zip(d)
                    .map(|(p, q)| (beta * p - q).powi(2))
                    .sum::<f64>()
                    / j as f64
            })
            .collect())
    }
}

#[derive(Debug, Clone)]
pub struct MaxSensitivity {
    pub samples: usize,
    /// L∞ radius of the perturbations.
    pub radius: f64,
    pub seed: u64,
}

impl MaxSensitivity {
    pub fn new(samples: usize, radius: f64, seed: u64) -> Self {
        Self {
            samples,
            radius,
            seed,
        }
    }

    /// Max-sensitivity of `method` per example (Frobenius norms, relative to ‖A(x)‖).
    pub fn evaluate(
        &self,
        method: &dyn Attributor,
        model: &dyn Explainable,
        x: &Tensor,
        target: &Target,
    ) -> Result<Vec<f64>> {
        if self.samples == 0 || !(self.radius > 0.0 && self.radius.is_finite()) {
            return Err(invalid(
                "max_sensitivity",
                format!(
                    "need samples ≥ 1 and radius > 0, got {} and {}",
                    self.samples, self.radius
                ),
            ));
        }
        let _ = prepare(model, x, target)?;
        let (b, f, j) = (x.dim(0)?, x.elem_count() / x.dim(0)?, self.samples);
        let base = method
            .attribute(model, x, target)?
            .attributions
            .flatten_from(1)?;
        let rows = 0..b * j;
        let u = ((hash_keys(&rows, f, self.seed, x.device())?.to_dtype(x.dtype())? * 2.0)? - 1.0)?;
        let ex = Tensor::new(
            rows.clone().map(|i| (i / j) as u32).collect::<Vec<_>>(),
            x.device(),
        )?;
        let mut dims = x.dims().to_vec();
        dims[0] = b * j;
        let y = (x.flatten_from(1)?.index_select(&ex, 0)? + (u * self.radius)?)?.reshape(dims)?;
        let target_rep = match target {
            Target::Class(c) => Target::Class(*c),
            Target::PerExample(v) => {
                Target::PerExample(v.iter().flat_map(|&c| std::iter::repeat_n(c, j)).collect())
            }
            Target::Seed(s) => Target::Seed(s.index_select(&ex, 0)?),
            Target::Classes(_) => return Err(invalid("target", "one output per example")),
        };
        let ay = method
            .attribute(model, &y, &target_rep)?
            .attributions
            .flatten_from(1)?;
        let diff: Vec<f64> = (ay - base.index_select(&ex, 0)?)?
            .sqr()?
            .sum(1)?
            .sqrt()?
            .to_dtype(DType::F64)?
            .to_vec1()?;
        let norm: Vec<f64> = base
            .sqr()?
            .sum(1)?
            .sqrt()?
            .to_dtype(DType::F64)?
            .to_vec1()?;
        Ok((0..b)
            .map(|e| {
                diff[e * j..(e + 1) * j].iter().fold(0f64, |m, v| m.max(*v)) / norm[e].max(1e-12)
            })
            .collect())
    }
}
