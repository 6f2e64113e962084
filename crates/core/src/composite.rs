//! Composites: which rule each layer gets. Plain data, no registry: a list of
//! (selector, rule) pairs, the first match wins, plus one rule for the nonlinearities.
//!
//! ```
//! use candle_explain_core::composite::{Composite, LayerKind, Selector};
//! use candle_explain_core::layer_rules::LayerRule;
//! use candle_explain_core::ActRule;
//!
//! // Flat on the first layer, α2β1 on the other convolutions, ε on the dense layers.
//! let mine = Composite::new(ActRule::Pass)
//!     .with(Selector::first(), LayerRule::Flat)
//!     .with(Selector::kind(LayerKind::Conv2d), LayerRule::AlphaBeta { alpha: 2.0, beta: 1.0 })
//!     .with(Selector::kind(LayerKind::Linear), LayerRule::Epsilon(1e-6));
//! assert_eq!(mine.rule_for(LayerKind::Conv2d, 3), LayerRule::AlphaBeta { alpha: 2.0, beta: 1.0 });
//! ```

use crate::layer_rules::{LayerRule, DEFAULT_STABILIZER};
use crate::ActRule;

/// The kinds of layer a composite can address.
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
}

impl LayerKind {
    /// Parameter-free layers take only these rules.
    pub fn accepts(&self, rule: &LayerRule) -> bool {
        match self {
            Self::Linear | Self::Conv2d => true,
            Self::AvgPool2d | Self::Sum | Self::LayerNorm | Self::Attention | Self::Gate => {
                matches!(rule, LayerRule::Gradient | LayerRule::Epsilon(_))
            }
        }
    }
}

/// Which layers a rule applies to. Linear and conv layers are numbered by the order in which
/// the forward asks the context for them, from 0; pools and sums have no index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Selector {
    pub kind: Option<LayerKind>,
    pub index: Option<usize>,
}

impl Selector {
    pub fn kind(kind: LayerKind) -> Self {
        Self {
            kind: Some(kind),
            index: None,
        }
    }
    /// The first linear or conv layer (the one that sees the input).
    pub fn first() -> Self {
        Self::index(0)
    }
    pub fn index(i: usize) -> Self {
        Self {
            kind: None,
            index: Some(i),
        }
    }
    pub fn any() -> Self {
        Self::default()
    }
    fn matches(&self, kind: LayerKind, index: Option<usize>) -> bool {
        self.kind.is_none_or(|k| k == kind) && self.index.is_none_or(|i| Some(i) == index)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Composite {
    /// What the nonlinearities do: `Pass` for LRP (relevance goes through unchanged).
    pub activation: ActRule,
    pub layers: Vec<(Selector, LayerRule)>,
}

impl Composite {
    pub fn new(activation: ActRule) -> Self {
        Self {
            activation,
            layers: vec![],
        }
    }

    pub fn with(mut self, s: Selector, rule: LayerRule) -> Self {
        self.layers.push((s, rule));
        self
    }

    /// The rule of layer `index` of kind `kind`; the gradient when nothing matches.
    pub fn rule_for(&self, kind: LayerKind, index: usize) -> LayerRule {
        self.rule_at(kind, Some(index))
    }

    /// The rule of a pool or sum (which have no index).
    pub fn rule_for_unindexed(&self, kind: LayerKind) -> LayerRule {
        self.rule_at(kind, None)
    }

    /// The rule a selector gives this unindexed kind, if any does.
    pub(crate) fn explicit_rule(&self, kind: LayerKind) -> Option<LayerRule> {
        self.layers
            .iter()
            .find(|(s, _)| s.matches(kind, None))
            .map(|(_, r)| *r)
    }

    fn rule_at(&self, kind: LayerKind, index: Option<usize>) -> LayerRule {
        self.layers
            .iter()
            .find(|(s, _)| s.matches(kind, index))
            .map_or(LayerRule::Gradient, |(_, r)| *r)
    }

    pub fn validate(&self) -> crate::Result<()> {
        self.layers.iter().try_for_each(|(_, r)| r.validate())
    }

    fn lrp(first: Option<LayerRule>, conv: LayerRule) -> Self {
        let mut c = Self::new(ActRule::Pass);
        if let Some(f) = first {
            c = c.with(Selector::first(), f);
        }
        // Zennit's base map: Norm (ε with the default stabiliser) for average pools and sums.
        c.with(Selector::kind(LayerKind::Conv2d), conv)
            .with(
                Selector::kind(LayerKind::Linear),
                LayerRule::Epsilon(DEFAULT_STABILIZER),
            )
            .with(
                Selector::kind(LayerKind::AvgPool2d),
                LayerRule::Epsilon(DEFAULT_STABILIZER),
            )
            .with(
                Selector::kind(LayerKind::Sum),
                LayerRule::Epsilon(DEFAULT_STABILIZER),
            )
    }

    /// Zennit's EpsilonPlus: z⁺ on convolutions, ε on dense layers.
    pub fn epsilon_plus() -> Self {
        Self::lrp(None, LayerRule::ZPlus)
    }

    /// EpsilonPlus with the flat rule on the first layer.
    pub fn epsilon_plus_flat() -> Self {
        Self::lrp(Some(LayerRule::Flat), LayerRule::ZPlus)
    }

    /// z^B on the first layer (inputs in `[low, high]`), γ = 0.25 on convolutions, ε on dense layers.
    pub fn epsilon_gamma_box(low: f64, high: f64) -> Self {
        Self::lrp(Some(LayerRule::ZBox { low, high }), LayerRule::Gamma(0.25))
    }

    /// α2β1 on convolutions, ε on dense layers.
    pub fn epsilon_alpha2_beta1() -> Self {
        Self::lrp(
            None,
            LayerRule::AlphaBeta {
                alpha: 2.0,
                beta: 1.0,
            },
        )
    }

    /// Guided backprop as a composite: exact gradients through layers, guided ReLUs.
    pub fn guided_backprop() -> Self {
        Self::new(ActRule::GuidedBackprop)
    }

    /// Deconvnet as a composite.
    pub fn deconvnet() -> Self {
        Self::new(ActRule::Deconvnet)
    }
}
