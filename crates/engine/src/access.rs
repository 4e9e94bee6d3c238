//! Who may do what. A user sees an entity only as its member (or as a server admin); to
//! anyone else it does not exist, so that names do not leak across teams. Members whose role
//! is too low get a 403 that says which role the action needs.

use herald_domain::catalog::{Entity, Project, Role, User};
use herald_store::Store;

use crate::{Error, Result};

/// An entity the caller may act in, with the caller's role there.
#[derive(Debug, Clone)]
pub struct EntityAccess {
    pub entity: Entity,
    pub role: Role,
}

/// Finds entity `name` as `user` sees it, and checks the user holds at least `needed` there.
pub async fn entity(
    store: &dyn Store,
    user: &User,
    name: &str,
    needed: Role,
) -> Result<EntityAccess> {
    let hidden = || Error::NotFound(format!("entity {name:?} not found"));
    let (entity, role) = store
        .entity_with_role(name, user)
        .await?
        .ok_or_else(hidden)?;
    grant(user, entity, role, needed).ok_or_else(hidden)?
}

/// Finds the entity that owns a row reached by id (`owner` is what the store said), as
/// `user` sees it. A row in an entity the user cannot see is reported as `what` not found.
pub async fn owner(
    store: &dyn Store,
    user: &User,
    owner: Option<herald_domain::ids::EntityId>,
    what: &str,
    needed: Role,
) -> Result<EntityAccess> {
    let hidden = || Error::NotFound(format!("{what} not found"));
    let entity = match owner {
        Some(id) => store.entity_by_id(id).await?.ok_or_else(hidden)?,
        None => return Err(hidden()),
    };
    let role = store.member_role(&entity, user).await?;
    grant(user, entity, role, needed).ok_or_else(hidden)?
}

/// The access `user` has with `role` in `entity`: `None` when the entity must stay hidden (not
/// a member), a 403 naming the needed role when the role is too low.
fn grant(
    user: &User,
    entity: Entity,
    role: Option<Role>,
    needed: Role,
) -> Option<Result<EntityAccess>> {
    let role = if user.is_admin { Role::Admin } else { role? };
    if !role.allows(needed) {
        return Some(Err(Error::Forbidden(format!(
            "this needs the {} role in {:?}; you are {}",
            needed.as_str(),
            entity.name.as_str(),
            role.as_str()
        ))));
    }
    Some(Ok(EntityAccess { entity, role }))
}

/// Finds project `project` of entity `entity` as `user` sees it, with at least `needed`.
pub async fn project(
    store: &dyn Store,
    user: &User,
    entity_name: &str,
    project: &str,
    needed: Role,
) -> Result<Project> {
    let access = entity(store, user, entity_name, needed).await?;
    Ok(store.project(&access.entity, project).await?)
}
