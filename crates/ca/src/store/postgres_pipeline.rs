//! Join-token redemptions on PostgreSQL, sent pipelined (docs/performance.md, "Pipelined
//! redemptions").
//!
//! Group commit (`postgres_batch.rs`) shares one transaction and one commit between concurrent
//! writes, but runs them one after another on the batch's connection, each waiting for its
//! answer before the next is sent: with the write lock held, a replica redeemed one token per
//! round trip. Redemptions, the issuance path, now go in rounds: the first caller to find no
//! round running leads one; callers arriving meanwhile queue, and when the round is done its
//! leader hands the next round to the first of them (only that caller is woken) and answers the
//! others once their batch has committed. A round is one group-commit call: it takes up to
//! [`MAX_BATCH`] queued redemptions and sends each as `SAVEPOINT rN` and one [`REDEEM`]
//! statement, all at once, without waiting for any answer; PostgreSQL runs them in the order
//! sent.
//!
//! Each statement's audit entry is computed in advance, chained on the entry before it as if
//! every earlier redemption of the round appends one. The answers are then read in order:
//! * a token used, revoked or expired meanwhile (0 entries stored) is that caller's answer
//!   whatever came before it (the statement stored nothing);
//! * a stored entry whose predecessor is the chain's true tail is kept;
//! * a stored entry chained on an entry that was not stored (it follows a used token or a
//!   failed call) is rolled back to its savepoint, with everything sent after it, and those
//!   calls are sent again on the true tail;
//! * a statement that failed (a serial already stored) is rolled back to its own savepoint,
//!   which also ends the "transaction is aborted" state that failed every statement after it;
//!   its caller gets its error and the calls after it are sent again.
//!
//! So every call is answered as if the round's calls had run one at a time, and the chain has no
//! gap. A lost connection, a server that refuses work or a rollback that fails ends the round
//! with an error and fails the whole batch, as any group-commit call does (nobody is answered
//! Ok, nothing was committed).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use deadpool_postgres::Client;
use futures::future::{self, Either};
use pki::clock::Clock;
use tokio_postgres::{Row, Statement};

use super::postgres_batch::{block_on, PgGroup, PgWriter, MAX_BATCH};
use super::postgres_ops::{col, pg, AuditTail, PendingAudit};
use super::postgres_tokens::{RedeemArgs, REDEEM};
use super::sqlite_ops::{log_appended, Appended};
use super::{details, CertRecord, Redeem, Result, StoreError};

/// One redemption: the token with `hash` used at `used_at` for `cert`.
pub struct RedeemRequest {
    pub hash: String,
    pub used_at: i64,
    pub cert: CertRecord,
}

/// The redemptions waiting for a round, and whether one runs.
#[derive(Default)]
pub struct Pipeline {
    queue: Mutex<Queue>,
    /// Rounds run so far (for tests and the benchmark notes).
    rounds: AtomicUsize,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Arc<Slot>>,
    /// A round runs, or a caller was handed the next one.
    leading: bool,
}

/// A queued caller's request and where its answer (or the lead) is left for it.
struct Slot {
    request: RedeemRequest,
    state: Mutex<SlotState>,
    changed: Condvar,
}

enum SlotState {
    Queued,
    /// This caller runs the next round (already counted as queued for the batch connection).
    Lead,
    Answered(Result<Redeem>),
    /// The answer was taken by its caller.
    Taken,
}

/// Why a queued caller woke up.
enum Woken {
    Answered(Result<Redeem>),
    Lead,
}

impl Slot {
    fn new(request: RedeemRequest) -> Arc<Slot> {
        Arc::new(Slot {
            request,
            state: Mutex::new(SlotState::Queued),
            changed: Condvar::new(),
        })
    }

