//! Geometrically Guided Integrated Gradients (Rahman, Lewis & Plis 2022; PAPERS.md §5).
//!
//! GGIG explores the model at several scaled versions of the input, refines each with a few
//! gradient steps, and keeps, per feature, the best attribution found. The summary we work
//! from leaves the details open; the choices made here, all parameters:
//! - scaled points `p_j = x̄ + α_j (x − x̄)`, `α_j = j/scales`, j = 1..scales (the IG path);
//! - each point takes `refine_steps` guided steps `p ← p + step_size · |x − x̄| · sign(∂S/∂p)`,
//!   projected back into the box spanned by x̄ and x (the gradient guides the exploration,
//!   the box keeps it between baseline and input);
//! - a point's candidate attribution is `(x − x̄) ⊙ ∂S/∂p` at the refined point;
//! - per feature, the candidate of largest magnitude wins, sign kept.
//!
//! On a model linear in the input every candidate is `(x − x̄) ⊙ w`, and so is GGIG (tested).
//! GGIG is not a path integral: it does not promise completeness, and reports no delta.
//! All scales of all examples are rows of one chunked batch; only the refinement steps run in
//! sequence.

use super::common::{chunked_scores, rule_gradient_with, setup};
use crate::batch::example_index;
use crate::rules::ActRule;
use crate::target::repeat_rows;
use crate::{Attribution, Attributor, Baseline, Batching, Explainable, Result, Target};
use candle_core::Tensor;

#[derive(Debug, Clone)]
pub struct GeometricallyGuidedIg {
    pub scales: usize,
    pub refine_steps: usize,
    /// Step length as a fraction of each feature's baseline-to-input distance.
    pub step_size: f64,
    pub baseline: Baseline,
    pub batching: Batching,
}

impl Default for GeometricallyGuidedIg {
    fn default() -> Self {
        Self {
            scales: 20,
            refine_steps: 3,
            step_size: 0.02,
            baseline: Baseline::Zero,
            batching: Batching::default(),
        }
    }
}

impl Attributor for GeometricallyGuidedIg {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        crate::validate::positive("scales", self.scales)?;
        if !(self.step_size >= 0.0 && self.step_size.is_finite()) {
            return Err(crate::error::invalid(
                "step_size",
                format!("must be finite and ≥ 0, got {}", self.step_size),
            ));
        }
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let x = &s.p.x;
        let xb = self.baseline.resolve(x)?;
        let (n, m) = (x.dim(0)?, self.scales);
        let dev = x.device();
        // The (example, scale) rows are held whole (input, baseline, path point, bounds).
        let rows = crate::validate::rows(n, m, "GGIG: examples × scales")?;
        crate::validate::host_alloc(
            rows.saturating_mul(x.elem_count() / n).saturating_mul(6),
            x.dtype().size_in_bytes(),
            "GGIG's path points (examples × scales × features × 6)",
        )?;
        // Rows (example, scale), example-major.
        let ex = example_index(&(0..n * m), m, dev)?;
        let alphas: Vec<f32> = (0..n * m)
            .map(|i| ((i % m) + 1) as f32 / m as f32)
            .collect();
        let alpha = crate::batch::col(
            &Tensor::from_vec(alphas, n * m, dev)?.to_dtype(x.dtype())?,
            x.rank(),
        )?;
        let (xr, xbr) = (repeat_rows(x, m)?, repeat_rows(&xb, m)?);
        // The model for the (example, scale) rows.
        let rows = crate::batch::view(model, &ex)?;
        let model = &*rows;
        let diff = (&xr - &xbr)?;
        let (lo, hi) = (xr.minimum(&xbr)?, xr.maximum(&xbr)?);
        let seed = s.seed.index_select(&ex, 0)?;
        let mut p = (&xbr + diff.broadcast_mul(&alpha)?)?;
        let per = self.batching.rows_per_chunk(model, x, true)?;
        for _ in 0..self.refine_steps {
            let (_, g) =
                rule_gradient_with(model, &p, &seed, ActRule::Gradient, &self.batching, per)?;
            p = (p + ((diff.abs()? * g.sign()?)? * self.step_size)?)?
                .maximum(&lo)?
                .minimum(&hi)?;
        }
        let (_, g) = rule_gradient_with(model, &p, &seed, ActRule::Gradient, &self.batching, per)?;
        let cand = (&diff * g)?;
        // Per feature, the candidate of largest magnitude over the scales.
        let mut dims = vec![n, m];
        dims.extend_from_slice(&x.dims()[1..]);
        let cand = cand.reshape(dims)?;
        let best = cand.abs()?.argmax_keepdim(1)?;
        let attr = cand.gather(&best.contiguous()?, 1)?.squeeze(1)?;
        let out = chunked_scores(model, x, &s.seed, &self.batching)?;
        Attribution::finish(&s.p, "GGIG", attr, out, None, None)
    }
}
