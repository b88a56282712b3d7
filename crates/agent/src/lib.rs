#![warn(missing_docs)]

//! `mtls-agent` as a library: the SPIFFE Workload API over a Unix socket for the workloads of
//! one host (docs/agent.md). The agent holds a node identity (`spiffe://<td>/agent/<name>`,
//! enrolled and rotated by `mesh`), keeps an X.509-SVID minted in advance for each registration
//! entry the CA gives it ([`cache`]), attests each caller from its socket credentials and
//! `/proc` ([`attest`]), and answers the five Workload API calls ([`workload_api`]) with what
//! the entries matching the caller allow.

pub mod attest;
pub mod authority;
pub mod ca;
pub mod cache;
pub mod error;
pub mod files;
pub mod socket;
pub mod workload_api;

/// The Workload API's messages and stubs, and its client: generated and written once in the
/// `workload` crate, which mesh uses too (`--workload-api`).
pub use workload::{client, proto};

use std::future::Future;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::StreamExt;
use tonic::{Request, Status};

pub use error::AgentError;
pub use workload_api::{WorkloadApi, SECURITY_HEADER};

/// Refuses a call without the `workload.spiffe.io: true` metadata (INVALID_ARGUMENT, as the
/// spec requires): it shows the caller meant to talk to a Workload API, which keeps a browser
/// or other confused deputy that can be made to send requests to the socket out.
pub fn require_security_header(request: Request<()>) -> Result<Request<()>, Status> {
    match request.metadata().get(SECURITY_HEADER) {
        Some(v) if v.as_bytes() == b"true" => Ok(request),
        _ => Err(Status::invalid_argument(format!(
            "security header missing from request: every Workload API call must carry the \
             metadata `{SECURITY_HEADER}: true`"
        ))),
    }
}

/// Serves `api` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: UnixListener,
    api: WorkloadApi,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    let service = proto::spiffe_workload_api_server::SpiffeWorkloadApiServer::with_interceptor(
        api,
        require_security_header,
    );
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(
            UnixListenerStream::new(listener).map(|c| c.map(authority::AuthorityFix::new)),
            shutdown,
        )
        .await
        .map_err(|e| AgentError::Serve(e.to_string()))
}