    fn set(&self, state: SlotState) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = state;
        self.changed.notify_one();
    }

    /// Blocks until this caller is answered or handed the next round.
    fn wait(&self) -> Woken {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match std::mem::replace(&mut *state, SlotState::Taken) {
                SlotState::Answered(answer) => return Woken::Answered(answer),
                SlotState::Lead => return Woken::Lead,
                SlotState::Queued | SlotState::Taken => {
                    *state = SlotState::Queued;
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

impl Pipeline {
    /// Redemptions queued for the next round (for tests that build a batch step by step).
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    /// How many rounds have run.
    pub fn rounds(&self) -> usize {
        self.rounds.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Redeems `request` in a round of `group`'s batches, its audit entry dated by `clock`;
    /// returns once the batch it was in has committed.
    pub fn redeem(
        &self,
        group: &PgGroup,
        clock: &dyn Clock,
        request: RedeemRequest,
    ) -> Result<Redeem> {
        let slot = Slot::new(request);
        let mut queue = self.lock();
        if queue.leading {
            queue.waiting.push_back(Arc::clone(&slot));
            drop(queue);
            if let Woken::Answered(answer) = slot.wait() {
                return answer;
            }
            // Handed the next round: counted as queued for the connection already.
        } else {
            queue.leading = true;
            drop(queue);
            group.reserve();
        }
        self.lead(group, clock, slot)
    }

    /// Runs one round with `own` first and as many queued callers as fit, hands the next round
    /// on, and answers everyone in this one.
    fn lead(&self, group: &PgGroup, clock: &dyn Clock, own: Arc<Slot>) -> Result<Redeem> {
        let mut slots = vec![own];
        {
            let mut queue = self.lock();
            while slots.len() < MAX_BATCH {
                let Some(next) = queue.waiting.pop_front() else {
                    break;
                };
                slots.push(next);
            }
        }
        self.rounds.fetch_add(1, Ordering::SeqCst);
        let round = Round {
            pipeline: self,
            group,
            slots,
            handed_over: AtomicBool::new(false),
            answered: AtomicBool::new(false),
        };
        let requests: Vec<&RedeemRequest> = round.slots.iter().map(|s| &s.request).collect();
        let outcome = group.write_reserved(requests.len(), |writer| {
            // Read inside the batch, while this round holds the connection (the group commit
            // tests gate this clock to build a batch step by step).
            let at = pki::timefmt::rfc3339(clock.now());
            let ran = writer.redeem_round(&at, &requests);
            // Before this call ends, so that the batch stays open for the next round.
            round.hand_over();
            ran
        });
        // When the batch could not even begin, the round never ran.
        round.hand_over();
        match outcome {
            Ok((answers, appended)) => {
                log_appended(&appended);
                round.answer(answers.into_iter().map(Some).collect())
            }
            Err(e) => {
                let answers = round.slots.iter().map(|_| Some(Err(copy(&e)))).collect();
                // The leader's copy is dropped: it returns the error itself.
                let _copy = round.answer(answers);
                Err(e)
            }
        }
    }
}

/// The callers of one round, answered exactly once even if the round panics.
struct Round<'a> {
    pipeline: &'a Pipeline,
    group: &'a PgGroup,
    /// The leader's own first.
    slots: Vec<Arc<Slot>>,
    handed_over: AtomicBool,
    answered: AtomicBool,
}

impl Round<'_> {
    /// Hands the next round to the first queued caller (counted as queued for the batch
    /// connection from now on), or ends the leading when nobody waits.
    fn hand_over(&self) {
        if self.handed_over.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut queue = self.pipeline.lock();
        match queue.waiting.pop_front() {
            Some(next) => {
                self.group.reserve();
                next.set(SlotState::Lead);
            }
            None => queue.leading = false,
        }
    }

    /// Gives every follower its answer (index 0 is the leader's own, returned).
    fn answer(&self, mut answers: Vec<Option<Result<Redeem>>>) -> Result<Redeem> {
        self.answered.store(true, Ordering::SeqCst);
        for (slot, answer) in self.slots.iter().zip(answers.iter_mut()).skip(1) {
            slot.set(SlotState::Answered(
                answer.take().unwrap_or_else(unanswered),
            ));
        }
        answers
            .first_mut()
            .and_then(Option::take)
            .unwrap_or_else(unanswered)
    }
}

impl Drop for Round<'_> {
    fn drop(&mut self) {
        self.hand_over();
        if !self.answered.load(Ordering::SeqCst) {
            // The round panicked: its batch failed, nothing of it was committed.
            let _leaders = self.answer(Vec::new());
        }
    }
}

fn unanswered() -> Result<Redeem> {
    Err(StoreError::Batch(
        "the round of redemptions this call was in ended without an answer for it (the CA \
         failed while running it); nothing of it was committed, retry"
            .into(),
    ))
}

/// A batch-wide error for each member of the round.
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unreachable(cause) => StoreError::Unreachable(cause.clone()),
        StoreError::Unavailable(cause) => StoreError::Unavailable(cause.clone()),
        other => StoreError::Batch(other.to_string()),
    }
}

/// What a round returns: each request's answer, and the audit entries stored.
type RoundAnswers = (Vec<Result<Redeem>>, Vec<Appended>);

impl PgWriter {
    /// Redeems `requests` in the open batch (see the module documentation). Err when the
    /// batch failed (every caller in it is refused); per-request failures are in the answers.
    pub fn redeem_round(&mut self, at: &str, requests: &[&RedeemRequest]) -> Result<RoundAnswers> {
        // `open` is false until the round ends cleanly: if it panics, the batch fails.
        let healthy = std::mem::replace(&mut self.open, false);
        let (true, Some(client)) = (healthy, self.client.as_ref()) else {
            return Err(StoreError::Unreachable(
                "the batch transaction has no connection".into(),
            ));
        };
        let mut tail = self.tail.clone();
        let answers = block_on(&self.runtime, run_round(client, at, requests, &mut tail))?;
        self.tail = tail;
        self.open = true;
        Ok(answers)
    }
}

