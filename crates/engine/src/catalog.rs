//! Catalog operations that span more than one store call or need randomness.

use herald_domain::catalog::{Project, Role, User};
use herald_domain::names::{ProjectName, RegistryName, RunName};
use herald_domain::InvalidInput;
use herald_store::Store;
use rand::Rng as _;

use crate::{access, Error, Result};

/// A new run id like W&B's: 8 characters of lowercase letters and digits.
pub fn generate_run_id() -> RunName {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let id: String = (0..8)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    RunName::from_trusted(id)
}

/// Resolves the registry a link names: `org/name`, `org/wandb-registry-name`, or a bare
/// registry name, which (as in W&B) is in the organization of the source project's team, or
/// in the source's own entity when that is in no organization. The caller needs MEMBER in the
/// registry's organization.
pub async fn link_target(
    store: &dyn Store,
    user: &User,
    source: &Project,
    registry: &str,
) -> Result<Project> {
    let (org, name) = match registry.split_once('/') {
        Some((org, name)) => (org.to_string(), name),
        None => {
            let home = store.entity_by_id(source.entity_id).await?;
            let org = home
                .and_then(|e| e.organization)
                .map_or_else(|| source.entity.to_string(), |o| o.into_string());
            (org, registry)
        }
    };
    let org = org.as_str();
    let project_name = if name.starts_with(herald_domain::names::REGISTRY_PREFIX) {
        ProjectName::parse(name)
    } else {
        RegistryName::parse(name).map(|r| ProjectName::for_registry(&r))
    }
    .map_err(|e| e.at("registry"))?;
    let access = access::entity(store, user, org, Role::Member).await?;
    match store.project(&access.entity, project_name.as_str()).await {
        Ok(p) if p.is_registry => Ok(p),
        Ok(p) => Err(Error::Invalid(InvalidInput::new(
            "registry",
            format!("{}/{} is not a registry", p.entity, p.name),
        ))),
        // `org/vision` names the registry `wandb-registry-vision`; if that does not exist but a
        // plain project `vision` does, the caller meant that project, which is not a registry.
        Err(herald_store::StoreError::NotFound(_))
            if !name.starts_with(herald_domain::names::REGISTRY_PREFIX)
                && store.project(&access.entity, name).await.is_ok() =>
        {
            Err(Error::Invalid(InvalidInput::new(
                "registry",
                format!(
                    "{org}/{name} is a project, not a registry; link into an organization's registry (wandb-registry-<name>)"
                ),
            )))
        }
        Err(herald_store::StoreError::NotFound(_)) => Err(Error::NotFound(format!(
            "registry {:?} not found in {org:?}; registries are created with POST /api/v1/entities/{{org}}/registries",
            project_name.as_str()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The organization `name` as a home for a team, which `user` may put teams in: it must be an
/// organization, and `user` its ADMIN (a team in an organization links into its registries).
/// `field` names the input, for the error.
pub async fn organization_for_team(
    store: &dyn Store,
    user: &User,
    name: &str,
    field: &str,
) -> Result<herald_domain::catalog::Entity> {
    herald_domain::names::EntityName::parse(name).map_err(|e| e.at(field))?;
    let org = access::entity(store, user, name, Role::Admin).await?.entity;
    if org.kind != herald_domain::catalog::EntityKind::Organization {
        return Err(InvalidInput::new(
            field,
            format!(
                "{name:?} is a {}, not an organization; teams belong to organizations",
                org.kind.as_str()
            ),
        )
        .into());
    }
    Ok(org)
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_look_like_wandb() {
        let id = super::generate_run_id();
        assert_eq!(id.as_str().len(), 8);
        assert!(herald_domain::names::RunName::parse(id.as_str()).is_ok());
    }
}
