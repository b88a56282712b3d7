//! Group commit for the SQLite store: concurrent write calls share one transaction, and so one
//! fsync, instead of waiting for one each (docs/performance.md, "CA issuance").
//!
//! The first caller to take the connection opens the batch (`BEGIN IMMEDIATE`); every call then
//! runs inside its own `SAVEPOINT`, so a call that fails is rolled back alone and the calls before
//! and after it keep their writes. A caller that finds nobody queued behind it (or the batch
//! full) commits, and every caller whose call succeeded in that batch is answered only once the
//! `COMMIT` (with `synchronous=FULL`) has returned: nothing is acknowledged before it is durable,
//! and a crash before the commit loses only calls nobody was answered for. The audit chain stays
//! one chain: calls run one after another on one connection, each appending after the last.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use pki::clock::Clock;
use rusqlite::{ffi, Connection};

use super::sqlite_ops::{db, Appended, WriteTx};
use super::Result;

/// The most calls one batch takes before it commits even with callers queued, so a steady
/// stream of writers still gets answered (each call takes tens of microseconds; an fsync
/// takes milliseconds).
pub const MAX_BATCH: usize = 64;

/// The writing connection and the batch transaction open on it, if any.
pub struct GroupCommit {
    writer: Mutex<Writer>,
    /// Callers waiting for the connection: while one is, the holder leaves the batch open for
    /// it to join.
    queued: AtomicUsize,
    max_batch: usize,
    /// Batches committed (or failed to), for tests and the benchmark notes.
    commits: AtomicUsize,
}

struct Writer {
    conn: Connection,
    /// The open batch and how many of its calls succeeded so far.
    open: Option<(Arc<Batch>, usize)>,
}

/// One batch transaction: its members wait here for its outcome.
struct Batch {
    outcome: Mutex<Option<std::result::Result<(), rusqlite::Error>>>,
    done: Condvar,
}

impl Batch {
    fn new() -> Arc<Batch> {
        Arc::new(Batch {
            outcome: Mutex::new(None),
            done: Condvar::new(),
        })
    }

    fn finish(&self, outcome: std::result::Result<(), &rusqlite::Error>) {
        let mut slot = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = Some(outcome.map_err(copy_error));
        self.done.notify_all();
    }

    /// Blocks until the batch committed or failed.
    fn wait(&self) -> std::result::Result<(), rusqlite::Error> {
        let mut slot = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(outcome) = slot.as_ref() {
                return outcome.as_ref().map(|_| ()).map_err(copy_error);
            }
            slot = self.done.wait(slot).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// rusqlite's error is not `Clone`; a batch's failure goes to every member, so it is copied
/// (SQLite's code and message; anything else as its text).
fn copy_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

/// SQLite rolled the whole batch transaction back on an error in another call (it does so
/// for a full disk, an I/O error or lack of memory): this call's writes are gone too.
fn batch_rolled_back() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        ffi::Error::new(ffi::SQLITE_ABORT),
        Some(
            "the batch transaction was rolled back by an error in a concurrent call; \
             nothing of this call was stored, retry it"
                .into(),
        ),
    )
}

impl GroupCommit {
    pub fn new(conn: Connection) -> GroupCommit {
        GroupCommit::with_max_batch(conn, MAX_BATCH)
    }

    pub fn with_max_batch(conn: Connection, max_batch: usize) -> GroupCommit {
        GroupCommit {
            writer: Mutex::new(Writer { conn, open: None }),
            queued: AtomicUsize::new(0),
            max_batch: max_batch.max(1),
            commits: AtomicUsize::new(0),
        }
    }

