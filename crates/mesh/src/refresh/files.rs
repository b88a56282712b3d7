//! The file watcher of static and pinned mode: polls the files every `interval` (their contents
//! are hashed) and, on a change, loads, validates and publishes them. A half-finished
//! replacement (new certificate, old key) fails validation and is retried when the files change
//! again; the old credential keeps serving meanwhile. In pinned mode with a pins file, the
//! same tick looks at that file too (`refresh::pins_file`).

use std::sync::Arc;
use std::time::Duration;

use wire::tls::TlsPolicy;

use crate::clock::Clock;
use crate::config::Role;
use crate::credentials::files::Files;
use crate::credentials::Identity;
use crate::events::Events;
use crate::refresh::pins_file::PinsWatch;
use crate::refresh::publish::publish;
use crate::refresh::Refresh;
use crate::trust::TrustState;

/// The watcher of one service's files.
pub(crate) struct FileWatch {
    pub(crate) files: Files,
    pub(crate) identity: Arc<Identity>,
    /// None in pinned mode.
    pub(crate) trust: Option<Arc<TrustState>>,
    pub(crate) policy: TlsPolicy,
    pub(crate) role: Role,
    pub(crate) events: Arc<Events>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) interval: Duration,
    /// Fingerprint of the files published last.
    pub(crate) published: String,
    /// Fingerprint of the files that failed to load last (not retried until they change).
    pub(crate) last_failed: Option<String>,
    /// The pins file (pinned mode with `--trust-pins-file`).
    pub(crate) pins: Option<PinsWatch>,
}

impl Refresh for FileWatch {
    async fn round(&mut self) -> Duration {
        if let Some(pins) = &mut self.pins {
            pins.check(&self.events);
        }
        // A file being replaced may be missing for a moment: look again at the next tick.
        let Ok(digest) = self.files.digest() else {
            return self.interval;
        };
        if digest == self.published || self.last_failed.as_deref() == Some(digest.as_str()) {
            return self.interval;
        }
        match self.files.load(&self.policy, self.role, self.clock.now()) {
            Ok(loaded) if loaded.digest == digest => {
                let from = match &self.files.roots {
                    Some(roots) => format!("file {}", roots.display()),
                    None => format!("file {}", self.files.cert.display()),
                };
                publish(
                    loaded,
                    &self.identity,
                    self.trust.as_deref(),
                    &self.events,
                    &from,
                    "file reload",
                );
                self.published = digest;
                self.last_failed = None;
            }
            // The files changed again while loading; the next tick sees the final state.
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(event = "reload_failed", error = %e, "certificate files changed but cannot be used; keeping the current certificate");
                self.last_failed = Some(digest);
            }
        }
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::clock::TokioClock;
    use crate::config::{CredentialSource, ServiceConfig, StaticFiles};
    use crate::testing::{FakeCa, ID};
    use crate::Mesh;

    /// A fresh key and a certificate for it from `ca`, written as PEM files `name.crt/.key`.
    fn write_pair(ca: &FakeCa, dir: &Path, name: &str) -> String {
        let key = pki::keys::generate(pki::Curve::P384).unwrap();
        let id = pki::SpiffeId::parse(ID).unwrap();
        let issued = ca.issue(&crate::enroll::make_csr(&key, &id).unwrap());
        std::fs::write(dir.join(format!("{name}.crt")), &issued.certificate).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        issued.serial.to_ascii_lowercase()
    }

    fn install(dir: &Path, from: &str, what: &[&str]) {
        for ext in what {
            std::fs::copy(
                dir.join(format!("{from}.{ext}")),
                dir.join(format!("live.{ext}")),
            )
            .unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn replaced_files_are_published_and_a_half_replacement_is_not() {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
        let ca = FakeCa::new(clock.clone(), time::Duration::hours(1));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        std::fs::write(path.join("roots.pem"), ca.root.cert_pem()).unwrap();
        let first = write_pair(&ca, path, "first");
        install(path, "first", &["crt", "key"]);
        let config = ServiceConfig::new(
            Role::Client,
            CredentialSource::StaticFiles(StaticFiles {
                cert: path.join("live.crt"),
                key: path.join("live.key"),
                roots: path.join("roots.pem"),
                crl: None,
                reload_interval: Duration::from_secs(1),
            }),
        );
        let mesh = Mesh::start_with_clock(config, clock).await.unwrap();
        assert_eq!(mesh.credential().serial(), first);

        // The new certificate without its key: refused, the old one keeps serving.
        let second = write_pair(&ca, path, "second");
        install(path, "second", &["crt"]);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(mesh.credential().serial(), first);
        // The key follows: published at the next tick.
        install(path, "second", &["key"]);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(mesh.credential().serial(), second);
        assert_eq!(
            mesh.events()
                .metrics
                .rotations
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        mesh.shutdown().await;
    }
}
