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
//! delivery in the drain benchmark. (The engine's deliveries run on threads of their own by
//! default, so they do not wait for such a transaction at all: see `herald_engine::runtime`.)
//!
//! The one unbounded part of a commit is a WAL checkpoint: copying the log back into the
//! database and syncing both can take a hundred milliseconds, which would stall every task
//! waiting on that worker. So the writing connection does not checkpoint as part of a commit.
//! Instead, at most every [`CHECKPOINT_EVERY`], a checkpoint runs in two steps:
//!
//! 1. a connection of its own copies the log into the database on a blocking thread, beside
//!    the writer, which goes on committing; then the database file and the log are synced.
//!    This is the slow part: in the delivery benchmark 5 to 25 ms, most of it waiting for the
//!    disk to sync 100 ms of commits. (SQLite itself syncs the database only at the end of a
//!    checkpoint that found no newer commit, so without the explicit syncs step 2 would wait
//!    for all of it.) While the commits made during a round fill more than
//!    [`CATCH_UP_FRAMES`], it copies and syncs again, up to [`COPY_ROUNDS`] times: on a slow
//!    disk one round's commits are themselves a long sync, which step 2 would make the writer
//!    wait for. (With 2 KiB pages and the disk throttled to 70 MB/s, the delivery
//!    benchmark's p99 latency at 1,000 events/s was 9 to 12 ms with one round, 1 to 8 ms with
//!    up to four; with SQLite's 4 KiB pages at 100 MB/s, 30 to 37 ms and 11 to 14 ms.)
//! 2. after the next commit, the writer copies what was committed meanwhile, while it still
//!    holds the database (see `SqlStore::write_inline`): a few milliseconds' commits, synced.
//!    With no commit in between, that checkpoint completes, and the next commit starts the
//!    log over.
//!
//! Step 2 alone (as before) held the writer for the whole checkpoint: deliveries waiting to be
//! recorded stalled behind it, and the delivery benchmark's machine stood a fifth idle. Step 1
//! alone never catches up with a steady stream of commits, and the log then grows without end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use crate::error::{StoreError, StoreResult};

/// A query written for sqlx (`$1`, `$2`, …) with its parameters numbered for rusqlite: to
/// SQLite `$1` is a *named* parameter, numbered by first appearance, while `?1` is number 1.
/// The store's queries have no `$` anywhere else.
pub(crate) fn numbered(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Runs an insert written for both drivers as `INSERT … RETURNING id` on the inline
/// connection, without the RETURNING clause, and gives the new row's id. SQLite runs a
/// statement with RETURNING through a statement journal, copying every page it touches aside
/// first: about a third of a small insert's time. A statement without the clause is refused
/// unrun: it is a mistake in the store, and running it would insert a row whose id is lost.
pub(crate) fn insert_returning_id(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<i64> {
    let plain = sql.strip_suffix(" RETURNING id").ok_or_else(|| {
        StoreError::Internal(anyhow::anyhow!("not an insert returning its id: {sql}"))
    })?;
    tx.prepare_cached(&numbered(plain))?.execute(params)?;
    Ok(tx.last_insert_rowid())
}

/// Rows per multi-row statement on the inline connection (an insert, or an update of rows
/// by their ids): a statement's own costs (a cursor per index, an AUTOINCREMENT counter,
/// finishing) are paid per chunk instead of per row. 32 rows of 16 values stay far below
/// SQLite's limit on parameters.
pub(crate) const CHUNK_ROWS: usize = 32;

/// `rows` split for multi-row statements: whole chunks of [`CHUNK_ROWS`], then the rest one
/// row at a time, so only two statements per use are prepared (and cached).
pub(crate) fn row_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let whole = rows.len() - rows.len() % CHUNK_ROWS;
    rows[..whole]
        .chunks(CHUNK_ROWS)
        .chain(rows[whole..].chunks(1))
}

/// Runs `many` (a statement for [`CHUNK_ROWS`] rows) or `one` (for one row) on a chunk of
/// [`row_chunks`], with each row's values; returns how many rows it inserted.
pub(crate) fn insert_chunk<'r, R, const W: usize>(
    many: &mut rusqlite::Statement<'_>,
    one: &mut rusqlite::Statement<'_>,
    chunk: &'r [R],
    values: impl Fn(&'r R) -> [&'r dyn rusqlite::ToSql; W],
) -> rusqlite::Result<usize> {
    let params: Vec<&dyn rusqlite::ToSql> = chunk.iter().flat_map(values).collect();
    if chunk.len() == 1 {
        one.execute(params.as_slice())
    } else {
        many.execute(params.as_slice())
    }
}