    /// How many callers wait for the connection.
    pub fn waiting(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// How many batch transactions ended (committed or failed) so far.
    pub fn commits(&self) -> usize {
        self.commits.load(Ordering::SeqCst)
    }

    /// Runs `op` in its own savepoint of the current batch and returns once the batch is
    /// durable. An Err from `op` rolls back `op`'s writes only and is returned at once.
    pub fn write<T>(
        &self,
        clock: &dyn Clock,
        op: impl FnOnce(&WriteTx<'_>) -> Result<T>,
    ) -> Result<(T, Vec<Appended>)> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        // A poisoned lock only means a caller panicked inside its savepoint, which was rolled
        // back as it unwound (and its batch ended, below): the connection is consistent.
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        let batch = match &writer.open {
            Some((batch, _)) => Arc::clone(batch),
            None => {
                // IMMEDIATE: the write lock is taken first, so writers in other processes (the
                // admin subcommands) serialise with this batch.
                writer
                    .conn
                    .execute_batch("BEGIN IMMEDIATE")
                    .map_err(db("starting a transaction"))?;
                let batch = Batch::new();
                writer.open = Some((Arc::clone(&batch), 0));
                batch
            }
        };
        let at = pki::timefmt::rfc3339(clock.now());
        let ran = panic::catch_unwind(AssertUnwindSafe(|| {
            run_in_savepoint(&mut writer.conn, at, op)
        }));
        let result = match ran {
            Ok(result) => result,
            Err(panicked) => {
                // The savepoint was rolled back while unwinding; the batch still has to end so
                // its other members are answered.
                self.end_batch_if_due(&mut writer, &batch);
                drop(writer);
                panic::resume_unwind(panicked);
            }
        };
        if writer.conn.is_autocommit() {
            // The batch transaction is gone (SQLite rolled it back): nobody in it is answered Ok.
            writer.open = None;
            self.commits.fetch_add(1, Ordering::SeqCst);
            batch.finish(Err(&batch_rolled_back()));
            return result.and(Err(db("running in a batch")(batch_rolled_back())));
        }
        if result.is_ok() {
            if let Some((_, members)) = writer.open.as_mut() {
                *members += 1;
            }
        }
        let committed_here = self.end_batch_if_due(&mut writer, &batch);
        drop(writer);
        let result = result?;
        match committed_here {
            Some(outcome) => outcome,
            None => batch.wait(),
        }
        .map_err(db("committing"))?;
        Ok(result)
    }

    /// Commits the open batch unless another caller is queued to join it (and it has room).
    /// Some(outcome) when it ended here, None when it stays open for the queued callers.
    fn end_batch_if_due(
        &self,
        writer: &mut Writer,
        batch: &Batch,
    ) -> Option<std::result::Result<(), rusqlite::Error>> {
        let members = writer.open.as_ref().map_or(0, |(_, m)| *m);
        if self.queued.load(Ordering::SeqCst) > 0 && members < self.max_batch {
            return None;
        }
        writer.open = None;
        let outcome = writer.conn.execute_batch("COMMIT");
        if outcome.is_err() && !writer.conn.is_autocommit() {
            // Nothing of the batch may linger half-committed in the next one.
            if let Err(e) = writer.conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "rolling back a batch whose commit failed");
            }
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        batch.finish(outcome.as_ref().map(|_| ()));
        Some(outcome)
    }
}

/// Runs `op` in a savepoint: released when it returns Ok, rolled back (and released) when it
/// returns Err, so the batch keeps exactly the calls that succeeded.
fn run_in_savepoint<T>(
    conn: &mut Connection,
    at: String,
    op: impl FnOnce(&WriteTx<'_>) -> Result<T>,
) -> Result<(T, Vec<Appended>)> {
    let savepoint = conn.savepoint().map_err(db("starting a savepoint"))?;
    let tx = WriteTx::new(savepoint, at);
    match op(&tx) {
        Ok(value) => Ok((value, tx.release()?)),
        Err(e) => {
            if let Err(undo) = tx.abandon() {
                // The failed call's writes may still be in the batch: the whole batch goes
                // (the caller sees the transaction ended and fails every member).
                tracing::error!(error = %undo, "rolling back a failed call's savepoint");
                if let Err(e) = conn.execute_batch("ROLLBACK") {
                    tracing::error!(error = %e, "rolling back the batch");
                }
            }
            Err(e)
        }
    }
}
