//! Entities, members, projects and registries.

use async_trait::async_trait;
use herald_domain::catalog::{Entity, EntityKind, Member, Project, Role, User};
use herald_domain::ids::{EntityId, ProjectId};
use herald_domain::names::{EntityName, ProjectName, Username};

use super::db::{params, Columns, Conn};
use super::{now_us, ts, SqlStore};
use crate::error::conflict_on_unique;
use crate::{EntityStore, StoreError, StoreResult};

fn entity_from_row(row: &dyn Columns) -> StoreResult<Entity> {
    Ok(Entity {
        id: EntityId(row.int_required("id")?),
        name: EntityName::from_trusted(row.text_required("name")?),
        kind: EntityKind::from_db(&row.text_required("kind")?).unwrap_or(EntityKind::Team),
        organization: row.text("organization")?.map(EntityName::from_trusted),
        created_at: ts(row.int_required("created_at")?),
    })
}

pub(crate) fn project_from_row(row: &dyn Columns) -> StoreResult<Project> {
    Ok(Project {
        id: ProjectId(row.int_required("id")?),
        entity_id: EntityId(row.int_required("entity_id")?),
        entity: EntityName::from_trusted(row.text_required("entity_name")?),
        name: ProjectName::from_trusted(row.text_required("name")?),
        description: row.text("description")?,
        is_registry: row.int_required("is_registry")? != 0,
        created_at: ts(row.int_required("created_at")?),
    })
}

pub(crate) const PROJECT_SELECT: &str =
    "SELECT p.id, p.entity_id, e.name AS entity_name, p.name, p.description, p.is_registry, \
     p.created_at FROM projects p JOIN entities e ON e.id = p.entity_id";

fn role_from_db(s: &str) -> Role {
    Role::parse(s).unwrap_or(Role::Viewer)
}

fn role_of(row: &dyn Columns) -> StoreResult<Role> {
    Ok(role_from_db(&row.text_required("role")?))
}

const INSERT_MEMBER: &str =
    "INSERT INTO members (entity_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)";
/// An entity's columns, from `entities e`, with its organization's name (a literal, so that
/// queries are constant text).
macro_rules! entity_columns {
    () => {
        "e.id, e.name, e.kind, e.created_at, \
         (SELECT o.name FROM entities o WHERE o.id = e.organization_id) AS organization"
    };
}

#[async_trait]
impl EntityStore for SqlStore {
    async fn create_entity(
        &self,
        name: &EntityName,
        kind: EntityKind,
        organization: Option<&Entity>,
        creator: &User,
    ) -> StoreResult<Entity> {
        let now = now_us();
        let mut tx = self.write().await?;
        let id = tx
            .insert_id(
                "INSERT INTO entities (name, kind, organization_id, created_at) VALUES ($1, $2, $3, $4) \
                 RETURNING id",
                params![
                    name.as_str(),
                    kind.as_str(),
                    organization.map(|o| o.id.0),
                    now
                ],
            )
            .await
            .map_err(conflict_on_unique(|| {
                format!("an entity named {:?} already exists", name.as_str())
            }))?;
        tx.execute(
            INSERT_MEMBER,
            params![id, creator.id.0, Role::Admin.as_str(), now],
        )
        .await?;
        tx.commit().await?;
        Ok(Entity {
            id: EntityId(id),
            name: name.clone(),
            kind,
            organization: organization.map(|o| o.name.clone()),
            created_at: ts(now),
        })
    }

    async fn set_organization(
        &self,
        team: &Entity,
        organization: Option<&Entity>,
    ) -> StoreResult<Entity> {
        let mut tx = self.write().await?;
        tx.execute(
            "UPDATE entities SET organization_id = $1 WHERE id = $2",
            params![organization.map(|o| o.id.0), team.id.0],
        )
        .await?;
        tx.commit().await?;
        Ok(Entity {
            organization: organization.map(|o| o.name.clone()),
            ..team.clone()
        })
    }

