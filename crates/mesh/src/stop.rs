//! Orderly stop of the background tasks (refresher, rotation, file watcher, health log). A
//! task that is stopped mid-request has been cancelled, not failed: it ends without logging.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A stop request shared by a service's background tasks. Cloning shares the same request.
#[derive(Clone, Debug)]
pub(crate) struct Stop {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop::new()
    }
}

impl Stop {
    pub(crate) fn new() -> Stop {
        Stop {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Asks every task watching this to stop. Idempotent.
    pub(crate) fn request(&self) {
        self.tx.send_replace(true);
    }

    /// True once a stop was requested.
    #[cfg(test)]
    pub(crate) fn requested(&self) -> bool {
        *self.tx.borrow()
    }

    /// Completes once a stop has been requested.
    pub(crate) async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// Spawns `task`, dropping it (without running it further) when a stop is requested.
    pub(crate) fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                biased;
                () = stop.wait() => {}
                () = task => {}
            }
        })
    }
}

/// Requests a stop and waits (at most `grace`) for `tasks` to end; aborts the stragglers.
pub(crate) async fn stop_and_join(stop: &Stop, tasks: Vec<JoinHandle<()>>, grace: Duration) {
    stop.request();
    let deadline = tokio::time::Instant::now() + grace;
    for mut task in tasks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_ends_spawned_tasks_and_is_visible() {
        let stop = Stop::new();
        assert!(!stop.requested());
        let task = stop.spawn(std::future::pending());
        let waiter = {
            let stop = stop.clone();
            tokio::spawn(async move { stop.wait().await })
        };
        stop_and_join(&stop, vec![task], Duration::from_secs(10)).await;
        assert!(stop.requested());
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("waiter woke")
            .expect("waiter ok");
    }
}
