//! The command line of mtls-agent: `serve` (the agent) and `write` (certificates on disk for a
//! program that reads files). Values are checked as they are parsed (clap exits 2 naming the
//! flag), before any file is read or any token redeemed.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mtls::credentials::{parse_spiffe_id, CredentialArgs};
use mtls::values;

const EXAMPLES: &str = "\
Examples:
  # The agent of host node1 (its join token made with
  #   mtls-ca token --spiffe-id spiffe://mesh.local/agent/node1 > node1.token):
  mtls-agent serve --socket /run/mtls-mesh/agent.sock \\
      --ca-url https://ca.internal:8443 --ca-fingerprint <sha256> \\
      --spiffe-id spiffe://mesh.local/agent/node1 --join-token-file node1.token

  # A workload's identity as files for nginx, reloaded on every rotation:
  mtls-agent write --socket /run/mtls-mesh/agent.sock \\
      --spiffe-id spiffe://mesh.local/service/web --dir /etc/nginx/mesh \\
      --on-rotate 'nginx -s reload'

docs/agent.md describes the model, attestation and the registration entries.";

/// The SPIFFE Workload API for the workloads of one host: attests each caller from its Unix
/// socket credentials and executable, and hands it the X.509-SVIDs and JWT-SVIDs its
/// registration entries allow.
#[derive(Parser, Debug)]
#[command(name = "mtls-agent", version, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the agent: enroll as spiffe://<td>/agent/<name>, serve the Workload API.
    Serve(Box<ServeArgs>),
    /// Keep one identity's certificate, key, bundle and CRL in a directory (a Workload API
    /// client of the agent, like spiffe-helper).
    Write(WriteArgs),
}

/// Parses a socket address: /path or unix:///path.
fn parse_socket(s: &str) -> Result<PathBuf, String> {
    mtls_agent::socket::parse_socket_address(s)
}

/// An octal file mode (e.g. 0666, 0660).
fn parse_mode(s: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal mode; give e.g. 0666 or 0660"))?;
    if mode > 0o777 {
        return Err(format!(
            "{s:?} is out of range: give permission bits only (0000 to 0777)"
        ));
    }
    Ok(mode)
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The Workload API socket: /path or unix:///path (as in SPIFFE_ENDPOINT_SOCKET). Its
    /// directory must not be world-writable without the sticky bit.
    #[arg(
        long,
        value_name = "PATH",
        env = "SPIFFE_ENDPOINT_SOCKET",
        default_value = "/run/mtls-mesh/agent.sock",
        value_parser = parse_socket
    )]
    pub socket: PathBuf,

    /// Mode of the socket file (octal). 0666: every local user may connect, attestation
    /// decides what each gets (docs/agent.md); 0660 limits callers to the agent's group.
    #[arg(long, value_name = "MODE", default_value = "0666", value_parser = parse_mode)]
    pub socket_mode: u32,

    /// How often the registration entries, the CRL and the bundle are fetched from the CA
    /// (at least 1s).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = values::duration)]
    pub entry_refresh: Duration,

    #[command(flatten)]
    pub creds: CredentialArgs,
}

#[derive(Args, Debug)]
pub struct WriteArgs {
    /// The agent's Workload API socket: /path or unix:///path.
    #[arg(
        long,
        value_name = "PATH",
        env = "SPIFFE_ENDPOINT_SOCKET",
        default_value = "/run/mtls-mesh/agent.sock",
        value_parser = parse_socket
    )]
    pub socket: PathBuf,

    /// The identity to write (one of those this process is entitled to).
    #[arg(long, value_name = "ID", value_parser = parse_spiffe_id)]
    pub spiffe_id: pki::SpiffeId,

    /// The directory of svid.pem, svid.key (0600), bundle.pem and crl.pem (created if
    /// missing; docs/agent.md says how to read them).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// A shell command run (sh -c) after each new version is in place, e.g. 'nginx -s reload'.
    #[arg(long, value_name = "CMD")]
    pub on_rotate: Option<String>,

    /// Write the files once and exit, instead of following rotations.
    #[arg(long)]
    pub once: bool,
}
