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
//! delivery in the drain benchmark, and API latency at 1,000 events/s was no better for it.

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

pub(crate) struct Inline {
    conn: Mutex<rusqlite::Connection>,
    /// For the matcher's reads (its cursor and the next events): one task, so uncontended.
    reader: Mutex<rusqlite::Connection>,
    /// For the short indexed reads every API request makes (who may act on an entity): a
    /// few microseconds each, so one connection serves them all without a queue forming.
    lookups: Mutex<rusqlite::Connection>,
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
        Ok(Self {
            conn: Mutex::new(connect()?),
            reader: Mutex::new(connect()?),
            lookups: Mutex::new(connect()?),
        })
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
