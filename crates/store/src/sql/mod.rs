//! The SQL implementation of [`Store`](crate::Store). Its logic is written once, against
//! [`db::Conn`], and runs on SQLite (rusqlite, [`sqlite`]) or PostgreSQL (sqlx, [`postgres`]).
//! Both take the same SQL text (`$n` parameters, integer microsecond times, JSON as text);
//! where the dialects differ, the two texts stand side by side. Each backend's schema is in
//! `migrations/<backend>/`.

mod artifacts;
mod automations;
mod console;
pub(crate) mod db;
mod entities;
mod events;
mod executions;
mod integrations;
mod migrate;
mod postgres;
mod queue;
mod run_triggers;
mod runs;
mod sqlite;
mod uploads;
mod users;
mod versions;

use std::sync::Arc;

use parking_lot::Mutex;

use chrono::{DateTime, TimeZone, Utc};
use hashlink::LruCache;
use herald_domain::catalog::Project;

use crate::StoreResult;
use db::Conn;

pub(crate) use postgres::is_unique_violation as postgres_unique_violation;
pub use postgres::{drop_postgres_schema, dump_postgres_schema, postgres_schema_url};
pub(crate) use sqlite::is_unique_violation as sqlite_unique_violation;
pub use sqlite::SQLITE_PAGE_SIZE;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// SQLite's durability level. `Normal` survives a crash or kill of herald (the OS keeps the
/// WAL); `Full` also survives a power loss, at the price of an fsync per commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    Normal,
    Full,
}

#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// PostgreSQL: the pool's size; SQLite: how many reading connections.
    pub max_connections: u32,
    pub sqlite_synchronous: SqliteSync,
}

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            sqlite_synchronous: SqliteSync::Normal,
        }
    }
}

/// Projects a store remembers (see [`SqlStore`]).
const PROJECT_CACHE: usize = 10_000;

/// The SQL store. Cheap to clone.
#[derive(Clone)]
pub struct SqlStore {
    db: Database,
    /// Projects never change once created (no rename, move or delete), so a request need not
    /// read its project again; the least recently used are forgotten.
    projects: Arc<Mutex<LruCache<(i64, String), Project>>>,
}

#[derive(Clone)]
enum Database {
    Sqlite(Arc<sqlite::SqliteDb>),
    Postgres(sqlx::PgPool),
}

impl SqlStore {
    /// Connects to `url` (`sqlite://PATH`, `sqlite::memory:` or `postgres://…`), creating a
    /// SQLite file if needed, and applies pending migrations.
    pub async fn connect(url: &str, options: &SqlOptions) -> anyhow::Result<Self> {
        let db = if url.starts_with("sqlite:") {
            let sync = match options.sqlite_synchronous {
                SqliteSync::Normal => "NORMAL",
                SqliteSync::Full => "FULL",
            };
            let location = sqlite::Location::of(url)?;
            Database::Sqlite(Arc::new(
                sqlite::SqliteDb::open(&location, sync, options.max_connections).await?,
            ))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Database::Postgres(postgres::connect(url, options.max_connections).await?)
        } else {
            anyhow::bail!("database URL must start with sqlite:// or postgres://, got {url:?}");
        };
        Ok(Self {
            db,
            projects: Arc::new(Mutex::new(LruCache::new(PROJECT_CACHE))),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Database::Sqlite(_) => Backend::Sqlite,
            Database::Postgres(_) => Backend::Postgres,
        }
    }

    /// A connection for reads (each statement sees what was committed before it).
    pub(crate) async fn read(&self) -> StoreResult<Conn<'_>> {
        Ok(match &self.db {
            Database::Sqlite(db) => Conn::Sqlite(db.read().await),
            Database::Postgres(pool) => Conn::Postgres(postgres::read(pool).await?),
        })
    }

    /// Begins a write transaction; it rolls back unless committed.
    pub(crate) async fn write(&self) -> StoreResult<Conn<'_>> {
        Ok(match &self.db {
            Database::Sqlite(db) => Conn::Sqlite(db.write().await?),
            Database::Postgres(pool) => Conn::Postgres(postgres::begin_write(pool).await?),
        })
    }

    /// A connection for writes that need no transaction of their own (each statement stands
    /// alone, and none writes an event): on SQLite the writer, on PostgreSQL any connection.
    pub(crate) async fn write_one(&self) -> StoreResult<Conn<'_>> {
        Ok(match &self.db {
            Database::Sqlite(db) => Conn::Sqlite(db.write().await?),
            Database::Postgres(pool) => Conn::Postgres(postgres::read(pool).await?),
        })
    }

    /// `project` as cached, if it is.
    pub(crate) fn cached_project(&self, entity: i64, name: &str) -> Option<Project> {
        let mut cache = self.projects.lock();
        cache.get(&(entity, name.to_string())).cloned()
    }

    pub(crate) fn cache_project(&self, project: &Project) {
        let mut cache = self.projects.lock();
        cache.insert(
            (project.entity_id.0, project.name.to_string()),
            project.clone(),
        );
    }
}

#[async_trait::async_trait]
impl crate::Store for SqlStore {
    async fn ping(&self) -> bool {
        match self.read().await {
            Ok(mut conn) => conn
                .fetch_optional("SELECT 1 AS one", &[], |_| Ok(()))
                .await
                .is_ok_and(|row| row.is_some()),
            Err(_) => false,
        }
    }

    /// PostgreSQL's pool closes; SQLite's connections close when the last clone of the store
    /// is dropped.
    async fn close(&self) {
        if let Database::Postgres(pool) = &self.db {
            pool.close().await;
        }
    }
}

/// Runs blocking work `f` on this thread, first telling a multi-threaded tokio runtime to
/// move this worker's other tasks to another thread, so they do not wait behind it (a
/// current-thread runtime, as in tests, just runs it).
fn off_the_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Now, in the store's time unit.
pub(crate) fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

pub(crate) fn ts(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

/// `v` as JSON text for a column: `serde_json::to_string` writes straight into the string,
/// at under half the cost of `Value`'s `Display` (which goes through a formatter), and this
/// runs for every execution the matcher records. It cannot fail for a `Value`.
pub(crate) fn json_text(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| v.to_string())
}

/// Parses JSON the store wrote itself.
pub(crate) fn json_col(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::{json_col, json_text};

    #[test]
    fn json_text_is_the_compact_text_display_gives_and_reads_back() {
        let v = serde_json::json!({
            "quote\"and\\slash": "line\nbreak\ttab \u{1} é 😀",
            "nested": {"list": [1, -2.5, true, null, {"k": ""}]},
            "big": 18446744073709551615u64,
        });
        assert_eq!(json_text(&v), v.to_string());
        assert!(!json_text(&v).contains('\n'), "compact, one line");
        assert_eq!(json_col(&json_text(&v)), v);
    }
}
