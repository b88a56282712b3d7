//! Keeps docs/troubleshooting.md honest: the key phrases it quotes must appear verbatim both in
//! the page and in what the real tools print for each failure (server log, mtls-client,
//! mtls-inspect, curl). When a message changes, this fails until the page is updated.
//!
//! Runs the programs of this build (`crate::programs`) and needs curl.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::programs::{self, start_ca, start_server};
use testkit::{run, LeafSpec, ServerProc, TestCa};

const SERVER_ID: &str = "spiffe://mesh.local/service/api-server";
const CLIENT_ID: &str = "spiffe://mesh.local/service/payment-worker";
const OTHER_ID: &str = "spiffe://mesh.local/service/billing";
const RUN: Duration = Duration::from_secs(30);
const LOG: Duration = Duration::from_secs(10);

fn require_binaries() {
    programs::require(&["mtls-ca", "mtls-server", "mtls-client", "mtls-inspect"]);
}

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/troubleshooting.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `phrase` must be quoted in the page and present in `output` (what a tool printed).
fn check(doc: &str, phrase: &str, what: &str, output: &str) {
    assert!(
        doc.contains(phrase),
        "docs/troubleshooting.md does not quote {phrase:?} ({what})"
    );
    assert!(
        output.contains(phrase),
        "{what}: the tool no longer prints {phrase:?}; update docs/troubleshooting.md.\n\
         Output was:\n{output}"
    );
}

/// Waits for a server log line containing `phrase` after `mark`, then checks it.
fn check_log(doc: &str, server: &ServerProc, mark: usize, phrase: &str, what: &str) {
    let line = server
        .proc
        .try_wait_for_after(mark, |l| l.contains(phrase), LOG)
        .unwrap_or_default();
    let output = if line.is_empty() {
        server.proc.output()
    } else {
        line
    };
    check(doc, phrase, what, &output);
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn curl(args: &[String]) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "10"])
        .args(args);
    run("curl", cmd, RUN).2
}

fn client(args: &[String]) -> String {
    let mut cmd = Command::new(programs::client());
    cmd.args(args).env("RUST_LOG", "warn");
    run("mtls-client", cmd, RUN).2
}

fn inspect(args: &[String]) -> String {
    let mut cmd = Command::new(programs::inspect());
    cmd.args(args);
    run("mtls-inspect", cmd, RUN).2
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn leaf(&self, leaf: &testkit::Leaf, name: &str) -> (String, String) {
        let (c, k) = leaf.write(self.dir.path(), name);
        (s(&c), s(&k))
    }
}

