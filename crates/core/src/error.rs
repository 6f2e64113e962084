//! The one error type of the core crate.

/// Everything that can go wrong while explaining a model.
///
/// Bad user input (shapes, targets, parameters, non-finite values) gets its own variant
/// with a message that says what was expected, so that callers never see a panic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    #[error("input shape {got:?}: expected {expected}")]
    InputShape { expected: String, got: Vec<usize> },

    #[error("target class {class} is out of range: the model has {num_classes} outputs (valid: 0..{num_classes})")]
    TargetOutOfRange { class: usize, num_classes: usize },

    #[error("target: {0}")]
    Target(String),

    #[error("baseline shape {got:?} does not match the input shape {expected:?} (or its per-example shape)")]
    BaselineShape {
        expected: Vec<usize>,
        got: Vec<usize>,
    },

    #[error("{what} contains {count} NaN or infinite value(s); attributions need finite values")]
    NonFinite { what: &'static str, count: usize },

    #[error("{method}: the {what} is NaN or infinite for example(s) {examples:?}{}; {hint}", layer.as_ref().map(|l| format!(" (first non-finite value at {l})")).unwrap_or_default())]
    NonFiniteResult {
        method: &'static str,
        what: &'static str,
        /// Indices of the examples (in the caller's batch) whose result is not finite.
        examples: Vec<usize>,
        /// Where it first appeared, when known (e.g. a layer).
        layer: Option<String>,
        /// What to try.
        hint: String,
    },

    #[error("{what}: {needed} exceeds {limit}; {hint}")]
    TooLarge {
        what: String,
        needed: String,
        limit: String,
        hint: String,
    },

    #[error("{method}: the model's forward asked the RuleCtx for no operation (nonlinearity, linear / conv layer, pool, sum, LayerNorm, attention, gate), so no rule applied and the result would silently be the plain gradient. Route them through the context (ctx.activation, ctx.linear, ctx.conv2d, ctx.max_pool2d, …; the layers of candle_explain_core::nn do), or use a method that needs only gradients (Saliency, Integrated Gradients, SmoothGrad) or forward passes (Occlusion, Shapley values)")]
    RulesNotApplied { method: String },

    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },

    #[error("model output has shape {got:?}: expected (batch, classes)")]
    OutputShape { got: Vec<usize> },

    #[error("unsupported: {0}")]
    Unsupported(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidParameter {
        name,
        reason: reason.into(),
    }
}