/// `{head} VALUES (?, …), …{tail}`: `rows` rows of `width` parameters each.
pub(crate) fn values_sql(head: &str, width: usize, rows: usize, tail: &str) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    format!("{head} VALUES {}{tail}", vec![row; rows].join(", "))
}

/// Runs a prepared query on the inline connection and reads each row with `read`, by column
/// name. rusqlite's `Row::get(name)` asks SQLite for each column's name, one call per column,
/// at every lookup; here the names are taken once per query. The matcher reads every event
/// this way.
pub(crate) fn query_named<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    mut read: impl FnMut(&Named<'_, '_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let names: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(read(&Named { row, names: &names })?);
    }
    Ok(out)
}

/// A row of the inline connection with its statement's column names: see [`query_named`].
pub(crate) struct Named<'r, 's> {
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

impl super::Columns for Named<'_, '_> {
    fn int(&self, name: &str) -> StoreResult<Option<i64>> {
        Ok(self.row.get(self.index(name)?)?)
    }
    fn text(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(self.row.get(self.index(name)?)?)
    }
}

/// Log frames (pages) few enough that the writer copies and syncs them in a moment: half a
/// megabyte, which this project's machines sync in a millisecond or two.
const CATCH_UP_FRAMES: i64 = 256;

/// How many times step 1 of a checkpoint copies and syncs at most, before leaving the rest to
/// the writer.
const COPY_ROUNDS: u32 = 4;

/// How often the writer copies the write-ahead log back into the database.
pub(crate) const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

pub(crate) struct Inline {
    conn: Mutex<rusqlite::Connection>,
    /// For the matcher's reads (its cursor and the next events): one task, so uncontended.
    reader: Mutex<rusqlite::Connection>,
    /// For the short indexed reads every API request makes (who may act on an entity): a
    /// few microseconds each, so one connection serves them all without a queue forming.
    lookups: Mutex<rusqlite::Connection>,
    /// Copies the log into the database beside the writer (step 1 of a checkpoint).
    checkpointer: Mutex<rusqlite::Connection>,
    /// The database file, which step 1 syncs (its log is this path with `-wal`).
    path: PathBuf,
    /// When the writing connection last checkpointed (step 2).
    checkpointed: Mutex<std::time::Instant>,
    /// Step 1 is running.
    copying: AtomicBool,
    /// Step 1 is done: the writer's next commit is followed by step 2.
    catch_up_due: AtomicBool,
}

/// What the writer does after a commit, for the log.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterCommit {
    Nothing,
    /// Step 1 of a checkpoint started beside the writer.
    Copying,
    /// Step 2 is due: [`Inline::checkpoint`], still holding the writer.
    CatchUp,
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
            checkpointer: Mutex::new(connect()?),
            path,
            checkpointed: Mutex::new(std::time::Instant::now()),
            copying: AtomicBool::new(false),
            catch_up_due: AtomicBool::new(false),
        })
    }

    /// Called by the writer after each commit, still holding the writer: starts step 1 of a
    /// checkpoint on a blocking thread when one is due, or says step 2 is due.
    pub(crate) fn after_commit(self: &Arc<Self>) -> AfterCommit {
        if self.catch_up_due.swap(false, Ordering::SeqCst) {
            return AfterCommit::CatchUp;
        }
        if !self.checkpoint_due() || self.copying.swap(true, Ordering::SeqCst) {
            return AfterCommit::Nothing;
        }
        // Cleared when the copy is done, or dropped unrun (a runtime shutting down): a flag
        // left set would stop checkpoints for good.
        let copying = StepOne(self.clone());
        let copy = move || {
            copying.0.copy_beside_the_writer();
            copying.0.catch_up_due.store(true, Ordering::SeqCst);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(copy)),
            Err(_) => copy(),
        }
        AfterCommit::Copying
    }

    /// Step 1: copies the log into the database, on a connection of its own, while the writer
    /// goes on, then syncs both files; and again, while the commits made meanwhile still fill
    /// more than [`CATCH_UP_FRAMES`], at most [`COPY_ROUNDS`] times. Step 2 then has only a
    /// moment's commits to copy and sync. A failure is logged; the writer's step 2 copies and
    /// syncs what this did not.
    fn copy_beside_the_writer(&self) {
        let conn = self.checkpointer.lock().unwrap_or_else(|p| p.into_inner());
        let mut synced = 0;
        for round in 1..=COPY_ROUNDS {
            let started = std::time::Instant::now();
            match passive_checkpoint(&conn) {
                Ok((log, copied)) => {
                    let fresh = log - synced;
                    tracing::trace!(
                        round,
                        log_frames = log,
                        copied_frames = copied,
                        fresh_frames = fresh,
                        elapsed_us = started.elapsed().as_micros() as u64,
                        "log copied"
                    );
                    // What came in during the last round is little enough for step 2 (or the
                    // log was started over: everything before it is in the database).
                    if round > 1 && fresh <= CATCH_UP_FRAMES {
                        break;
                    }
                    synced = log;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "WAL checkpoint failed; it is tried again");
                    break;
                }
            }
            self.sync_files();
        }
    }

    /// Syncs the database file and its log. An extra sync never costs durability; it only
    /// leaves the writer's checkpoint less to wait for.
    fn sync_files(&self) {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        for file in [self.path.as_os_str(), wal.as_os_str()] {
            if let Err(e) = std::fs::File::open(file).and_then(|f| f.sync_data()) {
                tracing::warn!(error = %e, file = ?file, "syncing before a checkpoint failed");
            }
        }
    }

    /// Whether the writer's last checkpoint is [`CHECKPOINT_EVERY`] old.
    pub(crate) fn checkpoint_due(&self) -> bool {
        self.checkpointed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            >= CHECKPOINT_EVERY
    }

    /// Step 2: copies the write-ahead log back into the database on the writing connection:
    /// blocking (it may sync the disk), and complete unless a reader still needs part of the
    /// log. The caller holds the sqlx writer, so no commit comes in between, and the next one
    /// starts the log over. A failure is logged; the next checkpoint tries again.
    pub(crate) fn checkpoint(&self) {
        *self.checkpointed.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        match passive_checkpoint(&conn) {
            Ok((log, copied)) => tracing::trace!(
                log_frames = log,
                copied_frames = copied,
                elapsed_us = started.elapsed().as_micros() as u64,
                "checkpointed"
            ),
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

/// Step 1 of a checkpoint under way: clears [`Inline::copying`] when dropped.
struct StepOne(Arc<Inline>);

impl Drop for StepOne {
    fn drop(&mut self) {
        self.0.copying.store(false, Ordering::SeqCst);
    }
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: the log's frames, and how many are in the database now.
fn passive_checkpoint(conn: &rusqlite::Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_give_the_new_rows_id_and_refuse_a_statement_without_returning() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)")
            .unwrap();
        let tx = conn.transaction().unwrap();
        let sql = "INSERT INTO t (v) VALUES ($1) RETURNING id";
        let first = insert_returning_id(&tx, sql, ["a"]).unwrap();
        let second = insert_returning_id(&tx, sql, ["b"]).unwrap();
        // A statement without the clause is refused, not run.
        let third = insert_returning_id(&tx, "INSERT INTO t (v) VALUES ($1)", ["c"]);
        let stored: Vec<(i64, String)> = tx
            .prepare("SELECT id, v FROM t ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(stored, vec![(first, "a".into()), (second, "b".into())]);
        assert!(third.is_err(), "a statement that returns no id is an error");
    }

    #[test]
    fn named_rows_read_each_column_by_its_name_and_refuse_an_unknown_one() {
        use crate::sql::Columns;
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, v TEXT);
             INSERT INTO t VALUES (1, 10, 'a'), (2, NULL, 'b'), (3, 30, NULL);",
        )
        .unwrap();
        // The columns in another order than the table's, so a position cannot pass for a name.
        let mut stmt = conn
            .prepare("SELECT v, id, n FROM t WHERE id >= ?1 ORDER BY id")
            .unwrap();
        let rows = query_named(&mut stmt, [2], |r| {
            Ok((r.int_required("id")?, r.int("n")?, r.text("v")?))
        })
        .unwrap();
        assert_eq!(rows, vec![(2, None, Some("b".into())), (3, Some(30), None)]);
        let unknown = query_named(&mut stmt, [1], |r| r.int("missing"));
        let message = format!("{:#}", unknown.unwrap_err());
        assert!(message.contains("no column missing"), "{message}");
    }

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

    /// Creates table `t` and commits about 4 MB to it: four times SQLite's automatic
    /// checkpoint threshold.
    fn commit_4_mb(inline: &Inline) {
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
    }

    /// Sets the checkpoint clock as if the writer's last checkpoint was `ago`: the tests do not
    /// depend on how long their commits take on a busy machine.
    fn last_checkpoint(inline: &Inline, ago: std::time::Duration) {
        *inline.checkpointed.lock().unwrap() = std::time::Instant::now() - ago;
    }

    #[test]
    fn commits_leave_the_log_to_checkpoints_which_start_it_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let inline = Inline::open(path.clone(), "NORMAL").unwrap();
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap();
        commit_4_mb(&inline);
        assert!(
            size() < 100_000,
            "the commit checkpointed: {} bytes",
            size()
        );
        last_checkpoint(&inline, CHECKPOINT_EVERY / 2);
        assert!(!inline.checkpoint_due());
        last_checkpoint(&inline, CHECKPOINT_EVERY);
        assert!(inline.checkpoint_due());
        // The checkpoint restarts the clock (not `!checkpoint_due()`: on a loaded machine the
        // checkpoint itself may take longer than CHECKPOINT_EVERY).
        let before = std::time::Instant::now();
        inline.checkpoint();
        assert!(*inline.checkpointed.lock().unwrap() >= before);
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
    fn a_checkpoint_copies_beside_the_writer_then_the_writer_catches_up_and_starts_the_log_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let inline = Arc::new(Inline::open(path.clone(), "NORMAL").unwrap());
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap();
        let log_frames = |inline: &Inline| -> i64 {
            inline
                .read(|c| Ok(c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))?))
                .unwrap()
        };
        commit_4_mb(&inline);
        // Not due yet: nothing happens.
        last_checkpoint(&inline, CHECKPOINT_EVERY / 2);
        assert_eq!(inline.after_commit(), AfterCommit::Nothing);
        assert!(size() < 100_000, "checkpointed early: {} bytes", size());
        last_checkpoint(&inline, CHECKPOINT_EVERY);
        // Due: step 1 (outside a runtime it runs at once) copies the log into the database.
        assert_eq!(inline.after_commit(), AfterCommit::Copying);
        assert!(
            size() > 4_000_000,
            "step 1 copied nothing: {} bytes",
            size()
        );
        // A commit made after step 1 is in the log only; the writer's next turn catches up.
        inline
            .write(|tx| Ok(tx.execute_batch("INSERT INTO t (v) VALUES (zeroblob(10))")?))
            .unwrap();
        assert_eq!(inline.after_commit(), AfterCommit::CatchUp);
        let before = std::time::Instant::now();
        inline.checkpoint();
        assert!(*inline.checkpointed.lock().unwrap() >= before);
        // Everything is in the database: the next commit starts the log over.
        inline
            .write(|tx| Ok(tx.execute_batch("INSERT INTO t (v) VALUES (zeroblob(10))")?))
            .unwrap();
        last_checkpoint(&inline, CHECKPOINT_EVERY / 2);
        assert_eq!(inline.after_commit(), AfterCommit::Nothing);
        let frames = log_frames(&inline);
        assert!(frames < 10, "the log was not started over: {frames} frames");
        let rows: i64 = inline
            .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(rows, 4002);
    }

    #[test]
    fn a_new_database_gets_small_pages_and_an_older_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let page_size = |inline: &Inline| -> i64 {
            inline
                .read(|c| Ok(c.query_row("PRAGMA page_size", [], |r| r.get(0))?))
                .unwrap()
        };
        let fresh = Inline::open(dir.path().join("new.db"), "NORMAL").unwrap();
        commit_4_mb(&fresh);
        assert_eq!(page_size(&fresh), i64::from(super::super::SQLITE_PAGE_SIZE));

        // A database created with SQLite's default pages, as herald made them before.
        let old = dir.path().join("old.db");
        let conn = rusqlite::Connection::open(&old).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL;
             CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('kept');",
        )
        .unwrap();
        drop(conn);
        let reopened = Inline::open(old, "NORMAL").unwrap();
        assert_eq!(page_size(&reopened), 4096);
        reopened
            .write(|tx| Ok(tx.execute_batch("INSERT INTO t VALUES ('added')")?))
            .unwrap();
        let rows: Vec<String> = reopened
            .read(|c| {
                let mut stmt = c.prepare("SELECT v FROM t ORDER BY rowid")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .unwrap();
        assert_eq!(rows, ["kept", "added"]);
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
