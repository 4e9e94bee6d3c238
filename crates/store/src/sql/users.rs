//! Users and API keys.

use async_trait::async_trait;
use herald_domain::catalog::{EntityKind, Role, User};
use herald_domain::ids::UserId;
use herald_domain::names::Username;

use super::db::{params, Columns};
use super::{now_us, ts, SqlStore};
use crate::error::conflict_on_unique;
use crate::{NewUser, StoreResult, UserStore};

pub(crate) const USER_COLUMNS: &str = "u.id, u.username, u.email, u.is_admin, u.created_at";

pub(crate) fn user_from_row(row: &dyn Columns) -> StoreResult<User> {
    Ok(User {
        id: UserId(row.int_required("id")?),
        username: Username::from_trusted(row.text_required("username")?),
        email: row.text("email")?,
        is_admin: row.int_required("is_admin")? != 0,
        created_at: ts(row.int_required("created_at")?),
    })
}

const INSERT_API_KEY: &str =
    "INSERT INTO api_keys (user_id, key_hash, created_at) VALUES ($1, $2, $3)";

#[async_trait]
impl UserStore for SqlStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        let now = now_us();
        let name = new.username.as_str();
        let mut tx = self.write().await?;
        let id = tx
            .insert_id(
                "INSERT INTO users (username, email, is_admin, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                params![name, &new.email, new.is_admin, now],
            )
            .await
            .map_err(conflict_on_unique(|| format!("user {name:?} already exists")))?;
        tx.execute(INSERT_API_KEY, params![id, &new.key_hash, now])
            .await?;
        // The personal entity shares the namespace with teams and organizations, as in W&B.
        let entity_id = tx
            .insert_id(
                "INSERT INTO entities (name, kind, created_at) VALUES ($1, $2, $3) RETURNING id",
                params![name, EntityKind::User.as_str(), now],
            )
            .await
            .map_err(conflict_on_unique(|| {
                format!("an entity named {name:?} already exists")
            }))?;
        tx.execute(
            "INSERT INTO members (entity_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
            params![entity_id, id, Role::Admin.as_str(), now],
        )
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
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1"
        );
        self.read()
            .await?
            .fetch_optional(&sql, params![key_hash], user_from_row)
            .await
    }

    async fn count_users(&self) -> StoreResult<i64> {
        Ok(self
            .read()
            .await?
            .fetch_int("SELECT COUNT(*) AS n FROM users", &[], "n")
            .await?
            .unwrap_or(0))
    }

    async fn add_api_key(&self, user: &User, key_hash: &str) -> StoreResult<()> {
        let mut tx = self.write_one().await?;
        tx.execute(INSERT_API_KEY, params![user.id.0, key_hash, now_us()])
            .await
            .map_err(conflict_on_unique(|| {
                "that API key is already in use".to_string()
            }))?;
        tx.commit().await
    }
}
