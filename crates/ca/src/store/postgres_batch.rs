//! Group commit for the PostgreSQL store (`group_commit.rs` has the machinery, shared with
//! SQLite). Without it every write held the write lock through its own commit's WAL flush,
//! so a replica issued one certificate per flush (docs/performance.md).
//!
//! A batch is one transaction on one connection set aside from the pool: `BEGIN`, the write
//! lock (`postgres_ops::WRITE_LOCK`, which serialises the replicas) and a read of the audit
//! chain's tail, in one round trip. Each call then runs in its own `SAVEPOINT`, sent pipelined
//! with the call's first statement; a call that fails is rolled back to its savepoint alone and
//! gets its own error, the others keep their writes. Successful calls' savepoints are not
//! released (that would be one more round trip each): `COMMIT` ends them all. The batch is
//! committed once, with `synchronous_commit` as the server has it (on: durable when the commit
//! returns), and only then are its callers answered. Token redemptions come as rounds, one call
//! each, whose statements are sent without waiting for each other (`postgres_pipeline.rs`).
//!
//! When the connection is lost (the database restarts, fails over, or kills the session), the
//! call that meets it cannot roll back its savepoint: the batch is marked failed, every member
//! gets `Unreachable` (the API answers 503, clients retry) and nothing of it was committed. A
//! batch that ends without a successful `COMMIT` (or whose call met a server that refuses work:
//! shutting down, read-only after a failover) closes its connection instead of returning it to
//! the pool, so no transaction of it can linger, and the next batch connects afresh. If the connection is lost during `COMMIT`
//! itself, the outcome is unknown to the CA: every member is refused, so no caller is ever told
//! of a certificate that is not stored (some refused ones may be: a retried sign then finds its
//! token used, as it would after any lost answer).

use std::future::Future;

use deadpool_postgres::{Object, Pool};
use tokio::runtime::Handle;
use tokio_postgres::SimpleQueryMessage;

use super::group_commit::{BatchConn, GroupCommit};
use super::postgres_ops::{pg, with_causes, AuditTail, PgTx, WRITE_LOCK};
use super::sqlite_ops::Appended;
use super::{Result, StoreError};

/// The most calls one batch takes before it commits even with callers queued. Each call that
/// writes is one subtransaction, and PostgreSQL keeps the IDs of up to 64 of them per session
/// in shared memory; past that every other session's snapshot checks get slower.
pub const MAX_BATCH: usize = 64;

/// Ends a batch. PostgreSQL answers a `COMMIT` of a transaction that an error aborted with
/// success (the command tag says `ROLLBACK`, which the driver does not show): every path that
/// can abort the batch rolls back to a savepoint or fails the batch, and the `SELECT` in front
/// is the second line of defence: in an aborted transaction it fails, and so does the commit,
/// so nobody is answered Ok for writes that were rolled back.
const COMMIT: &str = "SELECT 1; COMMIT";

/// The savepoint every call runs in (the newest of that name is the call's own).
const SAVEPOINT: &str = "SAVEPOINT call";
const ROLLBACK_TO_SAVEPOINT: &str = "ROLLBACK TO SAVEPOINT call";

/// The PostgreSQL writer's group commit.
pub type PgGroup = GroupCommit<PgWriter>;

pub fn new_group(writer: PgWriter) -> PgGroup {
    GroupCommit::with_max_batch(writer, MAX_BATCH)
}

/// Runs `fut` to completion on this thread with `runtime` entered (see `postgres.rs`).
pub fn block_on<T>(runtime: &Handle, fut: impl Future<Output = T>) -> T {
    let _entered = runtime.enter();
    futures::executor::block_on(fut)
}

