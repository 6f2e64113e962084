//! Blur IG (Xu et al. 2020, "Attribution in Scale and Space"): integrate the gradient along
//! the path of ever less blurred images, from `blur(x, σ_max)` to `x`:
//!
//! `BlurIG_i = −Σ_k Δσ · ∂blur(x, σ)_i/∂σ |_{σ_k} · ∂S/∂x_i (blur(x, σ_k))`,
//!
//! with σ_k = k·σ_max/steps (left Riemann sum from σ = 0), the σ-derivative by a forward
//! difference of step `grad_step` (as in PAIR's reference implementation). Blurs replicate
//! the border (PAIR uses scipy's reflecting filter). Completeness: `Σ BlurIG ≈ S(x) −
//! S(blur(x, σ_max))`, reported as the delta.

use super::common::{chunked_scores, completeness_delta, setup};
use crate::baseline::gaussian_blur_replicate as blur;
use crate::batch::gradient;
use crate::rules::ActRule;
use crate::{Attribution, Attributor, Batching, Error, Explainable, Result, RuleCtx, Target};
use candle_core::Tensor;

#[derive(Debug, Clone)]
pub struct BlurIntegratedGradients {
    pub max_sigma: f64,
    pub steps: usize,
    pub grad_step: f64,
    pub batching: Batching,
}

impl Default for BlurIntegratedGradients {
    fn default() -> Self {
        Self {
            max_sigma: 50.0,
            steps: 100,
            grad_step: 0.01,
            batching: Batching::default(),
        }
    }
}

impl Attributor for BlurIntegratedGradients {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        crate::validate::positive("steps", self.steps)?;
        for (name, v) in [("max_sigma", self.max_sigma), ("grad_step", self.grad_step)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(crate::error::invalid(
                    name,
                    format!("must be a positive number, got {v}"),
                ));
            }
        }
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let x = &s.p.x;
        if x.rank() != 4 {
            return Err(Error::InputShape {
                expected: "(batch, channels, height, width) for Blur IG".into(),
                got: x.dims().to_vec(),
            });
        }
        let (n, steps) = (x.dim(0)?, self.steps);
        let total = crate::validate::rows(n, steps, "Blur IG: examples × steps")?;
        let dsigma = self.max_sigma / steps as f64;
        let per = self.batching.rows_per_chunk(model, x, true)?;
        let mut acc = x.zeros_like()?;
        // Rows are step-major (row = k·n + b): a chunk blurs every example once per step it covers.
        self.batching.run(total, per, "blur ig", |r| {
            let (k0, k1) = (r.start / n, (r.end - 1) / n);
            let (mut pts, mut dirs) = (vec![], vec![]);
            for k in k0..=k1 {
                let sigma = k as f64 * dsigma;
                let p = blur(x, sigma)?;
                dirs.push(((blur(x, sigma + self.grad_step)? - &p)? / self.grad_step)?);
                pts.push(p);
            }
            let off = r.start - k0 * n;
            let (pts, dirs) = (
                Tensor::cat(&pts, 0)?.narrow(0, off, r.len())?,
                Tensor::cat(&dirs, 0)?.narrow(0, off, r.len())?,
            );
            let ex: Vec<u32> = r.clone().map(|i| (i % n) as u32).collect();
            let ex = Tensor::new(ex, x.device())?;
            let (_, g) = gradient(
                &*crate::batch::view(model, &ex)?,
                &pts,
                &s.seed.index_select(&ex, 0)?,
                &RuleCtx::rule(ActRule::Gradient)?,
            )?;
            acc = acc.index_add(&ex, &((dirs * g)? * -dsigma)?, 0)?;
            Ok(())
        })?;
        let out = chunked_scores(model, x, &s.seed, &self.batching)?;
        let base_out = chunked_scores(model, &blur(x, self.max_sigma)?, &s.seed, &self.batching)?;
        let delta = completeness_delta(&acc, &out, Some(&base_out))?;
        Attribution::finish(&s.p, "Blur IG", acc, out, Some(base_out), Some(delta))
    }
}
