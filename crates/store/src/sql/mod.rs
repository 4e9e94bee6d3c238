//! The SQL implementation of [`Store`](crate::Store), written once over sqlx's `Any` driver so
//! that SQLite and PostgreSQL share every query (`$n` placeholders, integer microsecond
//! times, JSON as text). Where the backends must differ (schema DDL, connection setup), the
//! difference is in this module and in `migrations/<backend>/`.
//!
//! SQLite allows one writer at a time, so writes go through a one-connection pool and never
//! meet `SQLITE_BUSY`; reads use a separate pool of WAL readers that never block on writers.

mod artifacts;
mod automations;
mod entities;
mod events;
mod executions;
mod inline;
mod run_triggers;
mod runs;
mod users;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};

use crate::StoreResult;

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

/// The SQL store. Cheap to clone (pools are reference-counted).
#[derive(Clone)]
pub struct SqlStore {
    write: AnyPool,
    read: AnyPool,
    backend: Backend,
    /// Projects never change once created (no rename, move or delete), so every request
    /// need not read its project again.
    projects: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<(i64, String), herald_domain::catalog::Project>>,
    >,
    /// SQLite in a file: the connection the hot write transactions run on (see [`inline`]).
    inline: Option<std::sync::Arc<inline::Inline>>,
}

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const SQLITE_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "catalog",
        sql: include_str!("../../migrations/sqlite/0001_catalog.sql"),
    },
    Migration {
        version: 2,
        name: "automations",
        sql: include_str!("../../migrations/sqlite/0002_automations.sql"),
    },
    Migration {
        version: 3,
        name: "run_triggers",
        sql: include_str!("../../migrations/sqlite/0003_run_triggers.sql"),
    },
    Migration {
        version: 4,
        name: "slack",
        sql: include_str!("../../migrations/sqlite/0004_slack.sql"),
    },
    Migration {
        version: 5,
        name: "lease_index",
        sql: include_str!("../../migrations/sqlite/0005_lease_index.sql"),
    },
    Migration {
        version: 6,
        name: "partial_queue_indexes",
        sql: include_str!("../../migrations/sqlite/0006_partial_queue_indexes.sql"),
    },
    Migration {
        version: 7,
        name: "previous_secrets",
        sql: include_str!("../../migrations/sqlite/0007_previous_secrets.sql"),
    },
    Migration {
        version: 8,
        name: "drop_rate_index",
        sql: include_str!("../../migrations/sqlite/0008_drop_rate_index.sql"),
    },
];

const POSTGRES_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "catalog",
        sql: include_str!("../../migrations/postgres/0001_catalog.sql"),
    },
    Migration {
        version: 2,
        name: "automations",
        sql: include_str!("../../migrations/postgres/0002_automations.sql"),
    },
    Migration {
        version: 3,
        name: "run_triggers",
        sql: include_str!("../../migrations/postgres/0003_run_triggers.sql"),
    },
    Migration {
        version: 4,
        name: "slack",
        sql: include_str!("../../migrations/postgres/0004_slack.sql"),
    },
    Migration {
        version: 5,
        name: "lease_index",
        sql: include_str!("../../migrations/postgres/0005_lease_index.sql"),
    },
    Migration {
        version: 6,
        name: "partial_queue_indexes",
        sql: include_str!("../../migrations/postgres/0006_partial_queue_indexes.sql"),
    },
    Migration {
        version: 7,
        name: "previous_secrets",
        sql: include_str!("../../migrations/postgres/0007_previous_secrets.sql"),
    },
    Migration {
        version: 8,
        name: "drop_rate_index",
        sql: include_str!("../../migrations/postgres/0008_drop_rate_index.sql"),
    },
];

