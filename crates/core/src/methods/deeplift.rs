//! DeepLIFT (Shrikumar et al. 2017) as a modified gradient (Ancona et al. 2018), against the
//! baseline's activations recorded by one forward pass of the baseline and replayed by
//! operation order. Rescale: every nonlinearity's derivative becomes `Δf/Δz`; max-pools use
//! Captum's rule (see `ops::pool`). RevealCancel: positive and negative contributions through
//! each (linear or conv layer, nonlinearity) pair separately, as the authors' `deeplift`
//! package computes them (`ctx::reveal_cancel`). Completeness, `Σ R = S(x) − S(x̄)`,
//! holds exactly for Rescale, biases included, and for RevealCancel up to the 1e-7 the
//! package adds to a part that is exactly 0.

use super::common::{completeness_delta, setup};
use crate::batch::gradient;
use crate::rules::DEFAULT_RESCALE_THRESHOLD;
use crate::validate::check_output;
use crate::{Attribution, Attributor, Baseline, Batching, Explainable, Result, RuleCtx, Target};
use candle_core::Tensor;

/// DeepLIFT's rule for nonlinearities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeepLiftRule {
    #[default]
    Rescale,
    /// Positive and negative contributions propagated separately (linear and conv layers).
    RevealCancel,
}

#[derive(Debug, Clone)]
pub struct DeepLift {
    pub baseline: Baseline,
    pub rule: DeepLiftRule,
    /// Below this `|z − z̄|` the multiplier is the derivative at the midpoint.
    pub threshold: f64,
    pub batching: Batching,
}

impl Default for DeepLift {
    fn default() -> Self {
        Self {
            baseline: Baseline::Zero,
            rule: DeepLiftRule::Rescale,
            threshold: DEFAULT_RESCALE_THRESHOLD,
            batching: Batching::default(),
        }
    }
}

impl DeepLift {
    /// The RevealCancel rule.
    pub fn reveal_cancel() -> Self {
        Self { rule: DeepLiftRule::RevealCancel, ..Self::default() }
    }

    pub fn with_baseline(mut self, b: Baseline) -> Self {
        self.baseline = b;
        self
    }
}

impl Attributor for DeepLift {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        self.run(model, input, target, None)
    }
}

impl DeepLift {
    /// The contributions of the input, or (`layer`) of the activation the model taps under
    /// that name: `(a − ā) ⊙` the multipliers that reach the tap.
    pub(super) fn run(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
        layer: Option<&str>,
    ) -> Result<Attribution> {
        crate::validate::finite_param("threshold", self.threshold)?;
        if layer.is_some() && self.rule == DeepLiftRule::RevealCancel {
            return Err(crate::Error::Unsupported("Layer DeepLIFT takes the Rescale rule; RevealCancel explains the input only".into()));
        }
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let x = &s.p.x;
        let xbar = self.baseline.resolve(x)?;
        let n = x.dim(0)?;
        // The baseline pass adds a recorded forward: count it as a backward-sized chunk.
        let per = self.batching.rows_per_chunk(model, x, true)?;
        let (mut outs, mut base_outs, mut attrs) = (vec![], vec![], vec![]);
        self.batching.run(n, per, "deeplift", |r| {
            let (xr, xbr) = (
                x.narrow(0, r.start, r.len())?,
                xbar.narrow(0, r.start, r.len())?,
            );
            let seed = s.seed.narrow(0, r.start, r.len())?;
            let rows = crate::batch::view_range(model, &r, x.device())?;
            let model = &*rows;
            let taps: Vec<&str> = layer.into_iter().collect();
            let rec = match self.rule {
                DeepLiftRule::Rescale => RuleCtx::recording(),
                DeepLiftRule::RevealCancel => RuleCtx::recording_linear_inputs(),
            }
            .capturing(&taps);
            let base_logits = model.forward_with(&xbr, &rec)?;
            check_output(&base_logits, r.len())?;
            base_outs.push((base_logits * &seed)?.sum(1)?);
            let base_layer = layer.map(|l| rec.captured(l)).transpose()?;
            let ctx = match self.rule {
                DeepLiftRule::Rescale => RuleCtx::rescale(rec, self.threshold),
                DeepLiftRule::RevealCancel => RuleCtx::reveal_cancel(rec, self.threshold)?,
            }
            .capturing(&taps);
            let (out, g) = gradient(model, &xr, &seed, &ctx)?;
            ctx.finish_replay()?;
            outs.push(out);
            attrs.push(match (layer, base_layer) {
                (Some(l), Some((ab, _))) => {
                    let (a, g) = ctx.captured(l)?;
                    let g = g.map_or_else(|| a.zeros_like(), Ok)?;
                    ((a - ab)? * g)?
                }
                _ => ((&xr - &xbr)? * g)?,
            });
            Ok(())
        })?;
        let (out, base_out, attr) = (
            Tensor::cat(&outs, 0)?,
            Tensor::cat(&base_outs, 0)?,
            Tensor::cat(&attrs, 0)?,
        );
        let delta = completeness_delta(&attr, &out, Some(&base_out))?;
        let name = match (layer.is_some(), self.rule) {
            (true, _) => "Layer DeepLIFT",
            (false, DeepLiftRule::Rescale) => "DeepLIFT",
            (false, DeepLiftRule::RevealCancel) => "DeepLIFT RevealCancel",
        };
        Attribution::finish(&s.p, name, attr, out, Some(base_out), Some(delta))
    }
}
