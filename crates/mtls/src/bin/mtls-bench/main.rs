//! `mtls-bench`: a bounded load generator for HTTPS servers that require client certificates
//! (and, for baselines, plain HTTP servers), and for an mtls-agent's Workload API socket.
//! Loopback targets only. Every response is checked (status and caller identity), so a fast
//! wrong answer never counts. The load itself is `mtls_bench` (crates/bench); this is its command
//! line, runtime and output.

mod cli;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mtls_bench::{stats, target, worker, workload_fetch, Mode};

/// The loop each worker runs: HTTPS requests, or Workload API fetches.
enum Load {
    Http(Arc<worker::Setup>),
    WorkloadFetch(Arc<workload_fetch::Setup>),
}

fn main() -> std::process::ExitCode {
    let args = mtls::manual::parse::<cli::Args>().options();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mtls-bench: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(args: mtls_bench::Options) -> anyhow::Result<std::process::ExitCode> {
    let load = if args.mode == Mode::WorkloadFetch {
        Load::WorkloadFetch(Arc::new(workload_fetch::Setup::new(&args)?))
    } else {
        let target = target::Target::parse(&args.target)?;
        Load::Http(Arc::new(worker::Setup::new(&args, target)?))
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }))
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = runtime.block_on(async {
        let counters = Arc::new(worker::Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        #[allow(clippy::disallowed_methods)] // a benchmark measures real time
        let started = Instant::now();
        let cpu_at_start = mtls_bench::cpu::process_cpu();
        let deadline = started + args.duration;
        let mut workers = Vec::new();
        for index in 0..args.concurrency {
            workers.push(match &load {
                Load::Http(setup) => tokio::spawn(worker::run(
                    setup.clone(),
                    index,
                    args.concurrency,
                    args.rate,
                    deadline,
                    setup.request_limit(args.requests),
                    counters.clone(),
                    stop.clone(),
                )),
                Load::WorkloadFetch(setup) => tokio::spawn(workload_fetch::run(
                    setup.clone(),
                    index,
                    args.concurrency,
                    args.rate,
                    deadline,
                    args.requests,
                    counters.clone(),
                    stop.clone(),
                )),
            });
        }
        let progress = tokio::spawn(progress(
            counters.clone(),
            stop.clone(),
            started,
            args.quiet,
        ));
        let mut merged = stats::Stats::default();
        for w in workers {
            match w.await {
                Ok(s) => merged.merge(s),
                Err(e) => merged.error(format!("worker_panicked: {e}")),
            }
        }
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        progress.abort();
        let cpu = mtls_bench::cpu::process_cpu()
            .zip(cpu_at_start)
            .map(|(end, start)| end.saturating_sub(start));
        merged.finish(elapsed, cpu, &args)
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(if report.errors_total == 0 && report.requests > 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

async fn progress(
    counters: Arc<worker::Counters>,
    stop: Arc<AtomicBool>,
    started: Instant,
    quiet: bool,
) {
    let mut last = 0;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let ok = counters.succeeded.load(Ordering::Relaxed);
        if !quiet {
            // "ok N of" is parsed by scripts/bench-peers.sh to know when hold mode is complete.
            eprintln!(
                "[{:>5.1}s] ok {ok} of {} requests ({} /s)",
                started.elapsed().as_secs_f64(),
                counters.attempted.load(Ordering::Relaxed),
                ok - last
            );
        }
        last = ok;
    }
}
