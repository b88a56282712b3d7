//! The request loops of each mode.

// A load generator measures real time: latencies and the run's deadline are wall-clock facts.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::options::{Mode, Options};
use crate::stats::Stats;
use crate::target::Target;

/// Nothing a single request does may take longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pre-made CSRs for ca-renew mode, so client-side key generation stays out of the measurement.
const CSR_POOL: usize = 64;

pub struct Setup {
    connector: TlsConnector,
    target: Target,
    server_name: ServerName<'static>,
    expect: String,
    mode: Mode,
    csr_bodies: Vec<Bytes>,
    /// ca-sign mode: per join token, its `Authorization` header value and the request body.
    sign_jobs: Vec<(String, Bytes)>,
    /// In hold mode, limits how many connections are being set up at once, so a slow server
    /// works through the queue instead of timing the tail out.
    ramp: Arc<tokio::sync::Semaphore>,
}

/// Connections set up in parallel in hold mode.
const HOLD_RAMP: usize = 64;

impl Setup {
    pub fn new(args: &Options, target: Target) -> anyhow::Result<Setup> {
        let needed = |path: &Option<std::path::PathBuf>, flag: &str| {
            path.clone()
                .with_context(|| format!("{flag} is required by every --mode but workload-fetch"))
        };
        let cert = needed(&args.cert, "--cert")?;
        let config = crate::tls::client_config(
            &cert,
            &needed(&args.key, "--key")?,
            &needed(&args.ca_cert, "--ca-cert")?,
            &args.groups,
            args.mode != Mode::CaSign,
        )?;
        let name = args
            .servername
            .clone()
            .unwrap_or_else(|| target.host.clone());
        let server_name = ServerName::try_from(name.clone())
            .with_context(|| format!("bad server name {name:?}"))?;
        let expect = match &args.expect {
            Some(e) => e.clone(),
            None if args.mode == Mode::CaSign => "\"serial\"".to_string(),
            None => {
                let certs = pki::pem::parse_certificates(&std::fs::read(&cert)?)?;
                let info =
                    pki::CertInfo::from_der(certs.first().context("no certificate in --cert")?)?;
                info.spiffe_id()
                    .context("the client certificate has no SPIFFE ID; pass --expect TEXT to check responses")?
                    .to_string()
            }
        };
        let mut csr_bodies = Vec::new();
        if matches!(args.mode, Mode::CaRenew | Mode::CaSign) {
            let params = rcgen::CertificateParams::new(Vec::<String>::new())?;
            for _ in 0..CSR_POOL {
                let key = pki::keys::generate(pki::Curve::P384)?;
                let csr = params.serialize_request(&key)?.pem()?;
                csr_bodies.push(Bytes::from(serde_json::to_vec(
                    &serde_json::json!({ "csr": csr }),
                )?));
            }
        }
        let sign_jobs = match (&args.tokens, args.mode) {
            (Some(path), Mode::CaSign) => sign_jobs(path)?,
            (None, Mode::CaSign) => anyhow::bail!("--mode ca-sign needs --tokens FILE"),
            (Some(_), _) => anyhow::bail!("--tokens is only for --mode ca-sign"),
            (None, _) => Vec::new(),
        };
        Ok(Setup {
            connector: TlsConnector::from(Arc::new(config)),
            target,
            server_name: server_name.to_owned(),
            expect,
            mode: args.mode,
            csr_bodies,
            sign_jobs,
            ramp: Arc::new(tokio::sync::Semaphore::new(HOLD_RAMP)),
        })
    }

