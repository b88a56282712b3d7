//! workload-fetch mode: cached X.509-SVID fetches over an mtls-agent's Workload API socket
//! (docs/performance.md, "Workload API"). Each worker is one workload: a connection of the
//! project's one Workload API client (`workload::WorkloadClient`, the one `mtls-agent write`
//! and `--workload-api` use), on which it opens the `FetchX509SVID` stream, reads the first
//! message (what the agent has cached for this process) and closes the stream, again and again.
//! A request is one such open-read-close, and the message is checked: at least one SVID, each
//! with a certificate and a key, one of them for `--expect` when given.

// A load generator measures real time: latencies and the run's deadline are wall-clock facts.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use workload::proto::X509svidResponse;
use workload::{ClientError, WorkloadClient};

use crate::options::Options;
use crate::stats::Stats;
use crate::worker::{next_turn, pacing, record, Counters};

/// Nothing a single fetch (or connect) may take longer than this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What every worker of a run shares.
pub struct Setup {
    socket: PathBuf,
    /// The SPIFFE ID one of the SVIDs must have; None: any.
    expect: Option<String>,
}

impl Setup {
    /// The run `args` describes: the target is the agent's socket as `unix:///PATH`; the TLS
    /// options do not apply and are refused, so a command line means what it says.
    pub fn new(args: &Options) -> anyhow::Result<Setup> {
        let socket = workload::address::parse_endpoint(&args.target)
            .map_err(|e| anyhow::anyhow!("--mode workload-fetch: {e}"))?;
        for (flag, given) in [
            ("--cert", args.cert.is_some()),
            ("--key", args.key.is_some()),
            ("--ca-cert", args.ca_cert.is_some()),
            ("--servername", args.servername.is_some()),
            ("--tokens", args.tokens.is_some()),
        ] {
            if given {
                anyhow::bail!(
                    "{flag} does not apply to --mode workload-fetch (the agent attests the \
                     caller by its Unix socket credentials; no TLS is involved)"
                );
            }
        }
        Ok(Setup {
            socket,
            expect: args.expect.clone().filter(|e| !e.is_empty()),
        })
    }

    /// Checks one message; the bytes of certificates, keys, bundles and CRL it carried.
    fn check(&self, message: Option<X509svidResponse>) -> Result<u64, String> {
        let message = message.ok_or("stream_ended")?;
        if message.svids.is_empty() {
            return Err("no_svid".into());
        }
        let mut bytes = message.crl.iter().map(|c| c.len() as u64).sum::<u64>();
        for svid in &message.svids {
            if svid.x509_svid.is_empty() || svid.x509_svid_key.is_empty() {
                return Err("empty_svid".into());
            }
            bytes += (svid.x509_svid.len() + svid.x509_svid_key.len() + svid.bundle.len()) as u64;
        }
        if let Some(id) = &self.expect {
            if !message.svids.iter().any(|s| &s.spiffe_id == id) {
                return Err("identity_mismatch".into());
            }
        }
        Ok(bytes)
    }

    /// One fetch on `client`: open the stream, read the first message, close the stream.
    async fn fetch(&self, client: &mut WorkloadClient) -> Result<u64, String> {
        let mut stream = client.x509_svids().await.map_err(kind)?;
        let message = stream.message().await.map_err(kind)?;
        self.check(message)
    }
}

/// Names an error by what a reader of the report can act on.
fn kind(e: ClientError) -> String {
    match e {
        ClientError::PermissionDenied(_) => "permission_denied".into(),
        ClientError::Status(status) => format!("status_{:?}", status.code()),
        ClientError::Connect { .. } => "connect".into(),
        other => format!("workload_api: {other}"),
    }
}

/// One workload's loop until `deadline`, `stop` or `limit` fetches in total.
#[allow(clippy::too_many_arguments)] // one worker's whole context; called from one place
pub async fn run(
    setup: Arc<Setup>,
    index: usize,
    workers: usize,
    rate: Option<u64>,
    deadline: Instant,
    limit: Option<u64>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> Stats {
    let mut stats = Stats::default();
    let mut client: Option<WorkloadClient> = None;
    let mut pace = pacing(rate, workers, index);
    loop {
        let due = next_turn(&mut pace).await;
        if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
            break;
        }
        let n = counters.attempted.fetch_add(1, Ordering::Relaxed);
        if limit.is_some_and(|l| n >= l) {
            break;
        }
        if client.is_none() {
            // A workload's connection is made once (counted as a handshake), as SPIFFE
            // libraries keep their channel; it is not part of a fetch's latency.
            match tokio::time::timeout(FETCH_TIMEOUT, WorkloadClient::connect(&setup.socket)).await
            {
                Ok(Ok(c)) => {
                    client = Some(c);
                    stats.handshakes += 1;
                }
                Ok(Err(e)) => {
                    stats.error(kind(e));
                    continue;
                }
                Err(_) => {
                    stats.error("timeout");
                    continue;
                }
            }
        }
        let started = due.unwrap_or_else(Instant::now);
        let attempt = match client.as_mut() {
            Some(c) => tokio::time::timeout(FETCH_TIMEOUT, setup.fetch(c)).await,
            None => Ok(Err("no connection".to_string())),
        };
        if !record(&mut stats, &counters, started, attempt) {
            client = None;
        }
    }
    stats
}
