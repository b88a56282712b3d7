//! Idle HTTP/1.1 connections are parked: their hyper connection and its buffers are dropped
//! and only the TLS stream is kept (docs/performance.md "Memory per idle connection"). The next
//! request takes the connection up again. Nothing a client can see changes, and every timer
//! still applies to a parked connection.

use std::time::Duration;

use super::common::*;
use crate::programs::start_server_with_log;
use testkit::raw_tls::{read_http1_response, read_until_closed, send, RawTls};
use testkit::ServerProc;

/// Generous deadline for events; short timeouts come from the server's flags.
const WAIT: Duration = Duration::from_secs(20);
const GET_STATUS: &[u8] = b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n\r\n";

fn server(pki: &StaticPki, extra: &[&str]) -> ServerProc {
    let mut args = pki.server_args();
    args.extend(extra.iter().map(|s| s.to_string()));
    // The connection layer's trace events say when a connection has been parked.
    start_server_with_log("server", &args, "info,wire=trace")
}

fn client(pki: &StaticPki) -> RawTls {
    RawTls::new(
        &pki.ca_path,
        Some((&pki.client_cert, &pki.client_key)),
        &["http/1.1"],
    )
}

/// Waits until the server has parked a connection after the output line `mark`; returns the
/// mark after that line.
fn parked_after(server: &ServerProc, mark: usize) -> usize {
    server.proc.wait_for_after(
        mark,
        |l| l.contains("connection_parked") && l.contains(CLIENT_ID),
        WAIT,
    );
    server.proc.mark()
}

async fn get_ok(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) {
    send(tls, GET_STATUS).await;
    let r = read_http1_response(tls, WAIT).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains(CLIENT_ID), "{r:?}");
}

#[tokio::test]
async fn a_parked_connection_serves_whole_split_and_pipelined_requests() {
    let pki = StaticPki::new();
    let server = server(&pki, &[]);
    let mut conn = client(&pki).connect(server.port).await.unwrap();
    get_ok(&mut conn).await;
    let mark = parked_after(&server, 0);

    // A whole request on the parked connection.
    get_ok(&mut conn).await;
    let mark = parked_after(&server, mark);

    // A request whose header arrives in two parts, the connection parked before either.
    send(&mut conn, b"GET /api/status HTTP/1.1\r\nHo").await;
    send(&mut conn, b"st: localhost\r\n\r\n").await;
    let r = read_http1_response(&mut conn, WAIT).await;
    assert_eq!(r.status, 200, "{r:?}");
    parked_after(&server, mark);

    // Two pipelined requests in one write; the second asks to close, so the server's whole
    // answer is everything up to its close.
    let mut two = GET_STATUS.to_vec();
    two.extend_from_slice(
        b"GET /api/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    send(&mut conn, &two).await;
    let answer = read_until_closed(&mut conn, WAIT)
        .await
        .expect("the server closes after the second response");
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
    assert_eq!(answer.matches(CLIENT_ID).count(), 2, "{answer}");
}

#[tokio::test]
async fn a_parked_connection_still_gets_the_header_timeout() {
    let pki = StaticPki::new();
    // The idle timeout (60 s) is far beyond the wait below: only the header timer can act.
    let server = server(&pki, &["--header-timeout", "2s"]);
    let mut conn = client(&pki).connect(server.port).await.unwrap();
    get_ok(&mut conn).await;
    let mark = parked_after(&server, 0);
    // The first bytes wake the parked connection; the rest never comes.
    send(
        &mut conn,
        b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n",
    )
    .await;
    read_until_closed(&mut conn, WAIT)
        .await
        .expect("the server closes a connection whose request header never completes");
    let line = server.proc.wait_for_after(
        mark,
        |l| l.contains("connection_closed") && l.contains("header_timeout"),
        WAIT,
    );
    assert!(
        line.contains("request header not complete within 2s"),
        "{line}"
    );
}

#[tokio::test]
async fn a_parked_connection_is_closed_after_the_idle_timeout_and_at_shutdown() {
    let pki = StaticPki::new();
    let mut server = server(&pki, &["--idle-timeout", "2s"]);
    let mut idle = client(&pki).connect(server.port).await.unwrap();
    get_ok(&mut idle).await;
    let mark = parked_after(&server, 0);
    let rest = read_until_closed(&mut idle, WAIT)
        .await
        .expect("the server closes a parked connection after the idle timeout");
    assert!(rest.is_empty(), "{rest:?}");
    let line = server.proc.wait_for_after(
        mark,
        |l| l.contains("connection_closed") && l.contains("no request for 2s"),
        WAIT,
    );
    assert!(line.contains(CLIENT_ID), "{line}");

    // Shutdown: a parked connection is closed at once, counted as closed in time.
    let before = server.proc.mark();
    let mut other = client(&pki).connect(server.port).await.unwrap();
    get_ok(&mut other).await;
    let mark = parked_after(&server, before);
    server.proc.terminate();
    read_until_closed(&mut other, WAIT)
        .await
        .expect("the server closes a parked connection when it shuts down");
    let line = server
        .proc
        .wait_for_after(mark, |l| l.contains("drain_finished"), WAIT);
    assert!(
        line.contains("1 of 1 connections closed in time, 0 cut"),
        "{line}"
    );
}
