//! The background loops that keep a service's credential and trust fresh, in one place and of
//! one shape: rotation (renew at `rotate_at` of the lifetime, re-enroll after expiry), the CRL
//! and trust bundle refresh (enrolled mode), the file watcher (static and pinned mode, with the
//! pins file) and the Workload API stream (`publish` is what the last two share).
//!
//! Each is a [`Refresh`]: a value holding its state that runs one round at a time, and each
//! round says how long to wait before the next. [`run`] drives any of them until the service
//! stops, sleeping on tokio's timer; every decision by time reads the service's clock, so the
//! unit tests run them on tokio's paused clock.

pub(crate) mod crl;
pub(crate) mod federated;
pub(crate) mod files;
pub(crate) mod pins_file;
pub(crate) mod publish;
pub(crate) mod rotation;
pub(crate) mod workload_api;

use std::future::Future;
use std::time::Duration;

use crate::stop::Stop;

/// A background loop of a service.
pub(crate) trait Refresh: Send + 'static {
    /// One round; returns how long to wait before the next.
    fn round(&mut self) -> impl Future<Output = Duration> + Send;
}

/// Runs `task` round after round until `stop` is requested. A round cut short by the stop is
/// dropped: a refresh or renewal torn down at exit is a cancellation, not a failure, and is
/// neither logged nor counted.
pub(crate) async fn run<T: Refresh>(mut task: T, stop: Stop) {
    loop {
        let wait = tokio::select! {
            biased;
            () = stop.wait() => return,
            wait = task.round() => wait,
        };
        tokio::select! {
            biased;
            () = stop.wait() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}
