//! The CA's connection layer against a real mtls-ca (crates/wire): idle HTTP/2 connections
//! without a certificate cannot lock clients out (room is kept for authenticated peers, idle
//! ones are closed), a source over its limit is refused at once, a slow request gets 408, and
//! an oversized body gets 413 over HTTP/2 as over HTTP/1.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::common::{client, csr, sign_body, Identity};
use crate::programs::start_ca;
use testkit::raw_tls::{
    read_http1_response, read_until, read_until_closed, send, tcp_from, RawTls,
    H2_PREFACE_AND_SETTINGS,
};
use testkit::CaProc;

const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    ca: CaProc,
    root: PathBuf,
    dir: tempfile::TempDir,
}

fn start(extra: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ca");
    let ca = start_ca("mtls-ca", &data, "127.0.0.1:0", extra);
    Setup {
        root: data.join("root.crt"),
        ca,
        dir,
    }
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.ca.url())
    }

    fn root_pem(&self) -> Vec<u8> {
        std::fs::read(&self.root).unwrap()
    }

    /// Enrolls `id` with a join token; returns the identity and its certificate and key files.
    async fn enroll(&self, id: &str) -> (Identity, PathBuf, PathBuf) {
        let token = self.ca.token(id, &[]);
        let (key, csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
        let resp = client(&self.root_pem(), None)
            .post(self.url("/api/v1/sign"))
            .bearer_auth(token)
            .json(&sign_body(&csr, id, None))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let v: serde_json::Value = resp.json().await.unwrap();
        let identity = Identity {
            cert_pem: v["certificate"].as_str().unwrap().to_string(),
            key_pem: key.serialize_pem(),
        };
        let cert = self.dir.path().join("client.crt");
        let key = self.dir.path().join("client.key");
        std::fs::write(&cert, &identity.cert_pem).unwrap();
        std::fs::write(&key, &identity.key_pem).unwrap();
        (identity, cert, key)
    }

    async fn metrics(&self, http: &reqwest::Client) -> String {
        let resp = http.get(self.url("/metrics")).send().await.unwrap();
        resp.text().await.unwrap()
    }
}

