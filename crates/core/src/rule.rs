//! One rule mechanism for every operation a rule may replace.
//!
//! A rule is a value of a type implementing [`Rule`]. The context asks the rule of each
//! operation for what it knows how to do:
//!
//! | operation | asks | built-in rules |
//! |---|---|---|
//! | a nonlinearity `a = f(z)` | [`Rule::activation`] | [`crate::ActRule`]: gradient, ε, Rescale, guided, deconvnet, pass |
//! | a linear or conv layer | [`Rule::layer`] | [`crate::LayerRule`]: gradient, ε, z⁺, αβ, γ, flat, w², z^B |
//! | an average pool, a residual sum, LayerNorm, attention, a gate | [`Rule::treatment`] | `LayerRule::Gradient` (exact), `LayerRule::Epsilon` (conservative: Norm, LN, AH, signal-take-all) |
//!
//! A method a rule does not implement is an error naming the rule and the operation, so a
//! rule put on the wrong layer is never silently replaced by another. Composites
//! ([`crate::Composite`]) choose a rule per operation by kind, call order and name; what an
//! operation gets when nothing matches is written once, in `composite::defaults`.
//!
//! # Write your own rule
//!
//! A layer rule is Zennit's table of terms: `R_in = Σ_groups coef · Σ_terms sign · in ⊙ Lᵀ(R /
//! stab(Σ_terms sign · L(in)))`, where `L` is the layer with the term's weight and bias. This
//! one is z⁺ without the bias (positive weights on positive inputs, Montavon et al. 2017):
//!
//! ```
//! use candle_explain_core::rule::{Group, LayerInput, Propagation, Rule, Term};
//! use candle_explain_core::{ActRule, Composite, LayerKind, Selector};
//!
//! #[derive(Debug)]
//! struct ZPlusNoBias;
//!
//! impl Rule for ZPlusNoBias {
//!     fn name(&self) -> String {
//!         "z+ without bias".into()
//!     }
//!     fn layer(&self, l: &LayerInput) -> candle_core::Result<Propagation> {
//!         let (x, w) = (l.input.relu()?, l.weight.relu()?);
//!         Ok(Propagation::Terms(vec![Group::new(vec![Term::new(x, w, None)])]))
//!     }
//! }
//!
//! // On every layer whose name matches the glob; ε elsewhere, relevance through ReLUs.
//! let composite = Composite::new(ActRule::Pass)
//!     .with(Selector::name("features.*.conv"), ZPlusNoBias)
//!     .with(Selector::kind(LayerKind::Linear), candle_explain_core::LayerRule::Epsilon(1e-6));
//! # let _ = composite;
//! ```
//!
//! An activation rule implements [`Rule::activation`] instead (see `tests/own_rules.rs`).

use crate::activation::Activation;
use candle_core::Tensor;
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Zennit's default stabiliser `ε` of `stab(z) = z + ε·sign(z)` for every rule but ε.
pub const DEFAULT_STABILIZER: f64 = 1e-6;

/// The kinds of operation a composite can address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    Linear,
    Conv2d,
    /// Average pooling (a linear map without parameters): gradient or ε (Zennit's Norm).
    AvgPool2d,
    /// An explicit sum of two branches (residual connections, `RuleCtx::add`): gradient or ε.
    Sum,
    /// LayerNorm (`RuleCtx::layer_norm`): gradient (exact) or ε (σ held constant, Ali et al.).
    LayerNorm,
    /// Attention (`RuleCtx::attention`): gradient (exact) or ε (softmax weights held constant).
    Attention,
    /// Multiplicative gates (`RuleCtx::gate`): gradient (exact) or ε (signal-take-all).
    Gate,
    /// An elementwise nonlinearity (`RuleCtx::activation`): an [`ActRule`] or any rule with
    /// [`crate::rule::Rule::activation`]; unmatched ones get the composite's `activation`.
    Activation,
}

/// A rule: what the backward of an operation computes. Implement the methods for the
/// operations the rule applies to; the others are errors when the rule is put there.
pub trait Rule: Any + fmt::Debug + Send + Sync {
    /// Shown in errors and in a composite's description.
    fn name(&self) -> String;

    /// The backward of an elementwise nonlinearity `a = f(z)`: what its input receives
    /// from the incoming gradient (or relevance) `grad`.
    fn activation(&self, op: &ActivationInput, grad: &Tensor) -> candle_core::Result<Tensor> {
        let _ = grad;
        candle_core::bail!(
            "rule {} has no backward for a nonlinearity ({:?})",
            self.name(),
            op.act
        )
    }

    /// Whether [`Rule::activation`] needs the baseline's pre-activation (DeepLIFT):
    /// [`ActivationInput::reference`] is then recorded by a forward of the baseline.
    fn needs_reference(&self) -> bool {
        false
    }

