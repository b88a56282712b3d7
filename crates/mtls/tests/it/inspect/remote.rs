//! `remote` against servers that require client certificates: `openssl s_server -Verify 1` and
//! an in-process rustls server. The server's chain must be shown even when we have no client
//! certificate (it arrives before the client is asked for one).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::common;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use super::common::{json, run_in, Pki};
use pki::Curve;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::Duration;

/// A PKI with a server leaf (localhost, 127.0.0.1) and a client leaf.
fn pki() -> Pki {
    let now = common::now();
    let pki = Pki::new(now);
    pki.leaf(
        "server.pem",
        "spiffe://mesh.local/service/server",
        Curve::P384,
        now,
        Duration::hours(1),
    );
    pki.leaf(
        "client.pem",
        "spiffe://mesh.local/service/client",
        Curve::P256,
        now,
        Duration::hours(1),
    );
    pki
}

/// `openssl s_server`, killed when dropped.
struct SServer {
    child: Child,
    port: u16,
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Starts `openssl s_server -tls1_3 -Verify 1` and waits (with a timeout) for its ACCEPT line.
fn s_server(pki: &Pki, extra: &[&str]) -> SServer {
    let port = free_port();
    let accept = format!("127.0.0.1:{port}");
    let mut args = vec![
        "s_server",
        "-tls1_3",
        "-Verify",
        "1",
        "-accept",
        &accept,
        "-cert",
        "server.pem",
        "-key",
        "server.pem.key",
        "-CAfile",
        "root.pem",
    ];
    args.extend_from_slice(extra);
    let mut child = Command::new("openssl")
        .args(&args)
        .current_dir(pki.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting openssl s_server");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Keep draining s_server's output so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("ACCEPT") {
                let _ = tx.send(());
            }
        }
    });
    let server = SServer { child, port };
    rx.recv_timeout(StdDuration::from_secs(20))
        .expect("openssl s_server did not start listening within 20s");
    server
}

