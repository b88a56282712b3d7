//! A Workload API client over the agent's Unix socket (for `mtls-agent write` and the
//! `--workload-api` credential source of mesh): the generated
//! client stubs of proto/workload.proto on a tonic channel whose connector dials the socket,
//! every call carrying the `workload.spiffe.io: true` metadata.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status, Streaming};

use crate::proto::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use crate::proto::{X509svidRequest, X509svidResponse};
use crate::SECURITY_HEADER;

/// A client of one agent socket.
pub struct WorkloadClient {
    inner: SpiffeWorkloadApiClient<Channel>,
}

/// Why the client failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("connecting to the Workload API at {path}: {reason}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// The agent refused to give this process an identity: no registration entry matches
    /// its selectors (the message names the ones the agent saw); an operator must create one
    /// (docs/agent.md).
    #[error("PERMISSION_DENIED: {0}")]
    PermissionDenied(String),
    /// The agent answered with another error status.
    #[error("the Workload API refused: {}: {}", .0.code(), .0.message())]
    Status(Status),
}

impl From<Status> for ClientError {
    fn from(status: Status) -> ClientError {
        if status.code() == tonic::Code::PermissionDenied {
            ClientError::PermissionDenied(status.message().to_string())
        } else {
            ClientError::Status(status)
        }
    }
}

fn with_header<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        SECURITY_HEADER,
        tonic::metadata::MetadataValue::from_static("true"),
    );
    request
}

impl WorkloadClient {
    /// Connects to the agent at `socket`.
    pub async fn connect(socket: &Path) -> Result<WorkloadClient, ClientError> {
        let path = socket.to_path_buf();
        // The URI is required by the API and ignored: the connector dials the socket.
        let endpoint = Endpoint::from_static("http://workload-api.invalid");
        let dial = path.clone();
        let channel = endpoint
            .connect_with_connector(tower::service_fn(move |_| {
                let dial = dial.clone();
                async move { UnixStream::connect(dial).await.map(TokioIo::new) }
            }))
            .await
            .map_err(|e| ClientError::Connect {
                path: path.clone(),
                reason: format!("{e}: {}", source_chain(&e)),
            })?;
        Ok(WorkloadClient {
            inner: SpiffeWorkloadApiClient::new(channel),
        })
    }

    /// The X.509-SVID stream of this process.
    pub async fn x509_svids(&mut self) -> Result<X509SvidStream, ClientError> {
        Ok(X509SvidStream(
            self.inner
                .fetch_x509svid(with_header(X509svidRequest {}))
                .await?
                .into_inner(),
        ))
    }
}

/// The `FetchX509SVID` stream: a message at once, then one on every rotation, bundle or CRL
/// change.
pub struct X509SvidStream(Streaming<X509svidResponse>);

impl X509SvidStream {
    /// The next message; None when the agent ended the stream.
    pub async fn message(&mut self) -> Result<Option<X509svidResponse>, ClientError> {
        Ok(self.0.message().await?)
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}
