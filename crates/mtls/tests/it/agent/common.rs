//! Shared setup of the mtls-agent tests: a CA, an agent enrolled as
//! `spiffe://mesh.local/agent/node1` with its socket in a private directory, registration
//! entries made with `mtls-ca entry create`, and the Rust `spiffe` crate's client.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;
use testkit::{CaProc, Proc};

use crate::programs;

pub const AGENT_ID: &str = "spiffe://mesh.local/agent/node1";
pub const WEB_ID: &str = "spiffe://mesh.local/service/web";
pub const LONG: Duration = Duration::from_secs(60);

pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A CA, its agent and the directory of both.
pub struct Agent {
    pub dir: TempDir,
    pub ca: CaProc,
    pub proc: Proc,
    pub socket: PathBuf,
}

pub fn start_ca(dir: &Path) -> CaProc {
    programs::start_ca("ca", &dir.join("ca"), "127.0.0.1:0", &[])
}

/// The agent's arguments besides the socket (enrolled as AGENT_ID with a fresh token).
pub fn agent_args(ca: &CaProc, dir: &Path) -> Vec<String> {
    let token = dir.join("agent.token");
    if !token.exists() {
        std::fs::write(&token, ca.token(AGENT_ID, &[])).unwrap();
    }
    vec![
        "serve".into(),
        "--ca-url".into(),
        ca.url(),
        "--ca-fingerprint".into(),
        ca.fingerprint.clone(),
        "--spiffe-id".into(),
        AGENT_ID.into(),
        "--join-token-file".into(),
        s(&token),
        "--entry-refresh".into(),
        "1s".into(),
    ]
}

/// Starts a CA and an agent, and waits until the agent serves.
pub fn start() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca(dir.path());
    let (proc, socket) = start_agent(&ca, dir.path(), "agent");
    Agent {
        dir,
        ca,
        proc,
        socket,
    }
}

/// Starts an agent of `ca` with its socket in DIR/run/NAME.sock.
pub fn start_agent(ca: &CaProc, dir: &Path, name: &str) -> (Proc, PathBuf) {
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let socket = run.join(format!("{name}.sock"));
    let mut cmd = Command::new(programs::agent());
    cmd.args(agent_args(ca, dir))
        .arg("--socket")
        .arg(format!("unix://{}", socket.display()))
        .env("RUST_LOG", "info");
    let proc = Proc::spawn(name, cmd);
    proc.wait_for(|l| l == "[AGENT] ready", LONG);
    (proc, socket)
}

impl Agent {
    /// `mtls-ca entry create --parent AGENT_ID --spiffe-id ID --selector ... [extra]` → the
    /// entry's ID.
    pub fn entry(&self, spiffe_id: &str, selectors: &[&str], extra: &[&str]) -> String {
        let mut cmd = Command::new(&self.ca.program);
        cmd.arg("--data-dir").arg(&self.ca.data_dir).args([
            "entry",
            "create",
            "--parent",
            AGENT_ID,
            "--spiffe-id",
            spiffe_id,
        ]);
        for sel in selectors {
            cmd.args(["--selector", sel]);
        }
        let out = cmd.args(extra).output().unwrap();
        assert!(
            out.status.success(),
            "mtls-ca entry create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until the agent has minted an SVID for `spiffe_id` after output mark `mark`.
    pub fn wait_minted(&self, mark: usize, spiffe_id: &str) -> String {
        self.proc.wait_for_after(
            mark,
            |l| l.contains("svid_minted") && l.contains(spiffe_id),
            LONG,
        )
    }

    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The Rust `spiffe` crate's Workload API client of this agent.
    pub async fn client(&self) -> spiffe::WorkloadApiClient {
        spiffe::WorkloadApiClient::connect_to(self.endpoint())
            .await
            .expect("connect to the agent")
    }
}

/// The uid this test process runs as, for selectors.
pub fn my_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}
