//! The SQLite backend, on rusqlite: its connections, pragmas and transactions.
//!
//! Statements run on the calling task's thread: a thread switch per statement (as a driver
//! with a worker thread per connection makes) costs more than the statements of a busy
//! server. Each call is bounded (an indexed read, or a transaction of a batch), and meanwhile
//! the runtime's other workers take over the waiting tasks.
//!
//! SQLite allows one writer at a time, so writes go through one connection behind an async
//! lock and never meet `SQLITE_BUSY`; reads use connections of their own, which in WAL mode
//! never wait for the writer. An in-memory database (tests) has a single connection for both.

mod checkpoint;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use hashlink::LruCache;
use rusqlite::types::{ToSqlOutput, ValueRef};

use super::db::{Columns, Value};
use crate::{StoreError, StoreResult};
pub(crate) use checkpoint::Checkpoints;

/// The page size of a SQLite database herald creates. Every commit writes each page it
/// changed to the write-ahead log whole, and herald's commits change a few rows in many
/// b-trees; smaller pages make a smaller log for the same commits. Pages of 1 KiB made the
/// b-trees deeper and the engine slower. SQLite fixes the page size when it creates the file,
/// so an older database keeps its own, and works as before.
pub const SQLITE_PAGE_SIZE: u32 = 2048;

/// Prepared statements each connection keeps.
const STATEMENT_CACHE: usize = 64;

/// Per-connection settings: the page size of a new database (set before WAL mode, which
/// writes the file's first page); WAL so readers never wait for the writer; enforced foreign
/// keys; a busy timeout as a last resort; a 16 MiB page cache; temporary storage in memory
/// (a statement that may fail halfway keeps a statement journal, which would otherwise spill
/// to a file); and the chosen durability.
fn pragmas(synchronous: &str) -> String {
    format!(
        "PRAGMA page_size = {SQLITE_PAGE_SIZE};
         PRAGMA journal_mode = WAL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 10000;
         PRAGMA cache_size = -16384;
         PRAGMA temp_store = MEMORY;
         PRAGMA synchronous = {synchronous};"
    )
}

/// A connection and what binding its statements needs.
pub(crate) struct Handle {
    conn: rusqlite::Connection,
    /// For statements of many parameters: which of the caller's values each parameter takes
    /// (see [`bind`]), by SQL text.
    orders: LruCache<String, Box<[usize]>>,
}

impl Handle {
    fn new(conn: rusqlite::Connection) -> Self {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Self {
            conn,
            orders: LruCache::new(STATEMENT_CACHE),
        }
    }
}

/// Where a `sqlite:` URL points.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Location {
    File(PathBuf),
    Memory,
}

impl Location {
    /// The file a `sqlite://PATH[?…]` URL names, or memory (`sqlite::memory:`).
    pub(crate) fn of(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .with_context(|| format!("not a SQLite URL: {url:?}"))?;
        let path = rest.split('?').next().unwrap_or_default();
        anyhow::ensure!(!path.is_empty(), "the SQLite URL {url:?} names no file");
        Ok(if path.contains(":memory:") {
            Self::Memory
        } else {
            Self::File(PathBuf::from(path))
        })
    }
}

/// The SQLite database: one writer, its readers, and the checkpoints of its log.
pub(crate) struct SqliteDb {
    writer: tokio::sync::Mutex<Handle>,
    /// Empty in memory, where the writer serves reads too.
    readers: Vec<tokio::sync::Mutex<Handle>>,
    next_reader: AtomicUsize,
    /// A file's two-step WAL checkpoints; none in memory.
    checkpoints: Option<Arc<Checkpoints>>,
}

/// Gives each in-memory database a name of its own (see [`SqliteDb::open`]).
static MEMORY_DATABASES: AtomicUsize = AtomicUsize::new(0);

