//! Inbound: an unmodified application behind the proxy answers verified, allowed callers; every
//! other caller is refused after (or during) the handshake and the application never sees its
//! connection: python's access log and the Rust app's accept counter say so. A caller whose
//! certificate expires or is revoked while connected is cut off.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::*;
use testkit::raw_tls::{read_until, read_until_closed};
use testkit::TestCa;

fn inbound_args(pki: &Pki, to: &str, extra: &[&str]) -> Vec<String> {
    let mut a = args(&[
        "inbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        to,
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    a.extend(pki.proxy_creds());
    a.extend(args(extra));
    a
}

#[test]
fn an_unmodified_http_app_answers_allowed_callers_and_never_sees_the_others() {
    let pki = Pki::new();
    let app = PythonApp::start();
    let proxy = start_proxy(
        "proxy",
        &inbound_args(&pki, &app.to(), &["--allow-id", CLIENT_ID]),
    );
    let port = proxy.inbound();

    let body = curl(
        port,
        "/hello.txt",
        &pki.ca_path,
        Some((&pki.client_cert, &pki.client_key)),
    )
    .expect("the allowed caller gets the app's answer");
    assert_eq!(body, "hello from the app\n");

    // No certificate, another CA, expired, a verified but not allowed ID: all refused.
    let other_ca = TestCa::new("Other Root");
    let (foreign_cert, foreign_key) = pki.write(&other_ca.client(CLIENT_ID), "foreign");
    let (expired_cert, expired_key) = pki.write(&pki.ca.expired(CLIENT_ID), "expired");
    let (intruder_cert, intruder_key) = pki.write(&pki.ca.client(OTHER_ID), "intruder");
    assert!(curl(port, "/hello.txt", &pki.ca_path, None).is_err());
    for (name, cert, key) in [
        ("another CA", &foreign_cert, &foreign_key),
        ("expired", &expired_cert, &expired_key),
        ("not allowed", &intruder_cert, &intruder_key),
    ] {
        let refused = curl(port, "/hello.txt", &pki.ca_path, Some((cert, key)));
        assert!(refused.is_err(), "{name}: {refused:?}");
    }

    // The app saw exactly one request: the allowed caller's.
    let requests = app.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].contains("GET /hello.txt"), "{requests:?}");

    // The refusal is logged with its reason and counted; the allowed connection has its line.
    proxy.proc.wait_for(
        |l| {
            l.contains("refusing the connection")
                && l.contains(OTHER_ID)
                && l.contains("not allowed")
        },
        LONG,
    );
    let served = proxy.proc.wait_for(
        |l| l.contains("proxy_connection") && l.contains(CLIENT_ID),
        LONG,
    );
    assert!(
        served.contains("reason=\"closed\"") || served.contains("reason=closed"),
        "{served}"
    );
    let metrics = proxy.metrics();
    assert!(
        metrics.contains("mtls_proxy_refused_total{direction=\"inbound\",reason=\"forbidden\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "mtls_proxy_connections_closed_total{direction=\"inbound\",reason=\"forbidden\"} 1"
        ),
        "{metrics}"
    );
    for result in ["unknown_ca", "expired", "no_certificate"] {
        assert!(
            metrics.contains(&format!("mesh_handshakes_total{{result=\"{result}\"}} 1")),
            "{result}: {metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_callers_get_no_byte_and_the_app_no_connection() {
    let pki = Pki::new();
    let app = App::start();
    let proxy = start_proxy(
        "proxy",
        &inbound_args(&pki, &app.to(), &["--allow-id", CLIENT_ID]),
    );
    let port = proxy.inbound();
    let other_ca = TestCa::new("Other Root");
    let (foreign_cert, foreign_key) = pki.write(&other_ca.client(CLIENT_ID), "foreign");
    let (intruder_cert, intruder_key) = pki.write(&pki.ca.client(OTHER_ID), "intruder");
    let no_cert = testkit::raw_tls::RawTls::new(&pki.ca_path, None, &[]);
    for (name, client) in [
        ("no certificate", no_cert),
        ("another CA", pki.client_with(&foreign_cert, &foreign_key)),
        (
            "not allowed",
            pki.client_with(&intruder_cert, &intruder_key),
        ),
    ] {
        // TLS 1.3: the client may finish its side before the server refuses; what it sends
        // then must reach nobody, and nothing may come back.
        if let Ok(mut tls) = client.connect(port).await {
            let _ = tls.write_all(b"ECHO\nhello\n").await;
            let got = read_until_closed(&mut tls, LONG)
                .await
                .expect("closed by the proxy");
            assert!(
                got.is_empty(),
                "{name}: got {:?}",
                String::from_utf8_lossy(&got)
            );
        }
    }
    assert_eq!(app.accepted(), 0, "a refused caller reached the app");

    let mut tls = pki.client().connect(port).await.expect("allowed");
    tls.write_all(b"ECHO\nhello\n").await.unwrap();
    read_until(&mut tls, b"hello\n", LONG).await;
    assert_eq!(app.accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_certificate_expires_is_cut_off() {
    let pki = Pki::new();
    let app = App::start();
    let proxy = start_proxy("proxy", &inbound_args(&pki, &app.to(), &[]));
    // Issued once the proxy runs, so the handshake happens well before the expiry.
    let leaf = pki.short_lived(CLIENT_ID, time::Duration::seconds(4));
    let (cert, key) = pki.write(&leaf, "short");
    let mut tls = pki
        .client_with(&cert, &key)
        .connect(proxy.inbound())
        .await
        .expect("valid now");
    tls.write_all(b"ECHO\nstill here\n").await.unwrap();
    read_until(&mut tls, b"still here\n", LONG).await;
    // The proxy cuts it at the expiry (without close_notify: a truncation) and resets the
    // app's side.
    let mut rest = Vec::new();
    let end = tokio::time::timeout(LONG, tls.read_to_end(&mut rest))
        .await
        .expect("closed at the expiry");
    assert_eq!(
        end.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::UnexpectedEof),
        "a clean close_notify after {rest:?}"
    );
    assert_eq!(
        app.next_end(LONG),
        AppEnd::Failed(std::io::ErrorKind::ConnectionReset)
    );
    let line = proxy.proc.wait_for(
        |l| l.contains("proxy_connection") && l.contains("expired"),
        LONG,
    );
    assert!(line.contains(&leaf.serial_hex), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_revoked_while_connected_is_cut_off_at_the_next_crl_reload() {
    let pki = Pki::new();
    let app = App::start();
    let crl = pki.path().join("ca.crl");
    std::fs::write(&crl, pki.ca.crl(&[])).unwrap();
    let proxy = start_proxy(
        "proxy",
        &inbound_args(
            &pki,
            &app.to(),
            &["--crl", &s(&crl), "--reload-interval", "1s"],
        ),
    );
    let client = pki.client();
    let mut tls = client
        .connect(proxy.inbound())
        .await
        .expect("not revoked yet");
    tls.write_all(b"ECHO\nbefore\n").await.unwrap();
    read_until(&mut tls, b"before\n", LONG).await;

    let client_serial = pki.client_serial.clone();
    std::fs::write(&crl, pki.ca.crl(&[&client_serial])).unwrap();
    // Reloaded within --reload-interval (1 s): the open connection is closed.
    read_until_closed(&mut tls, Duration::from_secs(10))
        .await
        .expect("closed after the CRL reload");
    let line = proxy.proc.wait_for(
        |l| l.contains("proxy_connection") && l.contains("revoked"),
        LONG,
    );
    assert!(line.contains(&client_serial), "{line}");
    // And a new connection is refused at the handshake; the app saw only the first.
    if let Ok(mut again) = client.connect(proxy.inbound()).await {
        let _ = again.write_all(b"ECHO\nx\n").await;
        let got = read_until_closed(&mut again, LONG).await.expect("closed");
        assert!(got.is_empty());
    }
    assert_eq!(app.accepted(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_identity_over_its_connection_limit_is_refused_clearly() {
    let pki = Pki::new();
    let app = App::start();
    let proxy = start_proxy(
        "proxy",
        &inbound_args(&pki, &app.to(), &["--max-connections-per-identity", "1"]),
    );
    let client = pki.client();
    let mut first = client.connect(proxy.inbound()).await.unwrap();
    first.write_all(b"ECHO\nfirst\n").await.unwrap();
    read_until(&mut first, b"first\n", LONG).await;

    // The second connection of the same identity: closed cleanly, no byte, the app not asked.
    let mut second = client.connect(proxy.inbound()).await.unwrap();
    let _ = second.write_all(b"ECHO\nsecond\n").await;
    let got = read_until_closed(&mut second, LONG).await.expect("closed");
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(app.accepted(), 1);
    proxy.proc.wait_for(
        |l| l.contains("refusing the connection") && l.contains("per_identity"),
        LONG,
    );
    let line = proxy.proc.wait_for(
        |l| l.contains("proxy_connection") && l.contains("reason=\"per_identity\""),
        LONG,
    );
    assert!(line.contains(CLIENT_ID), "{line}");
    // The first one still works.
    first.write_all(b"still\n").await.unwrap();
    read_until(&mut first, b"still\n", LONG).await;
}
