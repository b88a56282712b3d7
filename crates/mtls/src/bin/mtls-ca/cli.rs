//! Command-line interface of `mtls-ca`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mtls::logging::LogFormat;

#[derive(Parser)]
#[command(
    name = "mtls-ca",
    version,
    about = "The mtls-mesh certificate authority: short-lived ECDSA certificates with SPIFFE IDs.",
    long_about = "The mtls-mesh certificate authority.\n\n\
Without a subcommand it serves the HTTPS API (TLS 1.3 only). The first start creates a P-384 root \
in --data-dir and prints its SHA-256 fingerprint; services pin it with --ca-fingerprint. The \
subcommands work on the same data directory, also while the CA runs.",
    after_help = "Examples:\n  \
mtls-ca --data-dir ./ca --port 8443 --cert-duration 1h\n  \
T=$(mtls-ca --data-dir ./ca token --spiffe-id spiffe://mesh.local/service/api --dns localhost --ip 127.0.0.1)\n  \
mtls-ca --data-dir ./ca list\n  \
mtls-ca --data-dir ./ca revoke --serial 4f1a... --reason keyCompromise\n  \
mtls-ca --data-dir ./ca audit verify\n\n\
Exit codes: 0 success, 1 check failed (audit verify), 2 usage or runtime error."
)]
pub struct Cli {
    /// Directory holding root.crt, root.key (0600) and ca.db.
    #[arg(
        long,
        global = true,
        default_value = "./ca-data",
        env = "MTLS_CA_DATA_DIR"
    )]
    pub data_dir: PathBuf,

    /// Log format on stderr (filter with RUST_LOG, e.g. RUST_LOG=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,

    /// Port to listen on (replaces the port of --listen).
    #[arg(long)]
    pub port: Option<u16>,

    /// Default lifetime of issued certificates.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub cert_duration: time::Duration,

    /// Longest lifetime a request may ask for; longer requests are clamped to it.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub max_duration: time::Duration,

    /// The one trust domain this CA issues for.
    #[arg(long, default_value = "mesh.local")]
    pub trust_domain: String,

    /// SPIFFE ID allowed to revoke any certificate and list all of them.
    #[arg(long)]
    pub admin_id: Option<String>,

    /// Extra DNS names for the CA's own API certificate (localhost is always included).
    #[arg(long = "dns")]
    pub dns: Vec<String>,

    /// Extra IP addresses for the CA's own API certificate (127.0.0.1 and ::1 are always included).
    #[arg(long = "ip")]
    pub ips: Vec<IpAddr>,

    /// Serve from an existing root certificate (e.g. made by scripts/gen-root-ca.sh) ...
    #[arg(long, requires = "root_key")]
    pub root_cert: Option<PathBuf>,

    /// ... and its private key. A key that does not match the certificate is refused.
    #[arg(long, requires = "root_cert")]
    pub root_key: Option<PathBuf>,

    /// Additional trusted roots published in /api/v1/bundle (for root rotation overlap).
    #[arg(long = "bundle-extra")]
    pub bundle_extra: Vec<PathBuf>,

    /// How long each CRL is valid: nextUpdate = thisUpdate + this. The CRL is re-signed once
    /// half of it has passed (and after every revocation). Services treat a CRL past nextUpdate
    /// as stale (readiness degraded) and fail closed after their --crl-max-staleness. Minimum 2s.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub crl_validity: time::Duration,

    /// Connections open at once, handshaking ones included; more wait in the accept queue
    /// (protects memory and file descriptors against floods).
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub max_connections: usize,

    /// Connections one source IP address may hold; the excess is closed at once, never
    /// queued. 0: no per-source limit (for example behind a proxy that connects from one
    /// address).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_connections_per_source: usize,

    /// Connection slots only clients with a certificate may use (renewals, admin calls);
    /// clients without one (enrollment, CRL and bundle fetches, /healthz) share the rest.
    /// Default: a quarter of --max-connections.
    #[arg(long, value_name = "N")]
    pub authenticated_reserve: Option<usize>,

    /// Close a connection that has had no request in flight for this long (HTTP/1 keep-alive
    /// and HTTP/2 alike; HTTP/2 PING frames do not count as activity).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_std_duration)]
    pub idle_timeout: std::time::Duration,

    /// An HTTP/1 request header must be complete within this time of its first byte.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_std_duration)]
    pub header_timeout: std::time::Duration,

    /// A request's body and handling must finish within this time; slower ones get 408 and
    /// their connection is closed.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_std_duration)]
    pub request_timeout: std::time::Duration,

    /// On SIGTERM or SIGINT: stop accepting, close idle connections, let requests in flight
    /// finish for up to this long, then exit 0.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_std_duration)]
    pub drain: std::time::Duration,

    /// NotBefore backdating for clock skew (capped at a tenth of each lifetime).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub backdate: time::Duration,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a one-time join token; prints only the token on stdout.
    #[command(
        after_help = "Example:\n  T=$(mtls-ca --data-dir ./ca token --spiffe-id spiffe://mesh.local/service/api --dns localhost --ip 127.0.0.1 --ttl 10m)"
    )]
    Token {
        /// The SPIFFE ID the token authorises.
        #[arg(long)]
        spiffe_id: String,
        /// DNS SAN the certificate may carry (repeatable).
        #[arg(long = "dns")]
        dns: Vec<String>,
        /// IP SAN the certificate may carry (repeatable).
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
        /// How long the token stays redeemable (at most 7d).
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        ttl: time::Duration,
    },
    /// Revoke a certificate by serial (with every certificate renewed from it), or every live
    /// certificate of an identity; the running CA's next CRL lists them. Prints the serials
    /// revoked, one per line.
    #[command(
        after_help = "Examples:\n  mtls-ca --data-dir ./ca revoke --serial 4f:1a:... --reason keyCompromise\n  \
mtls-ca --data-dir ./ca revoke --spiffe-id spiffe://mesh.local/service/api --reason keyCompromise"
    )]
    #[command(group(clap::ArgGroup::new("target").required(true).args(["serial", "spiffe_id"])))]
    Revoke {
        /// Serial in hex (colons and case are ignored).
        #[arg(long)]
        serial: Option<String>,
        /// Revoke every live (unexpired, unrevoked) certificate of this SPIFFE ID.
        #[arg(long)]
        spiffe_id: Option<String>,
        /// RFC 5280 reason: unspecified, keyCompromise, caCompromise, affiliationChanged,
        /// superseded, cessationOfOperation, certificateHold, privilegeWithdrawn.
        #[arg(long)]
        reason: Option<String>,
    },
    /// List issued certificates with their status.
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
    /// Audit log operations.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

#[derive(Subcommand)]
pub enum AuditAction {
    /// Recompute the hash chain and replay it against the tables; exit 1 and name every entry
    /// or row that disagrees.
    #[command(
        after_help = "Example:\n  mtls-ca --data-dir ./ca audit verify --expect-head \"$(cat last-published-head)\""
    )]
    Verify {
        /// A head published earlier (`mtls-ca audit head`): fail unless the chain still holds
        /// that entry with that hash (catches a cut or rewritten tail).
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
    },
    /// Print the chain's last entry as SEQ:HASH; publish it elsewhere to pin the log.
    Head {
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

pub fn parse_duration(s: &str) -> Result<time::Duration, String> {
    let d =
        humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 90s, 10m, 1h, 7d)"))?;
    time::Duration::try_from(d).map_err(|_| "duration too large".to_string())
}

/// A duration for the connection-layer flags (`std::time::Duration`, what tokio takes).
pub fn parse_std_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 90s, 10m)"))
}
