//! Interoperability with OpenSSL-based tools: curl and `openssl s_client` against mtls-server
//! (the curl and s_client commands users know from docs/troubleshooting.md), and mtls-client against
//! `openssl s_server -tls1_3 -Verify 1` on P-384 and P-521.

use std::time::Duration;

use super::common::*;
use crate::programs::start_server;
use testkit::TestCa;

#[test]
fn curl_commands_from_the_design_note() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let url = format!("{}/api/status", server.url());
    let (ca, c, k) = (s(&pki.ca_path), s(&pki.client_cert), s(&pki.client_key));

    // Succeeds: mTLS with a valid client certificate.
    let (status, stdout, all) = run_curl(&["--cacert", &ca, "--cert", &c, "--key", &k, &url]);
    assert!(status.success(), "{all}");
    let body: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["caller"], CLIENT_ID);
    assert_eq!(
        body["client_key"],
        pki::client_key(&pki.client.der).unwrap()
    );

    // Fails: no client certificate (TLS 1.3 reports it on the first read, as an alert).
    let (status, _, all) = run_curl(&["--cacert", &ca, &url]);
    assert!(!status.success(), "{all}");
    assert!(
        all.contains("curl: (56)") && all.contains("alert certificate required"),
        "{all}"
    );

    // Fails: wrong CA; curl does not trust our server's issuer.
    let other = TestCa::new("Other Root");
    let other_ca = s(&other.write_root(pki.path(), "other-ca.crt"));
    let (oc, ok) = other.client(CLIENT_ID).write(pki.path(), "other-client");
    let (status, _, all) = run_curl(&[
        "--cacert",
        &other_ca,
        "--cert",
        &s(&oc),
        "--key",
        &s(&ok),
        &url,
    ]);
    assert!(!status.success(), "{all}");
    assert!(
        all.contains("curl: (60)") && all.contains("unable to get local issuer certificate"),
        "{all}"
    );
}

#[test]
fn openssl_s_client_with_a_client_certificate() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let addr = format!("localhost:{}", server.port);
    let (ca, c, k) = (s(&pki.ca_path), s(&pki.client_cert), s(&pki.client_key));
    let (status, _, out) = run_s_client(&[
        "-connect",
        &addr,
        "-CAfile",
        &ca,
        "-cert",
        &c,
        "-key",
        &k,
        "-verify_return_error",
    ]);
    assert!(status.success(), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(
        out.contains("New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"),
        "{out}"
    );
    let line = server
        .proc
        .wait_for(|l| l.contains("handshake_ok"), Duration::from_secs(10));
    assert!(
        line.contains(CLIENT_ID) && line.contains("TLS 1.3"),
        "{line}"
    );
}

#[test]
fn openssl_s_client_negotiates_p384_and_p521_and_server_order_wins() {
    let pki = StaticPki::new();
    let server = start_server("server", &pki.server_args());
    let addr = format!("localhost:{}", server.port);
    let (ca, c, k) = (s(&pki.ca_path), s(&pki.client_cert), s(&pki.client_key));
    for (group, name) in [("P-384", "secp384r1"), ("P-521", "secp521r1")] {
        let mark = server.proc.mark();
        let (status, _, out) = run_s_client(&[
            "-connect",
            &addr,
            "-groups",
            group,
            "-CAfile",
            &ca,
            "-cert",
            &c,
            "-key",
            &k,
            // Client prefers AES-128: the server's order (AES-256 first) must win.
            "-ciphersuites",
            "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384",
        ]);
        assert!(status.success(), "{out}");
        assert!(
            out.contains(&format!("Server Temp Key: ECDH, {name}")),
            "{group}:\n{out}"
        );
        assert!(out.contains("Cipher is TLS_AES_256_GCM_SHA384"), "{out}");
        let line = server.proc.wait_for_after(
            mark,
            |l| l.contains("handshake_ok"),
            Duration::from_secs(10),
        );
        assert!(line.contains(name), "{line}");
    }
}

#[test]
fn mtls_client_against_openssl_s_server_on_p384_and_p521() {
    let pki = StaticPki::new();
    // The client's certificate as s_server echoes it back in its status page.
    let client_b64_line = pki.client.cert_pem.lines().nth(1).unwrap().to_string();
    for (group, name) in [("P-384", "secp384r1"), ("P-521", "secp521r1")] {
        let (mut proc, port) = s_server(&pki, &pki.server_cert, &pki.server_key, group);
        let mut args = pki.client_args(&format!("https://localhost:{port}"));
        args.extend(["--server-id".into(), SERVER_ID.into()]);
        let (status, stdout, all) = run_client(&args);
        assert!(
            status.success(),
            "{group}:\n{all}\n--- s_server:\n{}",
            proc.output()
        );
        assert!(
            stdout.contains(&format!("Key Exchange: {name}")),
            "{stdout}"
        );
        assert!(stdout.contains("TLS Version: TLS 1.3"), "{stdout}");
        assert!(
            stdout.contains(&format!("Server Identity: {SERVER_ID}")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&client_b64_line),
            "s_server should have received and shown our client certificate:\n{stdout}"
        );
        proc.wait_exit(Duration::from_secs(10));
    }
}

#[test]
fn openssl_s_server_requiring_p256_is_refused_by_our_client() {
    let pki = StaticPki::new();
    let (_proc, port) = s_server(&pki, &pki.server_cert, &pki.server_key, "P-256");
    let (status, _, all) = run_client(&pki.client_args(&format!("https://localhost:{port}")));
    assert!(!status.success(), "{all}");
    assert!(all.contains("TLS handshake failed"), "{all}");
}

#[test]
fn groups_option_adds_x25519() {
    let pki = StaticPki::new();
    let (ca, c, k) = (s(&pki.ca_path), s(&pki.client_cert), s(&pki.client_key));
    let plain = start_server("server", &pki.server_args());
    let addr = format!("localhost:{}", plain.port);
    let x25519_only = ["-groups", "X25519", "-CAfile", &ca, "-cert", &c, "-key", &k];
    let mut args = vec!["-connect", addr.as_str()];
    args.extend(x25519_only);
    let (status, _, out) = run_s_client(&args);
    assert!(!status.success(), "x25519 must be off by default:\n{out}");

    let mut server_args = pki.server_args();
    server_args.extend(["--groups", "x25519"].map(String::from));
    let with = start_server("server-x25519", &server_args);
    let addr = format!("localhost:{}", with.port);
    let mut args = vec!["-connect", addr.as_str()];
    args.extend(x25519_only);
    let (status, _, out) = run_s_client(&args);
    assert!(status.success(), "{out}");
    assert!(out.contains("Server Temp Key: X25519"), "{out}");
}