impl SqliteDb {
    /// Opens the database at `location` with `readers` reading connections, and applies
    /// pending migrations. In memory, the database is named and shared-cache, so that the
    /// migrator's connection reaches the same one; it lives as long as the store.
    pub(crate) async fn open(
        location: &Location,
        synchronous: &str,
        readers: u32,
    ) -> anyhow::Result<Self> {
        let open = |path: &str| -> anyhow::Result<rusqlite::Connection> {
            let conn = rusqlite::Connection::open(path)
                .with_context(|| format!("opening SQLite database {path}"))?;
            conn.execute_batch(&pragmas(synchronous))?;
            Ok(conn)
        };
        match location {
            Location::File(path) => {
                owner_only(path)?;
                let name = path.to_str().context("the SQLite path is not UTF-8")?;
                let writer = open(name)?;
                // Checkpoints are made after commits, not in them (see `checkpoint`).
                writer.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
                super::migrate::sqlite(path, false).await?;
                let readers = (0..readers.max(1))
                    .map(|_| Ok(tokio::sync::Mutex::new(Handle::new(open(name)?))))
                    .collect::<anyhow::Result<_>>()?;
                Ok(Self {
                    writer: tokio::sync::Mutex::new(Handle::new(writer)),
                    readers,
                    next_reader: AtomicUsize::new(0),
                    checkpoints: Some(Arc::new(Checkpoints::new(path.clone(), open(name)?))),
                })
            }
            Location::Memory => {
                let n = MEMORY_DATABASES.fetch_add(1, Ordering::Relaxed);
                let name = format!("file:herald-memory-{}-{n}", std::process::id());
                let conn = rusqlite::Connection::open_with_flags(
                    format!("{name}?mode=memory&cache=shared"),
                    rusqlite::OpenFlags::default(),
                )?;
                conn.execute_batch(&pragmas(synchronous))?;
                super::migrate::sqlite(Path::new(&name), true).await?;
                Ok(Self {
                    writer: tokio::sync::Mutex::new(Handle::new(conn)),
                    readers: Vec::new(),
                    next_reader: AtomicUsize::new(0),
                    checkpoints: None,
                })
            }
        }
    }

    /// A reading connection: the first free one, so that a few connections serve most reads
    /// with their page caches and statements warm; when none is free, the next in turn.
    pub(crate) async fn read(&self) -> Conn<'_> {
        if self.readers.is_empty() {
            return Conn {
                handle: self.writer.lock().await,
                tx: None,
            };
        }
        for reader in &self.readers {
            if let Ok(handle) = reader.try_lock() {
                return Conn { handle, tx: None };
            }
        }
        let next = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        Conn {
            handle: self.readers[next].lock().await,
            tx: None,
        }
    }

    /// Begins a write transaction on the one writer. `IMMEDIATE` takes SQLite's write lock at
    /// once, so a transaction never fails to upgrade halfway.
    pub(crate) async fn write(&self) -> StoreResult<Conn<'_>> {
        let mut conn = Conn {
            handle: self.writer.lock().await,
            tx: None,
        };
        conn.handle
            .conn
            .prepare_cached("BEGIN IMMEDIATE")?
            .execute([])?;
        conn.tx = Some(self);
        Ok(conn)
    }
}

/// A connection in use: a reader, or the writer in a transaction (`tx`), which rolls back if
/// dropped uncommitted.
pub(crate) struct Conn<'a> {
    handle: tokio::sync::MutexGuard<'a, Handle>,
    tx: Option<&'a SqliteDb>,
}

impl Conn<'_> {
    pub(crate) fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> StoreResult<u64> {
        let handle = &mut *self.handle;
        let mut stmt = handle.conn.prepare_cached(sql)?;
        bind(&mut stmt, sql, params, &mut handle.orders)?;
        Ok(stmt.raw_execute()? as u64)
    }

    /// Reads up to `limit` rows with `read`. Column names are taken once per query: rusqlite
    /// would ask SQLite for each column's name at every lookup by name.
    pub(crate) fn fetch<T>(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        limit: usize,
        mut read: impl FnMut(&dyn Columns) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let handle = &mut *self.handle;
        let mut stmt = handle.conn.prepare_cached(sql)?;
        bind(&mut stmt, sql, params, &mut handle.orders)?;
        let names: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(row) = rows.next()? else { break };
            out.push(read(&Named { row, names: &names })?);
        }
        Ok(out)
    }

    /// Runs `… RETURNING id` without the clause (see [`super::db::Conn::insert_id`]). A
    /// statement without it is refused unrun: running it would insert a row whose id is lost.
    pub(crate) fn insert_id(&mut self, sql: &str, params: &[Value<'_>]) -> StoreResult<i64> {
        let plain = sql.strip_suffix(" RETURNING id").ok_or_else(|| {
            StoreError::Internal(anyhow::anyhow!("not an insert returning its id: {sql}"))
        })?;
        self.execute(plain, params)?;
        Ok(self.handle.conn.last_insert_rowid())
    }

    /// The id the last insert gave (its last row's, for a multi-row insert).
    pub(crate) fn last_insert_id(&self) -> i64 {
        self.handle.conn.last_insert_rowid()
    }

    /// Commits a write transaction; then, still holding the writer, starts or finishes a
    /// checkpoint of the log when one is due.
    pub(crate) fn commit(mut self) -> StoreResult<()> {
        let Some(db) = self.tx else { return Ok(()) };
        self.handle.conn.prepare_cached("COMMIT")?.execute([])?;
        self.tx = None;
        if let Some(checkpoints) = &db.checkpoints {
            if checkpoints.after_commit() == checkpoint::AfterCommit::CatchUp {
                // Off the runtime: it may wait for the disk.
                super::off_the_runtime(|| checkpoints.catch_up(&self.handle.conn));
            }
        }
        Ok(())
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if self.tx.is_some() {
            if let Err(e) = self.handle.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back a SQLite transaction failed");
            }
        }
    }
}

