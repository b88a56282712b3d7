//! HTTP mode: the application receives the verified caller in `X-Client-Spiffe-Id` and
//! `X-Forwarded-Client-Cert` (Envoy's format) and never a value the client sent under those
//! names; per-path policy rules; HTTP/2 from callers, HTTP/1.1 to the app.

use std::io::{Read, Write};
use std::net::TcpStream;

use super::common::*;

const SPOOF: &str = "GET /hello HTTP/1.1\r\nHost: app.local\r\n\
    X-Forwarded-Client-Cert: By=spiffe://evil/proxy;URI=spiffe://evil/caller\r\n\
    x-forwarded-client-cert: Hash=00\r\n\
    x-client-spiffe-id: spiffe://evil/caller\r\n\
    X-CLIENT-SPIFFE-ID: spiffe://evil/other\r\n\
    X_Client_Spiffe_Id: spiffe://evil/underscored\r\n\
    x_forwarded_client_cert: URI=spiffe://evil/underscored\r\n\
    Connection: close\r\n\r\n";

#[test]
fn app_b_gets_callers_identity_through_both_proxies_and_spoofed_headers_are_stripped() {
    let pki = Pki::new();
    let app = HeaderApp::start();
    let mut b_args = args(&[
        "inbound",
        "--http",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &app.to(),
        "--allow-id",
        CLIENT_ID,
    ]);
    b_args.extend(pki.proxy_creds());
    let b = start_proxy("proxy-b", &b_args);
    // A: the client certificate, a route to B that requires B's identity.
    let mut a_args = args(&[
        "outbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &format!("localhost:{}", b.inbound()),
        "--server-id",
        PROXY_ID,
    ]);
    a_args.extend(args(&[
        "--cert",
        &s(&pki.client_cert),
        "--key",
        &s(&pki.client_key),
        "--ca-cert",
        &s(&pki.ca_path),
    ]));
    let a = start_proxy("proxy-a", &a_args);

    let mut tcp = TcpStream::connect(("127.0.0.1", a.outbound[0])).unwrap();
    tcp.set_read_timeout(Some(LONG)).ok();
    tcp.write_all(SPOOF.as_bytes()).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    let (status, head) = answer.split_once("\r\n\r\n").expect("a response");
    assert!(status.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !head.contains("evil"),
        "a spoofed value reached the app:\n{head}"
    );
    let client_der = pem_der(&pki.client_cert);
    assert_eq!(
        header_values(head, "x-forwarded-client-cert"),
        vec![format!(
            "By={PROXY_ID};Hash={};URI={CLIENT_ID}",
            pki::sha256_hex(&client_der)
        )],
        "{head}"
    );
    assert_eq!(
        header_values(head, "x-client-spiffe-id"),
        vec![CLIENT_ID.to_string()]
    );
    assert_eq!(header_values(head, "host"), vec!["app.local".to_string()]);
    assert_eq!(app.requests(), 1);
    let line = b.proc.wait_for(|l| l.contains("proxy_connection"), LONG);
    assert!(
        line.contains(&format!("spiffe_id=\"{CLIENT_ID}\"")),
        "{line}"
    );
}

fn pem_der(path: &std::path::Path) -> Vec<u8> {
    let pem = std::fs::read(path).expect("read the certificate");
    pki::pem::parse_certificates(&pem).expect("a PEM certificate")[0].to_vec()
}

/// curl over HTTP/2 with a client certificate; (status, body).
fn curl_h2(
    port: u16,
    path: &str,
    pki: &Pki,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "--path-as-is",
            "--max-time",
            "20",
            "-w",
            "\n%{http_code} %{http_version}",
            "--cacert",
        ])
        .arg(&pki.ca_path)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut words = tail.split_whitespace();
    let status = words.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    if status != 0 {
        assert_eq!(words.next(), Some("2"), "not HTTP/2: {text}");
    }
    (status, body.to_string())
}

#[test]
fn per_path_rules_decide_each_request_over_http2() {
    let pki = Pki::new();
    let app = HeaderApp::start();
    let policy = pki.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "allow = [\"{CLIENT_ID}\"]\n[[path]]\nprefix = \"/admin/\"\nallow = [\"{OTHER_ID}\"]\n"
        ),
    )
    .unwrap();
    let mut a = args(&[
        "inbound",
        "--http",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &app.to(),
        "--policy",
        &s(&policy),
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    a.extend(pki.proxy_creds());
    let proxy = start_proxy("proxy", &a);
    let port = proxy.inbound();
    let (other_cert, other_key) = pki.write(&pki.ca.client(OTHER_ID), "other");
    let (web_cert, web_key) = (pki.client_cert.clone(), pki.client_key.clone());

    let (status, body) = curl_h2(port, "/hello", &pki, &web_cert, &web_key);
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("GET /hello HTTP/1.1"), "{body}");
    assert_eq!(
        header_values(&body, "x-client-spiffe-id"),
        vec![CLIENT_ID.to_string()]
    );

    let (status, body) = curl_h2(port, "/admin/users", &pki, &web_cert, &web_key);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("is not allowed by the rule for /admin/"),
        "{body}"
    );
    let (status, body) = curl_h2(port, "/admin/users", &pki, &other_cert, &other_key);
    assert_eq!(status, 200, "{body}");
    let (status, _) = curl_h2(port, "/hello", &pki, &other_cert, &other_key);
    assert_eq!(status, 403);
    // A path the app could normalise into /admin/ is refused, not guessed at.
    let (status, body) = curl_h2(port, "/x/../admin/users", &pki, &web_cert, &web_key);
    assert_eq!(status, 400, "{body}");
    assert_eq!(app.requests(), 2, "a refused request reached the app");
    let metrics = proxy.metrics();
    assert!(
        metrics.contains("mtls_proxy_refused_total{direction=\"inbound\",reason=\"forbidden\"} 2"),
        "{metrics}"
    );
}
