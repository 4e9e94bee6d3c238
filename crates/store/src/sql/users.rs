//! Users and API keys.

use async_trait::async_trait;
use herald_domain::catalog::{EntityKind, Role, User};
use herald_domain::ids::UserId;
use herald_domain::names::Username;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now_us, ts, SqlStore};
use crate::error::conflict_on_unique;
use crate::{NewUser, StoreResult, UserStore};

pub(crate) const USER_COLUMNS: &str = "u.id, u.username, u.email, u.is_admin, u.created_at";

pub(crate) fn user_from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: UserId(row.try_get("id")?),
        username: Username::from_trusted(row.try_get("username")?),
        email: row.try_get("email")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        created_at: ts(row.try_get("created_at")?),
    })
}

#[async_trait]
impl UserStore for SqlStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        let now = now_us();
        let name = new.username.as_str().to_string();
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO users (username, email, is_admin, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(&name)
        .bind(&new.email)
        .bind(new.is_admin as i64)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_on_unique(|| format!("user {name:?} already exists")))?
        .try_get("id")?;
        sqlx::query("INSERT INTO api_keys (user_id, key_hash, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(&new.key_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        // The personal entity shares the namespace with teams and organizations, as in W&B.
        let entity_id: i64 = sqlx::query(
            "INSERT INTO entities (name, kind, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(&name)
        .bind(EntityKind::User.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_on_unique(|| {
            format!("an entity named {name:?} already exists")
        }))?
        .try_get("id")?;
        sqlx::query(
            "INSERT INTO members (entity_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(entity_id)
        .bind(id)
        .bind(Role::Admin.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(User {
            id: UserId(id),
            username: new.username,
            email: new.email,
            is_admin: new.is_admin,
            created_at: ts(now),
        })
    }

    async fn user_by_key_hash(&self, key_hash: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1"
        ))
        .bind(key_hash)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    async fn count_users(&self) -> StoreResult<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.read)
            .await?
            .try_get("n")?)
    }

    async fn add_api_key(&self, user: &User, key_hash: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO api_keys (user_id, key_hash, created_at) VALUES ($1, $2, $3)")
            .bind(user.id.0)
            .bind(key_hash)
            .bind(now_us())
            .execute(&self.write)
            .await
            .map_err(conflict_on_unique(|| {
                "that API key is already in use".to_string()
            }))?;
        Ok(())
    }
}
