//! mtls-client: connects to an mTLS service, verifies it, and shows what happened.

use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use hyper::Method;
use mesh::{HttpsUrl, Mesh, MeshClient, Role};
use mtls::credentials::{parse_spiffe_id, CredentialArgs};
use mtls::{report, values};

const EXAMPLES: &str = "\
Examples:
  # Enrolled (the walk-through of README.md):
  mtls-client --ca-url https://localhost:8443 --ca-fingerprint <sha256 printed by mtls-ca> \\
      --spiffe-id spiffe://mesh.local/service/payment-worker --join-token-file worker.token \\
      --server https://localhost:9443 --server-id spiffe://mesh.local/service/api-server

  # Static files:
  mtls-client --cert pki/client.crt --key pki/client.key --ca-cert pki/ca.crt \\
      --server https://localhost:9443 --message 'Hello from mTLS client'

  # 100 requests on one connection, 200 ms apart (a new connection is opened only when our
  # certificate rotates or the server closes the connection):
  mtls-client ... --count 100 --interval 200ms

Logs go to stderr at level warn; RUST_LOG=info also shows rotations, CRL updates and readiness.

Exit status: 0 when every request got a 2xx answer; 1 otherwise, with the cause on stderr
(for example \"server rejected our certificate: revoked\"); 2 when a setting is refused at start
(the option named, with the accepted range).";

/// The client side of the mesh: presents its certificate, verifies the server's name (DNS/IP
/// SAN) and optionally its SPIFFE ID, prints the handshake details and the response.
#[derive(Parser, Debug)]
#[command(name = "mtls-client", version, after_help = EXAMPLES)]
struct Args {
    /// The service to call, https://host:port.
    #[arg(long, value_name = "URL", value_parser = parse_url)]
    server: HttpsUrl,

    /// Require the server's certificate to carry exactly this SPIFFE ID. Needed to call a
    /// server of a federated trust domain (`mtls-ca federation`): without it, such a server
    /// is refused.
    #[arg(long, value_name = "ID", value_parser = parse_spiffe_id)]
    server_id: Option<pki::SpiffeId>,

    /// POST this text to /api/echo (or to --path) instead of GET /api/status.
    #[arg(long, value_name = "TEXT")]
    message: Option<String>,

    /// The path to call (any mesh service's route), e.g. /hello; default /api/status, or
    /// /api/echo with --message.
    #[arg(long, value_name = "PATH", value_parser = parse_path)]
    path: Option<String>,

    /// Number of requests; 0 only obtains the certificate, prints it and exits (a check that
    /// enrollment works).
    #[arg(long, default_value_t = 1)]
    count: u64,

    /// Pause between requests (at least 10ms: it paces this client's own requests).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = values::request_interval)]
    interval: Duration,

    /// Give up on a connection or response after this long (at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = values::duration)]
    timeout: Duration,

    /// Print only a summary line per request (for long runs).
    #[arg(long)]
    quiet: bool,

    #[command(flatten)]
    creds: CredentialArgs,
}

fn parse_path(s: &str) -> Result<String, String> {
    if s.starts_with('/') && s.parse::<hyper::Uri>().is_ok() {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a path: give one starting with /, e.g. /api/status"
        ))
    }
}

fn parse_url(s: &str) -> Result<HttpsUrl, String> {
    HttpsUrl::parse(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() {
    let args: Args = mtls::manual::parse();
    mtls::logging::init(args.creds.log_format, "warn");
    // Settings that do not fit together are usage errors, refused before anything starts.
    let config = args.creds.config(Role::Client).unwrap_or_else(|conflict| {
        Args::command()
            .error(clap::error::ErrorKind::ArgumentConflict, conflict)
            .exit()
    });
    match run(args, config).await {
        Ok(0) => {}
        Ok(_) => std::process::exit(1),
        Err(e) => {
            eprintln!("mtls-client: error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Returns the number of failed requests.
async fn run(args: Args, config: mesh::ServiceConfig) -> anyhow::Result<u64> {
    let url = args.server.clone();
    let mesh = Mesh::start(config)
        .await
        .context("obtaining the client certificate")?;
    report::print(&report::certificate_lines("CLIENT", &mesh.credential()));
    let mut client = MeshClient::new(url.clone(), &mesh, args.server_id.clone(), args.timeout)?;
    let (method, default_path, body) = match &args.message {
        Some(m) => (
            Method::POST,
            "/api/echo",
            Some(("text/plain", m.clone().into_bytes())),
        ),
        None => (Method::GET, "/api/status", None),
    };
    let path = args.path.as_deref().unwrap_or(default_path);
    let mut failed = 0u64;
    for n in 1..=args.count {
        if n > 1 {
            tokio::time::sleep(args.interval).await;
        }
        let result = client.request(method.clone(), path, body.clone()).await;
        let own = mesh.credential();
        match result {
            Ok(exchange) => {
                if let Some(summary) = &exchange.new_connection {
                    if args.quiet {
                        let peer = summary.peer.as_ref();
                        println!(
                            "[CLIENT] connected: {} {} {} server={} server_serial={} own_serial={}",
                            summary.version,
                            summary.suite,
                            summary.group,
                            peer.and_then(|p| p.spiffe_id.clone()).unwrap_or_default(),
                            peer.map(|p| p.serial.clone()).unwrap_or_default(),
                            own.serial()
                        );
                    } else {
                        println!("[CLIENT] Connected to {url}");
                        report::print(&report::handshake_lines("CLIENT", summary, &own.identity()));
                    }
                }
                let status = exchange.response.status;
                let text = String::from_utf8_lossy(&exchange.response.body);
                if args.quiet {
                    println!(
                        "[CLIENT] request {n}/{}: {status} {}",
                        args.count,
                        text.trim()
                    );
                } else {
                    println!("[CLIENT] Request {n}/{}: {method} {path}", args.count);
                    println!("[CLIENT] Response: {status}");
                    println!("  Body: {}", text.trim());
                }
                if !status.is_success() {
                    eprintln!(
                        "mtls-client: request {n}: the server answered {status}: {}",
                        text.trim()
                    );
                    failed += 1;
                }
            }
            Err(e) => {
                eprintln!("mtls-client: request {n}: {e}");
                println!("[CLIENT] request {n}/{}: FAILED: {e}", args.count);
                failed += 1;
            }
        }
    }
    if args.count > 1 || failed > 0 {
        println!(
            "[CLIENT] {} request(s): {} ok, {failed} failed; {} connection(s) opened",
            args.count,
            args.count - failed,
            client.connections_opened
        );
    }
    drop(client);
    // Stop the background refresher and rotation before the runtime goes away: a refresh
    // torn down at exit is a cancellation, not a CA failure worth a warning.
    mesh.shutdown().await;
    Ok(failed)
}
