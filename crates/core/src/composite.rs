//! Composites: which rule each operation gets. Plain data, no registry: a list of
//! (selector, rule) pairs, the first match wins, plus one rule for the nonlinearities and the
//! canonizers the model is rewritten with first. A selector picks operations by kind, by call
//! order (the first and last linear / conv layer, Zennit's `SpecialFirstLayerMapComposite`)
//! and by name: the layer's `VarBuilder` path (`encoder.layer.3.attention.self.query`) or a
//! name the model gives with `RuleCtx::enter`, matched against a glob where `*` is any run
//! of characters (dots included) and `?` one character.
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
//! // By name, with globs: γ on every attention output projection of a BERT.
//! let bert = Composite::new(ActRule::Pass)
//!     .with(Selector::name("*encoder.layer.*.attention.output.dense"), LayerRule::Gamma(0.25));
//! assert_eq!(
//!     bert.rule_named(LayerKind::Linear, 7, "bert.encoder.layer.3.attention.output.dense"),
//!     LayerRule::Gamma(0.25)
//! );
//! ```

pub use crate::rule::LayerKind;

use crate::layer_rules::{LayerRule, DEFAULT_STABILIZER};
use crate::rule::{RuleRef, Treatment};
use crate::ActRule;

/// Which operations a rule applies to: every condition given must hold. Nonlinearities are
/// matched only by selectors of kind [`LayerKind::Activation`]; a name without a kind matches
/// linear and conv layers only (add `and_kind` for the others).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub kind: Option<LayerKind>,
    /// Call order among linear and conv layers; pools, sums and the other ops have none.
    pub index: Option<usize>,
    /// The last linear / conv layer.
    pub last: bool,
    /// A glob over the operation's name (`*` any run of characters, `?` one).
    pub name: Option<String>,
}

impl Selector {
    pub fn kind(kind: LayerKind) -> Self {
        Self {
            kind: Some(kind),
            ..Self::default()
        }
    }
    /// The first linear or conv layer (the one that sees the input).
    pub fn first() -> Self {
        Self::index(0)
    }
    /// The last linear or conv layer (the one that gives the output).
    pub fn last() -> Self {
        Self {
            last: true,
            ..Self::default()
        }
    }
    pub fn index(i: usize) -> Self {
        Self {
            index: Some(i),
            ..Self::default()
        }
    }
    /// Operations whose name matches `glob`.
    pub fn name(glob: impl Into<String>) -> Self {
        Self {
            name: Some(glob.into()),
            ..Self::default()
        }
    }
    pub fn any() -> Self {
        Self::default()
    }
    /// This selector restricted to one kind.
    pub fn and_kind(mut self, kind: LayerKind) -> Self {
        self.kind = Some(kind);
        self
    }
    fn matches(&self, op: &Op) -> bool {
        // Nonlinearities are only ever chosen explicitly: `any()` or a name alone means the
        // layers, whose rules have no backward for a nonlinearity.
        if op.kind == LayerKind::Activation && self.kind != Some(LayerKind::Activation) {
            return false;
        }
        // A name alone means linear / conv layers (a block's name also names its LayerNorm);
        // other kinds by name need `and_kind`.
        if self.name.is_some()
            && self.kind.is_none()
            && !matches!(op.kind, LayerKind::Linear | LayerKind::Conv2d)
        {
            return false;
        }
        self.kind.is_none_or(|k| k == op.kind)
            && self.index.is_none_or(|i| Some(i) == op.index)
            && (!self.last || matches!((op.index, op.count), (Some(i), Some(n)) if i + 1 == n))
            && self
                .name
                .as_deref()
                .is_none_or(|g| op.name.is_some_and(|n| glob_match(g, n)))
    }
}

/// One operation as a selector sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op<'a> {
    pub kind: LayerKind,
    pub index: Option<usize>,
    /// How many linear / conv layers the model has, when known.
    pub count: Option<usize>,
    pub name: Option<&'a str>,
}

