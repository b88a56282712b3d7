//! mtls-server's connection limits against a real process (crates/wire): idle keep-alive,
//! half-sent headers and idle HTTP/2 are closed; --max-connections makes the excess wait;
//! --max-connections-per-identity answers the excess with 429 and closes it; a caller refused
//! by --allow-id gets its 403 and then EOF; an oversized body gets 413 over HTTP/2; and with
//! few file descriptors one valid caller cannot starve the others (issue 9's reproducer).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::time::Duration;

use pki::clock::Deadline;

use super::common::*;
use crate::programs::{start_server, start_server_with_open_files};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use testkit::raw_tls::{
    h2_ping, read_http1_response, read_until_closed, send, RawTls, H2_PREFACE_AND_SETTINGS,
};
use testkit::ServerProc;

/// Generous deadline for events; short timeouts come from the server's flags.
const WAIT: Duration = Duration::from_secs(20);
const GET_STATUS: &[u8] = b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n\r\n";

fn server(pki: &StaticPki, extra: &[&str]) -> ServerProc {
    let mut args = pki.server_args();
    args.extend(extra.iter().map(|s| s.to_string()));
    start_server("server", &args)
}

fn client(pki: &StaticPki, alpn: &[&str]) -> RawTls {
    RawTls::new(
        &pki.ca_path,
        Some((&pki.client_cert, &pki.client_key)),
        alpn,
    )
}

/// A second client identity from the same CA.
fn other_client(pki: &StaticPki, alpn: &[&str]) -> RawTls {
    let (cert, key) = pki
        .ca
        .client("spiffe://mesh.local/service/other")
        .write(pki.path(), "other");
    RawTls::new(&pki.ca_path, Some((&cert, &key)), alpn)
}