fn metric(metrics: &str, line_prefix: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Opens `n` connections without a client certificate that do what a reproducer of issue 9
/// did: TLS, the HTTP/2 preface and SETTINGS, then nothing. Each reports on `closed` (with
/// its index) when the server closes it.
async fn idle_h2_flood(
    s: &Setup,
    n: usize,
    closed: &tokio::sync::mpsc::UnboundedSender<usize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let anonymous = RawTls::new(&s.root, None, &["h2"]);
    let mut readers = Vec::new();
    for i in 0..n {
        let mut conn = anonymous.connect(s.ca.port).await.unwrap();
        send(&mut conn, H2_PREFACE_AND_SETTINGS).await;
        let closed = closed.clone();
        readers.push(tokio::spawn(async move {
            if read_until_closed(&mut conn, Duration::from_secs(3600))
                .await
                .is_ok()
            {
                let _ = closed.send(i);
            }
        }));
    }
    readers
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_h2_connections_without_a_certificate_leave_room_for_authenticated_clients() {
    // --max-connections 16 keeps 4 slots (a quarter) for peers with a certificate.
    let s = start(&["--max-connections", "16"]);
    let (identity, _, _) = s.enroll("spiffe://mesh.local/service/worker").await;

    let (tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
    let readers = idle_h2_flood(&s, 16, &tx).await;
    // Twelve may stay; the other four are closed right after their handshake.
    for _ in 0..4 {
        tokio::time::timeout(WAIT, closed.recv())
            .await
            .expect("the excess unauthenticated connections are closed")
            .unwrap();
    }
    s.ca.proc.wait_for(
        |l| l.contains("connection_refused") && l.contains("unauthenticated"),
        WAIT,
    );

    // Authenticated clients still get in: health check and renewal over mTLS.
    let mtls = client(&s.root_pem(), Some(&identity));
    let health = mtls.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let (_, renewal_csr) = csr(&rcgen::PKCS_ECDSA_P384_SHA384, &[]);
    let renewed = mtls
        .post(s.url("/api/v1/renew"))
        .json(&serde_json::json!({ "csr": renewal_csr }))
        .send()
        .await
        .unwrap();
    assert_eq!(renewed.status().as_u16(), 200);
    let metrics = s.metrics(&mtls).await;
    assert_eq!(
        metric(&metrics, "mtls_ca_connections_unauthenticated "),
        Some(12),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "mtls_ca_connections_refused_total{reason=\"unauthenticated\"} "
        ),
        Some(4),
        "{metrics}"
    );

    // A client without a certificate finds no room while the twelve are held.
    let anonymous = client(&s.root_pem(), None);
    assert!(
        anonymous.get(s.url("/healthz")).send().await.is_err(),
        "an unauthenticated client got a thirteenth unauthenticated slot"
    );
    assert!(closed.try_recv().is_err(), "the twelve are still open");
    for r in readers {
        r.abort();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_idle_connection_is_closed_after_the_idle_timeout() {
    let s = start(&["--max-connections", "64", "--idle-timeout", "2s"]);
    let (tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
    let _h2 = idle_h2_flood(&s, 6, &tx).await;
    // HTTP/1 connections that finished TLS and then sent nothing.
    let anonymous = RawTls::new(&s.root, None, &["http/1.1"]);
    for i in 6..12 {
        let mut conn = anonymous.connect(s.ca.port).await.unwrap();
        let tx = tx.clone();
        tokio::spawn(async move {
            if read_until_closed(&mut conn, WAIT).await.is_ok() {
                let _ = tx.send(i);
            }
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 12 {
        let i = tokio::time::timeout(WAIT, closed.recv())
            .await
            .unwrap_or_else(|_| panic!("still open after {WAIT:?}: all but {seen:?}"))
            .unwrap();
        seen.insert(i);
    }
    let http = client(&s.root_pem(), None);
    let metrics = s.metrics(&http).await;
    assert_eq!(
        metric(
            &metrics,
            "mtls_ca_connections_closed_total{reason=\"idle\"} "
        ),
        Some(12),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_over_its_limit_is_refused_at_once_and_others_are_served() {
    let s = start(&["--max-connections-per-source", "3"]);
    let hog: IpAddr = "127.0.0.2".parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tcp_from(hog, s.ca.port).await.unwrap());
    }
    // The fourth connection from that address is closed without being served or queued.
    let mut fourth = tcp_from(hog, s.ca.port).await.unwrap();
    read_until_closed(&mut fourth, WAIT)
        .await
        .expect("closed at once");
    let line = s.ca.proc.wait_for(
        |l| l.contains("connection_refused") && l.contains("per_source"),
        WAIT,
    );
    assert!(
        line.contains("127.0.0.2 already holds 3 connections"),
        "{line}"
    );

    // Other sources are served.
    let http = client(&s.root_pem(), None);
    let health = http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let metrics = s.metrics(&http).await;
    assert_eq!(
        metric(
            &metrics,
            "mtls_ca_connections_refused_total{reason=\"per_source\"} "
        ),
        Some(1),
        "{metrics}"
    );

    // Once one of its connections ends, the source may connect again. The server releases
    // the slot just after it logs the failed handshake, so a connection in between may still
    // be refused: retry until one is served (deadline WAIT).
    let mark = s.ca.proc.mark();
    drop(held.pop());
    s.ca.proc
        .wait_for_after(mark, |l| l.contains("handshake_failed"), WAIT);
    let tls = RawTls::new(&s.root, None, &["http/1.1"]);
    let served = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(mut again) = tls.connect_from(hog, s.ca.port).await {
                send(
                    &mut again,
                    b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
                )
                .await;
                break read_http1_response(&mut again, WAIT).await.status;
            }
        }
    })
    .await
    .expect("the source is served again once it holds fewer connections");
    assert_eq!(served, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_slower_than_the_request_timeout_gets_408_and_is_closed() {
    let s = start(&["--request-timeout", "2s"]);
    let tls = RawTls::new(&s.root, None, &["http/1.1"]);
    let mut conn = tls.connect(s.ca.port).await.unwrap();
    send(
        &mut conn,
        b"POST /api/v1/sign HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer x\r\n\
          Content-Type: application/json\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    read_until(&mut conn, b"100 Continue\r\n\r\n", WAIT).await;
    send(&mut conn, b"{\"csr\": \"").await;
    // The rest of the body never comes.
    let r = read_http1_response(&mut conn, WAIT).await;
    assert_eq!(r.status, 408, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "request_timeout");
    read_until_closed(&mut conn, WAIT).await.unwrap();
    s.ca.proc.wait_for(
        |l| l.contains("connection_closed") && l.contains("request_timeout"),
        WAIT,
    );
}

/// curl with a body of `size` bytes to /api/v1/sign; returns "STATUS VERSION".
fn curl_sign(s: &Setup, version: &str, size: usize, declare_length: bool) -> String {
    let body = s.dir.path().join(format!("body-{size}"));
    std::fs::write(&body, vec![b'a'; size]).unwrap();
    let url = s.url("/api/v1/sign");
    let data = format!("@{}", body.display());
    let root = s.root.display().to_string();
    let mut args = vec![
        "-sS",
        "--max-time",
        "20",
        version,
        "--cacert",
        &root,
        "-H",
        "Authorization: Bearer x",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{http_version}",
        "--data-binary",
        &data,
    ];
    if !declare_length {
        // HTTP/2 without Content-Length: DATA frames of undeclared length; HTTP/1: chunked.
        args.extend(["-H", "Content-Length:", "-H", "Transfer-Encoding: chunked"]);
    }
    args.push(&url);
    let mut cmd = std::process::Command::new("curl");
    cmd.args(&args);
    let (_, stdout, all) = testkit::run("curl", cmd, Duration::from_secs(30));
    assert!(!all.contains("curl: ("), "curl failed: {all}");
    stdout
}

#[test]
fn an_oversized_body_gets_413_over_http2_as_over_http1() {
    let s = start(&[]);
    for (version, expected) in [("--http2", "413 2"), ("--http1.1", "413 1.1")] {
        for declare_length in [true, false] {
            for size in [200 * 1024, 3 * 1024 * 1024] {
                assert_eq!(
                    curl_sign(&s, version, size, declare_length),
                    expected,
                    "{version}, {size} bytes, content-length declared: {declare_length}"
                );
            }
        }
    }
}
