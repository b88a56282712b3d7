//! The command line of mtls-proxy: the subcommands, their flags, and the `ProxyConfig` each
//! one makes. Values are checked as they are parsed (clap exits 2 naming the flag); what only
//! the whole configuration can tell is checked by `ProxyConfig::validate`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mtls::credentials::CredentialArgs;
use mtls::values;
use mtls_proxy::config::{parse_listen, parse_route, route, Located, Origin};
use mtls_proxy::policy::Policy;
use mtls_proxy::{Access, Destination, InboundConfig, LimitSettings, ProxyConfig};

const EXAMPLES: &str = "\
Examples:
  # A local app on 127.0.0.1:8080, reachable over mTLS on 9443 by one caller:
  mtls-proxy inbound --listen 0.0.0.0:9443 --to 127.0.0.1:8080 \\
      --allow-id spiffe://mesh.local/service/web \\
      --ca-url https://ca.internal:8443 --ca-fingerprint <sha256> \\
      --spiffe-id spiffe://mesh.local/service/api --join-token-file api.token

  # Local apps call a remote mesh service through 127.0.0.1:15001:
  mtls-proxy outbound --listen 127.0.0.1:15001 --to api.internal:9443 \\
      --server-id spiffe://mesh.local/service/api --cert me.crt --key me.key --ca-cert ca.crt

  # Both directions from one file; validate it first:
  mtls-proxy check --config proxy.toml && mtls-proxy run --config proxy.toml

docs/proxy.md has the configuration reference and recipes.";

/// The mTLS sidecar: put a service you did not write into the mesh (inbound), and let local
/// applications call mesh services in plaintext (outbound). TLS 1.3 only, certificates
/// rotated and revocation followed without restarts.
#[derive(Parser, Debug)]
#[command(name = "mtls-proxy", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Runtime worker threads, at least 1 (default: one per core). One thread pins the proxy
    /// to one core's worth of CPU (scripts/bench-proxies.sh --pin).
    #[arg(long, global = true, value_name = "N", value_parser = mtls::values::count_usize)]
    pub threads: Option<usize>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// mTLS in, plaintext to a local application (bytes copied both ways, any protocol).
    Inbound(InboundArgs),
    /// Plaintext from local applications on loopback, mTLS to remote services.
    Outbound(OutboundArgs),
    /// Both directions from a configuration file ([inbound], [[route]], [credentials]).
    Run(FileArgs),
    /// Validate a configuration file (keys, values, files, credentials) without starting.
    Check(FileArgs),
}

#[derive(Args, Debug)]
pub struct FileArgs {
    /// The TOML configuration file (docs/proxy.md).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct InboundArgs {
    /// Address callers connect to with mTLS (port 0 picks a free port; the real one is
    /// printed).
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub listen: SocketAddr,

    /// The local application, HOST:PORT (plaintext).
    #[arg(long, value_name = "HOST:PORT", value_parser = Destination::parse)]
    pub to: Destination,

    /// Allow only these callers (exact SPIFFE ID or a prefix ending in /*); others are closed
    /// after the handshake and never reach the application. Repeatable. Default: every
    /// verified caller of this trust domain. A caller of a federated trust domain is admitted
    /// only when named here (or in the --policy file).
    #[arg(long = "allow-id", value_name = "ID", value_parser = parse_allow_id, conflicts_with = "policy")]
    pub allow_id: Vec<String>,

    /// A TOML policy file (`allow = [...]`, and `[[path]]` rules in --http mode), re-read
    /// when it changes; a change that does not parse is refused and logged, and the previous
    /// policy stays.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// HTTP mode (HTTP/1.1 and h2 from callers, HTTP/1.1 to the app): each request is checked
    /// against the policy and forwarded with the verified caller in X-Client-Spiffe-Id and
    /// X-Forwarded-Client-Cert (the client's own headers of those names are removed first).
    /// Default: L4, bytes copied both ways.
    #[arg(long)]
    pub http: bool,

    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub creds: CredentialArgs,
}

#[derive(Args, Debug)]
pub struct OutboundArgs {
    /// Loopback address local applications connect to (with --to and --server-id).
    #[arg(long, value_name = "ADDR", requires_all = ["to", "server_id"])]
    pub listen: Option<String>,

    /// The remote mesh service, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", requires = "listen")]
    pub to: Option<String>,

    /// The SPIFFE ID the remote service must present.
    #[arg(long, value_name = "ID", requires = "listen")]
    pub server_id: Option<String>,

    /// The DNS name or IP address the remote certificate must carry (default: the host of
    /// --to).
    #[arg(long, value_name = "NAME", requires = "listen")]
    pub server_name: Option<String>,

    /// More routes: LISTEN=HOST:PORT,SPIFFE-ID[,SERVER-NAME]. Repeatable.
    #[arg(long, value_name = "ROUTE")]
    pub route: Vec<String>,

