//! The models crate's error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Explain(#[from] candle_explain_core::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("file not found: {0}")]
    MissingFile(String),
    #[error("cannot load checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },
    #[error("{path}, line {line}: {reason}")]
    Data {
        path: String,
        line: usize,
        reason: String,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Models' errors inside an `Explainable` forward (which returns the core crate's errors).
impl From<Error> for candle_explain_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Explain(e) => e,
            Error::Candle(e) => e.into(),
            e => candle_explain_core::Error::Unsupported(e.to_string()),
        }
    }
}
