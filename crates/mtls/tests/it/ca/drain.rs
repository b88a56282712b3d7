//! Graceful shutdown of mtls-ca: a sign request whose body is still arriving when SIGTERM
//! comes is completed (200 and a certificate), new connections are refused meanwhile, and the
//! process exits 0; with --drain 1s a request that does not finish is cut and the exit is
//! still 0.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::time::Duration;

use super::common::{csr, sign_body};
use crate::programs::start_ca;
use testkit::raw_tls::{read_http1_response, read_until, read_until_closed, send, RawTls};
use testkit::CaProc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const WAIT: Duration = Duration::from_secs(20);
const ID: &str = "spiffe://mesh.local/service/slow";

/// Sends the header of a sign request and the first half of its body; returns the second
/// half once the CA's handler is reading the body (hyper answers `100 Continue` when it
/// starts to), so the request is in flight.
async fn start_slow_sign(ca: &CaProc, tls: &mut TlsStream<TcpStream>) -> Vec<u8> {
    let token = ca.token(ID, &[]);
    let (_key, csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let body = sign_body(&csr, ID, None).to_string().into_bytes();
    let head = format!(
        "POST /api/v1/sign HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    send(tls, head.as_bytes()).await;
    read_until(tls, b"100 Continue\r\n\r\n", WAIT).await;
    let (first, second) = body.split_at(body.len() / 2);
    send(tls, first).await;
    second.to_vec()
}

fn start(dir: &Path, extra: &[&str]) -> (CaProc, RawTls) {
    let ca = start_ca("mtls-ca", &dir.join("ca"), "127.0.0.1:0", extra);
    let tls = RawTls::new(&dir.join("ca").join("root.crt"), None, &["http/1.1"]);
    (ca, tls)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_request_in_flight_at_sigterm_completes_and_the_ca_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ca, tls) = start(dir.path(), &[]);
    let mut conn = tls.connect(ca.port).await.unwrap();
    let rest = start_slow_sign(&ca, &mut conn).await;

    ca.proc.terminate();
    ca.proc.wait_for(|l| l.contains("drain_started"), WAIT);
    let refused = TcpStream::connect(("127.0.0.1", ca.port)).await;
    assert_eq!(
        refused.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused,
        "new connections are refused while draining"
    );

    send(&mut conn, &rest).await;
    let r = read_http1_response(&mut conn, WAIT).await;
    assert_eq!(r.status, 200, "{r:?}");
    let issued: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(issued["spiffe_id"], ID);
    assert!(issued["certificate"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");

    let status = ca.proc.wait_exit(WAIT).expect("exits after the drain");
    assert!(status.success(), "{status:?}\n{}", ca.proc.output());
    assert!(ca
        .proc
        .output()
        .contains("mtls-ca: stopped (1 of 1 connections closed in time, 0 cut)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_request_that_does_not_finish_within_the_drain_time_is_cut_and_the_ca_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ca, tls) = start(dir.path(), &["--drain", "1s"]);
    let mut conn = tls.connect(ca.port).await.unwrap();
    let _never_sent = start_slow_sign(&ca, &mut conn).await;

    ca.proc.terminate();
    let got = read_until_closed(&mut conn, WAIT)
        .await
        .expect("cut at the end of the drain time");
    assert!(got.is_empty(), "no response for a cut request: {got:?}");
    let status = ca.proc.wait_exit(WAIT).expect("exits after the drain");
    assert!(status.success(), "{status:?}\n{}", ca.proc.output());
    assert!(ca
        .proc
        .output()
        .contains("mtls-ca: stopped (0 of 1 connections closed in time, 1 cut)"));
}
