//! Starting mtls-server / mtls-ca processes and talking to their plain-HTTP admin endpoints.
//! The caller names the program to run (see `crate::bins`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::Proc;

/// How long a service may take to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running mtls-server.
pub struct ServerProc {
    pub proc: Proc,
    pub port: u16,
    pub admin_port: Option<u16>,
}

impl ServerProc {
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// GET on the admin listener; returns (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin_port.expect("started with --admin-listen"), path)
    }
}

fn port_of(line: &str, prefix: &str) -> u16 {
    line.trim()
        .strip_prefix(prefix)
        .and_then(|rest| rest.rsplit(':').next())
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// Starts `PROGRAM --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 ARGS...` (PROGRAM: the
/// mtls-server binary) and waits for its listening line.
pub fn start_server(program: &Path, name: &str, args: &[String]) -> ServerProc {
    start_server_with_log(program, name, args, "info")
}

/// Like `start_server`, logging at `rust_log` (`RUST_LOG`), e.g. `info,wire=trace` for the
/// connection layer's trace events.
pub fn start_server_with_log(
    program: &Path,
    name: &str,
    args: &[String],
    rust_log: &str,
) -> ServerProc {
    let mut cmd = Command::new(program);
    cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", rust_log);
    wait_for_server(Proc::spawn(name, cmd))
}

/// Like `start_server`, with the soft limit on open files set to `open_files` (`ulimit -n`).
pub fn start_server_with_open_files(
    program: &Path,
    name: &str,
    args: &[String],
    open_files: u64,
) -> ServerProc {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {open_files} && exec \"$0\" \"$@\""))
        .arg(program)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info");
    wait_for_server(Proc::spawn(name, cmd))
}

fn wait_for_server(proc: Proc) -> ServerProc {
    let admin = proc.wait_for(
        |l| l.starts_with("admin listening on http://"),
        START_TIMEOUT,
    );
    let listening = proc.wait_for(|l| l.starts_with("listening on https://"), START_TIMEOUT);
    ServerProc {
        port: port_of(&listening, "listening on https://"),
        admin_port: Some(port_of(&admin, "admin listening on http://")),
        proc,
    }
}

/// A running mtls-ca.
pub struct CaProc {
    pub proc: Proc,
    pub port: u16,
    pub fingerprint: String,
    pub data_dir: PathBuf,
    /// The mtls-ca binary, for the admin subcommands.
    pub program: PathBuf,
}

impl CaProc {
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// `mtls-ca token --data-dir DIR --spiffe-id ID [extra...]` → the token.
    pub fn token(&self, spiffe_id: &str, extra: &[&str]) -> String {
        let out = Command::new(&self.program)
            .args(["token", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--spiffe-id", spiffe_id])
            .args(extra)
            .output()
            .expect("run mtls-ca token");
        assert!(
            out.status.success(),
            "mtls-ca token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `mtls-ca revoke --data-dir DIR --serial HEX`.
    pub fn revoke(&self, serial: &str) {
        let out = Command::new(&self.program)
            .args(["revoke", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--serial", serial, "--reason", "keyCompromise"])
            .output()
            .expect("run mtls-ca revoke");
        assert!(
            out.status.success(),
            "mtls-ca revoke failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Starts `PROGRAM --data-dir DIR --listen ADDR ARGS...` (PROGRAM: the mtls-ca binary) and
/// waits for the fingerprint and listening lines. Pass `listen` = "127.0.0.1:0" for a fresh
/// port, or a fixed address to restart a CA where clients expect it.
pub fn start_ca(
    program: &Path,
    name: &str,
    data_dir: &Path,
    listen: &str,
    args: &[&str],
) -> CaProc {
    start_ca_with_env(program, name, data_dir, listen, args, &[])
}

/// [`start_ca`] with extra environment variables (e.g. `SOFTHSM2_CONF` for a CA whose key is
/// in a SoftHSM2 token, `crate::softhsm`).
pub fn start_ca_with_env(
    program: &Path,
    name: &str,
    data_dir: &Path,
    listen: &str,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> CaProc {
    let mut cmd = Command::new(program);
    cmd.envs(env.iter().copied());
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", listen])
        .args(args);
    let proc = Proc::spawn(name, cmd);
    let fp_line = proc.wait_for(
        |l| l.starts_with("root fingerprint (SHA-256): "),
        START_TIMEOUT,
    );
    let fingerprint = fp_line
        .trim()
        .trim_start_matches("root fingerprint (SHA-256): ")
        .to_string();
    let listening = proc.wait_for(|l| l.starts_with("listening on https://"), START_TIMEOUT);
    CaProc {
        port: port_of(&listening, "listening on https://"),
        fingerprint,
        data_dir: data_dir.to_path_buf(),
        program: program.to_path_buf(),
        proc,
    }
}

/// Plain HTTP/1.1 GET on 127.0.0.1:port; returns (status, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    http_get_at(std::net::SocketAddr::from(([127, 0, 0, 1], port)), path)
}

/// Plain HTTP/1.1 GET on `addr` (an admin listener on any address); returns (status, body).
pub fn http_get_at(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}
