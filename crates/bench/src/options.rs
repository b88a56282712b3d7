//! What a load run does: the values of `mtls-bench`'s flags (docs/performance.md), as plain
//! data.

use std::path::PathBuf;
use std::time::Duration;

use wire::tls::KxGroup;

/// One load run.
#[derive(Clone, Debug)]
pub struct Options {
    /// URL to request; its host must be a loopback address or `localhost`. In workload-fetch
    /// mode, the agent's socket as `unix:///PATH`.
    pub target: String,
    pub mode: Mode,
    /// Parallel connections (keepalive) or parallel connect-request-close loops (new).
    pub concurrency: usize,
    /// How long to run.
    pub duration: Duration,
    /// Stop after this many requests in total, if reached before `duration`.
    pub requests: Option<u64>,
    /// Requests per second in total, spread evenly over the connections (open loop: latency
    /// counts from when a request was due, so a server that falls behind shows it). None: as
    /// fast as the server answers.
    pub rate: Option<u64>,
    /// Client certificate (PEM); required by every mode but workload-fetch.
    pub cert: Option<PathBuf>,
    /// Client private key (PEM); required by every mode but workload-fetch.
    pub key: Option<PathBuf>,
    /// Roots that sign the server's certificate (PEM); required by every mode but
    /// workload-fetch.
    pub ca_cert: Option<PathBuf>,
    /// Server name to verify (default: the URL's host).
    pub servername: Option<String>,
    /// Key exchange groups offered, in order.
    pub groups: Vec<KxGroup>,
    /// Join tokens for ca-sign mode: a file of `TOKEN SPIFFE-ID` lines, one redeemed per
    /// request (the run stops when they are used up).
    pub tokens: Option<PathBuf>,
    /// Text every response body must contain (default: the client certificate's SPIFFE ID);
    /// in workload-fetch mode, the SPIFFE ID one of the fetched SVIDs must have (default: any).
    pub expect: Option<String>,
    /// Runtime worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Print the report as JSON.
    pub json: bool,
    /// No progress lines on stderr.
    pub quiet: bool,
    /// A label for the report (e.g. the server's name).
    pub label: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A full TLS handshake per request: connect, handshake, GET, read, close.
    New,
    /// Persistent connections, requests back to back.
    Keepalive,
    /// POST /api/v1/renew to an mtls-ca with a pre-made CSR per request (CA issuance load).
    CaRenew,
    /// POST /api/v1/sign to an mtls-ca, one join token from `--tokens` per request with a
    /// pre-made CSR: each request is a first issuance (token redemption, certificate record
    /// and audit entry), so it measures the CA's durable issuance rate. No client certificate
    /// is presented.
    CaSign,
    /// Open `concurrency` connections, make one request on each, then hold them all idle until
    /// `duration` ends (for measuring the server's memory per connection).
    Hold,
    /// `FetchX509SVID` over the Workload API socket of an mtls-agent (`unix:///PATH`): each of
    /// `concurrency` clients keeps one connection and repeatedly opens the stream and reads its
    /// first message (the agent's cached SVIDs), then closes the stream.
    WorkloadFetch,
}