/// `*` matches any run of characters, `?` any one character, everything else itself.
pub fn glob_match(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    // Iterative matching with backtracking to the last star: O(|g|·|n|) at worst.
    let (mut gi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == n[ni]) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some(gi);
            mark = ni;
            gi += 1;
        } else if let Some(s) = star {
            gi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

/// A model-level rewrite applied before the rules (Zennit's canonizers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canonizer {
    /// BatchNorm folded into the conv / linear layer before it, so that rules see one
    /// affine layer (a rule on a BatchNorm alone breaks conservation). Applied through
    /// [`crate::Explainable::canonized`]; a model with BatchNorms that cannot fold them is an
    /// error under such a composite.
    MergeBatchNorm,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Composite {
    /// What the nonlinearities do unless a selector of kind `Activation` matches them: `Pass`
    /// for LRP (relevance goes through unchanged).
    pub activation: ActRule,
    pub layers: Vec<(Selector, RuleRef)>,
    /// Applied to the model, in order, before the rule pass.
    pub canonizers: Vec<Canonizer>,
}

impl Composite {
    pub fn new(activation: ActRule) -> Self {
        Self {
            activation,
            layers: vec![],
            canonizers: vec![],
        }
    }

    /// Adds a (selector, rule) pair; earlier pairs win.
    pub fn with(mut self, s: Selector, rule: impl Into<RuleRef>) -> Self {
        self.layers.push((s, rule.into()));
        self
    }

    /// Adds a canonizer.
    pub fn with_canonizer(mut self, c: Canonizer) -> Self {
        self.canonizers.push(c);
        self
    }

    /// The rule of linear / conv layer `index` of kind `kind` (no name); the default when
    /// nothing matches.
    pub fn rule_for(&self, kind: LayerKind, index: usize) -> RuleRef {
        self.select(&Op {
            kind,
            index: Some(index),
            count: None,
            name: None,
        })
        .unwrap_or_else(defaults::layer)
    }

    /// The rule of linear / conv layer `index` named `name`.
    pub fn rule_named(&self, kind: LayerKind, index: usize, name: &str) -> RuleRef {
        self.select(&Op {
            kind,
            index: Some(index),
            count: None,
            name: Some(name),
        })
        .unwrap_or_else(defaults::layer)
    }

    /// The rule of a pool or sum (which have no index).
    pub fn rule_for_unindexed(&self, kind: LayerKind) -> RuleRef {
        self.select(&Op {
            kind,
            index: None,
            count: None,
            name: None,
        })
        .unwrap_or_else(defaults::parameter_free)
    }

    /// The first matching rule, if any.
    pub(crate) fn select(&self, op: &Op) -> Option<RuleRef> {
        self.layers
            .iter()
            .find(|(s, _)| s.matches(op))
            .map(|(_, r)| r.clone())
    }

    /// Whether a selector needs the number of linear / conv layers (`Selector::last`).
    pub fn needs_layer_count(&self) -> bool {
        self.layers.iter().any(|(s, _)| s.last)
    }

    pub fn validate(&self) -> crate::Result<()> {
        // A rule that needs the baseline's activations (DeepLIFT's Rescale) gets them only
        // from DeepLift's record / replay, never under a composite.
        let reference = self
            .layers
            .iter()
            .find(|(s, r)| s.kind == Some(LayerKind::Activation) && r.needs_reference());
        if let Some((_, r)) = reference {
            return Err(crate::error::invalid(
                "composite",
                format!("rule {} needs the baseline's activations, which only DeepLift records: it cannot be used in a composite", r.name()),
            ));
        }
        if matches!(self.activation, ActRule::Rescale { .. }) {
            return Err(crate::error::invalid(
                "composite",
                "Rescale needs the baseline's activations, which only DeepLift records: it cannot be a composite's activation rule",
            ));
        }
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

    /// Deep Taylor decomposition (Montavon et al. 2017): z^B on the first layer (inputs
    /// bounded in `[low, high]`), z⁺ on every other convolution and dense layer (their inputs
    /// are ReLU outputs), ε-stabilised Norm on average pools and sums; ReLUs pass relevance.
    pub fn deep_taylor(low: f64, high: f64) -> Self {
        Self::new(ActRule::Pass)
            .with(Selector::first(), LayerRule::ZBox { low, high })
            .with(Selector::kind(LayerKind::Conv2d), LayerRule::ZPlus)
            .with(Selector::kind(LayerKind::Linear), LayerRule::ZPlus)
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

/// What an operation gets when no selector of the composite matches it, in one place.
pub mod defaults {
    use super::*;
    use crate::layer_rules::{LayerRule, DEFAULT_STABILIZER};

    /// A linear or conv layer: the exact gradient (Zennit leaves unmatched layers alone).
    pub fn layer() -> RuleRef {
        RuleRef::new(LayerRule::Gradient)
    }

    /// An average pool or a residual sum: the exact gradient (a composite that wants
    /// Zennit's Norm says so, as the presets do).
    pub fn parameter_free() -> RuleRef {
        RuleRef::new(LayerRule::Gradient)
    }

    /// LayerNorm, attention and gates under a composite: conservative with the default
    /// stabiliser (Ali et al. 2022; Arras et al. 2017), because their exact gradient does
    /// not conserve relevance.
    pub fn factor_under_composite() -> RuleRef {
        RuleRef::new(LayerRule::Epsilon(DEFAULT_STABILIZER))
    }

    /// The same ops in a gradient context (no composite): exact for the gradient and
    /// DeepLIFT's Rescale, the factor held constant for the other nonlinearity rules
    /// (ε-LRP, guided backprop, deconvnet).
    pub fn factor_without_composite(act: ActRule) -> Treatment {
        match act {
            ActRule::Gradient | ActRule::Rescale { .. } => Treatment::Exact,
            _ => Treatment::Conservative { epsilon: 0.0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match(
            "encoder.layer.*.attention",
            "encoder.layer.3.attention"
        ));
        assert!(glob_match("*.dense", "bert.pooler.dense"));
        assert!(glob_match("conv_layers.?", "conv_layers.7"));
        assert!(!glob_match("conv_layers.?", "conv_layers.10"));
        assert!(!glob_match(
            "encoder.layer.*.attention",
            "encoder.layer.3.attention.output"
        ));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "a.x.b.y.c"));
        assert!(!glob_match("a*b*c", "a.x.b.y"));
    }
}
