//! mtls-server: an HTTPS service that requires and verifies client certificates. The service
//! is the mesh library (`mesh::Mesh` for the credentials, `mesh::serve_http` for mTLS on the
//! wire layer); this program adds its command line, the demo API (`api.rs`) and the report.

mod api;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use mesh::server::{admin, server_limits, AllowList, ServeOptions};
use mesh::{Mesh, Role};
use mtls::credentials::CredentialArgs;
use mtls::{report, values};

const EXAMPLES: &str = "\
Examples:
  # Enrolled: certificate from mtls-ca (token made with
  #   mtls-ca token --data-dir ./ca --spiffe-id spiffe://mesh.local/service/api-server \\
  #                 --dns localhost --ip 127.0.0.1 > api.token)
  mtls-server --ca-url https://localhost:8443 --ca-fingerprint <sha256 printed by mtls-ca> \\
      --spiffe-id spiffe://mesh.local/service/api-server --join-token-file api.token \\
      --listen 127.0.0.1:9443 --admin-listen 127.0.0.1:9090

  # Static files (e.g. from scripts/sign-server-cert.sh), reloaded when replaced:
  mtls-server --cert pki/server.crt --key pki/server.key --ca-cert pki/ca.crt

  # Only some callers:
  mtls-server ... --allow-id spiffe://mesh.local/service/web \\
      --allow-id 'spiffe://mesh.local/batch/*'

  # Pinned self-signed peers (no CA):
  mtls-server --cert me.crt --key me.key --trust-pin sha256:<SPKI hash of the client>
  # ... or pins from a file, one per line, reloaded when it changes (key rotation):
  mtls-server --cert me.crt --key me.key --trust-pins-file client-pins.txt

Test it:
  curl --cacert ca.crt --cert client.crt --key client.key https://localhost:9443/api/status
  openssl s_client -connect localhost:9443 -CAfile ca.crt -cert client.crt -key client.key

Endpoints: GET /api/status -> {\"status\":\"healthy\",\"caller\":\"<SPIFFE ID>\",\"client_key\":\"<hex>\"};
POST /api/echo echoes the body with the server time and the client address.
Admin (plain HTTP, loopback only unless --admin-allow-remote): /healthz, /readyz, /metrics.

Exit status: 0 after a clean shutdown; 2 when a setting is refused or a listener cannot be bound
(always before the join token is redeemed); 1 when it failed after start (the CA refused, a
file could not be used).";

/// An HTTPS service that talks only mutual TLS 1.3: every caller must present a certificate
/// from the trusted CA (or a pinned key); handlers see the caller's SPIFFE ID from that
/// certificate. Certificates rotate without dropping connections.
#[derive(Parser, Debug)]
#[command(name = "mtls-server", version, after_help = EXAMPLES)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the real one is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9443")]
    listen: SocketAddr,

    /// Allow only these callers (exact SPIFFE ID or a prefix ending in /*); others get 403.
    /// Repeatable. Default: every verified caller of our own trust domain. A caller of a
    /// federated trust domain (`mtls-ca federation`) is accepted only when a pattern of its
    /// trust domain names it, and refused at the handshake otherwise.
    #[arg(long = "allow-id", value_name = "ID", value_parser = parse_allow_id)]
    allow_id: Vec<String>,

    /// Plain-HTTP admin listener for /healthz, /readyz and /metrics; a loopback address
    /// unless --admin-allow-remote is given.
    #[arg(long, value_name = "ADDR", value_parser = parse_admin_listen)]
    admin_listen: Option<SocketAddr>,

    /// Let --admin-listen bind a non-loopback address (a pod IP for Kubernetes probes, a
    /// Prometheus scrape): the admin endpoint has no authentication, so anyone who can reach it
    /// sees health and metrics (no keys, no certificates; a warning is logged at start).
    #[arg(long, requires = "admin_listen")]
    admin_allow_remote: bool,

    #[command(flatten)]
    connections: ConnectionArgs,

    #[command(flatten)]
    creds: CredentialArgs,
}

/// Limits that keep one caller, a slow caller or idle connections from starving the others.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Connection limits")]
struct ConnectionArgs {
    /// Connections open at once (at least 1), handshaking ones included; more wait in the
    /// accept queue.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = values::count_usize)]
    max_connections: usize,

    /// Connections one caller identity (SPIFFE ID, else subject) may hold (at least 1); the
    /// excess gets a 429 JSON error naming the limit and is closed.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = values::count_usize)]
    max_connections_per_identity: usize,

    /// Close a connection that has had no request in flight for this long, at least 1s
    /// (HTTP/1 keep-alive and HTTP/2 alike; HTTP/2 PING frames do not count as activity).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = values::duration)]
    idle_timeout: Duration,

    /// An HTTP/1 request header must be complete within this time of its first byte (at
    /// least 1s).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = values::duration)]
    header_timeout: Duration,

    /// A request's body and handling must finish within this time (at least 1s); slower ones
    /// get 408 and their connection is closed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = values::duration)]
    request_timeout: Duration,

    /// On SIGTERM or SIGINT: stop accepting, close idle connections, let requests in flight
    /// finish for up to this long (at least 1s), then exit 0.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = values::duration)]
    drain: Duration,
}

fn parse_allow_id(s: &str) -> Result<String, String> {
    AllowList::check_pattern(s).map_err(|e| e.to_string())
}

