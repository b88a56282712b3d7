//! mtls-server: an HTTPS service that requires and verifies client certificates.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mesh::credentials::Role;
use mesh::server::{self, admin, AllowList, ServerShared};
use mesh::setup::Services;
use mtls::credentials::CredentialArgs;
use mtls::report;

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

Test it:
  curl --cacert ca.crt --cert client.crt --key client.key https://localhost:9443/api/status
  openssl s_client -connect localhost:9443 -CAfile ca.crt -cert client.crt -key client.key

Endpoints: GET /api/status -> {\"status\":\"healthy\",\"caller\":\"<SPIFFE ID>\",\"client_key\":\"<hex>\"};
POST /api/echo echoes the body with the server time and the client address.
Admin (plain HTTP, loopback only): /healthz, /readyz, /metrics.";

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
    /// Repeatable. Default: every verified caller.
    #[arg(long = "allow-id", value_name = "ID")]
    allow_id: Vec<String>,

    /// Plain-HTTP admin listener (loopback only) for /healthz, /readyz and /metrics.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,

    #[command(flatten)]
    connections: ConnectionArgs,

    #[command(flatten)]
    creds: CredentialArgs,
}

/// Limits that keep one caller, a slow caller or idle connections from starving the others.
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Connection limits")]
struct ConnectionArgs {
    /// Connections open at once, handshaking ones included; more wait in the accept queue.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_connections: usize,

    /// Connections one caller identity (SPIFFE ID, else subject) may hold; the excess gets a
    /// 429 JSON error naming the limit and is closed.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_connections_per_identity: usize,

    /// Close a connection that has had no request in flight for this long (HTTP/1 keep-alive
    /// and HTTP/2 alike; HTTP/2 PING frames do not count as activity).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,

    /// An HTTP/1 request header must be complete within this time of its first byte.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    header_timeout: Duration,

    /// A request's body and handling must finish within this time; slower ones get 408 and
    /// their connection is closed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    request_timeout: Duration,

    /// On SIGTERM or SIGINT: stop accepting, close idle connections, let requests in flight
    /// finish for up to this long, then exit 0.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    drain: Duration,
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
            max_connections,
            // Every peer has a verified certificate (client authentication is mandatory), so
            // there is nothing to keep room from and no anonymous source to count.
            max_per_source: None,
            authenticated_reserve: 0,
            max_per_identity: Some(self.max_connections_per_identity),
            idle_timeout: self.idle_timeout,
            header_timeout: self.header_timeout,
            request_timeout: self.request_timeout,
            drain: self.drain,
            ..wire::Limits::default()
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
    let args = Args::parse();
    mtls::logging::init(args.creds.log_format, "info");
    if let Err(e) = run(args).await {
        eprintln!("mtls-server: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let allow = AllowList::parse(&args.allow_id)?;
    let limits = args.connections.limits()?;
    let services = Services::start(&args.creds.options(), Role::Server)
        .await
        .context("obtaining the server certificate")?;
    let current = services.identity.current();
    report::print(&report::certificate_lines("SERVER", &current));
    if let Some(trust) = &services.trust {
        println!(
            "[SERVER] Trusted CA: {}",
            trust.roots().subjects().join("; ")
        );
    }
    if let Some(next) = services.next_rotation {
        println!("[SERVER] Next rotation: {}", mesh::timefmt::rfc3339(next));
    }
    let tls = services.policy.server_config(
        services.client_cert_verifier()?,
        services.identity.resolver(),
    )?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr()?;
    let shared = Arc::new(ServerShared {
        tls: Arc::new(tls),
        identity: services.identity.clone(),
        trust: services.trust.clone(),
        allow,
        events: services.events.clone(),
        limits,
    });
    if let Some(addr) = args.admin_listen {
        let admin_listener = admin::bind(addr).await?;
        let admin_addr = admin_listener.local_addr()?;
        tokio::spawn(admin::serve(
            admin_listener,
            Arc::new(admin::AdminState {
                identity: services.identity.clone(),
                trust: services.trust.clone(),
                events: services.events.clone(),
            }),
        ));
        println!("admin listening on http://{admin_addr}");
    }
    println!(
        "[SERVER] mode: {}; client certificate required; TLS 1.3; groups: {}",
        services.mode.as_str(),
        services.policy.group_names().join(", ")
    );
    println!("listening on https://{local}");
    tracing::info!(event = "listening", addr = %local, mode = services.mode.as_str(), "listening on https://{local}");
    let shutdown = async {
        mtls::shutdown::signal().await;
        tracing::info!(event = "shutdown", "shutting down");
    };
    // Returns after the drain: requests in flight have finished or been cut.
    server::serve(listener, shared, shutdown).await;
    // Stop the refresher and rotation before the runtime goes away, so an interrupted
    // request is not reported as a CA failure.
    services.shutdown().await;
    Ok(())
}
