//! Workload API mode's loop: follows the agent's `FetchX509SVID` stream and publishes every new
//! SVID, bundle and CRL through `publish` (the file watcher's code path), after validating it
//! (`credentials::workload_api`). When the stream breaks (the agent restarts, is stopped, or
//! refuses us) the current credential keeps serving until it expires (readiness then says so,
//! `health`), and the stream is reopened with backoff; the agent sends its current state at
//! once on the new stream.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use wire::tls::TlsPolicy;
use workload::client::X509SvidStream;
use workload::proto::X509svidResponse;
use workload::{ClientError, WorkloadClient};

use crate::clock::Clock;
use crate::config::Role;
use crate::credentials::files::Loaded;
use crate::credentials::workload_api::load;
use crate::credentials::Identity;
use crate::error::{MeshError, Result};
use crate::events::Events;
use crate::refresh::publish::publish;
use crate::refresh::Refresh;
use crate::trust::TrustState;

/// First wait before reopening a broken stream; doubles per attempt up to [`RETRY_MAX`].
const RETRY_BASE: Duration = Duration::from_millis(500);

/// The longest wait between attempts: an agent restart is picked up within this.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The agent's own words: a PERMISSION_DENIED names the selectors it saw and how to write
/// the missing registration entry.
fn refused(socket: &Path, error: ClientError) -> MeshError {
    MeshError::WorkloadApi {
        socket: socket.to_path_buf(),
        reason: error.to_string(),
    }
}

/// Connects to the agent and opens the X.509-SVID stream.
pub(crate) async fn open(socket: &Path) -> Result<X509SvidStream> {
    let mut client = WorkloadClient::connect(socket)
        .await
        .map_err(|e| refused(socket, e))?;
    client.x509_svids().await.map_err(|e| refused(socket, e))
}

/// The next message of `stream`; the end of the stream is an error (the agent went away).
pub(crate) async fn next_message(
    stream: &mut X509SvidStream,
    socket: &Path,
) -> Result<X509svidResponse> {
    match stream.message().await {
        Ok(Some(message)) => Ok(message),
        Ok(None) => Err(MeshError::WorkloadApi {
            socket: socket.to_path_buf(),
            reason: "the agent ended the X.509-SVID stream".into(),
        }),
        Err(e) => Err(refused(socket, e)),
    }
}

/// What the loop needs to validate a message: whose SVID, for which role, under which policy.
#[derive(Clone)]
pub(crate) struct Want {
    pub(crate) socket: PathBuf,
    pub(crate) spiffe_id: Option<pki::SpiffeId>,
    pub(crate) policy: TlsPolicy,
    pub(crate) role: Role,
}

impl Want {
    pub(crate) fn load(&self, message: &X509svidResponse, now: OffsetDateTime) -> Result<Loaded> {
        load(
            message,
            &self.socket,
            self.spiffe_id.as_ref(),
            &self.policy,
            self.role,
            now,
        )
    }
}

/// The stream follower of one service.
pub(crate) struct WorkloadStream {
    pub(crate) want: Want,
    /// None while the stream is broken.
    pub(crate) stream: Option<X509SvidStream>,
    pub(crate) identity: Arc<Identity>,
    pub(crate) trust: Arc<TrustState>,
    pub(crate) events: Arc<Events>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Digest of the message content published last (a message repeating it changes nothing).
    pub(crate) published: String,
    /// Failed attempts since the stream last delivered.
    pub(crate) attempt: u32,
}

impl WorkloadStream {
    fn failed(&mut self, e: &MeshError) -> Duration {
        let delay = (RETRY_BASE * 2u32.saturating_pow(self.attempt.min(4))).min(RETRY_MAX);
        if self.attempt == 0 {
            let until = pki::timefmt::rfc3339(self.identity.current().info.not_after);
            tracing::warn!(
                event = "workload_api_lost",
                error = %e,
                "{e}; keeping the current SVID (valid until {until}) and reconnecting"
            );
        }
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    fn apply(&mut self, message: &X509svidResponse) {
        match self.want.load(message, self.clock.now()) {
            Ok(loaded) if loaded.digest == self.published => {}
            Ok(loaded) => {
                self.published = loaded.digest.clone();
                publish(
                    loaded,
                    &self.identity,
                    Some(&self.trust),
                    &self.events,
                    "the Workload API",
                    "from the Workload API",
                );
            }
            Err(e) => {
                tracing::warn!(event = "workload_svid_refused", error = %e, "the Workload API sent an SVID that cannot be used: {e}; keeping the current one");
            }
        }
    }
}

impl Refresh for WorkloadStream {
    async fn round(&mut self) -> Duration {
        let socket = self.want.socket.clone();
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => match open(&socket).await {
                Ok(stream) => self.stream.insert(stream),
                Err(e) => return self.failed(&e),
            },
        };
        match next_message(stream, &socket).await {
            Ok(message) => {
                if self.attempt > 0 {
                    tracing::info!(
                        event = "workload_api_resumed",
                        "Workload API unix://{}: stream resumed",
                        socket.display()
                    );
                }
                self.attempt = 0;
                self.apply(&message);
                Duration::ZERO
            }
            Err(e) => {
                self.stream = None;
                self.failed(&e)
            }
        }
    }
}
