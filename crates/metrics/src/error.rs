//! The metrics crate's error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Explain(#[from] candle_explain_core::Error),
    #[error(transparent)]
    Models(#[from] candle_explain_models::Error),
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidParameter {
        name,
        reason: reason.into(),
    }
}
