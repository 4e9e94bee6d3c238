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

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("database error"))
    }
}

/// Whether a database error is a unique-constraint violation, on SQLite or PostgreSQL. This is
/// the one place that knows how each backend reports it.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation)
                // SQLite through the Any driver reports extended code 2067 (SQLITE_CONSTRAINT_UNIQUE)
                // or 1555 (SQLITE_CONSTRAINT_PRIMARYKEY); PostgreSQL reports SQLSTATE 23505.
                || matches!(db.code().as_deref(), Some("2067") | Some("1555") | Some("23505"))
        }
        _ => false,
    }
}

/// Maps a unique violation to a 409-style conflict with `what`, anything else to an internal error.
pub(crate) fn conflict_on_unique(
    what: impl FnOnce() -> String,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(what())
        } else {
            StoreError::from(e)
        }
    }
}