fn metric(server: &ServerProc, line_prefix: &str) -> Option<u64> {
    let (_, metrics) = server.admin_get("/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits (polling /metrics, with a deadline) until `line_prefix` shows `value`.
#[allow(clippy::disallowed_methods)] // a counter of another process: no event to wait on, so poll
fn wait_metric(server: &ServerProc, line_prefix: &str, value: u64) {
    let deadline = Deadline::after(WAIT);
    while metric(server, line_prefix) != Some(value) {
        assert!(
            !deadline.passed(),
            "{line_prefix} did not reach {value}:\n{}",
            server.admin_get("/metrics").1
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn closed_line(server: &ServerProc, reason: &str) -> String {
    server.proc.wait_for(
        |l| l.contains("connection_closed") && l.contains(reason),
        WAIT,
    )
}

async fn get_ok(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) {
    send(tls, GET_STATUS).await;
    let r = read_http1_response(tls, WAIT).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let pki = StaticPki::new();
    let server = server(&pki, &["--idle-timeout", "2s"]);
    let mut conn = client(&pki, &["http/1.1"])
        .connect(server.port)
        .await
        .unwrap();
    get_ok(&mut conn).await;
    // Keep-alive: the server keeps the connection after the response, but not forever.
    let rest = read_until_closed(&mut conn, WAIT)
        .await
        .expect("the server closes an idle keep-alive connection");
    assert!(rest.is_empty(), "{rest:?}");
    let line = closed_line(&server, "idle");
    assert!(line.contains("no request for 2s"), "{line}");
    assert!(line.contains(CLIENT_ID), "{line}");
    assert_eq!(
        metric(&server, "mesh_connections_closed_total{reason=\"idle\"} "),
        Some(1)
    );
}

#[tokio::test]
async fn a_request_header_that_never_completes_is_closed_after_the_header_timeout() {
    let pki = StaticPki::new();
    // The idle timeout (60 s) is far beyond the wait below: only the header timer can act.
    let server = server(&pki, &["--header-timeout", "2s"]);
    let mut conn = client(&pki, &["http/1.1"])
        .connect(server.port)
        .await
        .unwrap();
    send(
        &mut conn,
        b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n",
    )
    .await;
    read_until_closed(&mut conn, WAIT)
        .await
        .expect("the server closes a connection whose request header never completes");
    let line = closed_line(&server, "header_timeout");
    assert!(
        line.contains("request header not complete within 2s"),
        "{line}"
    );
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_even_while_the_client_sends_pings() {
    let pki = StaticPki::new();
    let server = server(&pki, &["--idle-timeout", "2s"]);
    let conn = client(&pki, &["h2"]).connect(server.port).await.unwrap();
    assert_eq!(conn.get_ref().1.alpn_protocol(), Some(b"h2".as_slice()));
    let (mut reader, mut writer) = tokio::io::split(conn);
    send(&mut writer, H2_PREFACE_AND_SETTINGS).await;
    // PING frames every 100 ms: protocol traffic, never a request. They must not keep the
    // connection; nor may a client that never answers the server's GOAWAY PING hold it.
    let pinger = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for n in 0u64.. {
            tick.tick().await;
            if tokio::io::AsyncWriteExt::write_all(&mut writer, &h2_ping(n))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    read_until_closed(&mut reader, WAIT)
        .await
        .expect("the server closes an HTTP/2 connection without requests");
    pinger.abort();
    closed_line(&server, "idle");
}

#[tokio::test]
async fn an_http2_client_sees_its_idle_connection_closed_cleanly_after_a_request() {
    let pki = StaticPki::new();
    let server = server(&pki, &["--idle-timeout", "2s"]);
    let tls = client(&pki, &["h2"]).connect(server.port).await.unwrap();
    let (mut send_request, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let driver = tokio::spawn(connection);
    let req = hyper::Request::get("https://localhost/api/status")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send_request.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    // The server's GOAWAY ends the connection once it has been idle for 2 s.
    let ended = tokio::time::timeout(WAIT, driver).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the connection should end cleanly: {ended:?}"
    );
    closed_line(&server, "idle");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_max_connections_wait_until_a_slot_frees() {
    let pki = StaticPki::new();
    let server = server(&pki, &["--max-connections", "2"]);
    let tls = client(&pki, &["http/1.1"]);
    let mut first = tls.connect(server.port).await.unwrap();
    let mut second = tls.connect(server.port).await.unwrap();
    get_ok(&mut first).await;
    get_ok(&mut second).await;
    // The third connection is accepted by the kernel but not by the server: its handshake
    // waits (it is not refused).
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let mut pending = tokio::spawn({
        let tls = tls.clone();
        async move { tls.handshake(tcp).await }
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut pending)
            .await
            .is_err(),
        "a third connection was served despite --max-connections 2"
    );
    drop(first);
    let mut third = tokio::time::timeout(WAIT, pending)
        .await
        .expect("served once a slot is free")
        .unwrap()
        .unwrap();
    get_ok(&mut third).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_identity_over_its_connection_limit_gets_429_and_is_closed() {
    let pki = StaticPki::new();
    let server = server(&pki, &["--max-connections-per-identity", "2"]);
    let tls = client(&pki, &["http/1.1"]);
    let mut first = tls.connect(server.port).await.unwrap();
    let mut second = tls.connect(server.port).await.unwrap();
    get_ok(&mut first).await;
    get_ok(&mut second).await;

    let mut third = tls.connect(server.port).await.unwrap();
    send(&mut third, GET_STATUS).await;
    let r = read_http1_response(&mut third, WAIT).await;
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "{CLIENT_ID} already holds 2 connections, the most one identity may hold"
        )),
        "{message}"
    );
    read_until_closed(&mut third, WAIT)
        .await
        .expect("the refused connection is closed after its answer");
    let refused = server.proc.wait_for(
        |l| l.contains("connection_refused") && l.contains("per_identity"),
        WAIT,
    );
    assert!(refused.contains(CLIENT_ID), "{refused}");
    assert_eq!(
        metric(
            &server,
            "mesh_connections_refused_total{reason=\"per_identity\"} "
        ),
        Some(1)
    );

    // Another identity is not affected ...
    let mut other = other_client(&pki, &["http/1.1"])
        .connect(server.port)
        .await
        .unwrap();
    get_ok(&mut other).await;
    // ... and once one of its connections is gone, the identity may connect again.
    drop(first);
    wait_metric(&server, "mesh_connections_open ", 2);
    let mut again = tls.connect(server.port).await.unwrap();
    get_ok(&mut again).await;
}

#[tokio::test]
async fn a_caller_refused_by_allow_id_gets_403_and_then_eof_over_http1() {
    let pki = StaticPki::new();
    let server = server(
        &pki,
        &["--allow-id", "spiffe://mesh.local/service/someone-else"],
    );
    let mut conn = client(&pki, &["http/1.1"])
        .connect(server.port)
        .await
        .unwrap();
    send(&mut conn, GET_STATUS).await;
    let r = read_http1_response(&mut conn, WAIT).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert!(
        r.body.contains("is not allowed to call this service"),
        "{r:?}"
    );
    read_until_closed(&mut conn, WAIT)
        .await
        .expect("the connection of a refused caller is closed");
    let line = closed_line(&server, "forbidden");
    assert!(line.contains("is not allowed by --allow-id"), "{line}");
}

#[tokio::test]
async fn a_caller_refused_by_allow_id_gets_403_and_then_goaway_over_http2() {
    let pki = StaticPki::new();
    let server = server(
        &pki,
        &["--allow-id", "spiffe://mesh.local/service/someone-else"],
    );
    let tls = client(&pki, &["h2"]).connect(server.port).await.unwrap();
    let (mut send_request, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    let driver = tokio::spawn(connection);
    let req = hyper::Request::get("https://localhost/api/status")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send_request.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 403);
    let ended = tokio::time::timeout(WAIT, driver).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the server should close the connection after the 403: {ended:?}"
    );
    closed_line(&server, "forbidden");
}

/// curl over HTTP/2 with a body of `size` bytes; returns "STATUS VERSION".
fn curl_h2_echo(pki: &StaticPki, server: &ServerProc, size: usize, declare_length: bool) -> String {
    let body: PathBuf = pki.path().join(format!("body-{size}"));
    std::fs::write(&body, vec![b'a'; size]).unwrap();
    let url = format!("{}/api/echo", server.url());
    let data = format!("@{}", body.display());
    let (ca, cert, key) = (s(&pki.ca_path), s(&pki.client_cert), s(&pki.client_key));
    let mut args = vec![
        "--http2",
        "--cacert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{http_version}",
        "--data-binary",
        &data,
    ];
    if !declare_length {
        // An empty header removes curl's Content-Length: the body arrives as DATA frames of
        // undeclared length.
        args.extend(["-H", "Content-Length:"]);
    }
    args.push(&url);
    let (_, stdout, all) = run_curl(&args);
    assert!(!all.contains("curl: ("), "curl failed: {all}");
    stdout
}

#[test]
fn an_oversized_body_gets_413_over_http2_with_and_without_content_length() {
    let pki = StaticPki::new();
    let server = server(&pki, &[]);
    for declare_length in [true, false] {
        for size in [200 * 1024, 3 * 1024 * 1024] {
            let got = curl_h2_echo(&pki, &server, size, declare_length);
            assert_eq!(
                got, "413 2",
                "{size} bytes, content-length declared: {declare_length}"
            );
        }
    }
    assert_eq!(curl_h2_echo(&pki, &server, 1000, false), "200 2");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_few_file_descriptors_one_valid_caller_cannot_starve_the_others() {
    // Issue 9: with 256 descriptors, 244 idle connections of one valid (even not allowed)
    // client starved everybody else. Here: 100 descriptors, of which 64 stay for the rest of
    // the process, so at most 36 connections; the attacker may hold 10 of them.
    let pki = StaticPki::new();
    let mut args = pki.server_args();
    args.extend(
        [
            "--allow-id",
            "spiffe://mesh.local/service/other",
            "--max-connections-per-identity",
            "10",
        ]
        .map(String::from),
    );
    let server = start_server_with_open_files("server", &args, 100);
    let lowered = server
        .proc
        .wait_for(|l| l.contains("max_connections_lowered"), WAIT);
    assert!(
        lowered.contains("serving at most 36 connections at once"),
        "{lowered}"
    );

    // The attacker (a valid certificate that --allow-id refuses) opens 60 connections and
    // sends nothing on them.
    let attacker = client(&pki, &["http/1.1"]);
    let mut held = Vec::new();
    for _ in 0..60 {
        let attacker = attacker.clone();
        let port = server.port;
        held.push(tokio::spawn(async move {
            // Keep the connection open until the test ends (or the server closes it).
            if let Ok(mut conn) = attacker.connect(port).await {
                let _ = read_until_closed(&mut conn, Duration::from_secs(3600)).await;
            }
        }));
    }
    // Ten are held; the others are refused (closed after a short wait for their request).
    server.proc.wait_for(
        |l| l.contains("connection_refused") && l.contains("per_identity"),
        WAIT,
    );

    // A legitimate caller is served.
    let mut legit =
        tokio::time::timeout(WAIT, other_client(&pki, &["http/1.1"]).connect(server.port))
            .await
            .expect("a legitimate caller gets a connection")
            .unwrap();
    get_ok(&mut legit).await;
    assert_eq!(
        metric(&server, "mesh_connections_open ").map(|n| n <= 36),
        Some(true)
    );
    for h in held {
        h.abort();
    }
}