/// The connection batches run on, and the batch's state.
pub struct PgWriter {
    pool: Pool,
    pub(super) runtime: Handle,
    /// The database without its password, for messages.
    name: String,
    /// Taken from the pool when a batch begins without one (or with a closed one) and kept.
    pub(super) client: Option<Object>,
    /// A batch transaction is open and every call in it ended cleanly (committed to its
    /// savepoint, or rolled back to it).
    pub(super) open: bool,
    /// A transaction may be open on the connection: set by `begin`, cleared by a successful
    /// `COMMIT`. A batch that ended any other way leaves its connection to be discarded.
    in_transaction: bool,
    /// The audit chain's tail as the open batch left it.
    pub(super) tail: AuditTail,
}

/// Why a batch failed, copied to each of its members.
#[derive(Clone, Debug)]
pub enum BatchError {
    /// The connection was lost (or the server is shutting down or read-only): 503, retry.
    Unreachable(String),
    /// The database refused the commit.
    Refused(String),
}

impl PgWriter {
    pub fn new(pool: Pool, runtime: Handle, name: String) -> PgWriter {
        PgWriter {
            pool,
            runtime,
            name,
            client: None,
            open: false,
            in_transaction: false,
            tail: AuditTail::genesis(),
        }
    }

    /// Runs `f` in its own savepoint of the open batch: kept when it returns Ok, rolled back
    /// alone when it returns Err (or the batch marked failed when even that is impossible).
    /// Returns what it returned and the audit entries it appended, to log after the commit.
    pub fn call<T>(
        &mut self,
        at: String,
        f: impl AsyncFnOnce(&PgTx<'_>) -> Result<T>,
    ) -> Result<(T, Vec<Appended>)> {
        let runtime = self.runtime.clone();
        let tail = self.tail.clone();
        let healthy = std::mem::replace(&mut self.open, false);
        // `open` is false until this call ends cleanly: if `f` panics, the batch fails.
        let (true, Some(client)) = (healthy, self.client.as_ref()) else {
            return Err(StoreError::Unreachable(
                "the batch transaction has no connection".into(),
            ));
        };
        let tx = PgTx::new(client, at, tail);
        let (result, rolled_back) = block_on(&runtime, async {
            // Pipelined: the savepoint and the call's first statement go out together.
            let (savepoint, out) = futures::join!(client.batch_execute(SAVEPOINT), f(&tx));
            let result = savepoint.map_err(pg("starting a savepoint")).and(out);
            if result.is_ok() {
                return (result, true);
            }
            let undone = client.batch_execute(ROLLBACK_TO_SAVEPOINT).await;
            if let Err(e) = &undone {
                tracing::error!(
                    error = %with_causes(e),
                    "rolling back a failed call's savepoint: the batch fails"
                );
            }
            (result, undone.is_ok())
        });
        let (tail, appended) = tx.finish();
        // The batch stays open only if the call ended cleanly: a failed rollback (or a panic in
        // `f`, which never gets here) leaves it failed. So does a server that refuses work
        // (shutting down, or read-only after a failover): the batch's connection is to the
        // wrong server, and the next batch takes a new one (the URL's hosts pick the primary).
        let unreachable = matches!(result, Err(StoreError::Unreachable(_)));
        self.open = rolled_back && !unreachable;
        let value = result?;
        self.tail = tail;
        Ok((value, appended))
    }

    /// Closes the connection rather than returning it to the pool: a transaction may be open
    /// on it (with the write lock and a failed batch's writes), which closing rolls back and
    /// which no other caller may ever run statements in.
    fn discard(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
        self.in_transaction = false;
    }
}

/// `BEGIN`, the write lock, and the chain's tail, in one round trip.
fn begin_sql() -> String {
    format!(
        "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_advisory_xact_lock({WRITE_LOCK}); \
         SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
    )
}

/// The tail read by `begin_sql` (its only two-column row), or the genesis tail.
fn tail_of(messages: &[SimpleQueryMessage]) -> Result<AuditTail> {
    let row = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) if row.len() == 2 => Some(row),
        _ => None,
    });
    let Some(row) = row else {
        return Ok(AuditTail::genesis());
    };
    let seq = row.get(0).and_then(|s| s.parse().ok());
    match (seq, row.get(1)) {
        (Some(seq), Some(hash)) => Ok(AuditTail {
            seq,
            hash: hash.to_string(),
        }),
        _ => Err(StoreError::Corrupt("the audit chain's last entry".into())),
    }
}

