//! Guided Integrated Gradients (Kapishnikov et al. 2021; PAIR's reference implementation).
//!
//! An adaptive path from the baseline to the input: at each of `steps` steps the features
//! whose gradient is smallest in magnitude (the lowest `fraction` quantile, among those not
//! yet at the step's upper bound) move first towards the input, within a band of
//! ±`max_dist` (as a fraction of the path) around the straight-line schedule, until the L1
//! distance to the input has shrunk by 1/steps of the total. The attribution accumulates
//! `(x − x_old) ⊙ ∇S(x_step)` along the way, so it is a path method whose completeness error
//! is reported as the delta. That error is not only a Riemann error: one step can move a
//! selected feature by up to 2·`max_dist` of its range, credited with the gradient from
//! before the move, and the features picked are those whose gradient is smallest, so the
//! bias does not vanish with more steps. On the Fashion-MNIST ResNet it stays near 13× the
//! output change at 800 steps, against 0.02 for the straight line (`fraction` = 1 or
//! `max_dist` = 0); a smaller `max_dist` trades guidance for completeness.
//!
//! Every example runs its own path, but all examples move together: one batched gradient per
//! step, and the feature selection (quantiles by sorting, masks) on the device.

use super::common::{chunked_scores, completeness_delta, rule_gradient_with, setup};
use crate::rules::ActRule;
use crate::{Attribution, Attributor, Baseline, Batching, Explainable, Result, Target};
use candle_core::{DType, Tensor};

/// Relative and absolute tolerance of "the step's L1 target is reached" (PAIR's EPSILON).
const EPSILON: f64 = 1e-9;
/// Bound on the inner selection rounds of one step (each round moves at least one feature,
/// so a path never needs more than the feature count; this only guards degenerate inputs).
const MAX_ROUNDS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct GuidedIntegratedGradients {
    pub steps: usize,
    pub fraction: f64,
    pub max_dist: f64,
    pub baseline: Baseline,
    pub batching: Batching,
}

impl Default for GuidedIntegratedGradients {
    fn default() -> Self {
        Self {
            steps: 200,
            fraction: 0.25,
            max_dist: 0.02,
            baseline: Baseline::Zero,
            batching: Batching::default(),
        }
    }
}

/// Per-row column `(n, 1)` of a boolean condition as 0/1 in `dt`.
fn f(t: &Tensor, dt: DType) -> Result<Tensor> {
    Ok(t.to_dtype(dt)?)
}