#[test]
fn openssl_server_requiring_client_certs_without_a_client_cert() {
    let pki = pki();
    let server = s_server(&pki, &[]);
    let target = format!("127.0.0.1:{}", server.port);
    let r = run_in(
        pki.dir.path(),
        &[
            "remote",
            &target,
            "--ca-cert",
            "root.pem",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let doc = json(&r);
    assert_eq!(doc["schema"], "mtls-inspect.remote/v1");
    assert_eq!(doc["tls_version"], "TLSv1.3");
    assert_eq!(doc["key_exchange_group"], "secp384r1");
    assert!(doc["cipher_suite"].as_str().unwrap().starts_with("TLS13_"));
    assert_eq!(
        doc["chain"][0]["spiffe_id"],
        "spiffe://mesh.local/service/server"
    );
    assert_eq!(doc["client_certificate"]["requested"], true);
    assert_eq!(doc["client_certificate"]["sent"], false);
    assert_eq!(doc["verification"]["valid"], true);
    assert_eq!(doc["server_response"]["kind"], "alert");
    assert_eq!(doc["server_response"]["detail"], "certificate_required");

    let r = run_in(pki.dir.path(), &["remote", &target]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("Client cert:   requested; none sent (no --cert/--key)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("Server:        REJECTED the connection: alert certificate_required"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("Verification:  not verified (no --ca-cert"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("127.0.0.1:"), "{}", r.stdout);
}

#[test]
fn openssl_server_accepts_our_client_cert_over_p521() {
    let pki = pki();
    let server = s_server(&pki, &["-groups", "P-521"]);
    let target = format!("127.0.0.1:{}", server.port);
    let r = run_in(
        pki.dir.path(),
        &[
            "remote",
            &target,
            "--servername",
            "localhost",
            "--cert",
            "client.pem",
            "--key",
            "client.pem.key",
            "--ca-cert",
            "root.pem",
            "--spiffe-id",
            "spiffe://mesh.local/service/server",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let doc = json(&r);
    assert_eq!(doc["key_exchange_group"], "secp521r1");
    assert_eq!(doc["client_certificate"]["sent"], true);
    assert_ne!(doc["server_response"]["kind"], "alert", "{}", r.stdout);
    assert_eq!(
        doc["verification"]["spiffe_id"],
        "spiffe://mesh.local/service/server"
    );
}

/// What the in-process server saw.
#[derive(Debug)]
struct Seen {
    client_cert: bool,
    error: Option<String>,
}

/// A rustls server on 127.0.0.1:0 that requires client certificates from `root.pem`, for one
/// connection.
fn rustls_server(pki: &Pki) -> (u16, mpsc::Receiver<Seen>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki.path("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(pki.path("server.pem.key")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.root.cert_der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut sock, _)) = listener.accept() else {
            return;
        };
        sock.set_read_timeout(Some(StdDuration::from_secs(20)))
            .unwrap();
        let mut conn = rustls::ServerConnection::new(config).unwrap();
        let mut error = None;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                error = Some(e.to_string());
                break;
            }
        }
        if error.is_none() {
            // Read until the client's close_notify, then answer with ours.
            let mut buf = [0u8; 1024];
            loop {
                match conn.complete_io(&mut sock) {
                    Ok((0, 0)) | Err(_) => break,
                    Ok(_) => {}
                }
                if conn.reader().read(&mut buf).is_ok_and(|n| n == 0) {
                    break;
                }
            }
            conn.send_close_notify();
            let _ = conn.complete_io(&mut sock);
        }
        let _ = tx.send(Seen {
            client_cert: conn.peer_certificates().is_some_and(|c| !c.is_empty()),
            error,
        });
    });
    (port, rx)
}

fn seen(rx: &mpsc::Receiver<Seen>) -> Seen {
    rx.recv_timeout(StdDuration::from_secs(20))
        .expect("the test server reports")
}

#[test]
fn rustls_server_shows_chain_without_client_cert() {
    let pki = pki();
    let (port, rx) = rustls_server(&pki);
    let target = format!("localhost:{port}");
    let r = run_in(
        pki.dir.path(),
        &[
            "remote",
            &target,
            "--ca-cert",
            "root.pem",
            "--trust-domain",
            "mesh.local",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("TLS version:   TLSv1.3"), "{}", r.stdout);
    assert!(
        r.stdout.contains("Key exchange:  secp384r1"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("Accepted CAs:  O=mtls-mesh, CN=Test Root"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("REJECTED the connection: alert certificate_required"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "Verification:  OK (server certificate for spiffe://mesh.local/service/server)"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("| spiffe://mesh.local/service/server |"),
        "{}",
        r.stdout
    );
    let s = seen(&rx);
    assert!(!s.client_cert);
    assert!(s.error.is_some());
}

#[test]
fn rustls_server_accepts_our_client_cert() {
    let pki = pki();
    let (port, rx) = rustls_server(&pki);
    let target = format!("127.0.0.1:{port}");
    let r = run_in(
        pki.dir.path(),
        &[
            "remote",
            &target,
            "--cert",
            "client.pem",
            "--key",
            "client.pem.key",
            "--ca-cert",
            "root.pem",
            "--full",
        ],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("Client cert:   requested; ours was sent"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Server:        accepted the connection"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Client key:"),
        "--full prints whole certificates: {}",
        r.stdout
    );
    let s = seen(&rx);
    assert!(s.client_cert, "{s:?}");
    assert!(s.error.is_none(), "{s:?}");
}

#[test]
fn wrong_roots_or_identity_are_invalid() {
    let pki = pki();
    let other = pki::CaMaterial::generate_root("Other Root", common::now()).unwrap();
    pki.write("other.pem", other.cert_pem());
    let (port, _rx) = rustls_server(&pki);
    let r = run_in(
        pki.dir.path(),
        &[
            "remote",
            &format!("127.0.0.1:{port}"),
            "--ca-cert",
            "other.pem",
        ],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Verification:  INVALID: issuer O=mtls-mesh, CN=Test Root is not in the roots [O=mtls-mesh, CN=Other Root]"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("Chain presented by the server (1 certificate)"),
        "{}",
        r.stdout
    );

    let (port, _rx) = rustls_server(&pki);
    let r = run_in(
        pki.dir.path(),
        &[
            "remote",
            &format!("127.0.0.1:{port}"),
            "--ca-cert",
            "root.pem",
            "--spiffe-id",
            "spiffe://mesh.local/service/other",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 1);
    let doc = json(&r);
    assert_eq!(doc["verification"]["error_code"], "spiffe_id_mismatch");
    assert_eq!(doc["verification"]["error"], "certificate is valid for spiffe://mesh.local/service/server, not spiffe://mesh.local/service/other");

    let (port, _rx) = rustls_server(&pki);
    let r = run_in(
        pki.dir.path(),
        &[
            "remote",
            &format!("127.0.0.1:{port}"),
            "--servername",
            "localhost2",
            "--ca-cert",
            "root.pem",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains(
            "hostname localhost2 is not in the certificate's SANs [localhost, 127.0.0.1]"
        ),
        "{}",
        r.stdout
    );
}

#[test]
fn unreachable_and_usage_errors_exit_2() {
    let port = free_port();
    let r = common::run(&["remote", &format!("127.0.0.1:{port}"), "--timeout", "5s"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("cannot connect to 127.0.0.1:"),
        "{}",
        r.stderr
    );
    let r = common::run(&["remote", "localhost"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("expected HOST:PORT"), "{}", r.stderr);
    let r = common::run(&["remote", "localhost:1", "--cert", "x.pem"]);
    assert_eq!(r.code, 2);
    let r = common::run(&["remote", "localhost:1", "--spiffe-id", "spiffe://a/b"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("need --ca-cert"), "{}", r.stderr);
}

#[test]
fn a_plain_tcp_server_is_a_handshake_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 16];
            let _ = s.read(&mut buf);
            drop(s);
        }
    });
    let r = common::run(&["remote", &format!("127.0.0.1:{port}")]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Handshake:     FAILED"), "{}", r.stdout);
    let _ = TcpStream::connect(("127.0.0.1", port));
}