#[test]
fn server_side_refusals_match_the_page() {
    require_binaries();
    let doc = doc();
    let f = Files {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let ca = TestCa::new("Doc Root CA");
    let other = TestCa::new("Other Root CA");
    let root = s(&ca.write_root(f.dir.path(), "ca.crt"));
    let (srv_crt, srv_key) = f.leaf(&ca.server(SERVER_ID), "server");
    let (good_crt, good_key) = f.leaf(&ca.client(CLIENT_ID), "client");
    let revoked = ca.client(CLIENT_ID);
    let (rev_crt, rev_key) = f.leaf(&revoked, "revoked");
    std::fs::write(f.path("ca.crl"), ca.crl(&[&revoked.serial_hex])).expect("crl");
    let (oth_crt, oth_key) = f.leaf(&other.client(CLIENT_ID), "intruder");
    let (exp_crt, exp_key) = f.leaf(&ca.expired(CLIENT_ID), "expired");
    let (fut_crt, fut_key) = f.leaf(&ca.not_yet_valid(CLIENT_ID), "future");
    let (eku_crt, eku_key) = f.leaf(&ca.server_auth_only(CLIENT_ID), "serveronly");

    let server = start_server(
        "server",
        &strings(&[
            "--cert",
            &srv_crt,
            "--key",
            &srv_key,
            "--ca-cert",
            &root,
            "--crl",
            &s(&f.path("ca.crl")),
        ]),
    );
    let url = server.url();
    let status = format!("{url}/api/status");

    // The good client works (otherwise every refusal below proves nothing).
    let ok = client(&strings(&[
        "--cert",
        &good_crt,
        "--key",
        &good_key,
        "--ca-cert",
        &root,
        "--server",
        &url,
    ]));
    assert!(ok.contains("Response: 200 OK"), "{ok}");

    // 4. No client certificate.
    let mark = server.proc.mark();
    let out = curl(&strings(&["--cacert", &root, &status]));
    check(
        &doc,
        "alert certificate required",
        "curl without --cert",
        &out,
    );
    check_log(
        &doc,
        &server,
        mark,
        "failed: no client certificate presented",
        "server log, no certificate",
    );

    // 1. Unknown authority: client certificate from another CA.
    let mark = server.proc.mark();
    let out = curl(&strings(&[
        "--cacert", &root, "--cert", &oth_crt, "--key", &oth_key, &status,
    ]));
    check(&doc, "alert unknown ca", "curl, foreign CA", &out);
    check_log(
        &doc,
        &server,
        mark,
        "failed: client certificate unknown CA: the certificate is not signed by a trusted root",
        "server log, foreign CA",
    );
    let both = f.path("both.pem");
    std::fs::write(&both, format!("{}{}", ca.cert_pem(), other.cert_pem())).expect("bundle");
    let out = client(&strings(&[
        "--cert",
        &oth_crt,
        "--key",
        &oth_key,
        "--ca-cert",
        &s(&both),
        "--server",
        &url,
    ]));
    check(
        &doc,
        "server rejected our certificate: unknown CA (the server does not trust our issuer)",
        "mtls-client, foreign CA",
        &out,
    );
    let out = client(&strings(&[
        "--cert",
        &oth_crt,
        "--key",
        &oth_key,
        "--ca-cert",
        &root,
        "--server",
        &url,
    ]));
    check(
        &doc,
        "mtls-client: error: obtaining the client certificate: credential: certificate ",
        "mtls-client start-up check, foreign CA",
        &out,
    );
    check(
        &doc,
        "was not accepted for clientAuth: issuer ",
        "mtls-client start-up check, foreign CA",
        &out,
    );
    check(
        &doc,
        "CN=Other Root CA is not in the roots",
        "mtls-client start-up check, foreign CA",
        &out,
    );

    // 2. Expired.
    let mark = server.proc.mark();
    let out = curl(&strings(&[
        "--cacert", &root, "--cert", &exp_crt, "--key", &exp_key, &status,
    ]));
    check(&doc, "alert certificate expired", "curl, expired", &out);
    check_log(
        &doc,
        &server,
        mark,
        "failed: client certificate expired: NotAfter ",
        "server log, expired",
    );
    let out = client(&strings(&[
        "--cert",
        &exp_crt,
        "--key",
        &exp_key,
        "--ca-cert",
        &root,
        "--server",
        &url,
    ]));
    check(
        &doc,
        "was not accepted for clientAuth: certificate expired at ",
        "mtls-client start-up check, expired",
        &out,
    );

    // 6. Not yet valid.
    let mark = server.proc.mark();
    curl(&strings(&[
        "--cacert", &root, "--cert", &fut_crt, "--key", &fut_key, &status,
    ]));
    check_log(
        &doc,
        &server,
        mark,
        "failed: client certificate not yet valid: NotBefore ",
        "server log, not yet valid",
    );

    // 5. Wrong key usage.
    let mark = server.proc.mark();
    let out = curl(&strings(&[
        "--cacert", &root, "--cert", &eku_crt, "--key", &eku_key, &status,
    ]));
    check(
        &doc,
        "alert unsupported certificate",
        "curl, wrong EKU",
        &out,
    );
    check_log(
        &doc,
        &server,
        mark,
        "failed: client certificate wrong EKU: the certificate's extended key usage does not \
         allow this role (clientAuth for clients, serverAuth for servers)",
        "server log, wrong EKU",
    );
    let out = client(&strings(&[
        "--cert",
        &eku_crt,
        "--key",
        &eku_key,
        "--ca-cert",
        &root,
        "--server",
        &url,
    ]));
    check(
        &doc,
        "certificate lacks clientAuth EKU (it has [serverAuth])",
        "mtls-client start-up check, wrong EKU",
        &out,
    );

    // 7. Revoked.
    let mark = server.proc.mark();
    let out = client(&strings(&[
        "--cert",
        &rev_crt,
        "--key",
        &rev_key,
        "--ca-cert",
        &root,
        "--server",
        &url,
    ]));
    check(
        &doc,
        "FAILED: HTTP: server rejected our certificate: revoked",
        "mtls-client, revoked",
        &out,
    );
    check_log(
        &doc,
        &server,
        mark,
        "failed: client certificate revoked",
        "server log, revoked",
    );
    let out = curl(&strings(&[
        "--cacert", &root, "--cert", &rev_crt, "--key", &rev_key, &status,
    ]));
    check(&doc, "alert certificate revoked", "curl, revoked", &out);

    // 9. TLS 1.2.
    let mark = server.proc.mark();
    let out = curl(&strings(&[
        "--tls-max",
        "1.2",
        "--cacert",
        &root,
        "--cert",
        &good_crt,
        "--key",
        &good_key,
        &status,
    ]));
    check(&doc, "alert protocol version", "curl --tls-max 1.2", &out);
    check_log(
        &doc,
        &server,
        mark,
        "failed: TLS version: the client does not offer TLS 1.3 (TLS 1.2 and older are refused)",
        "server log, TLS 1.2",
    );

    // 10. No common group.
    let mark = server.proc.mark();
    let out = curl(&strings(&[
        "--curves", "X25519", "--cacert", &root, "--cert", &good_crt, "--key", &good_key, &status,
    ]));
    check(
        &doc,
        "alert handshake failure",
        "curl --curves X25519",
        &out,
    );
    check_log(
        &doc,
        &server,
        mark,
        "failed: no key exchange group in common (the server allows secp384r1, secp521r1 and \
         any --groups additions)",
        "server log, no common group",
    );

    // 8. Wrong SPIFFE ID, as the client sees it.
    let out = client(&strings(&[
        "--cert",
        &good_crt,
        "--key",
        &good_key,
        "--ca-cert",
        &root,
        "--server",
        &url,
        "--server-id",
        OTHER_ID,
    ]));
    check(
        &doc,
        &format!(
            "TLS handshake failed: server identity mismatch: the server presented {SERVER_ID}, \
             not the expected {OTHER_ID}"
        ),
        "mtls-client --server-id",
        &out,
    );
}

#[test]
fn client_side_and_inspect_messages_match_the_page() {
    require_binaries();
    let doc = doc();
    let f = Files {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let ca = TestCa::new("Doc Root CA");
    let other = TestCa::new("Other Root CA");
    let root = s(&ca.write_root(f.dir.path(), "ca.crt"));
    let mut spec = LeafSpec::new(SERVER_ID);
    spec.dns = vec!["api.mesh.local".into()];
    let (api_crt, api_key) = f.leaf(&ca.issue_spec(&spec), "api");
    let (good_crt, good_key) = f.leaf(&ca.client(CLIENT_ID), "client");
    let (srv_crt, _) = f.leaf(&ca.server(SERVER_ID), "server");
    let (oth_crt, _) = f.leaf(&other.client(CLIENT_ID), "intruder");
    let (exp_crt, _) = f.leaf(&ca.expired(CLIENT_ID), "expired");
    let (fut_crt, _) = f.leaf(&ca.not_yet_valid(CLIENT_ID), "future");
    let (eku_crt, _) = f.leaf(&ca.server_auth_only(CLIENT_ID), "serveronly");

    // 3. Name mismatch: a server whose certificate names only api.mesh.local.
    let server = start_server(
        "api",
        &strings(&["--cert", &api_crt, "--key", &api_key, "--ca-cert", &root]),
    );
    let out = client(&strings(&[
        "--cert",
        &good_crt,
        "--key",
        &good_key,
        "--ca-cert",
        &root,
        "--server",
        &server.url(),
    ]));
    check(
        &doc,
        "TLS handshake failed: server certificate hostname mismatch: the certificate is valid for ",
        "mtls-client, name mismatch",
        &out,
    );
    check(&doc, "api.mesh.local", "mtls-client, name mismatch", &out);
    check(&doc, ", not localhost", "mtls-client, name mismatch", &out);
    let out = curl(&strings(&[
        "--cacert",
        &root,
        "--cert",
        &good_crt,
        "--key",
        &good_key,
        &format!("{}/api/status", server.url()),
    ]));
    check(
        &doc,
        "curl: (60) SSL: no alternative certificate subject name matches target host name 'localhost'",
        "curl, name mismatch",
        &out,
    );

    // mtls-inspect verify, one per failure.
    let verify = |cert: &str, extra: &[&str]| {
        let mut args = strings(&["verify", cert, "--roots", &root]);
        args.extend(strings(extra));
        inspect(&args)
    };
    check(
        &doc,
        "INVALID: hostname localhost is not in the certificate's SANs [api.mesh.local]",
        "mtls-inspect verify --hostname",
        &verify(
            &api_crt,
            &["--purpose", "server", "--hostname", "localhost"],
        ),
    );
    check(
        &doc,
        "CN=Other Root CA is not in the roots",
        "mtls-inspect verify, foreign CA",
        &verify(&oth_crt, &["--purpose", "client"]),
    );
    check(
        &doc,
        "INVALID: certificate expired at ",
        "mtls-inspect verify, expired",
        &verify(&exp_crt, &[]),
    );
    check(
        &doc,
        "INVALID: certificate is not yet valid until ",
        "mtls-inspect verify, not yet valid",
        &verify(&fut_crt, &[]),
    );
    check(
        &doc,
        "INVALID: certificate lacks clientAuth EKU (it has [serverAuth])",
        "mtls-inspect verify --purpose client",
        &verify(&eku_crt, &["--purpose", "client"]),
    );
    check(
        &doc,
        &format!("INVALID: certificate is valid for {SERVER_ID}, not {OTHER_ID}"),
        "mtls-inspect verify --spiffe-id",
        &verify(&srv_crt, &["--purpose", "server", "--spiffe-id", OTHER_ID]),
    );
}

#[test]
fn enrollment_errors_match_the_page() {
    require_binaries();
    let doc = doc();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = start_ca("ca", &dir.path().join("ca"), "127.0.0.1:0", &[]);
    let enroll = |url: &str, fingerprint: &str, id: &str, token: &str| {
        client(&strings(&[
            "--ca-url",
            url,
            "--ca-fingerprint",
            fingerprint,
            "--spiffe-id",
            id,
            "--join-token",
            token,
            "--server",
            "https://localhost:1",
            "--count",
            "0",
        ]))
    };
    let token = ca.token(CLIENT_ID, &[]);
    let first = enroll(&ca.url(), &ca.fingerprint, CLIENT_ID, &token);
    assert!(
        first.contains("Identity: "),
        "first enrollment failed:\n{first}"
    );
    check(
        &doc,
        "the CA refused the request (401, token_used): the join token has already been used; \
         ask the operator for a new one (mtls-ca token); it enrolled a certificate for another \
         key (a retried sign gets that certificate only with a CSR for the same key)",
        "second use of a token",
        &enroll(&ca.url(), &ca.fingerprint, CLIENT_ID, &token),
    );
    let token = ca.token(CLIENT_ID, &[]);
    check(
        &doc,
        &format!(
            "the CA refused the request (403, identity_not_authorised): the join token is for \
             {CLIENT_ID}, not {OTHER_ID}"
        ),
        "token for another identity",
        &enroll(&ca.url(), &ca.fingerprint, OTHER_ID, &token),
    );
    check(
        &doc,
        "the CA refused the request (401, token_unknown): the join token is not known to this CA",
        "unknown token",
        &enroll(&ca.url(), &ca.fingerprint, CLIENT_ID, "not-a-token"),
    );
    let revoked = ca.token(CLIENT_ID, &[]);
    let out = std::process::Command::new(&ca.program)
        .arg("--data-dir")
        .arg(&ca.data_dir)
        .args(["token", "revoke"])
        .arg(mtls_ca::tokens::id(&mtls_ca::tokens::hash(&revoked)))
        .output()
        .expect("mtls-ca token revoke");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check(
        &doc,
        "the CA refused the request (401, token_revoked): the join token was revoked by the \
         operator at ",
        "revoked token",
        &enroll(&ca.url(), &ca.fingerprint, CLIENT_ID, &revoked),
    );
    let wrong = "0".repeat(64);
    check(
        &doc,
        "served a root whose SHA-256 fingerprint is not ",
        "wrong --ca-fingerprint",
        &enroll(&ca.url(), &wrong, CLIENT_ID, &token),
    );
    check(
        &doc,
        "refusing it (wrong --ca-fingerprint, or someone is intercepting the connection)",
        "wrong --ca-fingerprint",
        &enroll(&ca.url(), &wrong, CLIENT_ID, &token),
    );
    let http = ca.url().replacen("https://", "http://", 1);
    check(
        &doc,
        "uses plain http://; mtls-mesh talks only TLS 1.3 (use https://)",
        "http:// CA URL",
        &enroll(&http, &ca.fingerprint, CLIENT_ID, &token),
    );
}

#[test]
fn connection_limit_messages_match_the_page() {
    use testkit::raw_tls::{read_http1_response, read_until_closed, send, tcp_from, RawTls};

    require_binaries();
    let doc = doc();
    let f = Files {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let ca = TestCa::new("Doc Root CA");
    let root = ca.write_root(f.dir.path(), "ca.crt");
    let (srv_crt, srv_key) = f.leaf(&ca.server(SERVER_ID), "server");
    let (good_crt, good_key) = f.leaf(&ca.client(CLIENT_ID), "client");
    let tls = RawTls::new(
        &root,
        Some((Path::new(&good_crt), Path::new(&good_key))),
        &["http/1.1"],
    );
    let start = |extra: &[&str]| {
        let mut args = strings(&[
            "--cert",
            &srv_crt,
            "--key",
            &srv_key,
            "--ca-cert",
            &s(&root),
        ]);
        args.extend(strings(extra));
        start_server("server", &args)
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    const GET: &[u8] = b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n\r\n";

    // 12. One identity over its limit: 429, as mtls-client prints it, and the server's line.
    let limited = start(&[
        "--max-connections-per-identity",
        "1",
        "--request-timeout",
        "1s",
    ]);
    let _held = rt.block_on(async {
        let mut held = tls.connect(limited.port).await.expect("connect");
        send(&mut held, GET).await;
        assert_eq!(read_http1_response(&mut held, RUN).await.status, 200);
        held
    });
    let mark = limited.proc.mark();
    let out = client(&strings(&[
        "--cert",
        &good_crt,
        "--key",
        &good_key,
        "--ca-cert",
        &s(&root),
        "--server",
        &limited.url(),
    ]));
    check(
        &doc,
        "[CLIENT] Response: 429 Too Many Requests",
        "mtls-client, 429",
        &out,
    );
    check(
        &doc,
        "\"code\":\"too_many_connections\"",
        "mtls-client, 429",
        &out,
    );
    check(
        &doc,
        "the most one identity may hold; close idle connections or ask the operator to raise \
         the limit",
        "mtls-client, 429",
        &out,
    );
    check_log(
        &doc,
        &limited,
        mark,
        &format!("({CLIENT_ID}): {CLIENT_ID} already holds"),
        "server log, per-identity refusal",
    );

    // 12. A request slower than --request-timeout: 408 (a second identity, the first is full).
    let (oth_crt, oth_key) = f.leaf(&ca.client(OTHER_ID), "other");
    let other = RawTls::new(
        &root,
        Some((Path::new(&oth_crt), Path::new(&oth_key))),
        &["http/1.1"],
    );
    let mark = limited.proc.mark();
    let slow = rt.block_on(async {
        let mut conn = other.connect(limited.port).await.expect("connect");
        send(
            &mut conn,
            b"POST /api/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nabc",
        )
        .await;
        read_http1_response(&mut conn, RUN).await
    });
    check(&doc, "\"code\":\"request_timeout\"", "408 body", &slow.body);
    check(
        &doc,
        "(body and handler); the connection is closed",
        "408 body",
        &slow.body,
    );
    check_log(
        &doc,
        &limited,
        mark,
        ": answering 408 and closing",
        "server log, request timeout",
    );

    // 12. The cap lowered to the open-file limit.
    let few = programs::start_server_with_open_files(
        "server",
        &strings(&[
            "--cert",
            &srv_crt,
            "--key",
            &srv_key,
            "--ca-cert",
            &s(&root),
        ]),
        100,
    );
    let line = few
        .proc
        .wait_for(|l| l.contains("max_connections_lowered"), LOG);
    for phrase in [
        "--max-connections 10000 is more than the open-file limit (",
        ") can carry; serving at most ",
        " connections at once (raise the limit with `ulimit -n` or systemd's LimitNOFILE=)",
    ] {
        check(&doc, phrase, "server log, lowered cap", &line);
    }

    // 12. Idle connections and half-sent headers are closed.
    let idle = start(&["--idle-timeout", "1s", "--header-timeout", "1s"]);
    let mark = idle.proc.mark();
    rt.block_on(async {
        let mut conn = tls.connect(idle.port).await.expect("connect");
        send(&mut conn, GET).await;
        assert_eq!(read_http1_response(&mut conn, RUN).await.status, 200);
        read_until_closed(&mut conn, RUN).await.expect("idle close");
        let mut half = tls.connect(idle.port).await.expect("connect");
        send(&mut half, b"GET /api/status HTTP/1.1\r\n").await;
        read_until_closed(&mut half, RUN)
            .await
            .expect("header timeout");
    });
    check_log(
        &doc,
        &idle,
        mark,
        &format!("({CLIENT_ID}): no request for "),
        "server log, idle",
    );
    check_log(
        &doc,
        &idle,
        mark,
        &format!("({CLIENT_ID}): request header not complete within "),
        "server log, header timeout",
    );

    // 12. The CA: a source over its limit, and no room left without a certificate.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_proc = start_ca(
        "ca",
        &dir.path().join("ca"),
        "127.0.0.1:0",
        &[
            "--max-connections-per-source",
            "1",
            "--max-connections",
            "4",
            "--authenticated-reserve",
            "3",
        ],
    );
    let anonymous = RawTls::new(&dir.path().join("ca/root.crt"), None, &["http/1.1"]);
    let mark = ca_proc.proc.mark();
    rt.block_on(async {
        let source = "127.0.0.2".parse().expect("ip");
        let _hold = tcp_from(source, ca_proc.port).await.expect("connect");
        let mut second = tcp_from(source, ca_proc.port).await.expect("connect");
        read_until_closed(&mut second, RUN)
            .await
            .expect("per-source refusal");
    });
    let line = ca_proc
        .proc
        .wait_for_after(mark, |l| l.contains("per_source"), LOG);
    check(
        &doc,
        ", the most one source address may hold",
        "CA log, per-source refusal",
        &line,
    );
    let mark = ca_proc.proc.mark();
    rt.block_on(async {
        let mut first = anonymous.connect(ca_proc.port).await.expect("connect");
        send(
            &mut first,
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        )
        .await;
        assert_eq!(read_http1_response(&mut first, RUN).await.status, 200);
        let mut second = anonymous
            .connect_from("127.0.0.3".parse().expect("ip"), ca_proc.port)
            .await
            .expect("connect");
        read_until_closed(&mut second, RUN)
            .await
            .expect("unauthenticated refusal");
    });
    let line = ca_proc
        .proc
        .wait_for_after(mark, |l| l.contains("after its handshake"), LOG);
    check(
        &doc,
        "after its handshake: ",
        "CA log, unauthenticated refusal",
        &line,
    );
    check(
        &doc,
        " without a client certificate already open, the most allowed (the other slots are \
         kept for authenticated peers)",
        "CA log, unauthenticated refusal",
        &line,
    );
}

/// Starts `mtls-proxy ARGS...` and waits until it serves; returns it and the first port it
/// printed after `prefix`.
fn start_proxy(args: &[String], prefix: &str) -> (testkit::Proc, u16) {
    let mut cmd = Command::new(programs::proxy());
    cmd.args(args).env("RUST_LOG", "info");
    let proc = testkit::Proc::spawn("proxy", cmd);
    let line = proc.wait_for(|l| l.starts_with(prefix), RUN);
    proc.wait_for(|l| l == "[PROXY] ready", RUN);
    let port = line[prefix.len()..]
        .split_whitespace()
        .next()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("a port");
    (proc, port)
}

#[test]
fn proxy_messages_match_the_page() {
    use testkit::raw_tls::{read_until_closed, RawTls};

    programs::require(&["mtls-proxy"]);
    let doc = doc();
    let f = Files {
        dir: tempfile::tempdir().expect("tempdir"),
    };
    let ca = TestCa::new("Doc Root CA");
    let root = ca.write_root(f.dir.path(), "ca.crt");
    let (srv_crt, srv_key) = f.leaf(&ca.server(SERVER_ID), "server");
    let (good_crt, good_key) = f.leaf(&ca.client(CLIENT_ID), "client");
    let (other_crt, other_key) = f.leaf(&ca.client(OTHER_ID), "other");
    let creds =
        |crt: &str, key: &str| strings(&["--cert", crt, "--key", key, "--ca-cert", &s(&root)]);
    let run_proxy = |args: &[String]| {
        let mut cmd = Command::new(programs::proxy());
        cmd.args(args);
        let (status, _, output) = run("mtls-proxy", cmd, RUN);
        assert_eq!(status.code(), Some(2), "{output}");
        output
    };

    let mut args = strings(&[
        "outbound",
        "--listen",
        "0.0.0.0:15001",
        "--to",
        "127.0.0.1:9",
        "--server-id",
        SERVER_ID,
    ]);
    args.extend(creds(&good_crt, &good_key));
    let out = run_proxy(&args);
    check(
        &doc,
        "is not a loopback address. An outbound listener takes plaintext",
        "mtls-proxy, non-loopback outbound listener",
        &out,
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = taken.local_addr().expect("addr").to_string();
    let mut args = strings(&["inbound", "--listen", &taken, "--to", "127.0.0.1:9"]);
    args.extend(creds(&srv_crt, &srv_key));
    check(
        &doc,
        "cannot listen on",
        "mtls-proxy, port taken",
        &run_proxy(&args),
    );

    // An inbound proxy whose app is not running, with a policy file allowing CLIENT_ID.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let app = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let policy = f.path("policy.toml");
    std::fs::write(&policy, format!("allow = [\"{CLIENT_ID}\"]\n")).expect("write");
    let mut args = strings(&[
        "inbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &app,
        "--policy",
        &s(&policy),
    ]);
    args.extend(creds(&srv_crt, &srv_key));
    let (inbound, port) = start_proxy(&args, "inbound listening on ");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for (crt, key) in [(&other_crt, &other_key), (&good_crt, &good_key)] {
        let tls = RawTls::new(&root, Some((Path::new(crt), Path::new(key))), &[]);
        rt.block_on(async {
            if let Ok(mut stream) = tls.connect(port).await {
                let _ = read_until_closed(&mut stream, RUN).await;
            }
        });
    }
    let line = inbound.wait_for(|l| l.contains("connection_refused"), LOG);
    check(
        &doc,
        "is not allowed by the policy (allowed:",
        "mtls-proxy, policy",
        &line,
    );
    let line = inbound.wait_for(|l| l.contains("app_unreachable"), LOG);
    check(
        &doc,
        "cannot connect to the application at",
        "mtls-proxy, app down",
        &line,
    );
    check(
        &doc,
        "(is it running and listening there?)",
        "mtls-proxy, app down",
        &line,
    );
    std::fs::write(&policy, "allow = [\"web\"]\n").expect("write");
    let line = inbound.wait_for(|l| l.contains("policy_reload_failed"), LOG);
    check(
        &doc,
        "policy file changed but cannot be used; keeping the current policy",
        "mtls-proxy, bad policy edit",
        &line,
    );

    // An outbound route expecting another identity than the inbound proxy's.
    let mut args = strings(&[
        "outbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &format!("localhost:{port}"),
        "--server-id",
        OTHER_ID,
    ]);
    args.extend(creds(&good_crt, &good_key));
    let (outbound, route) = start_proxy(&args, "outbound listening on ");
    let out = curl(&strings(&[&format!("http://127.0.0.1:{route}/")]));
    check(
        &doc,
        "Connection reset by peer",
        "curl through a refused route",
        &out,
    );
    let line = outbound.wait_for(|l| l.contains("upstream_failed"), LOG);
    check(
        &doc,
        "resetting the local connection from",
        "mtls-proxy, route refused",
        &line,
    );
    check(
        &doc,
        "server identity mismatch",
        "mtls-proxy, route refused",
        &line,
    );
}
