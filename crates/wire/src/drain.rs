//! The shutdown signal every connection of a listener watches: serving, then draining (finish
//! what is in flight, close the rest), then cut (the drain time is over).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

const SERVING: u8 = 0;
const DRAINING: u8 = 1;
const CUT: u8 = 2;

/// The phase and its change signal. An atomic and a `Notify` rather than a `watch` channel:
/// every open connection waits on this (its driver for the drain, its task for the cut), and
/// a wait on a `Notify` is a third of the size of a wait on a `watch` (docs/performance.md
/// "Memory per idle connection").
#[derive(Debug)]
struct Shared {
    phase: AtomicU8,
    changed: Notify,
}

/// A connection's view of the listener's shutdown.
#[derive(Clone, Debug)]
pub struct Drain(Arc<Shared>);

impl Drain {
    async fn reached(&self, phase: u8) {
        loop {
            let changed = self.0.changed.notified();
            tokio::pin!(changed);
            // Registered before the phase is read, so a change in between is not missed.
            changed.as_mut().enable();
            if self.0.phase.load(Ordering::Acquire) >= phase {
                return;
            }
            changed.await;
        }
    }

    /// Resolves once the listener has started draining.
    pub async fn draining(&self) {
        self.reached(DRAINING).await
    }

    /// Resolves once the drain time is over: whatever is still open must go now.
    pub async fn cut(&self) {
        self.reached(CUT).await
    }

    /// A wait for the next change of phase, for a caller that waits on other things in the
    /// same loop (a parked connection). Enable it before reading `is_draining`, so a change in
    /// between is not missed.
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.0.changed.notified()
    }

    /// True once the listener has started draining.
    pub fn is_draining(&self) -> bool {
        self.0.phase.load(Ordering::Acquire) != SERVING
    }
}

/// The listener's side of the signal. Dropping it (the listener is gone) is the end of every
/// phase: every watcher is released.
pub(crate) struct DrainControl(Arc<Shared>);

impl DrainControl {
    pub(crate) fn new() -> (DrainControl, Drain) {
        let shared = Arc::new(Shared {
            phase: AtomicU8::new(SERVING),
            changed: Notify::new(),
        });
        (DrainControl(shared.clone()), Drain(shared))
    }

    fn advance(&self, phase: u8) {
        self.0.phase.fetch_max(phase, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }

    pub(crate) fn start(&self) {
        self.advance(DRAINING);
    }

    pub(crate) fn cut(&self) {
        self.advance(CUT);
    }
}

impl Drop for DrainControl {
    fn drop(&mut self) {
        self.advance(CUT);
    }
}

/// How a listener's shutdown went; the binaries log it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainReport {
    /// Connections open when the shutdown signal arrived.
    pub open: usize,
    /// Connections that finished (or were closed idle) within the drain time.
    pub finished: usize,
    /// Connections still busy at the end of the drain time, cut.
    pub cut: usize,
    /// How long the drain took.
    pub took: Duration,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn phases_resolve_in_order_and_stay_resolved() {
        let (control, drain) = DrainControl::new();
        assert!(!drain.is_draining());
        let cut = tokio::spawn({
            let d = drain.clone();
            async move { d.cut().await }
        });
        control.start();
        drain.draining().await;
        assert!(drain.is_draining());
        tokio::task::yield_now().await;
        assert!(!cut.is_finished(), "draining is not the cut");
        control.cut();
        cut.await.unwrap();
        // Later watchers see the phase at once.
        drain.draining().await;
        drain.cut().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_listener_releases_every_watcher() {
        let (control, drain) = DrainControl::new();
        drop(control);
        drain.cut().await;
    }
}