async fn run_round(
    client: &Client,
    at: &str,
    requests: &[&RedeemRequest],
    tail: &mut AuditTail,
) -> Result<RoundAnswers> {
    let statement = client
        .prepare_cached(REDEEM)
        .await
        .map_err(pg("preparing the redemption"))?;
    let mut answers: Vec<Option<Result<Redeem>>> = requests.iter().map(|_| None).collect();
    let mut appended = Vec::new();
    let mut next = 0;
    while next < requests.len() {
        let entries = chained(tail, at, &requests[next..]);
        let sent = send(client, &statement, at, next, &requests[next..], &entries).await;
        let mut again = None;
        for (k, (entry, (savepoint, redeemed))) in entries.iter().zip(sent).enumerate() {
            let i = next + k;
            let stored = savepoint
                .map_err(pg("starting a savepoint"))
                .and_then(|()| redeemed.map_err(pg("redeeming the token")))
                .and_then(entries_stored);
            match stored {
                Ok(0) => answers[i] = Some(Ok(Redeem::AlreadyUsed)),
                Ok(1) if entry.prev_hash == tail.hash => {
                    *tail = entry.as_tail();
                    appended.push(entry.as_appended());
                    answers[i] = Some(Ok(Redeem::Done));
                }
                Ok(1) => {
                    // Chained on an entry that is not stored: send it again on the true tail.
                    roll_back_to(client, i).await?;
                    again = Some(i);
                    break;
                }
                Err(StoreError::Unreachable(cause)) => return Err(StoreError::Unreachable(cause)),
                Ok(n) => {
                    roll_back_to(client, i).await?;
                    answers[i] = Some(Err(StoreError::Corrupt(format!(
                        "redeeming the token stored {n} audit entries"
                    ))));
                    again = Some(i + 1);
                    break;
                }
                Err(e) => {
                    roll_back_to(client, i).await?;
                    answers[i] = Some(Err(e));
                    again = Some(i + 1);
                    break;
                }
            }
        }
        match again {
            Some(from) => next = from,
            None => break,
        }
    }
    let answers = answers
        .into_iter()
        .map(|a| a.unwrap_or_else(unanswered))
        .collect();
    Ok((answers, appended))
}

/// The audit entries of `requests`, each chained on the one before, the first on `tail`.
fn chained(tail: &AuditTail, at: &str, requests: &[&RedeemRequest]) -> Vec<PendingAudit> {
    let mut tail = tail.clone();
    requests
        .iter()
        .map(|r| {
            let detail = details::issue(&r.cert, &r.hash, r.used_at);
            let entry = PendingAudit::after(&tail, at, "issue", &detail);
            tail = entry.as_tail();
            entry
        })
        .collect()
}

type Sent = (
    std::result::Result<(), tokio_postgres::Error>,
    std::result::Result<Option<Row>, tokio_postgres::Error>,
);

/// Sends each request as `SAVEPOINT r{first + k}` and its redemption, all before any answer
/// is awaited, and returns the answers in order.
async fn send(
    client: &Client,
    statement: &Statement,
    at: &str,
    first: usize,
    requests: &[&RedeemRequest],
    entries: &[PendingAudit],
) -> Vec<Sent> {
    let args: Vec<RedeemArgs<'_>> = requests
        .iter()
        .zip(entries)
        .map(|(r, entry)| RedeemArgs::new(&r.hash, r.used_at, &r.cert, at, entry))
        .collect();
    let savepoints: Vec<String> = (first..first + requests.len())
        .map(|i| format!("SAVEPOINT r{i}"))
        .collect();
    let mut calls = Vec::with_capacity(args.len());
    for (args, savepoint) in args.iter().zip(&savepoints) {
        let call = Box::pin(async move {
            let params = args.params();
            futures::join!(
                client.batch_execute(savepoint),
                client.query_opt(statement, &params)
            )
        });
        calls.push(sent_now(call));
    }
    future::join_all(calls).await
}

/// Polls `call` once, now: the driver sends a request on its future's first poll, so polling
/// each call here, in order, puts them on the wire in the chain's order (what an executor
/// polls first is not specified).
fn sent_now<F: Future + Unpin>(mut call: F) -> Either<future::Ready<F::Output>, F> {
    match Pin::new(&mut call).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Either::Left(future::ready(out)),
        Poll::Pending => Either::Right(call),
    }
}

/// Undoes call `i` and everything sent after it (its savepoint stays, empty).
async fn roll_back_to(client: &Client, i: usize) -> Result<()> {
    client
        .batch_execute(&format!("ROLLBACK TO SAVEPOINT r{i}"))
        .await
        .map_err(|e| {
            let e = pg("rolling back a failed call's savepoint")(e);
            tracing::error!(error = %e, "the batch fails");
            StoreError::Unreachable(e.to_string())
        })
}

/// How many audit entries a redemption stored (its one row's count).
fn entries_stored(row: Option<Row>) -> Result<i64> {
    let row = row.ok_or_else(|| StoreError::Corrupt("redeeming the token: no row".into()))?;
    col(&row, 0)
}
