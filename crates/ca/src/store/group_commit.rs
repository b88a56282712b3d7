//! Group commit, for both SQL stores: concurrent write calls share one transaction, and so one
//! durable commit, instead of waiting for one each (docs/performance.md, "CA issuance").
//!
//! The first caller to take the writing connection opens the batch ([`BatchConn::begin`]);
//! every call then runs inside its own savepoint (the backend's `write` op does that), so a
//! call that fails is rolled back alone and the calls before and after it keep their writes.
//! A caller that finds nobody queued behind it (or the batch full) commits, and every caller
//! whose call succeeded in that batch is answered only once the commit has returned: nothing
//! is acknowledged before it is durable, and a crash or a lost connection before the commit
//! loses only calls nobody was answered for. The audit chain stays one chain: calls run one
//! after another on one connection, each appending after the last.
//!
//! Callers block (a mutex and a condition variable): both stores are called from blocking
//! threads (`spawn_blocking`, admin subcommands), the PostgreSQL one driving its async driver
//! with `block_on` on the calling thread (`postgres.rs`).

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use super::{Result, StoreError};

/// A database connection that group commit can batch on.
pub trait BatchConn {
    /// The driver's error (not `Clone`: [`BatchConn::copy_error`] gives each member its copy).
    type Error;

    /// Opens a batch transaction (and takes whatever lock serialises writers).
    fn begin(&mut self) -> Result<()>;
    /// Whether the batch transaction opened by `begin` is still open and healthy: false once
    /// the database rolled it back or the connection was lost, so nobody in it may be
    /// answered Ok.
    fn in_batch(&self) -> bool;
    /// Commits the batch transaction; durable when Ok.
    fn commit(&mut self) -> std::result::Result<(), Self::Error>;
    /// Ends a batch whose commit failed, if anything of it is still open.
    fn abandon(&mut self);
    /// A copy of `error` for another member of the batch.
    fn copy_error(error: &Self::Error) -> Self::Error;
    /// The error of a member whose batch was rolled back by another call's failure.
    fn rolled_back() -> Self::Error;
    /// The store's error for `error`, met while `context`.
    fn store_error(context: &'static str, error: Self::Error) -> StoreError;
}

/// The writing connection and the batch transaction open on it, if any.
pub struct GroupCommit<C: BatchConn> {
    writer: Mutex<Writer<C>>,
    /// Callers waiting for the connection: while one is, the holder leaves the batch open for
    /// it to join.
    queued: AtomicUsize,
    max_batch: usize,
    /// Batches committed (or failed to), for tests and the benchmark notes.
    commits: AtomicUsize,
}

struct Writer<C: BatchConn> {
    conn: C,
    /// The open batch and how many of its calls succeeded so far.
    open: Option<(Arc<Batch<C::Error>>, usize)>,
}

/// One batch transaction: its members wait here for its outcome.
struct Batch<E> {
    outcome: Mutex<Option<std::result::Result<(), E>>>,
    done: Condvar,
}

impl<E> Batch<E> {
    fn new() -> Arc<Batch<E>> {
        Arc::new(Batch {
            outcome: Mutex::new(None),
            done: Condvar::new(),
        })
    }

    fn finish(&self, outcome: std::result::Result<(), E>) {
        let mut slot = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = Some(outcome);
        self.done.notify_all();
    }

    /// Blocks until the batch committed or failed.
    fn wait(&self, copy: impl Fn(&E) -> E) -> std::result::Result<(), E> {
        let mut slot = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(outcome) = slot.as_ref() {
                return outcome.as_ref().map(|_| ()).map_err(&copy);
            }
            slot = self.done.wait(slot).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl<C: BatchConn> GroupCommit<C> {
    pub fn with_max_batch(conn: C, max_batch: usize) -> GroupCommit<C> {
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

    /// Runs `op` on the connection inside the current batch and returns once the batch is
    /// durable. `op` must keep its own writes in a savepoint: an Err from it means it rolled
    /// them back (or, if it could not, that the batch is no longer `in_batch`), and is returned
    /// at once.
    pub fn write<T>(&self, op: impl FnOnce(&mut C) -> Result<T>) -> Result<T> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.write_queued(1, op)
    }

    /// Counts one caller as queued for the connection before it gets there: the holder then
    /// leaves the batch open for it. That caller must call [`GroupCommit::write_reserved`]
    /// next (the PostgreSQL redemption pipeline hands its next round over this way,
    /// `postgres_pipeline.rs`).
    pub fn reserve(&self) {
        self.queued.fetch_add(1, Ordering::SeqCst);
    }

    /// [`GroupCommit::write`] for a caller counted by [`GroupCommit::reserve`], whose `op`
    /// counts as `weight` calls towards the batch's size (a round of redemptions).
    pub fn write_reserved<T>(
        &self,
        weight: usize,
        op: impl FnOnce(&mut C) -> Result<T>,
    ) -> Result<T> {
        self.write_queued(weight, op)
    }

    fn write_queued<T>(&self, weight: usize, op: impl FnOnce(&mut C) -> Result<T>) -> Result<T> {
        // A poisoned lock only means a caller panicked inside its savepoint; its batch ended
        // (failed, below, unless the savepoint was rolled back) before the panic went on.
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        let batch = match &writer.open {
            Some((batch, _)) => Arc::clone(batch),
            None => {
                writer.conn.begin()?;
                let batch = Batch::new();
                writer.open = Some((Arc::clone(&batch), 0));
                batch
            }
        };
        let ran = panic::catch_unwind(AssertUnwindSafe(|| op(&mut writer.conn)));
        if !writer.conn.in_batch() {
            // The batch transaction is gone (rolled back, or its connection lost): nobody in
            // it is answered Ok.
            writer.open = None;
            self.commits.fetch_add(1, Ordering::SeqCst);
            batch.finish(Err(C::rolled_back()));
            drop(writer);
            let result = match ran {
                Ok(result) => result,
                Err(panicked) => panic::resume_unwind(panicked),
            };
            return result.and(Err(C::store_error("running in a batch", C::rolled_back())));
        }
        let result = match ran {
            Ok(result) => result,
            Err(panicked) => {
                // The savepoint was rolled back while unwinding (the batch is still healthy);
                // the batch still has to end so its other members are answered.
                self.end_batch_if_due(&mut writer, &batch);
                drop(writer);
                panic::resume_unwind(panicked);
            }
        };
        if result.is_ok() {
            if let Some((_, members)) = writer.open.as_mut() {
                *members += weight;
            }
        }
        let committed_here = self.end_batch_if_due(&mut writer, &batch);
        drop(writer);
        let result = result?;
        match committed_here {
            Some(outcome) => outcome,
            None => batch.wait(C::copy_error),
        }
        .map_err(|e| C::store_error("committing", e))?;
        Ok(result)
    }

    /// Commits the open batch unless another caller is queued to join it (and it has room).
    /// Some(outcome) when it ended here, None when it stays open for the queued callers.
    fn end_batch_if_due(
        &self,
        writer: &mut Writer<C>,
        batch: &Batch<C::Error>,
    ) -> Option<std::result::Result<(), C::Error>> {
        let members = writer.open.as_ref().map_or(0, |(_, m)| *m);
        if self.queued.load(Ordering::SeqCst) > 0 && members < self.max_batch {
            return None;
        }
        writer.open = None;
        let outcome = writer.conn.commit();
        if outcome.is_err() {
            // Nothing of the batch may linger half-committed in the next one.
            writer.conn.abandon();
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        batch.finish(outcome.as_ref().map(|_| ()).map_err(C::copy_error));
        Some(outcome)
    }
}
