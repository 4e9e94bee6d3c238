//! Typed ids: one type per kind of row, so an execution id can never be passed where an
//! automation id is expected. Internally they are database integers; on W&B-compatible
//! surfaces they are W&B "global ids", base64 of `Type:n` (e.g. `Artifact:123`).

use base64::Engine as _;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $gql:literal) => {
        $(#[$doc])*
        // Default (0, no row) only so that structs read back from JSON can leave out ids
        // they never show, such as an execution's entity id.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name(pub i64);

        impl $name {
            /// The W&B GraphQL type name this id encodes as.
            pub const GRAPHQL_TYPE: &'static str = $gql;

            /// The W&B global id: base64 of `Type:n`.
            pub fn to_global(self) -> String {
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", $gql, self.0))
            }

            /// Parses a W&B global id of this type; `None` for anything else.
            pub fn from_global(s: &str) -> Option<Self> {
                let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
                let text = String::from_utf8(bytes).ok()?;
                let (ty, n) = text.split_once(':')?;
                if ty != $gql {
                    return None;
                }
                n.parse().ok().map(Self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

typed_id!(
    /// A user (person or service account).
    UserId, "User"
);
typed_id!(
    /// A team, organization or personal entity.
    EntityId, "Entity"
);
typed_id!(
    /// A project or registry (registries are projects).
    ProjectId, "Project"
);
typed_id!(
    /// An artifact collection: a sequence in a project or a portfolio in a registry.
    CollectionId, "ArtifactCollection"
);
typed_id!(
    /// One immutable artifact version.
    VersionId, "Artifact"
);
typed_id!(
    /// A version's place in a collection (its index there and its aliases).
    MembershipId, "ArtifactCollectionMembership"
);
typed_id!(
    /// An artifact the `wandb` SDK is uploading, before it is committed as a version.
    UploadId, "ArtifactUpload"
);
typed_id!(
    /// A run's row id (runs also have a user-facing string id, [`crate::names::RunName`]).
    RunId, "Run"
);
typed_id!(
    /// One event in the event log; ids grow with time, so they double as cursors.
    EventId, "Event"
);

typed_id!(
    /// A team secret.
    SecretId, "Secret"
);
typed_id!(
    /// A webhook or Slack integration.
    IntegrationId, "Integration"
);
typed_id!(
    /// An automation (W&B's `Trigger`).
    AutomationId, "Trigger"
);
typed_id!(
    /// One firing of one automation for one event.
    ExecutionId, "Execution"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_match_wandb_encoding() {
        // The W&B docs' example `QXJ0aWZhY3Q6NTE3ODg5ODg3` decodes to `Artifact:517889887`.
        assert_eq!(VersionId(517889887).to_global(), "QXJ0aWZhY3Q6NTE3ODg5ODg3");
        assert_eq!(
            VersionId::from_global("QXJ0aWZhY3Q6NTE3ODg5ODg3"),
            Some(VersionId(517889887))
        );
        assert_eq!(
            RunId::from_global("QXJ0aWZhY3Q6NTE3ODg5ODg3"),
            None,
            "type must match"
        );
        assert_eq!(UserId::from_global("not base64!"), None);
    }
}