/// The address form only: whether it may be non-loopback depends on --admin-allow-remote
/// (`Args::check_admin_exposure`).
fn parse_admin_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|e| format!("{s:?} is not an address like 127.0.0.1:9090 ({e})"))
}

impl Args {
    /// The admin listener has no authentication: a non-loopback address needs the explicit
    /// --admin-allow-remote.
    fn check_admin_exposure(&self) -> Result<admin::Exposure, String> {
        match self.admin_listen {
            Some(addr) => {
                admin::Exposure::check(addr, self.admin_allow_remote, "--admin-allow-remote")
                    .map_err(|reason| format!("--admin-listen {addr}: {reason}"))
            }
            None => Ok(admin::Exposure::LoopbackOnly),
        }
    }
}

impl ConnectionArgs {
    fn limits(&self) -> anyhow::Result<wire::Limits> {
        let (max_connections, lowered) = wire::limits::fit_to_open_files(self.max_connections);
        if let Some(open_files) = lowered {
            tracing::warn!(
                event = "max_connections_lowered",
                requested = self.max_connections,
                allowed = max_connections,
                open_files,
                "--max-connections {} is more than the open-file limit ({open_files}) can \
                 carry; serving at most {max_connections} connections at once (raise the limit \
                 with `ulimit -n` or systemd's LimitNOFILE=)",
                self.max_connections
            );
        }
        let limits = wire::Limits {
            idle_timeout: self.idle_timeout,
            header_timeout: self.header_timeout,
            request_timeout: self.request_timeout,
            drain: self.drain,
            ..server_limits(max_connections, self.max_connections_per_identity)
        };
        limits.validate().context(
            "invalid connection limits (--max-connections, --max-connections-per-identity, \
             --idle-timeout, --header-timeout, --request-timeout)",
        )?;
        Ok(limits)
    }
}

#[tokio::main]
async fn main() {
    let args: Args = mtls::manual::parse();
    mtls::logging::init(args.creds.log_format, "info");
    // Settings that do not fit together are usage errors, refused before anything starts.
    let usage_error = |message: String| -> ! {
        Args::command()
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit()
    };
    let config = args
        .creds
        .config(Role::Server)
        .unwrap_or_else(|conflict| usage_error(conflict.to_string()));
    let exposure = args
        .check_admin_exposure()
        .unwrap_or_else(|m| usage_error(m));
    // Listeners are bound before the join token is redeemed: a port in use must not burn it.
    let listeners = match Listeners::bind(&args, exposure).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mtls-server: error: {e:#}");
            eprintln!("mtls-server: nothing was sent to the CA; the join token is still unused");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args, config, listeners).await {
        eprintln!("mtls-server: error: {e:#}");
        std::process::exit(1);
    }
}

/// The service's sockets, bound before anything reaches the CA.
struct Listeners {
    service: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
}

impl Listeners {
    async fn bind(args: &Args, exposure: admin::Exposure) -> anyhow::Result<Listeners> {
        let service = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("--listen {}: cannot listen there", args.listen))?;
        let admin = match args.admin_listen {
            Some(addr) => Some(
                admin::bind(addr, exposure)
                    .await
                    .with_context(|| format!("--admin-listen {addr}: cannot listen there"))?,
            ),
            None => None,
        };
        Ok(Listeners { service, admin })
    }
}

async fn run(args: Args, config: mesh::ServiceConfig, listeners: Listeners) -> anyhow::Result<()> {
    let allow = AllowList::parse(&args.allow_id)?;
    let limits = args.connections.limits()?;
    let mesh = Mesh::start(config)
        .await
        .context("obtaining the server certificate")?;
    report::print(&report::certificate_lines("SERVER", &mesh.credential()));
    if let Some(trust) = mesh.trust() {
        println!(
            "[SERVER] Trusted CA: {}",
            trust.roots().subjects().join("; ")
        );
    }
    if let Some(next) = mesh.next_rotation() {
        println!("[SERVER] Next rotation: {}", pki::timefmt::rfc3339(next));
    }
    let listener = listeners.service;
    let local = listener.local_addr()?;
    if let Some(admin_listener) = listeners.admin {
        let admin_addr = admin_listener.local_addr()?;
        admin::Exposure::warn_if_remote(admin_addr, "--admin-allow-remote");
        tokio::spawn(admin::serve(admin_listener, &mesh));
        println!("admin listening on http://{admin_addr}");
    }
    println!(
        "[SERVER] mode: {}; client certificate required; TLS 1.3; groups: {}",
        mesh.mode().as_str(),
        mesh.policy().group_names().join(", ")
    );
    println!("listening on https://{local}");
    tracing::info!(event = "listening", addr = %local, mode = mesh.mode().as_str(), "listening on https://{local}");
    let shutdown = async {
        mtls::shutdown::signal().await;
        tracing::info!(event = "shutdown", "shutting down");
    };
    // Returns after the drain: requests in flight have finished or been cut.
    mesh::serve_http(
        listener,
        &mesh,
        api::service(),
        ServeOptions { limits, allow },
        shutdown,
    )
    .await?;
    // Stop the refresher and rotation before the runtime goes away, so an interrupted
    // request is not reported as a CA failure.
    mesh.shutdown().await;
    Ok(())
}