    /// Allow outbound listeners on non-loopback addresses. They take plaintext and act with
    /// this workload's identity: anyone who can reach them speaks as this workload.
    #[arg(long)]
    pub allow_non_loopback: bool,

    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub creds: CredentialArgs,
}

/// The admin listener and connection limits of both directions.
#[derive(Args, Debug)]
#[command(next_help_heading = "Connection limits")]
pub struct CommonArgs {
    /// Plain-HTTP admin listener for /healthz, /readyz and /metrics, on a loopback address
    /// unless --admin-allow-remote is given.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub admin_listen: Option<SocketAddr>,

    /// Let --admin-listen bind a non-loopback address (Kubernetes probes, a Prometheus
    /// scrape): the admin endpoint has no authentication, so anyone who can reach it sees
    /// health and metrics (no keys, no certificates; a warning is logged at start).
    #[arg(long, requires = "admin_listen")]
    pub admin_allow_remote: bool,

    /// Connections open at once per listener (at least 1); more wait in the accept queue.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = values::count_usize)]
    pub max_connections: usize,

    /// Inbound connections one caller identity may hold (at least 1); the excess is closed
    /// after the handshake.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = values::count_usize)]
    pub max_connections_per_identity: usize,

    /// Close a connection after no byte moved either way for this long (at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = values::duration)]
    pub idle_timeout: Duration,

    /// Connecting to the application or remote service must finish within this time.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = values::duration)]
    pub connect_timeout: Duration,

    /// A caller's TLS handshake must finish within this time.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = values::duration)]
    pub handshake_timeout: Duration,

    /// On SIGTERM or SIGINT: stop accepting, let open connections finish for up to this long
    /// (at least 1s), then exit 0.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = values::duration)]
    pub drain: Duration,
}

fn parse_allow_id(s: &str) -> Result<String, String> {
    mesh::AllowList::check_pattern(s).map_err(|e| e.to_string())
}

impl CommonArgs {
    fn limits(&self) -> LimitSettings {
        LimitSettings {
            max_connections: self.max_connections,
            max_connections_per_identity: self.max_connections_per_identity,
            idle_timeout: self.idle_timeout,
            connect_timeout: self.connect_timeout,
            handshake_timeout: self.handshake_timeout,
            drain: self.drain,
            ..LimitSettings::default()
        }
    }

    fn admin_allow_remote(&self) -> Located<bool> {
        Located::new(
            self.admin_allow_remote,
            Origin::flag("--admin-allow-remote"),
        )
    }

    fn admin(&self) -> Option<Located<SocketAddr>> {
        self.admin_listen
            .map(|a| Located::new(a, Origin::flag("--admin-listen")))
    }
}

impl InboundArgs {
    /// The configuration these flags describe.
    pub fn config(&self) -> Result<ProxyConfig, String> {
        let access = match (&self.policy, self.allow_id.is_empty()) {
            (Some(file), _) => {
                Access::PolicyFile(Located::new(file.clone(), Origin::flag("--policy")))
            }
            (None, false) => Access::AllowIds(Located::new(
                Policy::from_patterns(&self.allow_id).map_err(|e| format!("--allow-id: {e}"))?,
                Origin::flag("--allow-id"),
            )),
            (None, true) => Access::Everyone,
        };
        Ok(ProxyConfig {
            inbound: Some(InboundConfig {
                listen: Located::new(self.listen, Origin::flag("--listen")),
                to: Located::new(self.to.clone(), Origin::flag("--to")),
                http: self.http,
                access,
            }),
            routes: Vec::new(),
            allow_non_loopback: Located::new(false, Origin::flag("--allow-non-loopback")),
            admin_listen: self.common.admin(),
            admin_allow_remote: self.common.admin_allow_remote(),
            limits: self.common.limits(),
        })
    }
}

impl OutboundArgs {
    /// The configuration these flags describe.
    pub fn config(&self) -> Result<ProxyConfig, String> {
        let mut routes = Vec::new();
        if let (Some(listen), Some(to), Some(id)) = (&self.listen, &self.to, &self.server_id) {
            routes.push(
                route(
                    listen,
                    to,
                    id,
                    self.server_name.as_deref(),
                    Origin::flag("--listen"),
                )
                .map_err(|e| format!("--listen/--to/--server-id: {e}"))?,
            );
        }
        for r in &self.route {
            routes.push(
                parse_route(r, Origin::flag("--route")).map_err(|e| format!("--route: {e}"))?,
            );
        }
        if routes.is_empty() {
            return Err(
                "no route: give --listen ADDR --to HOST:PORT --server-id ID, or --route".into(),
            );
        }
        Ok(ProxyConfig {
            inbound: None,
            routes,
            allow_non_loopback: Located::new(
                self.allow_non_loopback,
                Origin::flag("--allow-non-loopback"),
            ),
            admin_listen: self.common.admin(),
            admin_allow_remote: self.common.admin_allow_remote(),
            limits: self.common.limits(),
        })
    }
}