    async fn entity_by_name(&self, name: &str) -> StoreResult<Option<Entity>> {
        const SQL: &str = concat!(
            "SELECT ",
            entity_columns!(),
            " FROM entities e WHERE e.name = $1"
        );
        let mut conn = self.read().await?;
        conn.fetch_optional(SQL, params![name], entity_from_row)
            .await
    }

    async fn entity_by_id(&self, id: EntityId) -> StoreResult<Option<Entity>> {
        const SQL: &str = concat!(
            "SELECT ",
            entity_columns!(),
            " FROM entities e WHERE e.id = $1"
        );
        let mut conn = self.read().await?;
        conn.fetch_optional(SQL, params![id.0], entity_from_row)
            .await
    }

    async fn entity_with_role(
        &self,
        name: &str,
        user: &User,
    ) -> StoreResult<Option<(Entity, Option<Role>)>> {
        // Every request about an entity asks this first.
        const SQL: &str = concat!(
            "SELECT ",
            entity_columns!(),
            ", m.role FROM entities e \
             LEFT JOIN members m ON m.entity_id = e.id AND m.user_id = $2 WHERE e.name = $1"
        );
        let mut conn = self.read().await?;
        conn.fetch_optional(SQL, params![name, user.id.0], |r| {
            Ok((
                entity_from_row(r)?,
                r.text("role")?.as_deref().map(role_from_db),
            ))
        })
        .await
    }

    async fn entities_of(&self, user: &User) -> StoreResult<Vec<(Entity, Role)>> {
        let mut conn = self.read().await?;
        conn.fetch_all(
            concat!(
                "SELECT ",
                entity_columns!(),
                ", m.role FROM entities e \
                 JOIN members m ON m.entity_id = e.id WHERE m.user_id = $1 ORDER BY e.name"
            ),
            params![user.id.0],
            |r| Ok((entity_from_row(r)?, role_of(r)?)),
        )
        .await
    }

    async fn member_role(&self, entity: &Entity, user: &User) -> StoreResult<Option<Role>> {
        let mut conn = self.read().await?;
        conn.fetch_optional(
            "SELECT role FROM members WHERE entity_id = $1 AND user_id = $2",
            params![entity.id.0, user.id.0],
            role_of,
        )
        .await
    }

    async fn list_members(&self, entity: &Entity) -> StoreResult<Vec<Member>> {
        let mut conn = self.read().await?;
        conn.fetch_all(
            "SELECT u.username, m.role FROM members m JOIN users u ON u.id = m.user_id \
             WHERE m.entity_id = $1 ORDER BY u.username",
            params![entity.id.0],
            |r| {
                Ok(Member {
                    username: Username::from_trusted(r.text_required("username")?),
                    role: role_of(r)?,
                })
            },
        )
        .await
    }

