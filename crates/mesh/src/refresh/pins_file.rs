//! The pins file part of the file watcher (pinned mode with `--trust-pins-file`): at each tick
//! of `refresh::files`, a changed file is parsed and its pins put in use for new handshakes; the
//! open-connection watchers then close connections whose peer key was dropped. A change that
//! does not parse (or pins nothing) keeps the pins in use, is logged and counted
//! (`mesh_pins_reload_failures_total`), and is not retried until the file changes again.
//! Independent of the certificate files: a bad pins file does not hold up a certificate
//! rotation, nor a half-replaced certificate a pin change.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::events::Events;
use crate::tls::pins_file;
use crate::tls::LivePins;

/// The watched pins file and the pins it last put in use.
pub(crate) struct PinsWatch {
    pub(crate) path: PathBuf,
    pub(crate) live: Arc<LivePins>,
    /// Hash of the file content in use.
    pub(crate) published: String,
    /// Hash of the content refused last (not retried until the file changes).
    pub(crate) last_failed: Option<String>,
}

impl PinsWatch {
    /// Looks at the file once; publishes a changed, valid one.
    pub(crate) fn check(&mut self, events: &Events) {
        // A file being replaced may be missing for a moment: look again at the next tick.
        let Ok(bytes) = std::fs::read(&self.path) else {
            return;
        };
        let digest = pki::sha256_hex(&bytes);
        if digest == self.published || self.last_failed.as_deref() == Some(digest.as_str()) {
            return;
        }
        match pins_file::parse(&self.path, &bytes) {
            Ok(pins) => {
                let old = self.live.current();
                let added = pins.missing_from(&old);
                let removed = old.missing_from(&pins);
                self.live.set(pins);
                events.metrics.pins_reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    event = "pins_reloaded",
                    file = %self.path.display(),
                    pins = self.live.current().len(),
                    added = %added.join(","),
                    removed = %removed.join(","),
                    "pins reloaded from {}: {} pinned key(s), {} added, {} removed",
                    self.path.display(),
                    self.live.current().len(),
                    added.len(),
                    removed.len()
                );
                self.published = digest;
                self.last_failed = None;
            }
            Err(e) => {
                events
                    .metrics
                    .pins_reload_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    event = "pins_reload_failed",
                    error = %e,
                    "pins file changed but cannot be used; keeping the {} pin(s) in use: {e}",
                    self.live.current().len()
                );
                self.last_failed = Some(digest);
            }
        }
    }
}