/// Parameters at most this many are matched to values by their names at every use; a
/// statement of more keeps the matching (see [`bind`]).
const FEW_PARAMETERS: usize = 16;

/// Binds `params` to `stmt`: parameter `$n` takes value `n` (from 1), and an anonymous `?`
/// the value of its position. To SQLite `$n` is a *name*, its parameters numbered by first
/// appearance, so `$2` before `$1` would bind wrongly by position. Finding a parameter's name
/// costs a walk of a list as long as the statement's parameters, so a statement of many keeps
/// the matching by its text.
fn bind(
    stmt: &mut rusqlite::Statement<'_>,
    sql: &str,
    params: &[Value<'_>],
    orders: &mut LruCache<String, Box<[usize]>>,
) -> StoreResult<()> {
    let count = stmt.parameter_count();
    let value = |n: usize| {
        params.get(n - 1).ok_or_else(|| {
            StoreError::Internal(anyhow::anyhow!(
                "parameter ${n} has no value ({} given): {sql}",
                params.len()
            ))
        })
    };
    if count <= FEW_PARAMETERS {
        for i in 1..=count {
            let n = parameter_number(stmt, i)?;
            stmt.raw_bind_parameter(i, value(n)?)?;
        }
        return Ok(());
    }
    if orders.get(sql).is_none() {
        let order = (1..=count)
            .map(|i| parameter_number(stmt, i))
            .collect::<StoreResult<_>>()?;
        orders.insert(sql.to_string(), order);
    }
    let order = orders.get(sql).expect("just inserted");
    for (i, n) in order.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, value(*n)?)?;
    }
    Ok(())
}

/// The value number of parameter `i`: `n` for `$n`, `i` for an anonymous `?`.
fn parameter_number(stmt: &rusqlite::Statement<'_>, i: usize) -> StoreResult<usize> {
    match stmt.parameter_name(i) {
        None => Ok(i),
        Some(name) => name
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("parameter {name} is not $n"))),
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Int(Some(v)) => ValueRef::Integer(v),
            Value::Text(Some(s)) => ValueRef::Text(s.as_bytes()),
            Value::Int(None) | Value::Text(None) => ValueRef::Null,
        }))
    }
}

/// A row with its statement's column names: see [`Conn::fetch`].
struct Named<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    names: &'r [String],
}

impl Named<'_, '_> {
    fn index(&self, name: &str) -> StoreResult<usize> {
        self.names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("the query has no column {name}")))
    }
}

impl Columns for Named<'_, '_> {
    fn int(&self, name: &str) -> StoreResult<Option<i64>> {
        Ok(self.row.get(self.index(name)?)?)
    }
    fn text(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(self.row.get(self.index(name)?)?)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("database error"))
    }
}

