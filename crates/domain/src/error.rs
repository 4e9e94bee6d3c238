//! The one error the domain returns: input that does not satisfy a rule, with the path of the
//! offending field so that callers can point at it.

/// A value that failed a domain rule. `path` names the field (`"aliases[2]"`, `"rows[0].values.loss"`),
/// `message` says what is wrong in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct InvalidInput {
    pub path: String,
    pub message: String,
}

impl InvalidInput {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error, re-rooted under a parent field (`at("rows[3]")` turns `step` into `rows[3].step`).
    pub fn at(mut self, parent: &str) -> Self {
        self.path = if self.path.is_empty() {
            parent.to_string()
        } else if self.path.starts_with('[') {
            format!("{parent}{}", self.path)
        } else {
            format!("{parent}.{}", self.path)
        };
        self
    }
}
