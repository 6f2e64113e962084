//! One-pass gradient methods: Saliency, Gradient × Input, ε-LRP, AttnLRP, Guided Backprop, Deconvnet.
//!
//! Each is a single backward pass with a rule on the nonlinearities (Ancona et al. 2018).

use super::common::{completeness_delta, rule_gradient, setup};
use crate::rules::{ActRule, DEFAULT_LRP_EPSILON};
use crate::{Attribution, Attributor, Batching, Explainable, Result, RuleCtx, Target};
use candle_core::Tensor;

/// Vanilla gradient `∂S_c/∂x` (Simonyan et al. 2014); absolute value by default, as Captum.
#[derive(Debug, Clone)]
pub struct Saliency {
    pub abs: bool,
    pub batching: Batching,
}

impl Default for Saliency {
    fn default() -> Self {
        Self {
            abs: true,
            batching: Batching::default(),
        }
    }
}

impl Saliency {
    /// `|∂S_c/∂x|`.
    pub fn abs() -> Self {
        Self::default()
    }
    /// `∂S_c/∂x`, signed.
    pub fn signed() -> Self {
        Self {
            abs: false,
            ..Self::default()
        }
    }
}

impl Attributor for Saliency {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let (out, g) = rule_gradient(model, &s.p.x, &s.seed, ActRule::Gradient, &self.batching)?;
        let a = if self.abs { g.abs()? } else { g };
        Attribution::finish(&s.p, "Saliency", a, out, None, None)
    }
}

/// `x ⊙ ∂S_c/∂x` (Shrikumar et al. 2016).
#[derive(Debug, Clone, Default)]
pub struct InputXGradient {
    pub batching: Batching,
}

impl Attributor for InputXGradient {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let (out, g) = rule_gradient(model, &s.p.x, &s.seed, ActRule::Gradient, &self.batching)?;
        Attribution::finish(&s.p, "Input × Gradient", (&s.p.x * g)?, out, None, None)
    }
}

/// ε-LRP as a modified gradient (Bach et al. 2015; Ancona et al. 2018): every nonlinearity's
/// derivative becomes `f(z)/(z + ε·sign z)`, and `R = x ⊙ ∇̃S_c`. The delta is the
/// conservation error `Σ R − S_c(x)`, zero on bias-free ReLU networks as ε → 0.
#[derive(Debug, Clone)]
pub struct EpsilonLrp {
    pub epsilon: f64,
    pub batching: Batching,
}

impl Default for EpsilonLrp {
    fn default() -> Self {
        Self {
            epsilon: DEFAULT_LRP_EPSILON,
            batching: Batching::default(),
        }
    }
}

impl EpsilonLrp {
    pub fn new(epsilon: f64) -> Self {
        Self {
            epsilon,
            ..Self::default()
        }
    }
}

impl Attributor for EpsilonLrp {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        check_epsilon(self.epsilon)?;
        let rule = ActRule::Epsilon(self.epsilon);
        let context = || RuleCtx::rule(rule);
        input_times_gradient(model, input, target, &context, &self.batching, "ε-LRP")
    }
}

/// The ε of an LRP rule: finite and ≥ 0.
fn check_epsilon(epsilon: f64) -> Result<()> {
    if !(epsilon >= 0.0) || !epsilon.is_finite() {
        return Err(crate::error::invalid(
            "epsilon",
            format!("must be a finite number ≥ 0, got {epsilon}"),
        ));
    }
    Ok(())
}

/// AttnLRP (Achtibat et al. 2024, "AttnLRP: attention-aware layer-wise relevance
/// propagation for transformers"): relevance `x ⊙ ∂S/∂x` with the backward of
/// [`RuleCtx::attn_lrp`] (identity rule on nonlinearities, normalisers held constant, the
/// softmax differentiated, the uniform rule on the attention and gate products). One forward
/// and one backward, as LXT computes it. The conservative transformer LRP (CP-LRP, Ali et
/// al. 2022) is [`EpsilonLrp`] on the same models: attention weights and gates held constant.
#[derive(Debug, Clone)]
pub struct AttnLrp {
    /// The identity rule's stabiliser `f(z) / (z + ε·sign z)`.
    pub epsilon: f64,
    pub batching: Batching,
}

impl Default for AttnLrp {
    fn default() -> Self {
        Self {
            epsilon: 1e-10,
            batching: Batching::default(),
        }
    }
}

impl Attributor for AttnLrp {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        check_epsilon(self.epsilon)?;
        let eps = self.epsilon;
        let context = || RuleCtx::attn_lrp(eps);
        input_times_gradient(model, input, target, &context, &self.batching, "AttnLRP")
    }
}

/// `x ⊙ g`, `g` the gradient in the contexts `context` makes (the LRP rules in gradient
/// form), with its completeness delta against the output.
fn input_times_gradient(
    model: &dyn Explainable,
    input: &Tensor,
    target: &Target,
    context: &dyn Fn() -> Result<RuleCtx>,
    batching: &Batching,
    name: &'static str,
) -> Result<Attribution> {
    let s = setup(model, input, target)?;
    // The model for the rows of the (possibly class-expanded) batch.
    let model = &*s.model;
    let per = batching.rows_per_chunk(model, &s.p.x, true)?;
    let (out, g) = super::common::context_gradient(model, &s.p.x, &s.seed, context, batching, per)?;
    let r = (&s.p.x * g)?;
    let delta = completeness_delta(&r, &out, None)?;
    Attribution::finish(&s.p, name, r, out, None, Some(delta))
}

/// Guided backpropagation (Springenberg et al. 2015): only positive gradients pass back
/// through ReLUs. Returns the guided gradient (as Captum does), not its product with x.
#[derive(Debug, Clone, Default)]
pub struct GuidedBackprop {
    pub batching: Batching,
}

impl Attributor for GuidedBackprop {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let (out, g) = rule_gradient(
            model,
            &s.p.x,
            &s.seed,
            ActRule::GuidedBackprop,
            &self.batching,
        )?;
        Attribution::finish(&s.p, "Guided backprop", g, out, None, None)
    }
}

/// Deconvnet (Zeiler & Fergus 2014): ReLUs pass back `max(grad, 0)` whatever their input.
#[derive(Debug, Clone, Default)]
pub struct Deconvnet {
    pub batching: Batching,
}

impl Attributor for Deconvnet {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let (out, g) = rule_gradient(model, &s.p.x, &s.seed, ActRule::Deconvnet, &self.batching)?;
        Attribution::finish(&s.p, "Deconvnet", g, out, None, None)
    }
}