    async fn set_member(
        &self,
        entity: &Entity,
        username: &Username,
        role: Role,
    ) -> StoreResult<Member> {
        let mut tx = self.write().await?;
        let user_id = tx
            .fetch_optional(
                "SELECT id FROM users WHERE username = $1",
                params![username.as_str()],
                |r| r.int_required("id"),
            )
            .await?
            .ok_or_else(|| {
                StoreError::not_found(format!("user {:?} not found", username.as_str()))
            })?;
        let current = tx
            .fetch_optional(
                "SELECT role FROM members WHERE entity_id = $1 AND user_id = $2",
                params![entity.id.0, user_id],
                role_of,
            )
            .await?;
        match current {
            Some(r) if r == role => {}
            Some(r) => {
                if r == Role::Admin && role != Role::Admin {
                    ensure_another_admin(&mut tx, entity, user_id).await?;
                }
                tx.execute(
                    "UPDATE members SET role = $1 WHERE entity_id = $2 AND user_id = $3",
                    params![role.as_str(), entity.id.0, user_id],
                )
                .await?;
            }
            None => {
                tx.execute(
                    INSERT_MEMBER,
                    params![entity.id.0, user_id, role.as_str(), now_us()],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(Member {
            username: username.clone(),
            role,
        })
    }

    async fn remove_member(&self, entity: &Entity, username: &Username) -> StoreResult<()> {
        let mut tx = self.write().await?;
        let (user_id, role) = tx
            .fetch_optional(
                "SELECT m.user_id, m.role FROM members m JOIN users u ON u.id = m.user_id \
                 WHERE m.entity_id = $1 AND u.username = $2",
                params![entity.id.0, username.as_str()],
                |r| Ok((r.int_required("user_id")?, role_of(r)?)),
            )
            .await?
            .ok_or_else(|| {
                StoreError::not_found(format!(
                    "{:?} is not a member of {:?}",
                    username.as_str(),
                    entity.name.as_str()
                ))
            })?;
        if role == Role::Admin {
            ensure_another_admin(&mut tx, entity, user_id).await?;
        }
        tx.execute(
            "DELETE FROM members WHERE entity_id = $1 AND user_id = $2",
            params![entity.id.0, user_id],
        )
        .await?;
        tx.commit().await
    }

    async fn create_project(
        &self,
        entity: &Entity,
        name: &ProjectName,
        description: Option<&str>,
    ) -> StoreResult<Project> {
        let now = now_us();
        let mut tx = self.write_one().await?;
        let id = tx
            .insert_id(
                "INSERT INTO projects (entity_id, name, description, is_registry, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                params![
                    entity.id.0,
                    name.as_str(),
                    description,
                    name.is_registry(),
                    now
                ],
            )
            .await
            .map_err(conflict_on_unique(|| {
                format!(
                    "{:?} already has a project named {:?}",
                    entity.name.as_str(),
                    name.as_str()
                )
            }))?;
        tx.commit().await?;
        Ok(Project {
            id: ProjectId(id),
            entity_id: entity.id,
            entity: entity.name.clone(),
            name: name.clone(),
            description: description.map(str::to_string),
            is_registry: name.is_registry(),
            created_at: ts(now),
        })
    }

    async fn project(&self, entity: &Entity, name: &str) -> StoreResult<Project> {
        if let Some(p) = self.cached_project(entity.id.0, name) {
            return Ok(p);
        }
        let sql = format!("{PROJECT_SELECT} WHERE p.entity_id = $1 AND p.name = $2");
        let project = self
            .read()
            .await?
            .fetch_optional(&sql, params![entity.id.0, name], project_from_row)
            .await?
            .ok_or_else(|| {
                StoreError::not_found(format!(
                    "project {:?} not found in {:?}",
                    name,
                    entity.name.as_str()
                ))
            })?;
        self.cache_project(&project);
        Ok(project)
    }

    async fn project_by_id(&self, id: ProjectId) -> StoreResult<Option<Project>> {
        let sql = format!("{PROJECT_SELECT} WHERE p.id = $1");
        let mut conn = self.read().await?;
        conn.fetch_optional(&sql, params![id.0], project_from_row)
            .await
    }

    async fn list_projects(&self, entity: &Entity) -> StoreResult<Vec<Project>> {
        let sql = format!("{PROJECT_SELECT} WHERE p.entity_id = $1 ORDER BY p.name");
        let mut conn = self.read().await?;
        conn.fetch_all(&sql, params![entity.id.0], project_from_row)
            .await
    }
}

/// Refuses a change that would leave the entity without an ADMIN other than `user_id`.
async fn ensure_another_admin(tx: &mut Conn<'_>, entity: &Entity, user_id: i64) -> StoreResult<()> {
    let others = tx
        .fetch_int(
            "SELECT COUNT(*) AS n FROM members WHERE entity_id = $1 AND role = 'ADMIN' AND user_id <> $2",
            params![entity.id.0, user_id],
            "n",
        )
        .await?;
    if others == Some(0) {
        return Err(StoreError::conflict(format!(
            "{:?} would have no ADMIN left; make another member ADMIN first",
            entity.name.as_str()
        )));
    }
    Ok(())
}
