//! The shutdown signal every connection of a listener watches: serving, then draining (finish
//! what is in flight, close the rest), then cut (the drain time is over).

use std::time::Duration;

use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Serving,
    Draining,
    Cut,
}

/// A connection's view of the listener's shutdown.
#[derive(Clone, Debug)]
pub struct Drain(watch::Receiver<Phase>);

impl Drain {
    async fn reached(&self, phase: Phase) {
        let mut rx = self.0.clone();
        // An error means the listener is gone, which is the end of every phase.
        let _ = rx.wait_for(|p| *p as u8 >= phase as u8).await;
    }

    /// Resolves once the listener has started draining.
    pub async fn draining(&self) {
        self.reached(Phase::Draining).await
    }

    /// Resolves once the drain time is over: whatever is still open must go now.
    pub async fn cut(&self) {
        self.reached(Phase::Cut).await
    }

    /// True once the listener has started draining.
    pub fn is_draining(&self) -> bool {
        *self.0.borrow() != Phase::Serving
    }
}

/// The listener's side of the signal.
pub(crate) struct DrainControl(watch::Sender<Phase>);

impl DrainControl {
    pub(crate) fn new() -> (DrainControl, Drain) {
        let (tx, rx) = watch::channel(Phase::Serving);
        (DrainControl(tx), Drain(rx))
    }

    pub(crate) fn start(&self) {
        self.0.send_replace(Phase::Draining);
    }

    pub(crate) fn cut(&self) {
        self.0.send_replace(Phase::Cut);
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
