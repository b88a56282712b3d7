//! Shared setup for the proxy tests: the mtls-proxy process, a static test PKI, and the
//! applications behind it: a Rust TCP app that counts every connection it accepts (so a test can
//! assert that a refused caller never reached it) and speaks a line protocol (echo, bulk
//! transfer with SHA-256, slow answer), and `python3 -m http.server` with its access log.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::digest;
use tempfile::TempDir;
use testkit::{Leaf, LeafSpec, Proc, TestCa};

use crate::programs;

pub const PROXY_ID: &str = "spiffe://mesh.local/service/api";
pub const CLIENT_ID: &str = "spiffe://mesh.local/service/web";
pub const OTHER_ID: &str = "spiffe://mesh.local/service/intruder";
pub const LONG: Duration = Duration::from_secs(60);

pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A running mtls-proxy and the ports it printed.
pub struct ProxyProc {
    pub proc: Proc,
    pub inbound: Option<u16>,
    pub outbound: Vec<u16>,
    pub admin: Option<u16>,
}

fn port_after(line: &str, prefix: &str) -> u16 {
    let rest = line.trim().strip_prefix(prefix).expect("prefix");
    let addr = rest.split_whitespace().next().expect("an address");
    addr.trim_start_matches("http://")
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// Starts `mtls-proxy ARGS...` and waits until it serves (`[PROXY] ready`).
pub fn start_proxy(name: &str, args: &[String]) -> ProxyProc {
    start_proxy_logging(name, args, "info")
}

/// [`start_proxy`] with `RUST_LOG=rust_log`.
pub fn start_proxy_logging(name: &str, args: &[String], rust_log: &str) -> ProxyProc {
    let mut cmd = Command::new(programs::proxy());
    cmd.args(args).env("RUST_LOG", rust_log);
    let proc = Proc::spawn(name, cmd);
    proc.wait_for(|l| l == "[PROXY] ready", LONG);
    let stdout = proc.stdout();
    let mut p = ProxyProc {
        inbound: None,
        outbound: Vec::new(),
        admin: None,
        proc,
    };
    for line in stdout.lines() {
        if line.starts_with("inbound listening on ") {
            p.inbound = Some(port_after(line, "inbound listening on "));
        } else if line.starts_with("outbound listening on ") {
            p.outbound.push(port_after(line, "outbound listening on "));
        } else if line.starts_with("admin listening on ") {
            p.admin = Some(port_after(line, "admin listening on "));
        }
    }
    p
}

impl ProxyProc {
    pub fn inbound(&self) -> u16 {
        self.inbound.expect("an inbound listener")
    }

    pub fn metrics(&self) -> String {
        testkit::http_get(self.admin.expect("--admin-listen"), "/metrics").1
    }

    /// The `proxy_connection` log lines (one per connection at its close).
    pub fn connection_lines(&self) -> Vec<String> {
        self.proc
            .lines_matching(|l| l.contains("proxy_connection") || l.contains(" connection from "))
            .into_iter()
            .filter(|l| l.contains("closed after"))
            .collect()
    }
}

/// Runs `mtls-proxy ARGS...` to its end; (exit code, stdout, stderr).
pub fn run_proxy(args: &[String]) -> (i32, String, String) {
    let mut cmd = Command::new(programs::proxy());
    cmd.args(args).env("RUST_LOG", "info");
    let mut proc = Proc::spawn("proxy", cmd);
    let status = proc.wait_exit(LONG).expect("mtls-proxy exits");
    (status.code().unwrap_or(-1), proc.stdout(), proc.stderr())
}

/// A CA, the proxy's server certificate (localhost), and client certificates.
pub struct Pki {
    pub dir: TempDir,
    pub ca: TestCa,
    pub ca_path: PathBuf,
    pub proxy_cert: PathBuf,
    pub proxy_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub client_serial: String,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("Proxy Test Root");
        let ca_path = ca.write_root(dir.path(), "ca.crt");
        let (proxy_cert, proxy_key) = ca.server(PROXY_ID).write(dir.path(), "proxy");
        let client = ca.client(CLIENT_ID);
        let (client_cert, client_key) = client.write(dir.path(), "client");
        Pki {
            dir,
            ca,
            ca_path,
            proxy_cert,
            proxy_key,
            client_cert,
            client_key,
            client_serial: client.serial_hex,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A client leaf written as NAME.crt / NAME.key.
    pub fn write(&self, leaf: &Leaf, name: &str) -> (PathBuf, PathBuf) {
        leaf.write(self.path(), name)
    }

    /// A client leaf for `id` valid for `ttl` from now.
    pub fn short_lived(&self, id: &str, ttl: time::Duration) -> Leaf {
        let mut spec = LeafSpec::new(id);
        spec.ttl = ttl;
        self.ca.issue_spec(&spec)
    }

    /// The proxy's static-mode credential flags.
    pub fn proxy_creds(&self) -> Vec<String> {
        vec![
            "--cert".into(),
            s(&self.proxy_cert),
            "--key".into(),
            s(&self.proxy_key),
            "--ca-cert".into(),
            s(&self.ca_path),
        ]
    }

    /// A TLS client with the client certificate.
    pub fn client(&self) -> testkit::raw_tls::RawTls {
        self.client_with(&self.client_cert, &self.client_key)
    }

    pub fn client_with(&self, cert: &Path, key: &Path) -> testkit::raw_tls::RawTls {
        testkit::raw_tls::RawTls::new(&self.ca_path, Some((cert, key)), &[])
    }
}

pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The bytes of a bulk transfer: a pattern that is not periodic at any buffer size.
pub fn pattern(offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let n = offset + i as u64;
        *b = (n ^ (n >> 8) ^ (n >> 16).wrapping_mul(31)) as u8;
    }
}

/// SHA-256 of `len` pattern bytes.
pub fn pattern_sha256(len: u64) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        pattern(done, &mut buf[..n]);
        ctx.update(&buf[..n]);
        done += n as u64;
    }
    hex::encode(ctx.finish())
}

