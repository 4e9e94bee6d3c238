//! The answers the API sends, by name, for its clients (herald's CLI and benchmarks) to read
//! back into the very types the server writes: a field renamed here breaks their build rather
//! than their output. Most live beside their routes; those the routes used to build as ad-hoc
//! JSON are defined here.

use serde::{Deserialize, Serialize};

pub use crate::error::{ErrorBody, ErrorDetail};
pub use crate::routes::automations::ExecutionPage;
pub use crate::routes::events::EventPage;
pub use crate::routes::integrations::TestResult;
pub use crate::routes::runs::LoggedOut;
pub use crate::routes::users::{CreatedUser, EntityRole, Viewer};

/// `/readyz` while the database answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Readiness {
    // Before `status`: the order the document had when it was built as a JSON map.
    /// Events stored but not yet matched against automations; null if it could not be read.
    pub matcher_lag: Option<i64>,
    /// `ready`.
    pub status: String,
}
