//! Copying SQLite's write-ahead log back into the database, without stalling the writer.
//!
//! A checkpoint (copying the log and syncing both files) can take a hundred milliseconds, so
//! the writer never checkpoints as part of a commit. At most every [`CHECKPOINT_EVERY`], a
//! checkpoint runs in two steps:
//!
//! 1. a connection of its own copies the log into the database on a blocking thread while the
//!    writer goes on committing, then syncs both files (SQLite syncs the database only at the
//!    end of a checkpoint that found no newer commit); again while the commits made meanwhile
//!    fill more than [`CATCH_UP_FRAMES`], at most [`COPY_ROUNDS`] times;
//! 2. after its next commit, the writer copies what was committed meanwhile while it still
//!    holds the database: a moment's commits. Nothing commits in between, so the checkpoint
//!    completes and the next commit starts the log over.
//!
//! Step 2 alone holds the writer for the whole checkpoint; step 1 alone never catches up with
//! a steady stream of commits, and the log then grows without end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Log frames (pages) few enough for the writer to copy and sync in a moment.
const CATCH_UP_FRAMES: i64 = 256;

/// How many times step 1 copies and syncs at most, before leaving the rest to the writer.
const COPY_ROUNDS: u32 = 4;

/// How often the log is copied back into the database.
pub(crate) const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// The checkpoint state of one database file.
pub(crate) struct Checkpoints {
    /// Copies the log into the database beside the writer (step 1).
    copier: Mutex<rusqlite::Connection>,
    /// The database file, which step 1 syncs (its log is this path with `-wal`).
    path: PathBuf,
    /// When the writer last checkpointed (step 2).
    checkpointed: Mutex<std::time::Instant>,
    /// Step 1 is running.
    copying: AtomicBool,
    /// Step 1 is done: the writer's next commit is followed by step 2.
    catch_up_due: AtomicBool,
}

/// What the writer does after a commit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterCommit {
    Nothing,
    /// Step 1 started beside the writer.
    Copying,
    /// Step 2 is due: [`Checkpoints::catch_up`], still holding the writer.
    CatchUp,
}

impl Checkpoints {
    pub(crate) fn new(path: PathBuf, copier: rusqlite::Connection) -> Self {
        Self {
            copier: Mutex::new(copier),
            path,
            checkpointed: Mutex::new(std::time::Instant::now()),
            copying: AtomicBool::new(false),
            catch_up_due: AtomicBool::new(false),
        }
    }

    /// Called by the writer after each commit, still holding the writer: starts step 1 on a
    /// blocking thread when a checkpoint is due, or says step 2 is due.
    pub(crate) fn after_commit(self: &Arc<Self>) -> AfterCommit {
        if self.catch_up_due.swap(false, Ordering::SeqCst) {
            return AfterCommit::CatchUp;
        }
        if !self.due() || self.copying.swap(true, Ordering::SeqCst) {
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

    /// Step 1. A failure is logged; the writer's step 2 copies and syncs what this did not.
    fn copy_beside_the_writer(&self) {
        let conn = self.copier.lock();
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
    fn due(&self) -> bool {
        self.checkpointed.lock().elapsed() >= CHECKPOINT_EVERY
    }

    /// Step 2, on the writer's connection `writer`, which the caller holds so no commit
    /// comes in between: blocking (it may sync the disk), and complete unless a reader still
    /// needs part of the log. A failure is logged; the next checkpoint tries again.
    pub(crate) fn catch_up(&self, writer: &rusqlite::Connection) {
        *self.checkpointed.lock() = std::time::Instant::now();
        let started = std::time::Instant::now();
        match passive_checkpoint(writer) {
            Ok((log, copied)) => tracing::trace!(
                log_frames = log,
                copied_frames = copied,
                elapsed_us = started.elapsed().as_micros() as u64,
                "checkpointed"
            ),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; it is tried again"),
        }
    }
}

/// Step 1 under way: clears [`Checkpoints::copying`] when dropped.
struct StepOne(Arc<Checkpoints>);

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

    /// A database file with a writer (autocheckpoint off, as the store's) and its checkpoints.
    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
        writer: rusqlite::Connection,
        checkpoints: Arc<Checkpoints>,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("h.db");
            let open = || {
                let c = rusqlite::Connection::open(&path).unwrap();
                c.execute_batch(&super::super::pragmas("NORMAL")).unwrap();
                c
            };
            let writer = open();
            writer
                .execute_batch("PRAGMA wal_autocheckpoint = 0")
                .unwrap();
            let checkpoints = Arc::new(Checkpoints::new(path.clone(), open()));
            Self {
                path,
                writer,
                checkpoints,
                _dir: dir,
            }
        }

        fn size(&self) -> u64 {
            std::fs::metadata(&self.path).unwrap().len()
        }

        /// Creates table `t` and commits about 4 MB to it: four times SQLite's automatic
        /// checkpoint threshold.
        fn commit_4_mb(&self) {
            self.writer
                .execute_batch(
                    "BEGIN IMMEDIATE; CREATE TABLE t (v BLOB);
                     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)
                     INSERT INTO t (v) SELECT zeroblob(1024) FROM n; COMMIT;",
                )
                .unwrap();
        }

        fn commit_row(&self) {
            self.writer
                .execute_batch("INSERT INTO t (v) VALUES (zeroblob(10))")
                .unwrap();
        }

        fn log_frames(&self) -> i64 {
            passive_checkpoint(&self.writer).unwrap().0
        }

        /// Sets the clock as if the writer's last checkpoint was `ago`: the tests do not
        /// depend on how long their commits take on a busy machine.
        fn last_checkpoint(&self, ago: std::time::Duration) {
            *self.checkpoints.checkpointed.lock() = std::time::Instant::now() - ago;
        }
    }

    #[test]
    fn a_checkpoint_copies_beside_the_writer_then_the_writer_catches_up_and_starts_the_log_over() {
        let f = Fixture::new();
        f.commit_4_mb();
        // Not due yet: nothing happens, and the commit left its pages in the log.
        f.last_checkpoint(CHECKPOINT_EVERY / 2);
        assert_eq!(f.checkpoints.after_commit(), AfterCommit::Nothing);
        assert!(f.size() < 100_000, "checkpointed early: {} bytes", f.size());
        f.last_checkpoint(CHECKPOINT_EVERY);
        // Due: step 1 (outside a runtime it runs at once) copies the log into the database.
        assert_eq!(f.checkpoints.after_commit(), AfterCommit::Copying);
        assert!(
            f.size() > 4_000_000,
            "step 1 copied nothing: {} bytes",
            f.size()
        );
        // A commit made after step 1 is in the log only; the writer's next turn catches up.
        f.commit_row();
        assert_eq!(f.checkpoints.after_commit(), AfterCommit::CatchUp);
        let before = std::time::Instant::now();
        f.checkpoints.catch_up(&f.writer);
        assert!(*f.checkpoints.checkpointed.lock() >= before);
        // Everything is in the database: the next commit starts the log over.
        f.commit_row();
        f.last_checkpoint(CHECKPOINT_EVERY / 2);
        assert_eq!(f.checkpoints.after_commit(), AfterCommit::Nothing);
        let frames = f.log_frames();
        assert!(frames < 10, "the log was not started over: {frames} frames");
        let rows: i64 = f
            .writer
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 4002);
    }
}