    /// At most this many requests: the tokens in ca-sign mode (each redeems once), else
    /// `--requests`.
    pub fn request_limit(&self, requests: Option<u64>) -> Option<u64> {
        if self.mode != Mode::CaSign {
            return requests;
        }
        let tokens = self.sign_jobs.len() as u64;
        Some(requests.map_or(tokens, |r| r.min(tokens)))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp = TcpStream::connect(self.target.addr)
            .await
            .map_err(|e| format!("connect: {}", e.kind()))?;
        let _ = tcp.set_nodelay(true);
        if !self.target.tls {
            return http_over(tcp).await;
        }
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| classify_io(&e, "tls_handshake"))?;
        http_over(tls).await
    }

    fn request(&self, n: u64) -> Request<Full<Bytes>> {
        let builder = Request::builder()
            .uri(self.target.path.as_str())
            .header(hyper::header::HOST, self.target.host.as_str());
        let built = match self.mode {
            Mode::CaSign => {
                // The run's request limit is the number of tokens (`request_limit`).
                let (auth, body) = &self.sign_jobs[n as usize % self.sign_jobs.len().max(1)];
                builder
                    .method(Method::POST)
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .header(hyper::header::AUTHORIZATION, auth.as_str())
                    .body(Full::new(body.clone()))
            }
            Mode::CaRenew => builder
                .method(Method::POST)
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(
                    self.csr_bodies[n as usize % self.csr_bodies.len()].clone(),
                )),
            Mode::New => builder
                .method(Method::GET)
                .header(hyper::header::CONNECTION, "close")
                .body(Full::new(Bytes::new())),
            // Workload-fetch runs never reach here (crate::workload_fetch).
            Mode::Keepalive | Mode::Hold | Mode::WorkloadFetch => {
                builder.method(Method::GET).body(Full::new(Bytes::new()))
            }
        };
        // Method, URI path and header values come from a validated Target: cannot fail.
        built.unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
    }

    /// One request and its checked response; the number of body bytes received.
    async fn exchange(&self, sender: &mut SendRequest<Full<Bytes>>, n: u64) -> Result<u64, String> {
        sender
            .ready()
            .await
            .map_err(|e| classify(&e, "connection_closed"))?;
        let resp = sender
            .send_request(self.request(n))
            .await
            .map_err(|e| classify(&e, "http"))?;
        let status = resp.status();
        // Streamed frame by frame, so a large body (bulk runs) is counted, not kept; it is kept
        // only while the expected text has not been seen yet.
        let mut body = resp.into_body();
        let mut received = 0u64;
        let mut seen = Vec::new();
        let mut found = self.expect.is_empty();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| classify(&e, "http_body"))?;
            if let Ok(data) = frame.into_data() {
                received += data.len() as u64;
                if !found {
                    seen.extend_from_slice(&data);
                    found = contains(&seen, self.expect.as_bytes());
                }
            }
        }
        if status != hyper::StatusCode::OK {
            return Err(format!("status_{}", status.as_u16()));
        }
        if !found {
            return Err("identity_mismatch".into());
        }
        Ok(received)
    }
}

/// HTTP/1.1 over an established stream (TLS or plain); the connection task runs on its own.
async fn http_over<S>(io: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| classify(&e, "http_handshake"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Names an error by its TLS alert when there is one, since that is what differs between a
/// misconfigured client and an overloaded server.
fn classify(e: &(dyn std::error::Error + 'static), fallback: &str) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return tls_kind(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return classify_io(io, fallback);
        }
        cur = err.source();
    }
    fallback.to_string()
}

fn classify_io(e: &std::io::Error, fallback: &str) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls_kind(tls),
        None => format!("{fallback}: {}", e.kind()),
    }
}

fn tls_kind(e: &rustls::Error) -> String {
    match e {
        rustls::Error::AlertReceived(alert) => {
            format!("tls_alert_{}", wire::tls::alert_name(*alert))
        }
        other => format!("tls: {other}"),
    }
}

/// Shared progress counters of all workers.
#[derive(Default)]
pub struct Counters {
    pub attempted: AtomicU64,
    pub succeeded: AtomicU64,
}

