//! Per-worker measurements, merged into one report.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use crate::options::{Mode, Options};

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Default)]
pub struct Stats {
    /// Latency of each successful request, microseconds.
    pub latencies_us: Vec<u32>,
    pub handshakes: u64,
    /// Response body bytes received on successful requests.
    pub body_bytes: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Stats {
    pub fn ok(&mut self, latency: Duration, body_bytes: u64) {
        self.body_bytes += body_bytes;
        self.latencies_us
            .push(latency.as_micros().min(u32::MAX as u128) as u32);
    }

    pub fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: Stats) {
        self.latencies_us.extend(other.latencies_us);
        self.handshakes += other.handshakes;
        self.body_bytes += other.body_bytes;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_insert(0) += v;
        }
    }

    /// The report of a run that lasted `elapsed` and used `cpu` of this process's CPU time
    /// (`None` when it could not be read).
    pub fn finish(mut self, elapsed: Duration, cpu: Option<Duration>, args: &Options) -> Report {
        self.latencies_us.sort_unstable();
        let pct = |p: f64| -> f64 {
            if self.latencies_us.is_empty() {
                return 0.0;
            }
            let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
            f64::from(self.latencies_us[i]) / 1000.0
        };
        let secs = elapsed.as_secs_f64().max(1e-9);
        let requests = self.latencies_us.len() as u64;
        Report {
            label: args.label.clone(),
            target: args.target.clone(),
            mode: args.mode,
            concurrency: args.concurrency,
            groups: args.groups.iter().map(|g| g.name().to_string()).collect(),
            seconds: secs,
            cpu_seconds: cpu.map(|c| c.as_secs_f64()),
            requests,
            requests_per_sec: requests as f64 / secs,
            handshakes: self.handshakes,
            handshakes_per_sec: self.handshakes as f64 / secs,
            rate: args.rate,
            body_bytes: self.body_bytes,
            body_mib_per_sec: self.body_bytes as f64 / MIB / secs,
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            p999_ms: pct(0.999),
            max_ms: pct(1.0),
            errors_total: self.errors.values().sum(),
            errors: self.errors,
        }
    }
}

#[derive(serde::Serialize)]
pub struct Report {
    pub label: String,
    pub target: String,
    pub mode: Mode,
    pub concurrency: usize,
    pub groups: Vec<String>,
    pub seconds: f64,
    /// CPU time (user + system, all threads) the load generator used over those seconds: its
    /// set-up before the run (CSRs made, files read) is not in it.
    pub cpu_seconds: Option<f64>,
    pub requests: u64,
    pub requests_per_sec: f64,
    pub handshakes: u64,
    pub handshakes_per_sec: f64,
    /// The --rate asked for (None: unpaced).
    pub rate: Option<u64>,
    pub body_bytes: u64,
    pub body_mib_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub errors_total: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Report {
    pub fn text(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            s,
            "target       {} ({:?}, concurrency {})",
            self.target, self.mode, self.concurrency
        );
        let _ = writeln!(s, "duration     {:.2}s", self.seconds);
        if let Some(cpu) = self.cpu_seconds {
            let _ = writeln!(
                s,
                "own CPU      {cpu:.2}s ({:.2} cores)",
                cpu / self.seconds
            );
        }
        let _ = writeln!(
            s,
            "requests     {} ({:.0}/s)",
            self.requests, self.requests_per_sec
        );
        let _ = writeln!(
            s,
            "handshakes   {} ({:.0}/s)",
            self.handshakes, self.handshakes_per_sec
        );
        let _ = writeln!(
            s,
            "body         {:.1} MiB ({:.1} MiB/s)",
            self.body_bytes as f64 / MIB,
            self.body_mib_per_sec
        );
        if let Some(rate) = self.rate {
            let _ = writeln!(s, "paced at     {rate} requests/s");
        }
        let _ = writeln!(
            s,
            "latency      p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms
        );
        let _ = writeln!(s, "errors       {}", self.errors_total);
        for (k, v) in &self.errors {
            let _ = writeln!(s, "  {k}: {v}");
        }
        s
    }
}