/// The application behind the proxy in the L4 tests: counts accepted connections, reports how
/// each one ended ([`App::next_end`]); the first line of a connection picks what it does:
/// - `ECHO`: echoes every line until the end of the stream, then closes;
/// - `BULK N`: reads to the end of the stream (the client's half-close), answers the SHA-256
///   of what it read and a newline, then N pattern bytes, then closes;
/// - `SLOW N`: answers N lines `chunk I`, 200 ms apart (a long response), then closes.
pub struct App {
    pub port: u16,
    pub accepted: Arc<AtomicUsize>,
    ends: Mutex<mpsc::Receiver<AppEnd>>,
}

/// How the app saw one of its connections end.
#[derive(Debug, PartialEq, Eq)]
pub enum AppEnd {
    /// Its command ran to the end (for `ECHO`: the peer closed cleanly, FIN).
    Clean,
    /// Reading or writing failed (a reset peer: `ConnectionReset`).
    Failed(std::io::ErrorKind),
}

impl App {
    pub fn start() -> App {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the app");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let (ended, ends) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let ended = ended.clone();
                std::thread::spawn(move || {
                    let end = match serve_app(conn) {
                        Ok(()) => AppEnd::Clean,
                        Err(e) => AppEnd::Failed(e.kind()),
                    };
                    let _ = ended.send(end);
                });
            }
        });
        App {
            port,
            accepted,
            ends: Mutex::new(ends),
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Waits for the next connection of the app to end (in the order they end).
    pub fn next_end(&self, timeout: Duration) -> AppEnd {
        self.ends
            .lock()
            .expect("lock")
            .recv_timeout(timeout)
            .expect("an app connection ended in time")
    }

    pub fn to(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn serve_app(conn: TcpStream) -> std::io::Result<()> {
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, conn);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut words = first.split_whitespace();
    match (
        words.next(),
        words.next().and_then(|n| n.parse::<u64>().ok()),
    ) {
        (Some("ECHO"), _) => {
            let mut line = String::new();
            while reader.read_line(&mut line)? > 0 {
                writer.write_all(line.as_bytes())?;
                line.clear();
            }
        }
        (Some("BULK"), Some(n)) => {
            let mut ctx = digest::Context::new(&digest::SHA256);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let got = reader.read(&mut buf)?;
                if got == 0 {
                    break;
                }
                ctx.update(&buf[..got]);
            }
            writer.write_all(format!("{}\n", hex::encode(ctx.finish())).as_bytes())?;
            let mut sent = 0;
            while sent < n {
                let k = (n - sent).min(buf.len() as u64) as usize;
                pattern(sent, &mut buf[..k]);
                writer.write_all(&buf[..k])?;
                sent += k as u64;
            }
        }
        (Some("SLOW"), Some(n)) => {
            for i in 0..n {
                writer.write_all(format!("chunk {i}\n").as_bytes())?;
                // The test app is slow on purpose (a response that outlasts a drain), in its
                // own thread: the pause is what is being served, not a wait for an event.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        _ => writer.write_all(b"unknown command\n")?,
    }
    writer.shutdown(Shutdown::Write)
}

/// `python3 -m http.server` on a free port, serving a directory with `hello.txt`. Its access
/// log (stderr) shows every request it received.
pub struct PythonApp {
    pub proc: Proc,
    pub port: u16,
    _dir: TempDir,
}

impl PythonApp {
    pub fn start() -> PythonApp {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("hello.txt"), "hello from the app\n").expect("write");
        let mut cmd = Command::new("python3");
        cmd.args([
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(dir.path());
        // Fails (does not skip) when python3 is missing: Proc::spawn panics with the reason.
        let proc = Proc::spawn("python-app", cmd);
        let line = proc.wait_for(|l| l.starts_with("Serving HTTP on"), LONG);
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        PythonApp {
            proc,
            port,
            _dir: dir,
        }
    }

    pub fn to(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The request lines of the access log.
    pub fn requests(&self) -> Vec<String> {
        self.proc
            .lines_matching(|l| l.contains("\"GET ") || l.contains("\"POST "))
    }
}

/// curl over the proxy with the given client certificate (None: no certificate); Ok(body) on
/// success, Err(curl's stderr) on failure.
pub fn curl(
    port: u16,
    path: &str,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<String, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "--max-time", "20", "--cacert"])
        .arg(ca)
        .arg(format!("https://localhost:{port}{path}"));
    if let Some((cert, key)) = identity {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let out = cmd.output().expect("run curl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Writes a join token for `id` into DIR/NAME.token (the token allows localhost and 127.0.0.1
/// as names) and returns the path.
pub fn token_file(ca: &testkit::CaProc, dir: &Path, name: &str, id: &str) -> PathBuf {
    let token = ca.token(id, &["--dns", "localhost", "--ip", "127.0.0.1"]);
    let path = dir.join(format!("{name}.token"));
    std::fs::write(&path, token).expect("write token");
    path
}

/// Enrolled-mode credential flags.
pub fn enrolled(ca: &testkit::CaProc, id: &str, token: &Path) -> Vec<String> {
    args(&[
        "--ca-url",
        &ca.url(),
        "--ca-fingerprint",
        &ca.fingerprint,
        "--spiffe-id",
        id,
        "--join-token-file",
        &s(token),
    ])
}

/// The same, as a `[credentials]` table.
pub fn enrolled_table(ca: &testkit::CaProc, id: &str, token: &Path) -> String {
    format!(
        "[credentials]\nca_url = \"{}\"\nca_fingerprint = \"{}\"\nspiffe_id = \"{id}\"\njoin_token_file = \"{}\"\n",
        ca.url(),
        ca.fingerprint,
        s(token)
    )
}

/// An HTTP/1.1 application that answers every request with the request's head (request line
/// and headers, as received) as its body, then closes; counts the requests it got.
pub struct HeaderApp {
    pub port: u16,
    pub requests: Arc<AtomicUsize>,
}

impl HeaderApp {
    pub fn start() -> HeaderApp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the app");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let count = count.clone();
                std::thread::spawn(move || {
                    let _ = answer_head(conn, &count);
                });
            }
        });
        HeaderApp { port, requests }
    }

    pub fn to(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn answer_head(conn: TcpStream, count: &AtomicUsize) -> std::io::Result<()> {
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    count.fetch_add(1, Ordering::SeqCst);
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
        head.len()
    );
    writer.write_all(reply.as_bytes())?;
    writer.shutdown(Shutdown::Write)
}

/// The values of header `name` (any case) in a head as `HeaderApp` returns it.
pub fn header_values(head: &str, name: &str) -> Vec<String> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// The inbound proxy B (allows A only) in front of `app`, then the outbound proxy A with a
/// route to B and a route expecting another identity at the same address; both enrolled from
/// `ca`, both logging every CRL fetch (debug) so a test can count refresh rounds.
pub fn chain(
    ca: &testkit::CaProc,
    dir: &Path,
    app: &App,
    extra: &[&str],
) -> (ProxyProc, ProxyProc) {
    let b_token = token_file(ca, dir, "b", PROXY_ID);
    let mut b_args = args(&[
        "inbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &app.to(),
        "--allow-id",
        CLIENT_ID,
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    b_args.extend(enrolled(ca, PROXY_ID, &b_token));
    b_args.extend(args(extra));
    let b = start_proxy_logging("proxy-b", &b_args, REFRESH_LOG);
    let a_token = token_file(ca, dir, "a", CLIENT_ID);
    let to_b = format!("localhost:{}", b.inbound());
    let mut a_args = args(&[
        "outbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &to_b,
        "--server-id",
        PROXY_ID,
        "--route",
        &format!("127.0.0.1:0={to_b},spiffe://mesh.local/service/impostor"),
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    a_args.extend(enrolled(ca, CLIENT_ID, &a_token));
    a_args.extend(args(extra));
    let a = start_proxy_logging("proxy-a", &a_args, REFRESH_LOG);
    assert_eq!(a.outbound.len(), 2);
    (a, b)
}

/// `RUST_LOG` with the mesh's CRL fetches (debug): `revocation list fetched` per round.
pub const REFRESH_LOG: &str = "info,mesh::refresh=debug";

/// One echo exchange on a new plaintext connection to `port`: send, half-close, read to the end.
pub fn exchange(port: u16, line: &str) -> Result<String, String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(LONG)).ok();
    tcp.write_all(format!("ECHO\n{line}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    tcp.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let mut got = String::new();
    tcp.read_to_string(&mut got)
        .map_err(|e| format!("{e} after {got:?}"))?;
    Ok(got)
}

/// A plaintext connection to `port` that has echoed one line: open, and known to work.
pub fn open_echo(port: u16) -> TcpStream {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(LONG)).ok();
    tcp.write_all(b"ECHO\nbefore\n").expect("write");
    let mut buf = [0u8; 64];
    let n = tcp.read(&mut buf).expect("read the echo");
    assert_eq!(&buf[..n], b"before\n");
    tcp
}

/// Reads `tcp` to its end and returns the error that ended it: a proxy that cuts a
/// connection resets its plaintext side, so a clean end (FIN) here is a failure.
pub fn read_reset(tcp: &mut TcpStream) -> std::io::ErrorKind {
    let mut rest = Vec::new();
    match tcp.read_to_end(&mut rest) {
        Ok(_) => panic!(
            "a clean end (FIN) after {:?}: the application would take a cut stream for a whole one",
            String::from_utf8_lossy(&rest)
        ),
        Err(e) => {
            assert!(rest.is_empty(), "{rest:?}");
            e.kind()
        }
    }
}

/// The serial a proxy printed for its certificate (`Serial: ...`).
pub fn printed_serial(proxy: &ProxyProc) -> String {
    let line = proxy
        .proc
        .wait_for(|l| l.trim_start().starts_with("Serial: "), LONG);
    line.trim().trim_start_matches("Serial: ").to_string()
}

/// "Within --crl-refresh + 1 s", counted in the proxy's refresh rounds after `mark` (the
/// revocation) rather than timed by the test: the fetch under way at the revocation may predate
/// it, so the revocation arrives with the first or second fetch after it, and the connection
/// watching `serial` is closed before the next fetch. The proxy must log at [`REFRESH_LOG`].
pub fn assert_closed_within_a_refresh(proxy: &ProxyProc, mark: usize, serial: &str) {
    let is_close = |l: &str| l.contains("closing the connection") && l.contains(serial);
    proxy.proc.wait_for_after(mark, is_close, LONG);
    let after: Vec<String> = proxy
        .proc
        .output()
        .lines()
        .skip(mark)
        .map(str::to_string)
        .collect();
    let fetches: Vec<usize> = after
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("revocation list fetched"))
        .map(|(i, _)| i)
        .collect();
    let updated = after
        .iter()
        .position(|l| l.contains("revocation list updated: 1 revoked"))
        .unwrap_or_else(|| panic!("no CRL update with the revocation:\n{}", after.join("\n")));
    let close = after.iter().position(|l| is_close(l)).expect("the close");
    let fetch_number = fetches.iter().filter(|&&f| f < updated).count();
    assert!(
        (1..=2).contains(&fetch_number),
        "the revocation arrived with fetch {fetch_number} after it:\n{}",
        after.join("\n")
    );
    assert!(
        fetches.iter().all(|&f| f <= updated || f > close),
        "the open connection survived a CRL fetch after the update:\n{}",
        after.join("\n")
    );
}