async fn stop_or_deadline(stop: &AtomicBool, deadline: Instant) {
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Counts one request (its latency from `started`, or its error by kind); false when it failed,
/// so the caller drops its connection.
pub(crate) fn record(
    stats: &mut Stats,
    counters: &Counters,
    started: Instant,
    attempt: Result<Result<u64, String>, tokio::time::error::Elapsed>,
) -> bool {
    match attempt {
        Ok(Ok(bytes)) => {
            stats.ok(started.elapsed(), bytes);
            counters.succeeded.fetch_add(1, Ordering::Relaxed);
            true
        }
        Ok(Err(kind)) => {
            stats.error(kind);
            false
        }
        Err(_) => {
            stats.error("timeout");
            false
        }
    }
}

/// Waits for a paced worker's next turn (None when unpaced) and returns the instant its
/// latency counts from. Open loop: when the worker is already behind (its last request overran
/// the period), the request counts from when it was due, so the server's slowness is not hidden.
/// When it had to wait, it counts from when it woke: tokio's timer fires up to a millisecond
/// after the due time (1 ms resolution), and that lateness is the load generator's, not the
/// server's (counting it put a floor of about 1 ms under every paced percentile).
pub(crate) async fn next_turn(pace: &mut Option<tokio::time::Interval>) -> Option<Instant> {
    let p = pace.as_mut()?;
    let asked = tokio::time::Instant::now();
    let due = p.tick().await;
    let from = if due > asked {
        tokio::time::Instant::now()
    } else {
        due
    };
    Some(from.into_std())
}

/// When each request of a paced worker is due: `rate` requests/s over all `workers`, this
/// worker offset by its share of the period so the workers do not fire together.
pub(crate) fn pacing(
    rate: Option<u64>,
    workers: usize,
    index: usize,
) -> Option<tokio::time::Interval> {
    let rate = rate?.max(1);
    let period = Duration::from_secs_f64(workers.max(1) as f64 / rate as f64);
    let offset = period.mul_f64(index as f64 / workers.max(1) as f64);
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    // Open loop: requests that fell behind are sent at once and their wait counts as latency.
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    Some(interval)
}

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
    let done = &counters.attempted;
    let mut stats = Stats::default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    if rate.is_some() && setup.mode == Mode::Keepalive {
        // A paced keep-alive run measures requests, not the handshakes that open the
        // connections: they are made before the clock starts (a failure is retried in the loop).
        match tokio::time::timeout(REQUEST_TIMEOUT, setup.connect()).await {
            Ok(Ok(s)) => {
                sender = Some(s);
                stats.handshakes += 1;
            }
            Ok(Err(kind)) => stats.error(kind),
            Err(_) => stats.error("timeout"),
        }
    }
    let mut pace = pacing(rate, workers, index);
    loop {
        let due = next_turn(&mut pace).await;
        if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
            break;
        }
        let n = done.fetch_add(1, Ordering::Relaxed);
        if limit.is_some_and(|l| n >= l) {
            break;
        }
        let permit = if setup.mode == Mode::Hold {
            setup.ramp.clone().acquire_owned().await.ok()
        } else {
            None
        };
        let started = due.unwrap_or_else(Instant::now);
        let attempt = tokio::time::timeout(REQUEST_TIMEOUT, async {
            if setup.mode == Mode::New || sender.is_none() {
                sender = Some(setup.connect().await?);
                stats.handshakes += 1;
            }
            match sender.as_mut() {
                Some(s) => setup.exchange(s, n).await,
                None => Err("no connection".to_string()),
            }
        })
        .await;
        drop(permit);
        if !record(&mut stats, &counters, started, attempt) {
            sender = None;
        }
        if setup.mode == Mode::New {
            sender = None;
        }
        if setup.mode == Mode::Hold {
            // One request proves the connection works; then it just stays open.
            if sender.is_some() {
                stop_or_deadline(&stop, deadline).await;
            }
            break;
        }
    }
    drop(sender);
    stats
}

/// The requests of a ca-sign run: for each `TOKEN SPIFFE-ID` line of `path`, a bearer header
/// and a sign body with a CSR of a fresh P-384 key (made here, outside the measurement).
fn sign_jobs(path: &std::path::Path) -> anyhow::Result<Vec<(String, Bytes)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the tokens file {}", path.display()))?;
    let params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    let mut jobs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(token), Some(id), None) = (fields.next(), fields.next(), fields.next()) else {
            anyhow::bail!(
                "{} line {}: expected `TOKEN SPIFFE-ID`",
                path.display(),
                number + 1
            );
        };
        let key = pki::keys::generate(pki::Curve::P384)?;
        let csr = params.serialize_request(&key)?.pem()?;
        let body = serde_json::to_vec(&serde_json::json!({ "csr": csr, "requested_id": id }))?;
        jobs.push((format!("Bearer {token}"), Bytes::from(body)));
    }
    if jobs.is_empty() {
        anyhow::bail!("{}: no tokens in the file", path.display());
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On schedule, a paced request counts from when its worker woke; once the worker is
    /// behind (its previous request overran the period), from when it was due.
    #[tokio::test(start_paused = true)]
    async fn a_paced_request_counts_from_its_wake_on_schedule_and_from_its_due_time_when_behind() {
        let mut pace = pacing(Some(10), 1, 0); // one request per 100 ms
        let first = next_turn(&mut pace).await.expect("paced");
        // The next turn is due 100 ms later, but the timer fires 50 ms late (as tokio's
        // millisecond timer can): that lateness is the load generator's, so it is not counted.
        let waiting = tokio::spawn(async move {
            let turn = next_turn(&mut pace).await;
            (turn, pace)
        });
        tokio::task::yield_now().await; // the turn now waits on its timer
        tokio::time::advance(Duration::from_millis(150)).await;
        let (on_time, mut pace) = waiting.await.expect("the waiting turn");
        let on_time = on_time.expect("paced");
        assert_eq!(
            on_time - first,
            Duration::from_millis(150),
            "counted from the wake"
        );

        // The request sent then takes 250 ms: the next two turns are already past.
        tokio::time::advance(Duration::from_millis(250)).await;
        let late = next_turn(&mut pace).await.expect("paced");
        assert_eq!(
            late - first,
            Duration::from_millis(200),
            "counted from its due time"
        );
        assert!(late < tokio::time::Instant::now().into_std());
        let later = next_turn(&mut pace).await.expect("paced");
        assert_eq!(later - first, Duration::from_millis(300));
        assert!(
            next_turn(&mut None).await.is_none(),
            "unpaced: no turn to wait for"
        );
    }
}
