//! Graceful shutdown of mtls-server: on SIGTERM it stops accepting, lets a request in flight
//! finish (an upload still arriving), closes idle connections at once, cuts what is still
//! busy after --drain, and exits 0.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use super::common::*;
use crate::programs::start_server;
use testkit::raw_tls::{read_http1_response, read_until, read_until_closed, send, RawTls};
use testkit::ServerProc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const WAIT: Duration = Duration::from_secs(20);

fn server(pki: &StaticPki, extra: &[&str]) -> ServerProc {
    let mut args = pki.server_args();
    args.extend(extra.iter().map(|s| s.to_string()));
    start_server("server", &args)
}

fn client(pki: &StaticPki) -> RawTls {
    RawTls::new(
        &pki.ca_path,
        Some((&pki.client_cert, &pki.client_key)),
        &["http/1.1"],
    )
}

/// Starts `POST /api/echo` with an 11-byte body and sends its first 5 bytes. Returns once the
/// server's handler is reading the body (hyper answers `100 Continue` when it starts to): the
/// request is in flight.
async fn start_upload(tls: &mut TlsStream<TcpStream>) {
    send(
        tls,
        b"POST /api/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\
          Expect: 100-continue\r\n\r\n",
    )
    .await;
    read_until(tls, b"100 Continue\r\n\r\n", WAIT).await;
    send(tls, b"hello").await;
}

/// SIGTERM, then wait until the server says it is draining (its listener is closed by then).
fn terminate_and_wait_for_drain(server: &mut ServerProc) {
    server.proc.terminate();
    server.proc.wait_for(|l| l.contains("drain_started"), WAIT);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_in_flight_at_sigterm_completes_and_the_server_exits_0() {
    let pki = StaticPki::new();
    let mut server = server(&pki, &[]);
    let mut upload = client(&pki).connect(server.port).await.unwrap();
    start_upload(&mut upload).await;

    terminate_and_wait_for_drain(&mut server);
    // New connections are refused while the old one finishes.
    let refused = TcpStream::connect(("127.0.0.1", server.port)).await;
    assert_eq!(
        refused.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );

    send(&mut upload, b" world").await;
    let r = read_http1_response(&mut upload, WAIT).await;
    assert_eq!(r.status, 200, "{r:?}");
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["echo"], "hello world");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    read_until_closed(&mut upload, WAIT).await.unwrap();

    let status = server.proc.wait_exit(WAIT).expect("exits after the drain");
    assert!(status.success(), "{status:?}\n{}", server.proc.output());
    server.proc.wait_for(
        |l| l.contains("drain_finished") && l.contains("1 of 1 connections closed in time, 0 cut"),
        WAIT,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_still_in_flight_after_the_drain_time_is_cut_and_the_server_exits_0() {
    let pki = StaticPki::new();
    let mut server = server(&pki, &["--drain", "1s"]);
    let mut upload = client(&pki).connect(server.port).await.unwrap();
    start_upload(&mut upload).await;

    terminate_and_wait_for_drain(&mut server);
    // The rest of the body never comes: the drain time runs out and the connection is cut.
    let got = read_until_closed(&mut upload, WAIT)
        .await
        .expect("cut at the end of the drain time");
    assert!(got.is_empty(), "no response for a cut request: {got:?}");
    let status = server.proc.wait_exit(WAIT).expect("exits after the drain");
    assert!(status.success(), "{status:?}\n{}", server.proc.output());
    let line = server.proc.wait_for(|l| l.contains("drain_timeout"), WAIT);
    assert!(
        line.contains("still busy when the drain time ran out"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_do_not_hold_up_the_shutdown() {
    let pki = StaticPki::new();
    // A drain time far beyond the wait below: only closing idle connections at once can
    // let the server exit in time.
    let mut server = server(&pki, &["--drain", "10m"]);
    let tls = client(&pki);
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut conn = tls.connect(server.port).await.unwrap();
        send(
            &mut conn,
            b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n\r\n",
        )
        .await;
        assert_eq!(read_http1_response(&mut conn, WAIT).await.status, 200);
        idle.push(conn);
    }
    // And one that has connected but sent nothing yet.
    idle.push(tls.connect(server.port).await.unwrap());
    terminate_and_wait_for_drain(&mut server);
    for conn in &mut idle {
        read_until_closed(conn, WAIT)
            .await
            .expect("idle connections are closed at once");
    }
    let status = server
        .proc
        .wait_exit(WAIT)
        .expect("exits without waiting for --drain");
    assert!(status.success(), "{status:?}");
}
