//! Attribution rules for elementwise nonlinearities (Ancona et al. 2018, PAPERS.md §1).
//!
//! Each method of the gradient family is an ordinary backward pass in which the derivative
//! `f'(z)` of every nonlinearity is replaced by another function `g(z)`; the rules here
//! compute `grad · g(z)` (or, for guided backprop and deconvnet, a function of `grad`).

use crate::activation::Activation;
use crate::ops::InputGrad;
use candle_core::{Result, Tensor};

/// Default ε of ε-LRP (PAPERS.md §1).
pub const DEFAULT_LRP_EPSILON: f64 = 1e-4;
/// Default threshold under which DeepLIFT's Rescale falls back to the derivative.
pub const DEFAULT_RESCALE_THRESHOLD: f64 = 1e-5;

/// What the backward of a nonlinearity computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActRule {
    /// The true derivative `f'(z)`.
    Gradient,
    /// ε-LRP: `f(z) / (z + ε·sign(z))`, with `sign(0) = +1`.
    Epsilon(f64),
    /// DeepLIFT Rescale: `(f(z) − f(z̄)) / (z − z̄)` against the baseline's pre-activation
    /// `z̄`; where `|z − z̄| ≤ threshold` it uses `f'((z + z̄)/2)` (the limit of the ratio).
    Rescale { threshold: f64 },
    /// Guided backprop (Springenberg et al.): `f'(z) · max(grad, 0)`.
    GuidedBackprop,
    /// Deconvnet (Zeiler & Fergus): `max(grad, 0)`, ignoring the forward activation.
    Deconvnet,
    /// The incoming gradient (relevance) unchanged: LRP's rule for nonlinearities.
    Pass,
}

/// `z + ε·sign(z)` with `sign(0) = +1`: never closer to zero than ε.
pub(crate) fn stabilize(z: &Tensor, eps: f64) -> Result<Tensor> {
    let sign = z.ge(0.0)?.to_dtype(z.dtype())?.affine(2.0, -1.0)?;
    z + (sign * eps)?
}

/// The backward of one nonlinearity under a rule. `zref` is the baseline's
/// pre-activation, needed by Rescale only.
pub(crate) struct ActBackward {
    pub act: Activation,
    pub rule: ActRule,
    pub zref: Option<Tensor>,
}

impl InputGrad for ActBackward {
    fn name(&self) -> &'static str {
        "candle-explain-activation"
    }

    fn input_grad(&self, z: &Tensor, a: &Tensor, grad: &Tensor) -> Result<Tensor> {
        match self.rule {
            ActRule::Gradient => grad * self.act.derivative(z)?,
            ActRule::Epsilon(eps) => grad * (a / stabilize(z, eps)?)?,
            ActRule::GuidedBackprop => grad.relu()? * self.act.derivative(z)?,
            ActRule::Deconvnet => grad.relu(),
            ActRule::Pass => Ok(grad.clone()),
            ActRule::Rescale { threshold } => {
                let zref = self.zref.as_ref().ok_or_else(|| {
                    candle_core::Error::Msg("Rescale rule without the baseline's activations".into())
                })?;
                grad * rescale_multiplier(self.act, z, a, zref, threshold)?
            }
        }
    }
}

/// DeepLIFT's multiplier `Δf / Δz`, with the midpoint derivative where `|Δz|` is tiny.
pub(crate) fn rescale_multiplier(act: Activation, z: &Tensor, a: &Tensor, zref: &Tensor, threshold: f64) -> Result<Tensor> {
    let dz = (z - zref)?;
    let da = (a - act.forward(zref)?)?;
    let small = dz.abs()?.le(threshold)?;
    let safe_dz = small.where_cond(&dz.ones_like()?, &dz)?;
    let mid = ((z + zref)? * 0.5)?;
    small.where_cond(&act.derivative(&mid)?, &(da / safe_dz)?)
}
