//! Store errors, split the way callers branch on them.

use herald_domain::InvalidInput;

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist (or is not visible to the caller's owner).
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with what is stored (a duplicate name, a second link, a run that
    /// has already finished).
    #[error("{0}")]
    Conflict(String),
    /// The input breaks a rule that needs stored state to check.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// Anything else: a database failure. The cause chain is for logs, not for callers.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl StoreError {
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    pub fn conflict(what: impl Into<String>) -> Self {
        Self::Conflict(what.into())
    }

    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        Self::Invalid(InvalidInput::new(path, message))
    }
}

/// Whether a database error is a unique-constraint violation, on SQLite or PostgreSQL.
fn is_unique_violation(e: &StoreError) -> bool {
    let StoreError::Internal(e) = e else {
        return false;
    };
    e.downcast_ref::<rusqlite::Error>()
        .is_some_and(crate::sql::sqlite_unique_violation)
        || e.downcast_ref::<sqlx::Error>()
            .is_some_and(crate::sql::postgres_unique_violation)
}

/// Maps a unique violation to a 409-style conflict with `what`, anything else unchanged.
pub(crate) fn conflict_on_unique(
    what: impl FnOnce() -> String,
) -> impl FnOnce(StoreError) -> StoreError {
    move |e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(what())
        } else {
            e
        }
    }
}