    /// A linear or convolution layer: the exact gradient, or relevance by Zennit's terms.
    fn layer(&self, layer: &LayerInput) -> candle_core::Result<Propagation> {
        candle_core::bail!(
            "rule {} has no backward for a {:?} layer",
            self.name(),
            layer.kind
        )
    }

    /// An operation without weights (average pool, residual sum) or with a factor that is
    /// not linear in its input (LayerNorm's σ, attention's softmax weights, a gate).
    fn treatment(&self, kind: LayerKind) -> crate::Result<Treatment> {
        Err(crate::error::invalid(
            "composite",
            format!(
                "rule {} cannot be applied to a {kind:?} op: use gradient (exact) or epsilon (conservative)",
                self.name()
            ),
        ))
    }

    /// Checks the rule's parameters before anything runs.
    fn validate(&self) -> crate::Result<()> {
        Ok(())
    }

    /// Lets a conv layer's forward compute `W⁺x + b⁺` beside `Wx + b` for inputs ≥ 0, which
    /// [`LayerInput::positive_output`] then carries (z⁺'s normaliser at no extra pass).
    fn wants_positive_output(&self) -> bool {
        false
    }
}

/// What [`Rule::activation`] sees.
#[derive(Debug)]
pub struct ActivationInput<'a> {
    pub act: Activation,
    /// The pre-activation.
    pub z: &'a Tensor,
    /// `f(z)`.
    pub a: &'a Tensor,
    /// The baseline's pre-activation, for rules that [`Rule::needs_reference`].
    pub reference: Option<&'a Tensor>,
}

/// What [`Rule::layer`] sees: the layer's input, weights and output.
#[derive(Debug)]
pub struct LayerInput<'a> {
    pub kind: LayerKind,
    pub input: &'a Tensor,
    pub weight: &'a Tensor,
    pub bias: Option<&'a Tensor>,
    /// `Wx + b`.
    pub output: &'a Tensor,
    /// `W⁺x + b⁺`, when the forward computed it (see [`Rule::wants_positive_output`]).
    pub positive_output: Option<&'a Tensor>,
}

/// How a layer passes relevance (or the gradient) back.
#[derive(Debug)]
pub enum Propagation {
    /// The exact input gradient.
    Gradient,
    /// Zennit's formulation: the sum over the groups of
    /// `coef · Σ_terms sign · input ⊙ Lᵀ(mask ⊙ R / stab(normaliser))`, where the normaliser
    /// is `Σ_terms sign · L(input)` unless the group gives it.
    Terms(Vec<Group>),
}

/// A group of terms sharing one normaliser.
#[derive(Debug, Clone)]
pub struct Group {
    pub coef: f64,
    pub terms: Vec<Term>,
    /// Which outputs the group explains (1) or not (0); all when `None`.
    pub mask: Option<Tensor>,
    /// The normaliser when the rule knows it already (ε: the layer's own output).
    pub normaliser: Option<Tensor>,
    /// ε of `stab(z) = z + ε·sign(z)`.
    pub stabilizer: f64,
}

impl Group {
    /// Coefficient 1, no mask, the default stabiliser.
    pub fn new(terms: Vec<Term>) -> Self {
        Self {
            coef: 1.0,
            terms,
            mask: None,
            normaliser: None,
            stabilizer: DEFAULT_STABILIZER,
        }
    }
}

/// The layer applied to a modified input with modified parameters.
#[derive(Debug, Clone)]
pub struct Term {
    pub sign: f64,
    pub input: Tensor,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Term {
    pub fn new(input: Tensor, weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            sign: 1.0,
            input,
            weight,
            bias,
        }
    }
}

/// What [`Rule::treatment`] gives an operation without weights or with a factor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Treatment {
    /// Differentiated exactly.
    Exact,
    /// Held linear: the factor is constant in the backward, and under a composite the
    /// relevance is shared with the ε-rule (stabiliser `epsilon`), which conserves it.
    Conservative { epsilon: f64 },
}

/// A shared rule, as composites hold them. Compares equal to the built-in rule it wraps.
#[derive(Clone)]
pub struct RuleRef(pub Arc<dyn Rule>);

impl RuleRef {
    pub fn new(rule: impl Rule) -> Self {
        Self(Arc::new(rule))
    }

    /// The built-in rule of type `T` this is, if it is one.
    pub fn downcast<T: Rule>(&self) -> Option<&T> {
        (self.0.as_ref() as &dyn Any).downcast_ref::<T>()
    }
}

impl std::ops::Deref for RuleRef {
    type Target = dyn Rule;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl fmt::Debug for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<R: Rule> From<R> for RuleRef {
    fn from(r: R) -> Self {
        Self::new(r)
    }
}

impl PartialEq for RuleRef {
    /// The same rule object, or rules of one type with the same parameters (their `Debug`).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || ((self.0.as_ref() as &dyn Any).type_id() == (other.0.as_ref() as &dyn Any).type_id()
                && format!("{:?}", self.0) == format!("{:?}", other.0))
    }
}