impl SqlStore {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`), creating a SQLite file if needed,
    /// and applies pending migrations.
    pub async fn connect(url: &str, options: &SqlOptions) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("database URL must start with sqlite:// or postgres://, got {url:?}");
        };
        let store = match backend {
            Backend::Sqlite => Self::connect_sqlite(url, options).await?,
            Backend::Postgres => Self::connect_postgres(url, options).await?,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// PostgreSQL: one pool for reads and writes (the server handles concurrency).
    async fn connect_postgres(url: &str, options: &SqlOptions) -> anyhow::Result<Self> {
        let connect = AnyConnectOptions::from_str(url)
            .with_context(|| "invalid PostgreSQL URL".to_string())?;
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect)
            .await
            .context("connecting to PostgreSQL")?;
        Ok(Self {
            write: pool.clone(),
            read: pool,
            backend: Backend::Postgres,
            projects: Default::default(),
            inline: None,
        })
    }

    async fn connect_sqlite(url: &str, options: &SqlOptions) -> anyhow::Result<Self> {
        let url = if url.contains('?') {
            url.to_string()
        } else {
            format!("{url}?mode=rwc")
        };
        if let Some(path) = inline::Inline::path_of(&url) {
            owner_only(&path)?;
        }
        let connect = AnyConnectOptions::from_str(&url)
            .with_context(|| format!("invalid database URL {url:?}"))?;
        let sync = match options.sqlite_synchronous {
            SqliteSync::Normal => "NORMAL",
            SqliteSync::Full => "FULL",
        };
        // A local file needs no liveness check before each use (it costs a round trip to the
        // connection's worker thread).
        let write = AnyPoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| Box::pin(apply_sqlite_pragmas(conn, sync)))
            .connect_with(connect.clone())
            .await
            .with_context(|| format!("opening SQLite database {url}"))?;
        let read = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| Box::pin(apply_sqlite_pragmas(conn, sync)))
            .connect_with(connect)
            .await
            .with_context(|| format!("opening SQLite database {url}"))?;
        let inline = match inline::Inline::path_of(&url) {
            Some(path) => Some(std::sync::Arc::new(inline::Inline::open(path, sync)?)),
            None => None,
        };
        Ok(Self {
            write,
            read,
            backend: Backend::Sqlite,
            projects: Default::default(),
            inline,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Begins a write transaction. On PostgreSQL, writers take one advisory lock, so commits
    /// happen in the order event ids were assigned and the matcher's cursor can never pass an
    /// event that commits later (SQLite's single writer gives the same for free).
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        let mut tx = self.write.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7243)")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Runs a short read on the inline lookup connection; `None` without one (see
    /// [`inline`]). An indexed lookup takes microseconds.
    pub(crate) fn lookup_inline<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> crate::StoreResult<T>,
    ) -> Option<crate::StoreResult<T>> {
        Some(self.inline.as_ref()?.lookup(f))
    }

    /// Runs `f` as one write transaction on the inline SQLite connection, holding the sqlx
    /// writer meanwhile; `None` when there is no inline connection (PostgreSQL, or SQLite in
    /// memory), and the caller uses sqlx.
    pub(crate) async fn write_inline<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> crate::StoreResult<T>,
    ) -> Option<crate::StoreResult<T>> {
        let inline = self.inline.as_ref()?;
        Some(match self.write.acquire().await {
            Ok(_writer) => {
                let written = inline.write(f);
                // Still holding the writer, so step 2 of a checkpoint completes (see `inline`);
                // off the runtime, as it may wait for the disk.
                if inline.after_commit() == inline::AfterCommit::CatchUp {
                    off_the_runtime(|| inline.checkpoint());
                }
                written
            }
            Err(e) => Err(e.into()),
        })
    }

    /// Applies every migration newer than the database, each in its own transaction.
    /// Brings the schema up to date. On PostgreSQL, replicas starting together on a new
    /// database would each create the tables at once (and all but one fail on PostgreSQL's own
    /// catalog), so the whole step runs under a session advisory lock that every replica waits
    /// for: the first applies the migrations, the others then find nothing left to do. The
    /// lock's second key is the schema's hash, so databases in other schemas do not wait.
    async fn migrate(&self) -> anyhow::Result<()> {
        if self.backend == Backend::Sqlite {
            return self.migrate_unlocked().await;
        }
        let mut lock = self.write.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock(7244, hashtext(current_schema()))")
            .execute(&mut *lock)
            .await
            .context("waiting for the migrations lock")?;
        let migrated = self.migrate_unlocked().await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock(7244, hashtext(current_schema()))")
            .execute(&mut *lock)
            .await;
        if unlocked.is_err() {
            // A session lock outlives a transaction: never hand this connection to anyone else.
            lock.detach();
        }
        migrated
    }

    async fn migrate_unlocked(&self) -> anyhow::Result<()> {
        let migrations = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        self.write
            .execute(
                "CREATE TABLE IF NOT EXISTS herald_migrations (
                    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            )
            .await
            .context("creating the migrations table")?;
        let current: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM herald_migrations")
            .fetch_one(&self.write)
            .await?
            .try_get("v")?;
        let current = current.unwrap_or(0);
        if let Some(latest) = migrations.last() {
            anyhow::ensure!(
                current <= latest.version,
                "the database is at schema version {current}, newer than this herald knows ({}); upgrade herald",
                latest.version
            );
        }
        for m in migrations.iter().filter(|m| m.version > current) {
            let mut tx = self.begin_write().await?;
            sqlx::raw_sql(m.sql)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("applying migration {} ({})", m.version, m.name))?;
            sqlx::query(
                "INSERT INTO herald_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(now_us())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::Store for SqlStore {
    async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").fetch_one(&self.read).await.is_ok()
    }

    async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// Creates schema `schema` in the PostgreSQL at `base` if needed and returns a URL whose
/// connections use it, for giving each test (or test server) a database of its own.
pub async fn postgres_schema_url(base: &str, schema: &str) -> anyhow::Result<String> {
    on_postgres_schema(base, schema, "CREATE SCHEMA IF NOT EXISTS {}").await?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
}

/// Drops schema `schema` of the PostgreSQL at `base` and everything in it.
pub async fn drop_postgres_schema(base: &str, schema: &str) -> anyhow::Result<()> {
    on_postgres_schema(base, schema, "DROP SCHEMA IF EXISTS {} CASCADE").await
}

/// Runs `statement`, with `{}` standing for `schema`, on the PostgreSQL at `base`.
async fn on_postgres_schema(base: &str, schema: &str, statement: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !schema.is_empty()
            && schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "schema name {schema:?} must be letters, digits and '_'"
    );
    sqlx::any::install_default_drivers();
    let admin = AnyPool::connect(base)
        .await
        .with_context(|| format!("connecting to {base}"))?;
    admin
        .execute(statement.replace("{}", schema).as_str())
        .await?;
    admin.close().await;
    Ok(())
}

/// Every row of every table of `schema`, as text (for tests that check what is stored).
pub async fn dump_postgres_schema(base: &str, schema: &str) -> anyhow::Result<String> {
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(base).await?;
    let tables: Vec<String> = sqlx::query(
        "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = $1",
    )
    .bind(schema)
    .fetch_all(&pool)
    .await?
    .iter()
    .map(|r| r.try_get::<String, _>("t"))
    .collect::<Result<_, _>>()?;
    let mut out = String::new();
    for t in tables {
        let rows = sqlx::query(&format!(
            "SELECT row_to_json(x)::text AS j FROM {schema}.{t} x"
        ))
        .fetch_all(&pool)
        .await?;
        for r in rows {
            out.push_str(&r.try_get::<String, _>("j")?);
            out.push('\n');
        }
    }
    pool.close().await;
    Ok(out)
}

/// The page size of a SQLite database herald creates. Every commit writes each page it
/// changed to the write-ahead log whole, and herald's commits change a few rows in many
/// b-trees (a table and its indexes): a page apiece. With SQLite's default 4 KiB pages an
/// event cost about 80 KiB of log at 1,000 events/s (about 20 pages in three commits: the
/// API's, the matcher's and the recorder's), and a disk that sustains 100 MB/s fell behind:
/// a checkpoint's sync then took long enough for deliveries to wait behind it. Half the page
/// size halves the log: in the delivery benchmark at 1,000 events/s, 2,150 pages of 4 KiB per
/// 100 ms before, 2,260 of 2 KiB after; with its processes' disk writes throttled to 100 MB/s
/// (a blkio cgroup), p99 latency went from 11–14 ms to 1.1–1.2 ms. The engine's drain went no
/// slower; with 1 KiB pages the b-trees grew deeper and the drain slowed.
///
/// SQLite fixes the page size when it creates the file, so a database created with another
/// page size keeps its own, and works as before.
pub const SQLITE_PAGE_SIZE: u32 = 2048;

/// Per-connection SQLite settings: the page size of a new database ([`SQLITE_PAGE_SIZE`],
/// set before WAL mode, which writes the file's first page); WAL so readers never wait for
/// the writer, enforced foreign keys, a busy timeout as a last resort, a 16 MiB page cache,
/// and temporary storage in memory: a statement that may fail halfway (any insert with
/// constraints, inside a larger transaction) keeps a statement journal, which otherwise
/// spills to a temporary file and made every execution insert pay for file writes; and the
/// chosen durability.
pub(crate) fn sqlite_pragmas(synchronous: &str) -> Vec<String> {
    let fixed = [
        "PRAGMA journal_mode = WAL",
        "PRAGMA foreign_keys = ON",
        "PRAGMA busy_timeout = 10000",
        "PRAGMA cache_size = -16384",
        "PRAGMA temp_store = MEMORY",
    ];
    std::iter::once(format!("PRAGMA page_size = {SQLITE_PAGE_SIZE}"))
        .chain(fixed.iter().map(|p| p.to_string()))
        .chain([format!("PRAGMA synchronous = {synchronous}")])
        .collect()
}

async fn apply_sqlite_pragmas(
    conn: &mut sqlx::AnyConnection,
    sync: &str,
) -> Result<(), sqlx::Error> {
    for pragma in sqlite_pragmas(sync) {
        conn.execute(pragma.as_str()).await?;
    }
    Ok(())
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

/// A row of either driver, read by column name: sqlx's (any backend) or the inline SQLite
/// connection's ([`inline::Named`]).
pub(crate) trait Columns {
    fn int(&self, name: &str) -> StoreResult<Option<i64>>;
    fn text(&self, name: &str) -> StoreResult<Option<String>>;

    /// A column that is never NULL.
    fn int_required(&self, name: &str) -> StoreResult<i64> {
        self.int(name)?
            .ok_or_else(|| anyhow::anyhow!("column {name} is NULL").into())
    }

    /// A column that is never NULL.
    fn text_required(&self, name: &str) -> StoreResult<String> {
        self.text(name)?
            .ok_or_else(|| anyhow::anyhow!("column {name} is NULL").into())
    }
}

impl Columns for sqlx::any::AnyRow {
    fn int(&self, name: &str) -> StoreResult<Option<i64>> {
        Ok(self.try_get(name)?)
    }
    fn text(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(self.try_get(name)?)
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

/// Creates the SQLite database file readable by its owner only, or makes an existing one (and
/// its log and shared-memory files) so. SQLite gives the files it creates beside a database the
/// database file's permissions, so the log and shared-memory files follow. The database holds
/// API key hashes, sealed secrets and everything a team logged; nobody else on the machine
/// should read it.
fn owner_only(db: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(db)
            .with_context(|| format!("creating SQLite database {}", db.display()))?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            let path = std::path::PathBuf::from(name);
            if let Ok(meta) = std::fs::metadata(&path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                        .with_context(|| format!("making {} private", path.display()))?;
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = db;
    Ok(())
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
