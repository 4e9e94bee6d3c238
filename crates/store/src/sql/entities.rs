//! Entities, members, projects and registries.

use async_trait::async_trait;
use herald_domain::catalog::{Entity, EntityKind, Member, Project, Role, User};
use herald_domain::ids::{EntityId, ProjectId};
use herald_domain::names::{EntityName, ProjectName, Username};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::inline::{numbered, query_named};
use super::{now_us, ts, Columns, SqlStore};
use crate::error::conflict_on_unique;
use crate::{EntityStore, StoreError, StoreResult};

fn entity_from_row(row: &impl Columns) -> StoreResult<Entity> {
    Ok(Entity {
        id: EntityId(row.int_required("id")?),
        name: EntityName::from_trusted(row.text_required("name")?),
        kind: EntityKind::from_db(&row.text_required("kind")?).unwrap_or(EntityKind::Team),
        created_at: ts(row.int_required("created_at")?),
    })
}

pub(crate) fn project_from_row(row: &AnyRow) -> Result<Project, sqlx::Error> {
    Ok(Project {
        id: ProjectId(row.try_get("id")?),
        entity_id: EntityId(row.try_get("entity_id")?),
        entity: EntityName::from_trusted(row.try_get("entity_name")?),
        name: ProjectName::from_trusted(row.try_get("name")?),
        description: row.try_get("description")?,
        is_registry: row.try_get::<i64, _>("is_registry")? != 0,
        created_at: ts(row.try_get("created_at")?),
    })
}

const PROJECT_SELECT: &str =
    "SELECT p.id, p.entity_id, e.name AS entity_name, p.name, p.description, p.is_registry, \
     p.created_at FROM projects p JOIN entities e ON e.id = p.entity_id";

fn role_from_db(s: &str) -> Role {
    Role::parse(s).unwrap_or(Role::Viewer)
}

