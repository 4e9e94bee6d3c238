//! SQLite's busiest write transactions, run inline on the calling thread.
//!
//! sqlx runs every SQLite statement on a worker thread of its own, so each statement costs two
//! thread switches; on a small virtual machine those switches cost more than the statements.
//! The engine's hot transactions (recording delivery attempts, recording matches, claiming)
//! run instead on a rusqlite connection of their own to the same file, called directly from
//! the task that needs them: one transaction, no switch. They hold the sqlx writer while they
//! run, so there is still exactly one writer at a time and nobody meets `SQLITE_BUSY`. The
//! matcher's reads use a third connection the same way.
//!
//! They run straight on the calling tokio worker, without `block_in_place`. Each is bounded
//! (a matcher batch or a claim of a few hundred rows: milliseconds at most), and meanwhile the
//! other workers take over the waiting tasks. Handing the worker's tasks to another thread for
//! every transaction cost more: a thread wake-up each time, about a tenth of herald's CPU per
//! delivery in the drain benchmark.
//!
//! The one unbounded part of a commit is a WAL checkpoint: copying the log back into the
//! database and syncing it can take a slow disk a hundred milliseconds, which would stall
//! every task waiting on that worker. So the writing connection does not checkpoint as part
//! of a commit; after a commit, at most every [`CHECKPOINT_EVERY`], the writer checkpoints
//! off the runtime while it still holds the database (see `SqlStore::write_inline`). With no
//! write in between, the checkpoint completes, and the next commit starts the log over.
//! (A checkpointer beside the writer never catches up with a steady stream of commits, and
//! the log then grows without end.)

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context as _;

use crate::error::{StoreError, StoreResult};

/// A query written for sqlx (`$1`, `$2`, …) with its parameters numbered for rusqlite: to
/// SQLite `$1` is a *named* parameter, numbered by first appearance, while `?1` is number 1.
/// The store's queries have no `$` anywhere else.
pub(crate) fn numbered(sql: &str) -> String {
    sql.replace('$', "?")
}

/// How often the writer copies the write-ahead log back into the database.
pub(crate) const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) struct Inline {
    conn: Mutex<rusqlite::Connection>,
    /// For the matcher's reads (its cursor and the next events): one task, so uncontended.
    reader: Mutex<rusqlite::Connection>,
    /// For the short indexed reads every API request makes (who may act on an entity): a
    /// few microseconds each, so one connection serves them all without a queue forming.
    lookups: Mutex<rusqlite::Connection>,
    /// When the writing connection last checkpointed.
    checkpointed: Mutex<std::time::Instant>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("database error"))
    }
}

impl Inline {
    /// The file a `sqlite://PATH[?…]` URL names; `None` for an in-memory database, which a
    /// second connection could not share.
    pub(crate) fn path_of(url: &str) -> Option<PathBuf> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
    }

    /// Opens the writing and the reading connection, with the same settings as sqlx's.
    pub(crate) fn open(path: PathBuf, synchronous: &str) -> anyhow::Result<Self> {
        let connect = || -> anyhow::Result<rusqlite::Connection> {
            let conn = rusqlite::Connection::open(&path)
                .with_context(|| format!("opening SQLite database {}", path.display()))?;
            conn.execute_batch(&super::sqlite_pragmas(synchronous).join(";\n"))?;
            conn.set_prepared_statement_cache_capacity(64);
            Ok(conn)
        };
        let conn = connect()?;
        // Checkpoints are made after commits, not in them (see the module documentation).
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
        Ok(Self {
            conn: Mutex::new(conn),
            reader: Mutex::new(connect()?),
            lookups: Mutex::new(connect()?),
            checkpointed: Mutex::new(std::time::Instant::now()),
        })
    }

    /// Whether the writer's last checkpoint is [`CHECKPOINT_EVERY`] old.
    pub(crate) fn checkpoint_due(&self) -> bool {
        self.checkpointed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            >= CHECKPOINT_EVERY
    }

    /// Copies the write-ahead log back into the database on the writing connection: blocking
    /// (it may sync the disk), and complete unless a reader still needs part of the log.
    /// The caller holds the sqlx writer, so no commit comes in between, and the next one
    /// starts the log over. A failure is logged; the next checkpoint tries again.
    pub(crate) fn checkpoint(&self) {
        *self.checkpointed.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match done {
            Ok((log, copied)) => {
                tracing::trace!(log_frames = log, copied_frames = copied, "checkpointed")
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; it is tried again"),
        }
    }

    /// Runs `f` on the reading connection (each statement sees what was committed before it).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        f(&self.reader.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Runs `f` on the lookup connection (each statement sees what was committed before it).
    pub(crate) fn lookup<T>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        f(&self.lookups.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Runs `f` in one immediate transaction and commits it. The caller holds the sqlx
    /// writer, so the lock is never contended.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_keep_their_numbers() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        // Reused and out of order: as named parameters these would bind by first appearance.
        let sql = numbered("SELECT $2 - $1, $1 + $2 + $1");
        let row: (i64, i64) = conn
            .query_row(&sql, rusqlite::params![10, 3], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(row, (3 - 10, 10 + 3 + 10));
    }

    #[test]
    fn commits_leave_the_log_to_checkpoints_which_start_it_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let inline = Inline::open(path.clone(), "NORMAL").unwrap();
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap();
        // About 4 MB, four times SQLite's automatic checkpoint threshold.
        inline
            .write(|tx| {
                tx.execute_batch("CREATE TABLE t (v BLOB)")?;
                let mut insert = tx.prepare("INSERT INTO t (v) VALUES (zeroblob(1024))")?;
                for _ in 0..4000 {
                    insert.execute([])?;
                }
                Ok(())
            })
            .unwrap();
        assert!(
            size() < 100_000,
            "the commit checkpointed: {} bytes",
            size()
        );
        assert!(!inline.checkpoint_due());
        std::thread::sleep(CHECKPOINT_EVERY);
        assert!(inline.checkpoint_due());
        inline.checkpoint();
        assert!(!inline.checkpoint_due());
        assert!(size() > 4_000_000, "not checkpointed: {} bytes", size());
        // The next commit starts the log over: it then holds only that commit's pages.
        inline
            .write(|tx| Ok(tx.execute_batch("INSERT INTO t (v) VALUES (zeroblob(10))")?))
            .unwrap();
        let frames: i64 = inline
            .read(|c| Ok(c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))?))
            .unwrap();
        assert!(frames < 10, "the log was not started over: {frames} frames");
        let rows: i64 = inline
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(rows, 4001);
    }

    #[test]
    fn only_a_file_gets_a_second_connection() {
        let path = |url| Inline::path_of(url).map(|p| p.display().to_string());
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
        assert_eq!(path("sqlite://"), None);
        assert_eq!(path("postgres://localhost/db"), None);
    }
}