impl BatchConn for PgWriter {
    type Error = BatchError;

    fn begin(&mut self) -> Result<()> {
        if self.in_transaction || self.client.as_ref().is_some_and(|c| c.is_closed()) {
            // The last batch ended without its COMMIT (or the connection broke).
            self.discard();
        }
        let runtime = self.runtime.clone();
        if self.client.is_none() {
            let pooled = block_on(&runtime, self.pool.get()).map_err(|e| {
                let e = with_causes(&e);
                tracing::error!(error = %e, database = %self.name, "no connection to the CA database");
                StoreError::Unreachable(e)
            })?;
            self.client = Some(pooled);
        }
        let Some(client) = self.client.as_ref() else {
            return Err(StoreError::Unreachable("no connection".into()));
        };
        self.in_transaction = true;
        let begun = block_on(&runtime, client.simple_query(&begin_sql()))
            .map_err(pg("starting a batch transaction"))
            .and_then(|messages| tail_of(&messages));
        match begun {
            Ok(tail) => {
                self.tail = tail;
                self.open = true;
                Ok(())
            }
            Err(e) => {
                // Whatever of it began must not carry over into the next batch.
                self.discard();
                Err(e)
            }
        }
    }

    fn in_batch(&self) -> bool {
        self.open
    }

    fn commit(&mut self) -> std::result::Result<(), BatchError> {
        self.open = false;
        let Some(client) = self.client.as_ref() else {
            return Err(BatchError::Unreachable("no connection".into()));
        };
        let committed = block_on(&self.runtime, client.batch_execute(COMMIT));
        match committed {
            Ok(()) => {
                self.in_transaction = false;
                Ok(())
            }
            Err(e) => Err(match pg("committing")(e) {
                StoreError::Unreachable(cause) => BatchError::Unreachable(cause),
                other => BatchError::Refused(other.to_string()),
            }),
        }
    }

    fn abandon(&mut self) {
        self.open = false;
        // Nothing of a batch whose COMMIT failed may linger on a connection someone reuses.
        self.discard();
    }

    fn copy_error(error: &BatchError) -> BatchError {
        error.clone()
    }

    fn rolled_back() -> BatchError {
        BatchError::Unreachable(
            "the batch transaction ended without a commit (its connection to the database was \
             lost or a call in it could not be rolled back); nothing of this call was stored, \
             retry it"
                .into(),
        )
    }

    fn store_error(context: &'static str, error: BatchError) -> StoreError {
        match error {
            BatchError::Unreachable(cause) => {
                StoreError::Unreachable(format!("{context}: {cause}"))
            }
            BatchError::Refused(cause) => StoreError::Batch(format!("{context}: {cause}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{begin_sql, COMMIT};

    #[tokio::test]
    async fn the_commit_of_an_aborted_batch_fails_where_a_bare_commit_would_succeed() {
        let url = testkit::postgres::PgCluster::shared().new_database();
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let abort = "BEGIN; SELECT 1 / 0";
        client.batch_execute(abort).await.unwrap_err();
        let refused = client.batch_execute(COMMIT).await.unwrap_err();
        assert_eq!(
            refused.code(),
            Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION),
            "{refused}"
        );
        client.batch_execute("ROLLBACK").await.unwrap();
        // Why: the same aborted transaction ended by a bare COMMIT reports success.
        client.batch_execute(abort).await.unwrap_err();
        client.batch_execute("COMMIT").await.unwrap();
    }

    #[test]
    fn a_batch_takes_the_write_lock_before_it_reads_the_tail() {
        let sql = begin_sql();
        let lock = sql.find("pg_advisory_xact_lock").unwrap();
        let tail = sql.find("FROM audit").unwrap();
        assert!(sql.starts_with("BEGIN"), "{sql}");
        assert!(lock < tail, "{sql}");
    }
}
