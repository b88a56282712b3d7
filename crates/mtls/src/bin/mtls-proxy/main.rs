//! mtls-proxy: puts a service we did not write into the mesh. `inbound`: mTLS in, plaintext to
//! a local application; `outbound`: plaintext from local applications, mTLS to remote
//! services; `run --config FILE`: both in one process; `check --config FILE`: validate only.
//! The proxy is the `mtls_proxy` library on `mesh`; this program adds the command line
//! (`args.rs`, `config_file.rs`), the report lines and the exit codes (2: the configuration
//! cannot work, nothing was redeemed; 1: failed after start).

mod args;
mod config_file;

use std::process::ExitCode;

use mesh::{Mesh, ServiceConfig};
use mtls::credentials::CredentialArgs;
use mtls::report;
use mtls_proxy::{Proxy, ProxyConfig};

use crate::args::{Cli, Command};

/// What stopped the program, and its exit code.
enum Failure {
    /// The configuration cannot work (exit 2); nothing reached the CA.
    Config(String),
    /// Failed after the configuration was accepted (exit 1).
    Run(anyhow::Error),
}

impl From<mtls_proxy::ConfigError> for Failure {
    fn from(e: mtls_proxy::ConfigError) -> Failure {
        Failure::Config(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli: Cli = mtls::manual::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.threads {
        runtime.worker_threads(threads);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mtls-proxy: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(message)) => {
            eprintln!("mtls-proxy: error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("mtls-proxy: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Inbound(a) => {
            let config = a.config().map_err(Failure::Config)?;
            start(config, a.creds).await
        }
        Command::Outbound(a) => {
            let config = a.config().map_err(Failure::Config)?;
            start(config, a.creds).await
        }
        Command::Run(a) => {
            let (config, creds) = config_file::load(&a.config)?;
            start(config, creds).await
        }
        Command::Check(a) => {
            let (config, creds) = config_file::load(&a.config)?;
            creds.config(config.role()).map_err(|c| {
                Failure::Config(format!("{}: [credentials]: {c}", a.config.display()))
            })?;
            println!("{}: ok", a.config.display());
            for line in describe(&config) {
                println!("  {line}");
            }
            Ok(())
        }
    }
}

/// What the configuration runs, one line per listener.
fn describe(config: &ProxyConfig) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(i) = &config.inbound {
        let access = match &i.access {
            mtls_proxy::Access::Everyone => "every verified caller".to_string(),
            mtls_proxy::Access::AllowIds(_) => "allow list".to_string(),
            mtls_proxy::Access::PolicyFile(f) => format!("policy {}", f.value.display()),
        };
        let mode = if i.http { "HTTP" } else { "L4" };
        lines.push(format!(
            "inbound {} -> {} ({mode}; {access})",
            i.listen.value, i.to.value
        ));
    }
    for r in &config.routes {
        lines.push(format!(
            "route {} -> {} ({}, name {})",
            r.listen.value,
            r.to.value,
            r.server_id.value,
            r.server_name.value.to_str()
        ));
    }
    if let Some(a) = &config.admin_listen {
        lines.push(format!("admin {}", a.value));
    }
    lines
}

/// Checks everything, binds every listener, and only then starts the mesh (enrollment
/// redeems the join token) and serves until SIGTERM/SIGINT.
async fn start(mut config: ProxyConfig, creds: CredentialArgs) -> Result<(), Failure> {
    mtls::logging::init(creds.log_format, "info");
    let service: ServiceConfig = creds
        .config(config.role())
        .map_err(|c| Failure::Config(c.to_string()))?;
    fit_connections(&mut config);
    let proxy = Proxy::bind(config).await?;
    if proxy.config().allow_non_loopback.value {
        for (addr, _) in proxy.route_addrs() {
            if !addr.ip().is_loopback() {
                tracing::warn!(event = "non_loopback_outbound", addr = %addr,
                    "outbound listener {addr} is not on loopback: anyone who can reach it speaks \
                     with this workload's identity");
            }
        }
    }
    let mesh = Mesh::start(service).await.map_err(|e| {
        Failure::Run(anyhow::Error::new(e).context("obtaining the proxy's certificate"))
    })?;
    report::print(&report::certificate_lines("PROXY", &mesh.credential()));
    if let Some(next) = mesh.next_rotation() {
        println!("[PROXY] Next rotation: {}", pki::timefmt::rfc3339(next));
    }
    if let Some(addr) = proxy.admin_addr() {
        let permission = proxy.config().admin_allow_remote.origin.to_string();
        mesh::server::admin::Exposure::warn_if_remote(addr, &permission);
        println!("admin listening on http://{addr}");
    }
    for (addr, route) in proxy.route_addrs() {
        println!(
            "outbound listening on {addr} -> {} ({})",
            route.to.value, route.server_id.value
        );
    }
    if let (Some(addr), Some(i)) = (proxy.inbound_addr(), proxy.config().inbound.as_ref()) {
        println!("inbound listening on {addr} -> {}", i.to.value);
    }
    println!("[PROXY] ready");
    let shutdown = async {
        mtls::shutdown::signal().await;
    };
    proxy
        .serve(mesh, shutdown)
        .await
        .map_err(|e| Failure::Run(e.into()))
}

/// Every proxied connection holds two sockets: lower the cap to what the open-file limit
/// carries, with a warning.
fn fit_connections(config: &mut ProxyConfig) {
    let requested = config.limits.max_connections;
    let (sockets, lowered) = wire::limits::fit_to_open_files(requested.saturating_mul(2));
    if let Some(open_files) = lowered {
        let allowed = (sockets / 2).max(1);
        tracing::warn!(
            event = "max_connections_lowered",
            requested,
            allowed,
            open_files,
            "max connections {requested} is more than the open-file limit ({open_files}) can \
             carry with two sockets per proxied connection; serving at most {allowed} at once \
             (raise the limit with `ulimit -n` or systemd's LimitNOFILE=)"
        );
        config.limits.max_connections = allowed;
    }
}
