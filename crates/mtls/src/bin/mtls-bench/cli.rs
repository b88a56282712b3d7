//! Command line of `mtls-bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use mtls_bench::{Mode, Options};
use wire::tls::KxGroup;

#[derive(Parser)]
#[command(
    name = "mtls-bench",
    version,
    about = "Bounded load generator for mTLS servers (loopback targets only) and for an \
             mtls-agent's Workload API socket.",
    after_help = "Examples:\n  \
mtls-bench https://127.0.0.1:9443/api/status --mode new --concurrency 32 --duration 10s \\\n      \
--cert client.crt --key client.key --ca-cert root.crt\n  \
mtls-bench https://127.0.0.1:9443/api/status --mode keepalive --concurrency 64 --duration 10s --json ...\n  \
mtls-bench https://127.0.0.1:8443/api/v1/renew --mode ca-renew --concurrency 16 --duration 10s ...\n  \
mtls-bench http://127.0.0.1:8080/ --rate 5000 --expect ok ... (paced, plaintext baseline)\n  \
mtls-bench unix:///run/mtls-mesh/agent.sock --mode workload-fetch --concurrency 100 --duration 10s\n\n\
Every response must be 200 and name the caller (the client certificate's SPIFFE ID, or --expect);\n\
every Workload API answer must carry an SVID with a key (one for the SPIFFE ID --expect, if given).\n\
Exit codes: 0 no errors, 1 some requests failed, 2 usage or setup error (a setting out of range\n\
is refused at start, naming the option and the accepted range)."
)]
pub struct Args {
    /// URL to request: https:// (mTLS) or http:// (plaintext, e.g. a direct baseline; the
    /// certificate options are then still read but not used); its host must be a loopback
    /// address or `localhost`. With --mode workload-fetch: the agent's socket,
    /// unix:///PATH (e.g. unix:///run/mtls-mesh/agent.sock).
    pub target: String,

    #[arg(long, value_enum, default_value_t = ModeArg::Keepalive)]
    pub mode: ModeArg,

    /// Parallel connections (keepalive) or parallel connect-request-close loops (new); at
    /// least 1.
    #[arg(long, default_value_t = 16, value_parser = mtls::values::count_usize)]
    pub concurrency: usize,

    /// How long to run: 1s to 10m (load runs are bounded).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Stop after this many requests in total (at least 1), if reached before --duration.
    #[arg(long, value_parser = mtls::values::count)]
    pub requests: Option<u64>,

    /// Requests per second in total (at least 1), spread evenly over the connections; latency
    /// counts from when each request was due (open loop). Default: as fast as the server answers.
    #[arg(long, value_parser = mtls::values::count)]
    pub rate: Option<u64>,

    /// Client certificate (PEM); required by every mode but workload-fetch.
    #[arg(long)]
    pub cert: Option<PathBuf>,

    /// Client private key (PEM); required by every mode but workload-fetch.
    #[arg(long)]
    pub key: Option<PathBuf>,

    /// Roots that sign the server's certificate (PEM); required by every mode but
    /// workload-fetch.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,

    /// Server name to verify (default: the URL's host).
    #[arg(long)]
    pub servername: Option<String>,

    /// Key exchange groups offered, in order: secp384r1, secp521r1, x25519, x25519mlkem768, secp256r1.
    #[arg(long, value_delimiter = ',', default_value = "secp384r1,secp521r1", value_parser = parse_group)]
    pub groups: Vec<KxGroup>,

    /// Text every response body must contain (default: the client certificate's SPIFFE ID;
    /// in ca-sign mode, the issued certificate's serial field). In workload-fetch mode: the
    /// SPIFFE ID one of the fetched SVIDs must have (default: any).
    #[arg(long)]
    pub expect: Option<String>,

    /// ca-sign mode: a file of `TOKEN SPIFFE-ID` lines (join tokens of the CA), one redeemed
    /// per request; the run stops when they are used up.
    #[arg(long)]
    pub tokens: Option<PathBuf>,

    /// Runtime worker threads, at least 1 (default: all cores).
    #[arg(long, value_parser = mtls::values::count_usize)]
    pub threads: Option<usize>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,

    /// A label for the report (e.g. the server's name).
    #[arg(long, default_value = "")]
    pub label: String,
}

/// `--mode`; the doc comments are the help text (the same as `mtls_bench::Mode`'s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// A full TLS handshake per request: connect, handshake, GET, read, close.
    New,
    /// Persistent connections, requests back to back.
    Keepalive,
    /// POST /api/v1/renew to an mtls-ca with a pre-made CSR per request (CA issuance load).
    CaRenew,
    /// POST /api/v1/sign to an mtls-ca, one join token from --tokens per request with a
    /// pre-made CSR (durable first issuances; no client certificate presented).
    CaSign,
    /// Open --concurrency connections, make one request on each, then hold them all idle until
    /// --duration ends (for measuring the server's memory per connection).
    Hold,
    /// FetchX509SVID on an mtls-agent's socket (target unix:///PATH): --concurrency workloads,
    /// each on its own connection, open the stream, read the first message (the cached SVIDs)
    /// and close it, again and again. No TLS options.
    WorkloadFetch,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::New => Mode::New,
            ModeArg::Keepalive => Mode::Keepalive,
            ModeArg::CaRenew => Mode::CaRenew,
            ModeArg::CaSign => Mode::CaSign,
            ModeArg::Hold => Mode::Hold,
            ModeArg::WorkloadFetch => Mode::WorkloadFetch,
        }
    }
}

impl Args {
    /// The run the flags describe. (Destructured, so a new flag cannot be forgotten here.)
    pub fn options(self) -> Options {
        let Args {
            target,
            mode,
            concurrency,
            duration,
            requests,
            rate,
            cert,
            key,
            ca_cert,
            servername,
            groups,
            expect,
            tokens,
            threads,
            json,
            quiet,
            label,
        } = self;
        Options {
            target,
            mode: mode.into(),
            concurrency,
            duration,
            requests,
            rate,
            cert,
            key,
            ca_cert,
            servername,
            groups,
            expect,
            tokens,
            threads,
            json,
            quiet,
            label,
        }
    }
}

/// `--duration`: at least 1 s (`pki::duration`, the one parser with a floor), at most 10 min.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = mtls::values::duration(s).map_err(|e| format!("{e}; the range is 1s to 10m"))?;
    if d > Duration::from_secs(600) {
        return Err(format!(
            "{s:?} is too long: at most 10m (load runs are bounded); the range is 1s to 10m"
        ));
    }
    Ok(d)
}

fn parse_group(s: &str) -> Result<KxGroup, String> {
    s.parse()
        .map_err(|e: wire::tls::TlsConfigError| e.to_string())
}