impl Attributor for GuidedIntegratedGradients {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        crate::validate::positive("steps", self.steps)?;
        if !(self.fraction > 0.0 && self.fraction <= 1.0) {
            return Err(crate::error::invalid(
                "fraction",
                format!("must be in (0, 1], got {}", self.fraction),
            ));
        }
        if !(self.max_dist >= 0.0 && self.max_dist <= 1.0) {
            return Err(crate::error::invalid(
                "max_dist",
                format!("must be in [0, 1], got {}", self.max_dist),
            ));
        }
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let shape = s.p.x.dims().to_vec();
        let n = shape[0];
        // Work on (n, F) in f64-free device tensors of the input's dtype.
        let x_in = s.p.x.flatten_from(1)?;
        let xb = self.baseline.resolve(&s.p.x)?.flatten_from(1)?;
        let dt = x_in.dtype();
        let feat = x_in.dim(1)?;
        let d = (&x_in - &xb)?;
        let d_zero = d.eq(0.0)?;
        let safe_d = d_zero.where_cond(&d.ones_like()?, &d)?;
        let l1_total = d.abs()?.sum_keepdim(1)?;
        let q_index = ((self.fraction * (feat - 1) as f64).floor() as usize).min(feat - 1);
        let inf = Tensor::full(f64::INFINITY, (n, feat), x_in.device())?.to_dtype(dt)?;
        let mut x = xb.clone();
        let mut attr = x_in.zeros_like()?;
        let per = self.batching.rows_per_chunk(model, &s.p.x, true)?;
        for step in 0..self.steps {
            let (_, g) = rule_gradient_with(
                model,
                &x.reshape(shape.as_slice())?,
                &s.seed,
                ActRule::Gradient,
                &self.batching,
                per,
            )?;
            let g_actual = g.flatten_from(1)?;
            let mut grad = g_actual.clone();
            let alpha = (step + 1) as f64 / self.steps as f64;
            let (a_min, a_max) = (
                (alpha - self.max_dist).max(0.0),
                (alpha + self.max_dist).min(1.0),
            );
            let x_min = (&xb + (&d * a_min)?)?;
            let x_max = (&xb + (&d * a_max)?)?;
            let l1_target = (&l1_total * (1.0 - alpha))?;
            // Rows still moving in this step: (n, 1) of 0/1.
            let mut active = x_in.ones_like()?.narrow(1, 0, 1)?;
            for _ in 0..MAX_ROUNDS {
                if active.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()? == 0.0 {
                    break;
                }
                let act = active.broadcast_as((n, feat))?.ne(0.0)?;
                let x_old = x.clone();
                // Features behind the band's lower edge catch up to it (undefined α counts as ahead).
                let x_alpha = d_zero.where_cond(
                    &Tensor::full(a_max, (n, feat), x.device())?.to_dtype(dt)?,
                    &((&x - &xb)? / &safe_d)?,
                )?;
                let behind = (x_alpha.lt(a_min)?.to_dtype(dt)? * act.to_dtype(dt)?)?.ne(0.0)?;
                x = behind.where_cond(&x_min, &x)?;
                let l1_cur = (&x - &x_in)?.abs()?.sum_keepdim(1)?;
                let tol = ((l1_cur.abs()? * EPSILON)? + EPSILON)?;
                let reached = (&l1_target - &l1_cur)?.abs()?.le(&tol)?;
                // Rows that reached their target stop here, keeping the catch-up move.
                let reached_act = (f(&reached, dt)? * &active)?;
                attr = (attr + ((&x - &x_old)? * &g_actual)?.broadcast_mul(&reached_act)?)?;
                let moving = (&active - &reached_act)?;
                let mov = moving.broadcast_as((n, feat))?.ne(0.0)?;
                // Features already at the upper edge are out of the selection.
                grad = (x.eq(&x_max)?.to_dtype(dt)? * f(&mov, dt)?)?
                    .ne(0.0)?
                    .where_cond(&inf, &grad)?;
                let ag = grad.abs()?.contiguous()?;
                let (sorted, _) = ag.sort_last_dim(true)?;
                let threshold = sorted.narrow(1, q_index, 1)?;
                let sel = (f(&ag.broadcast_le(&threshold)?, dt)? * f(&grad.ne(&inf)?, dt)?)?;
                let l1_s = ((&x - &x_max)?.abs()? * &sel)?.sum_keepdim(1)?;
                let has = l1_s.gt(0.0)?;
                let gamma = has.where_cond(
                    &((&l1_cur - &l1_target)? / has.where_cond(&l1_s, &l1_s.ones_like()?)?)?,
                    &Tensor::full(f64::INFINITY, (n, 1), x.device())?.to_dtype(dt)?,
                )?;
                let jump = gamma.gt(1.0)?;
                // γ > 1: the selected features go all the way to the upper edge; else a γ-fraction.
                let step_to = jump.broadcast_as((n, feat))?.where_cond(
                    &x_max,
                    &(&x + (&x_max - &x)?.broadcast_mul(&gamma.clamp(0.0, 1.0)?)?)?,
                )?;
                let upd = (sel * f(&mov, dt)?)?.ne(0.0)?;
                let x_new = upd.where_cond(&step_to, &x)?;
                let move_rows = moving.broadcast_as((n, feat))?.ne(0.0)?;
                x = move_rows.where_cond(&x_new, &x)?;
                attr = (attr + ((&x - &x_old)? * &g_actual)?.broadcast_mul(&moving)?)?;
                // Rows with γ ≤ 1 are done after this move.
                active = (&moving * f(&jump, dt)?)?;
            }
        }
        let attr = attr.reshape(shape.as_slice())?;
        let out = chunked_scores(model, &s.p.x, &s.seed, &self.batching)?;
        let base_out = chunked_scores(
            model,
            &xb.reshape(shape.as_slice())?,
            &s.seed,
            &self.batching,
        )?;
        let delta = completeness_delta(&attr, &out, Some(&base_out))?;
        Attribution::finish(&s.p, "Guided IG", attr, out, Some(base_out), Some(delta))
    }
}