/// Whether `e` is SQLite's unique or primary-key violation.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// Creates the database file readable by its owner only, or makes an existing one (and its
/// log and shared-memory files) so: it holds API key hashes, sealed secrets and everything a
/// team logged. SQLite gives the files it creates beside a database the database's
/// permissions, so the log and shared-memory files follow.
fn owner_only(db: &Path) -> anyhow::Result<()> {
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
            let path = PathBuf::from(name);
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
    use super::*;

    fn handle() -> Handle {
        Handle::new(rusqlite::Connection::open_in_memory().unwrap())
    }

    fn ints(h: &mut Handle, sql: &str, params: &[Value<'_>]) -> Vec<i64> {
        let mut stmt = h.conn.prepare_cached(sql).unwrap();
        bind(&mut stmt, sql, params, &mut h.orders).unwrap();
        let mut rows = stmt.raw_query();
        let row = rows.next().unwrap().unwrap();
        (0..row.as_ref().column_count())
            .map(|i| row.get(i).unwrap())
            .collect()
    }

    #[test]
    fn parameters_bind_by_their_number_not_their_position() {
        let mut h = handle();
        // Reused and out of order: by first appearance these would bind 10 to $2.
        let sql = "SELECT $2 - $1, $1 + $2 + $1";
        assert_eq!(
            ints(&mut h, sql, &[10.into(), 3.into()]),
            [3 - 10, 10 + 3 + 10]
        );
        // Many parameters, out of order: the matching kept for the text binds the same way.
        let many: Vec<String> = (1..=40).rev().map(|n| format!("${n}")).collect();
        let sql = format!("SELECT {}", many.join(", "));
        let values: Vec<Value> = (1..=40).map(|n| Value::from(n as i64 * 100)).collect();
        let expected: Vec<i64> = (1..=40).rev().map(|n| n * 100).collect();
        assert_eq!(ints(&mut h, &sql, &values), expected);
        assert_eq!(
            ints(&mut h, &sql, &values),
            expected,
            "second use, kept order"
        );
        // A value missing for a parameter is an error, not a NULL.
        let mut stmt = h.conn.prepare("SELECT $1, $2").unwrap();
        assert!(bind(&mut stmt, "SELECT $1, $2", &[1.into()], &mut h.orders).is_err());
    }

    #[test]
    fn named_rows_read_each_column_by_its_name_and_refuse_an_unknown_one() {
        let h = handle();
        h.conn
            .execute_batch(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, v TEXT);
                 INSERT INTO t VALUES (1, 10, 'a'), (2, NULL, 'b'), (3, 30, NULL);",
            )
            .unwrap();
        let db = tokio::sync::Mutex::new(h);
        let mut conn = Conn {
            handle: db.try_lock().unwrap(),
            tx: None,
        };
        // The columns in another order than the table's, so a position cannot pass for a name.
        let sql = "SELECT v, id, n FROM t WHERE id >= $1 ORDER BY id";
        let rows = conn
            .fetch(sql, &[2.into()], usize::MAX, |r| {
                Ok((r.int_required("id")?, r.int("n")?, r.text("v")?))
            })
            .unwrap();
        assert_eq!(rows, vec![(2, None, Some("b".into())), (3, Some(30), None)]);
        let unknown = conn.fetch(sql, &[1.into()], usize::MAX, |r| r.int("missing"));
        let message = format!("{:#}", unknown.unwrap_err());
        assert!(message.contains("no column missing"), "{message}");
        let inserted = conn
            .insert_id("INSERT INTO t (v) VALUES ($1) RETURNING id", &["c".into()])
            .unwrap();
        assert_eq!(inserted, 4);
        // A statement without the clause is refused, not run.
        assert!(conn
            .insert_id("INSERT INTO t (v) VALUES ($1)", &["d".into()])
            .is_err());
        let count = conn
            .fetch("SELECT COUNT(*) AS n FROM t", &[], 1, |r| {
                r.int_required("n")
            })
            .unwrap();
        assert_eq!(count, [4]);
    }

    #[test]
    fn only_a_file_gets_a_path() {
        let path = |url| match Location::of(url).unwrap() {
            Location::File(p) => Some(p.display().to_string()),
            Location::Memory => None,
        };
        assert_eq!(
            path("sqlite://./data/herald.db").as_deref(),
            Some("./data/herald.db")
        );
        assert_eq!(
            path("sqlite:///var/lib/h.db?mode=rwc").as_deref(),
            Some("/var/lib/h.db")
        );
        assert_eq!(path("sqlite:h.db").as_deref(), Some("h.db"));
        assert_eq!(path("sqlite::memory:"), None);
        assert_eq!(path("sqlite://:memory:?cache=shared"), None);
        assert!(Location::of("sqlite://").is_err());
        assert!(Location::of("postgres://localhost/db").is_err());
    }
}
