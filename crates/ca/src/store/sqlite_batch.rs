//! Group commit for the SQLite store (`group_commit.rs` has the machinery, shared with
//! PostgreSQL): the batch is a `BEGIN IMMEDIATE` transaction committed with
//! `synchronous=FULL`, each call a savepoint in it.

use rusqlite::{ffi, Connection};

use super::group_commit::{BatchConn, GroupCommit};
use super::sqlite_ops::{db, Appended, WriteTx};
use super::{Result, StoreError};

/// The most calls one batch takes before it commits even with callers queued, so a steady
/// stream of writers still gets answered (each call takes tens of microseconds; an fsync
/// takes milliseconds).
pub const MAX_BATCH: usize = 64;

/// The SQLite writer's group commit.
pub type SqliteGroup = GroupCommit<Connection>;

pub fn new_group(conn: Connection) -> SqliteGroup {
    GroupCommit::with_max_batch(conn, MAX_BATCH)
}

impl BatchConn for Connection {
    type Error = rusqlite::Error;

    fn begin(&mut self) -> Result<()> {
        // IMMEDIATE: the write lock is taken first, so writers in other processes (the admin
        // subcommands) serialise with this batch.
        self.execute_batch("BEGIN IMMEDIATE")
            .map_err(db("starting a transaction"))
    }

    fn in_batch(&self) -> bool {
        // SQLite rolls the whole transaction back on some errors in any call (a full disk, an
        // I/O error, lack of memory); the connection is then back in autocommit mode.
        !self.is_autocommit()
    }

    fn commit(&mut self) -> std::result::Result<(), rusqlite::Error> {
        self.execute_batch("COMMIT")
    }

    fn abandon(&mut self) {
        if !self.is_autocommit() {
            if let Err(e) = self.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "rolling back a batch whose commit failed");
            }
        }
    }

    /// rusqlite's error is not `Clone`: SQLite's code and message are copied, anything else
    /// as its text.
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

    fn rolled_back() -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ABORT),
            Some(
                "the batch transaction was rolled back by an error in a concurrent call; \
                 nothing of this call was stored, retry it"
                    .into(),
            ),
        )
    }

    fn store_error(context: &'static str, source: rusqlite::Error) -> StoreError {
        StoreError::Db { context, source }
    }
}

/// Runs `op` in a savepoint: released when it returns Ok, rolled back (and released) when it
/// returns Err, so the batch keeps exactly the calls that succeeded.
pub fn run_in_savepoint<T>(
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
