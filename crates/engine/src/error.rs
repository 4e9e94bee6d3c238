//! The engine's error: what went wrong, in the categories callers branch on.

use herald_domain::InvalidInput;
use herald_store::StoreError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No or an unknown API key.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may see the thing but not do this to it.
    #[error("{0}")]
    Forbidden(String),
    /// Absent, or invisible to the caller (which must not learn which).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::NotFound(m),
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::Invalid(i) => Self::Invalid(i),
            StoreError::Internal(e) => Self::Internal(e),
        }
    }
}
