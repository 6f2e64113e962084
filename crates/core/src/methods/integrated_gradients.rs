//! Integrated Gradients (Sundararajan et al. 2017):
//! `IG_i = (x_i − x̄_i) · ∫₀¹ ∂S_c/∂x_i (x̄ + α(x − x̄)) dα`.
//!
//! All (example, α) pairs are rows of one batch, cut into chunks by the shared chunker.

use super::common::{chunked_scores, completeness_delta, setup};
use crate::batch::{example_index, gradient};
use crate::rules::ActRule;
use crate::{
    Attribution, Attributor, Baseline, Batching, Explainable, Quadrature, Result, RuleCtx, Target,
};
use candle_core::Tensor;

/// Adds steps until every example's completeness delta is under a tolerance.
#[derive(Debug, Clone, Copy)]
pub struct AdaptiveSteps {
    /// Target for `|Σ IG − (S(x) − S(x̄))|`.
    pub tolerance: f64,
    /// Stop doubling beyond this many steps.
    pub max_steps: usize,
}

#[derive(Debug, Clone)]
pub struct IntegratedGradients {
    pub steps: usize,
    pub quadrature: Quadrature,
    pub baseline: Baseline,
    /// When set, `steps` is the starting point; steps double (only for the examples that
    /// miss the tolerance) until they meet it or reach `max_steps`.
    pub adaptive: Option<AdaptiveSteps>,
    pub batching: Batching,
}

impl Default for IntegratedGradients {
    fn default() -> Self {
        Self {
            steps: 50,
            quadrature: Quadrature::GaussLegendre,
            baseline: Baseline::Zero,
            adaptive: None,
            batching: Batching::default(),
        }
    }
}

impl IntegratedGradients {
    pub fn new(steps: usize) -> Self {
        Self {
            steps,
            ..Self::default()
        }
    }
    pub fn with_quadrature(mut self, q: Quadrature) -> Self {
        self.quadrature = q;
        self
    }
    pub fn with_baseline(mut self, b: Baseline) -> Self {
        self.baseline = b;
        self
    }
    pub fn with_adaptive(mut self, tolerance: f64, max_steps: usize) -> Self {
        self.adaptive = Some(AdaptiveSteps {
            tolerance,
            max_steps,
        });
        self
    }
    pub fn with_batching(mut self, b: Batching) -> Self {
        self.batching = b;
        self
    }
}

/// Path integral of the gradient, `∫₀¹ ∇S(x̄ + α(x − x̄)) dα`, by quadrature; one value per row.
pub(crate) fn path_integral(
    model: &dyn Explainable,
    x: &Tensor,
    xbar: &Tensor,
    seed: &Tensor,
    q: Quadrature,
    steps: usize,
    batching: &Batching,
) -> Result<Tensor> {
    let (alphas, weights) = q.nodes(steps)?;
    let n = x.dim(0)?;
    let total = crate::validate::rows(n, steps, "Integrated Gradients: examples × steps")?;
    let dev = x.device();
    let per = batching.rows_per_chunk(model, x, true)?;
    let mut acc = x.zeros_like()?;
    let diff = (x - xbar)?;
    batching.run(total, per, "integrated gradients", |r| {
        let ex = example_index(&r, steps, dev)?;
        let a: Vec<f32> = r.clone().map(|i| alphas[i % steps] as f32).collect();
        let w: Vec<f32> = r.clone().map(|i| weights[i % steps] as f32).collect();
        let len = r.len();
        let a = crate::batch::col(
            &Tensor::from_vec(a, len, dev)?.to_dtype(x.dtype())?,
            x.rank(),
        )?;
        let w = crate::batch::col(
            &Tensor::from_vec(w, len, dev)?.to_dtype(x.dtype())?,
            x.rank(),
        )?;
        let pts = xbar
            .index_select(&ex, 0)?
            .add(&diff.index_select(&ex, 0)?.broadcast_mul(&a)?)?;
        let ctx = RuleCtx::rule(ActRule::Gradient)?;
        let rows = crate::batch::view(model, &ex)?;
        let (_, g) = gradient(&*rows, &pts, &seed.index_select(&ex, 0)?, &ctx)?;
        acc = acc.index_add(&ex, &g.broadcast_mul(&w)?, 0)?;
        Ok(())
    })?;
    Ok(acc)
}

impl Attributor for IntegratedGradients {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        crate::validate::positive("steps", self.steps)?;
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let x = &s.p.x;
        let xbar = self.baseline.resolve(x)?;
        let out = chunked_scores(model, x, &s.seed, &self.batching)?;
        let base_out = chunked_scores(model, &xbar, &s.seed, &self.batching)?;
        let ig = |rows: Option<&Tensor>, steps: usize| -> Result<Tensor> {
            let pick = |t: &Tensor| -> Result<Tensor> {
                Ok(match rows {
                    Some(i) => t.index_select(i, 0)?,
                    None => t.clone(),
                })
            };
            let (xr, xbr) = (pick(x)?, pick(&xbar)?);
            let m = match rows {
                Some(i) => crate::batch::view(model, i)?,
                None => crate::batch::View::Same(model),
            };
            let grad = path_integral(
                &*m,
                &xr,
                &xbr,
                &pick(&s.seed)?,
                self.quadrature,
                steps,
                &self.batching,
            )?;
            Ok(((&xr - &xbr)? * grad)?)
        };
        let mut attr = ig(None, self.steps)?;
        let mut delta = completeness_delta(&attr, &out, Some(&base_out))?;
        let n = x.dim(0)?;
        let mut used = vec![self.steps; n];
        if let Some(ad) = self.adaptive {
            if !(ad.tolerance > 0.0) || ad.max_steps < self.steps {
                return Err(crate::error::invalid(
                    "adaptive",
                    format!(
                        "need tolerance > 0 and max_steps ≥ steps ({}), got {ad:?}",
                        self.steps
                    ),
                ));
            }
            let mut steps = self.steps;
            loop {
                let d: Vec<f32> = delta.to_dtype(candle_core::DType::F32)?.to_vec1()?;
                let todo: Vec<u32> = (0..n)
                    .filter(|&i| (d[i] as f64).abs() > ad.tolerance)
                    .map(|i| i as u32)
                    .collect();
                if todo.is_empty() || steps.saturating_mul(2) > ad.max_steps {
                    break;
                }
                steps *= 2;
                let idx = Tensor::new(todo.as_slice(), x.device())?;
                let new = ig(Some(&idx), steps)?;
                // Replace the rows that needed more steps: add (new − old) at their indices.
                attr = attr.index_add(&idx, &(new - attr.index_select(&idx, 0)?)?, 0)?;
                delta = completeness_delta(&attr, &out, Some(&base_out))?;
                for &i in &todo {
                    used[i as usize] = steps;
                }
            }
        }
        let mut res = Attribution::finish(
            &s.p,
            "Integrated Gradients",
            attr,
            out,
            Some(base_out),
            Some(delta),
        )?;
        res.steps = Some(used);
        Ok(res)
    }
}