#[async_trait]
impl EntityStore for SqlStore {
    async fn create_entity(
        &self,
        name: &EntityName,
        kind: EntityKind,
        creator: &User,
    ) -> StoreResult<Entity> {
        let now = now_us();
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO entities (name, kind, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name.as_str())
        .bind(kind.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_on_unique(|| {
            format!("an entity named {:?} already exists", name.as_str())
        }))?
        .try_get("id")?;
        sqlx::query(
            "INSERT INTO members (entity_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(creator.id.0)
        .bind(Role::Admin.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Entity {
            id: EntityId(id),
            name: name.clone(),
            kind,
            created_at: ts(now),
        })
    }

    async fn entity_by_name(&self, name: &str) -> StoreResult<Option<Entity>> {
        let row = sqlx::query("SELECT id, name, kind, created_at FROM entities WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.as_ref().map(entity_from_row).transpose()?)
    }

    async fn entity_by_id(&self, id: EntityId) -> StoreResult<Option<Entity>> {
        let row = sqlx::query("SELECT id, name, kind, created_at FROM entities WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.as_ref().map(entity_from_row).transpose()?)
    }

    async fn entity_with_role(
        &self,
        name: &str,
        user: &User,
    ) -> StoreResult<Option<(Entity, Option<Role>)>> {
        const SQL: &str = "SELECT e.id, e.name, e.kind, e.created_at, m.role FROM entities e \
             LEFT JOIN members m ON m.entity_id = e.id AND m.user_id = $2 WHERE e.name = $1";
        fn read(row: &impl Columns) -> StoreResult<(Entity, Option<Role>)> {
            Ok((
                entity_from_row(row)?,
                row.text("role")?.as_deref().map(role_from_db),
            ))
        }
        // Every request about an entity asks this first.
        if let Some(found) = self.lookup_inline(|c| {
            let mut stmt = c.prepare_cached(&numbered(SQL))?;
            Ok(query_named(&mut stmt, rusqlite::params![name, user.id.0], |r| read(r))?.pop())
        }) {
            return found;
        }
        let row = sqlx::query(SQL)
            .bind(name)
            .bind(user.id.0)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(read).transpose()
    }

    async fn entities_of(&self, user: &User) -> StoreResult<Vec<(Entity, Role)>> {
        let rows = sqlx::query(
            "SELECT e.id, e.name, e.kind, e.created_at, m.role FROM entities e \
             JOIN members m ON m.entity_id = e.id WHERE m.user_id = $1 ORDER BY e.name",
        )
        .bind(user.id.0)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    entity_from_row(r)?,
                    role_from_db(&r.try_get::<String, _>("role")?),
                ))
            })
            .collect()
    }

    async fn member_role(&self, entity: &Entity, user: &User) -> StoreResult<Option<Role>> {
        let role: Option<String> =
            sqlx::query("SELECT role FROM members WHERE entity_id = $1 AND user_id = $2")
                .bind(entity.id.0)
                .bind(user.id.0)
                .fetch_optional(&self.read)
                .await?
                .map(|r| r.try_get("role"))
                .transpose()?;
        Ok(role.as_deref().map(role_from_db))
    }

    async fn list_members(&self, entity: &Entity) -> StoreResult<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT u.username, m.role FROM members m JOIN users u ON u.id = m.user_id \
             WHERE m.entity_id = $1 ORDER BY u.username",
        )
        .bind(entity.id.0)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    username: Username::from_trusted(r.try_get("username")?),
                    role: role_from_db(&r.try_get::<String, _>("role")?),
                })
            })
            .collect()
    }

    async fn set_member(
        &self,
        entity: &Entity,
        username: &Username,
        role: Role,
    ) -> StoreResult<Member> {
        let mut tx = self.begin_write().await?;
        let user_id: i64 = sqlx::query("SELECT id FROM users WHERE username = $1")
            .bind(username.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| {
                StoreError::not_found(format!("user {:?} not found", username.as_str()))
            })?
            .try_get("id")?;
        let current: Option<String> =
            sqlx::query("SELECT role FROM members WHERE entity_id = $1 AND user_id = $2")
                .bind(entity.id.0)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("role"))
                .transpose()?;
        match current.as_deref().map(role_from_db) {
            Some(r) if r == role => {}
            Some(r) => {
                if r == Role::Admin && role != Role::Admin {
                    ensure_another_admin(&mut tx, entity, user_id).await?;
                }
                sqlx::query("UPDATE members SET role = $1 WHERE entity_id = $2 AND user_id = $3")
                    .bind(role.as_str())
                    .bind(entity.id.0)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {
                sqlx::query("INSERT INTO members (entity_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(entity.id.0)
                    .bind(user_id)
                    .bind(role.as_str())
                    .bind(now_us())
                    .execute(&mut *tx)
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
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT m.user_id, m.role FROM members m JOIN users u ON u.id = m.user_id \
             WHERE m.entity_id = $1 AND u.username = $2",
        )
        .bind(entity.id.0)
        .bind(username.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            StoreError::not_found(format!(
                "{:?} is not a member of {:?}",
                username.as_str(),
                entity.name.as_str()
            ))
        })?;
        let user_id: i64 = row.try_get("user_id")?;
        if role_from_db(&row.try_get::<String, _>("role")?) == Role::Admin {
            ensure_another_admin(&mut tx, entity, user_id).await?;
        }
        sqlx::query("DELETE FROM members WHERE entity_id = $1 AND user_id = $2")
            .bind(entity.id.0)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_project(
        &self,
        entity: &Entity,
        name: &ProjectName,
        description: Option<&str>,
    ) -> StoreResult<Project> {
        let now = now_us();
        let id: i64 = sqlx::query(
            "INSERT INTO projects (entity_id, name, description, is_registry, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(entity.id.0)
        .bind(name.as_str())
        .bind(description)
        .bind(name.is_registry() as i64)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(conflict_on_unique(|| {
            format!(
                "{:?} already has a project named {:?}",
                entity.name.as_str(),
                name.as_str()
            )
        }))?
        .try_get("id")?;
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
        let key = (entity.id.0, name.to_string());
        if let Some(p) = self.projects.lock().expect("project cache lock").get(&key) {
            return Ok(p.clone());
        }
        let row = sqlx::query(&format!(
            "{PROJECT_SELECT} WHERE p.entity_id = $1 AND p.name = $2"
        ))
        .bind(entity.id.0)
        .bind(name)
        .fetch_optional(&self.read)
        .await?
        .ok_or_else(|| {
            StoreError::not_found(format!(
                "project {:?} not found in {:?}",
                name,
                entity.name.as_str()
            ))
        })?;
        let project = project_from_row(&row)?;
        let mut cache = self.projects.lock().expect("project cache lock");
        if cache.len() >= 10_000 {
            cache.clear();
        }
        cache.insert(key, project.clone());
        Ok(project)
    }

    async fn list_projects(&self, entity: &Entity) -> StoreResult<Vec<Project>> {
        let rows = sqlx::query(&format!(
            "{PROJECT_SELECT} WHERE p.entity_id = $1 ORDER BY p.name"
        ))
        .bind(entity.id.0)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(project_from_row)
            .collect::<Result<_, _>>()?)
    }
}

/// Refuses a change that would leave the entity without an ADMIN other than `user_id`.
async fn ensure_another_admin(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    entity: &Entity,
    user_id: i64,
) -> StoreResult<()> {
    let others: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM members WHERE entity_id = $1 AND role = 'ADMIN' AND user_id <> $2",
    )
    .bind(entity.id.0)
    .bind(user_id)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    if others == 0 {
        return Err(StoreError::conflict(format!(
            "{:?} would have no ADMIN left; make another member ADMIN first",
            entity.name.as_str()
        )));
    }
    Ok(())
}
