//! mtls-agent: the SPIFFE Workload API for the workloads of one host (docs/agent.md). `serve`
//! runs the agent (the `mtls_agent` library on a `mesh::Mesh` node identity); `write` keeps one
//! identity's files in a directory. Exit codes: 2, the configuration cannot work (nothing was
//! redeemed); 1, failed after start.

mod args;
mod write;

use std::process::ExitCode;
use std::sync::Arc;

use mesh::{CredentialSource, Mesh, Role};
use mtls::report;
use mtls_agent::ca::HttpCa;
use mtls_agent::cache::{CacheConfig, SvidCache};
use mtls_agent::WorkloadApi;

use crate::args::{Cli, Command, ServeArgs};

/// What stopped the program, and its exit code.
pub enum Failure {
    /// The configuration cannot work (exit 2); nothing reached the CA.
    Config(String),
    /// Failed after the configuration was accepted (exit 1).
    Run(anyhow::Error),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = mtls::manual::parse();
    let result = match cli.command {
        Command::Serve(a) => serve(*a).await,
        Command::Write(a) => write::run(a).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(message)) => {
            eprintln!("mtls-agent: error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("mtls-agent: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// How long calls in flight may take to finish after SIGTERM/SIGINT.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves the Workload API until SIGTERM/SIGINT, then stops accepting and lets calls in flight
/// finish for up to `STOP_GRACE`. The grace is needed because a graceful shutdown alone waits
/// for every open call, and a `FetchX509SVID` or bundle stream lasts as long as its workload:
/// the agent would never exit (under systemd, it would be killed at `TimeoutStopSec`). Streams
/// still open are then cut; their workloads keep their cached SVIDs and reconnect
/// (docs/agent.md).
async fn serve_until_stopped(
    listener: tokio::net::UnixListener,
    api: WorkloadApi,
) -> Result<(), mtls_agent::AgentError> {
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopping = {
        let stop = stop.clone();
        async move { stop.notified().await }
    };
    let serving = mtls_agent::serve(listener, api, stopping);
    tokio::pin!(serving);
    tokio::select! {
        result = &mut serving => result,
        () = mtls::shutdown::signal() => {
            // A stored permit: the server's shutdown future sees it even if not yet polled.
            stop.notify_one();
            match tokio::time::timeout(STOP_GRACE, &mut serving).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::info!(
                        event = "streams_cut",
                        "Workload API streams still open {}s after the stop signal are \
                         closed; their workloads keep their SVIDs and reconnect",
                        STOP_GRACE.as_secs()
                    );
                    Ok(())
                }
            }
        }
    }
}

/// The agent's own identity must be `spiffe://<td>/agent/<name>`: the CA gives agent rights to
/// such certificates only.
fn check_agent_id(id: &pki::SpiffeId) -> Result<(), Failure> {
    let name = id.path().strip_prefix("/agent/").unwrap_or_default();
    if name.is_empty() || name.contains('/') {
        return Err(Failure::Config(format!(
            "--spiffe-id {id} is not an agent identity: give spiffe://{}/agent/<name> (the CA \
             serves registration entries only to those)",
            id.trust_domain().as_str()
        )));
    }
    Ok(())
}

/// Checks every flag, binds the socket, and only then enrolls (redeems the join token) and
/// serves until SIGTERM/SIGINT.
async fn serve(a: ServeArgs) -> Result<(), Failure> {
    mtls::logging::init(a.creds.log_format, "info");
    let config = a
        .creds
        .config(Role::Client)
        .map_err(|c| Failure::Config(c.to_string()))?;
    let CredentialSource::Enrolled(enrollment) = &config.credentials else {
        return Err(Failure::Config(
            "mtls-agent needs enrolled mode (--ca-url, --ca-fingerprint, --spiffe-id, \
             --join-token-file): it asks the CA for its workloads' SVIDs"
                .into(),
        ));
    };
    let agent_id = enrollment.spiffe_id.clone();
    let urls = enrollment.ca_urls.clone();
    check_agent_id(&agent_id)?;
    let listener = mtls_agent::socket::bind(&a.socket, a.socket_mode)
        .map_err(|e| Failure::Config(e.to_string()))?;
    let mesh = Mesh::start(config).await.map_err(|e| {
        Failure::Run(anyhow::Error::new(e).context("obtaining the agent's certificate"))
    })?;
    report::print(&report::certificate_lines("AGENT", &mesh.credential()));
    let ca = HttpCa::new(&urls, &mesh, &agent_id)
        .map_err(|e| Failure::Run(anyhow::Error::new(e).context("the CA client")))?;
    let trust = mesh.trust().cloned();
    let roots = Arc::new(move || {
        trust
            .as_ref()
            .map(|t| {
                t.roots()
                    .certs()
                    .iter()
                    .map(|c| c.as_ref().to_vec())
                    .collect()
            })
            .unwrap_or_default()
    });
    let cache = SvidCache::new(
        Arc::new(ca),
        Arc::new(pki::clock::SystemClock),
        CacheConfig {
            entry_refresh: a.entry_refresh,
            curve: a.creds.curve,
        },
        roots,
    );
    // The first round before serving: a workload that calls at once gets its SVID, not a
    // PERMISSION_DENIED from an empty cache.
    cache.refresh().await;
    let keeper = tokio::spawn(cache.clone().run());
    let api = WorkloadApi::new(cache, agent_id.trust_domain());
    println!("Workload API listening on unix://{}", a.socket.display());
    println!("[AGENT] ready");
    let result = serve_until_stopped(listener, api).await;
    keeper.abort();
    let _ = std::fs::remove_file(&a.socket);
    mesh.shutdown().await;
    result.map_err(|e| Failure::Run(e.into()))
}
