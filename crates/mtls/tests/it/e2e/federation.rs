//! Federation end to end, all real processes: three CAs for three trust domains (a, b, c).
//! CA a federates b, CA b and CA c federate a (so their clients can verify a's server). A
//! server of a with `--allow-id spiffe://b.example/service/x` serves the client x of b; it
//! refuses another client of b that --allow-id does not name, and a client of c (c is not
//! federated at a). After `mtls-ca federation remove b.example` at a, the server drops b's
//! roots at its next trust refresh and refuses x from then on, and closes the keep-alive
//! connection x still had open at that same trust update (reason `untrusted`).

use std::process::Command;

use super::common::{ca_metric, enrolled_args, require_binaries, token_file, LONG};
use crate::programs::{self, start_ca};
use testkit::{CaProc, Proc, ServerProc};

pub(super) const SERVER_ID: &str = "spiffe://a.example/service/api";

pub(super) fn mtls_ca(ca: &CaProc, args: &[&str]) -> (bool, String) {
    let out = Command::new(&ca.program)
        .arg("--data-dir")
        .arg(&ca.data_dir)
        .args(args)
        .output()
        .expect("run mtls-ca");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `ca` federates `other`'s trust domain `td` and waits until it fetched the bundle.
fn federate(ca: &CaProc, other: &CaProc, td: &str) {
    let mark = ca.proc.mark();
    let endpoint = format!("https://127.0.0.1:{}/api/v1/bundle/spiffe", other.port);
    let (ok, out) = mtls_ca(
        ca,
        &[
            "federation",
            "add",
            "--trust-domain",
            td,
            "--endpoint",
            &endpoint,
            "--endpoint-spiffe-id",
            &format!("spiffe://{td}/ca"),
            "--fingerprint",
            &format!("sha256:{}", other.fingerprint),
        ],
    );
    assert!(ok, "federation add {td}: {out}");
    ca.proc.wait_for_after(
        mark,
        |l| l.contains("federated_bundle_updated") && l.contains(td),
        LONG,
    );
}

pub(super) fn start_domain_ca(dir: &std::path::Path, td: &str) -> CaProc {
    start_ca(td, &dir.join(td), "127.0.0.1:0", &["--trust-domain", td])
}

/// The three CAs of the module documentation: a federates b; b and c federate a.
fn three_domains(dir: &std::path::Path) -> (CaProc, CaProc, CaProc) {
    let (a, b, c) = (
        start_domain_ca(dir, "a.example"),
        start_domain_ca(dir, "b.example"),
        start_domain_ca(dir, "c.example"),
    );
    federate(&a, &b, "b.example");
    federate(&b, &a, "a.example");
    federate(&c, &a, "a.example");
    (a, b, c)
}

/// When a program logged `line` (the RFC 3339 time the text log format starts with).
fn logged_at(line: &str) -> time::OffsetDateTime {
    let stamp = line.split_whitespace().next().unwrap_or_default();
    time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("no time at the start of {line:?}: {e}"))
}

/// One request from a client of `ca` with identity `id` to `server`; Ok(output) on success.
pub(super) fn call(
    ca: &CaProc,
    dir: &std::path::Path,
    name: &str,
    id: &str,
    server: &ServerProc,
) -> Result<String, String> {
    let token = token_file(ca, dir, name, id, &[]);
    let mut cmd = Command::new(programs::client());
    cmd.args(enrolled_args(ca, id, &token))
        .args([
            "--server",
            &server.url(),
            "--server-id",
            SERVER_ID,
            "--count",
            "1",
        ])
        .env("RUST_LOG", "info");
    let (status, _, output) = testkit::process::run(name, cmd, LONG);
    if status.success() {
        Ok(output)
    } else {
        Err(output)
    }
}

/// `mtls-server` of `a` as `SERVER_ID`, admitting b's x (`--allow-id`), refreshing its trust
/// every second; `extra` arguments after those.
pub(super) fn start_server_of_a(a: &CaProc, dir: &std::path::Path, extra: &[&str]) -> ServerProc {
    let token = token_file(
        a,
        dir,
        "server",
        SERVER_ID,
        &["--dns", "localhost", "--ip", "127.0.0.1"],
    );
    let mut cmd = Command::new(programs::server());
    cmd.args(["--listen", "127.0.0.1:0"])
        .args(enrolled_args(a, SERVER_ID, &token))
        .args([
            "--allow-id",
            "spiffe://b.example/service/x",
            "--crl-refresh",
            "1s",
        ])
        .args(extra)
        .env("RUST_LOG", "info,mesh::refresh=debug");
    let proc = Proc::spawn("server", cmd);
    let listening = proc.wait_for(|l| l.starts_with("listening on https://"), LONG);
    ServerProc {
        port: listening
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port"),
        admin_port: None,
        proc,
    }
}

/// The federated caller of these tests.
const X: &str = "spiffe://b.example/service/x";

/// [`X`], enrolled from `b`, calling `server` every `interval` on one
/// keep-alive connection (or a new one each time when the server closes idle connections).
fn x_calls_repeatedly(
    b: &CaProc,
    dir: &std::path::Path,
    name: &str,
    server: &ServerProc,
    interval: &str,
    extra: &[&str],
) -> Proc {
    let token = token_file(b, dir, name, X, &[]);
    let mut cmd = Command::new(programs::client());
    cmd.args(enrolled_args(b, X, &token))
        .args([
            "--server",
            &server.url(),
            "--server-id",
            SERVER_ID,
            "--count",
            "100000",
            "--interval",
            interval,
            "--quiet",
        ])
        .args(extra)
        .env("RUST_LOG", "info");
    Proc::spawn(name, cmd)
}

#[test]
fn a_federated_caller_named_by_allow_id_gets_in_until_the_federation_is_removed() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = three_domains(dir.path());
    let server = start_server_of_a(&a, dir.path(), &[]);

    // The caller of b that --allow-id names.
    let out = call(
        &b,
        dir.path(),
        "client-b-x",
        "spiffe://b.example/service/x",
        &server,
    )
    .unwrap_or_else(|out| panic!("the allowed federated caller was refused:\n{out}"));
    assert!(out.contains(": 200"), "{out}");

    // Another caller of b: its root vouches for it, --allow-id does not name it.
    let out = call(
        &b,
        dir.path(),
        "client-b-y",
        "spiffe://b.example/service/y",
        &server,
    )
    .expect_err("a federated caller not named by --allow-id must be refused");
    assert!(!out.contains(": 200"), "{out}");
    server.proc.wait_for(
        |l| l.contains("spiffe://b.example/service/y") && l.contains("--allow-id"),
        LONG,
    );

    // A caller of c: c is not federated at a.
    let out = call(
        &c,
        dir.path(),
        "client-c-x",
        "spiffe://c.example/service/x",
        &server,
    )
    .expect_err("a caller of a trust domain not federated must be refused");
    assert!(!out.contains(": 200"), "{out}");

    // A keep-alive connection of x, carrying a request every 300 ms across the removal.
    let held = x_calls_repeatedly(&b, dir.path(), "client-b-x-held", &server, "300ms", &[]);
    held.wait_for(|l| l.starts_with("[CLIENT] request 3/"), LONG);
    assert_eq!(
        held.lines_matching(|l| l.contains(": FAILED: ")),
        Vec::<String>::new()
    );

    // Dropping the federation at a: the server drops b's roots at its next trust refresh.
    let mark = server.proc.mark();
    let (ok, out) = mtls_ca(&a, &["federation", "remove", "b.example"]);
    assert!(ok, "federation remove: {out}");
    let updated =
        server
            .proc
            .wait_for_after(mark, |l| l.contains("federated_bundles_updated"), LONG);
    assert!(!updated.contains("b.example"), "{updated}");
    // The open connection of x ends at that same trust update, not when its certificate
    // expires (an hour from now): within a second of it.
    let closed = server.proc.wait_for_after(
        mark,
        |l| l.contains("event=\"connection_closed\"") && l.contains("reason=\"untrusted\""),
        LONG,
    );
    assert!(closed.contains("spiffe://b.example/service/x"), "{closed}");
    let delay = logged_at(&closed) - logged_at(&updated);
    assert!(
        delay <= time::Duration::seconds(1),
        "closed {delay} after the federated bundles changed:\n{closed}"
    );
    // Within one refresh: the fetch under way at the removal may predate it, the next one
    // brings it (each round fetches the bundle, the CRL, then the federated bundles).
    let log = server.proc.output();
    let after: Vec<&str> = log.lines().skip(mark).collect();
    let rounds_before = after
        .iter()
        .take_while(|l| !l.contains("federated_bundles_updated"))
        .filter(|l| l.contains("crl_fetched"))
        .count();
    assert!(
        rounds_before <= 2,
        "took {rounds_before} refresh rounds:\n{}",
        after.join("\n")
    );
    let out = call(
        &b,
        dir.path(),
        "client-b-x-again",
        "spiffe://b.example/service/x",
        &server,
    )
    .expect_err("after federation remove, b's caller must be refused");
    assert!(!out.contains(": 200"), "{out}");

    // Everything was audited, and the chain still verifies against the tables.
    let (ok, out) = mtls_ca(&a, &["audit", "verify"]);
    assert!(ok, "audit verify: {out}");
    let (ok, out) = mtls_ca(&a, &["federation", "list"]);
    assert!(ok && !out.contains("b.example"), "{out}");
}

/// The client end of the same rule: b stops federating a while b's x holds a keep-alive
/// connection to a's server; at x's next trust refresh its MeshClient closes the connection
/// (`untrusted`, a's root no longer vouched for) and its next handshake fails.
#[test]
fn a_client_closes_its_connection_when_the_servers_domain_is_removed() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        start_domain_ca(dir.path(), "a.example"),
        start_domain_ca(dir.path(), "b.example"),
    );
    federate(&a, &b, "b.example");
    federate(&b, &a, "a.example");
    let server = start_server_of_a(&a, dir.path(), &[]);
    let client = x_calls_repeatedly(
        &b,
        dir.path(),
        "client-b-x",
        &server,
        "300ms",
        &["--crl-refresh", "1s"],
    );
    client.wait_for(|l| l.starts_with("[CLIENT] request 3/"), LONG);
    assert_eq!(
        client.lines_matching(|l| l.contains(": FAILED: ")),
        Vec::<String>::new()
    );

    let mark = client.mark();
    let (ok, out) = mtls_ca(&b, &["federation", "remove", "a.example"]);
    assert!(ok, "federation remove: {out}");
    let closed = client.wait_for_after(mark, |l| l.contains("event=\"connection_closed\""), LONG);
    assert!(closed.contains("untrusted"), "{closed}");
    let failed = client.wait_for_after(mark, |l| l.contains(": FAILED: "), LONG);
    assert!(!failed.contains(": 200"), "{failed}");
}

#[test]
fn a_first_bundle_without_the_fingerprinted_root_is_refused_counted_and_not_stored() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        start_domain_ca(dir.path(), "a.example"),
        start_domain_ca(dir.path(), "b.example"),
        start_domain_ca(dir.path(), "c.example"),
    );
    // b's endpoint, but the fingerprint of c's root: the bundle b serves does not hold it.
    let mark = a.proc.mark();
    let endpoint = format!("https://127.0.0.1:{}/api/v1/bundle/spiffe", b.port);
    let (ok, out) = mtls_ca(
        &a,
        &[
            "federation",
            "add",
            "--trust-domain",
            "b.example",
            "--endpoint",
            &endpoint,
            "--endpoint-spiffe-id",
            "spiffe://b.example/ca",
            "--fingerprint",
            &format!("sha256:{}", c.fingerprint),
        ],
    );
    assert!(ok, "{out}");
    let refused = a.proc.wait_for_after(
        mark,
        |l| l.contains("federated_bundle_refresh_failed") && l.contains("b.example"),
        LONG,
    );
    assert!(
        refused.contains("no root with the fingerprint"),
        "{refused}"
    );
    let (ok, listed) = mtls_ca(&a, &["federation", "list", "--format", "json"]);
    assert!(ok, "{listed}");
    let json = &listed[listed.find('{').unwrap()..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["federations"][0]["roots"], serde_json::json!([]), "{v}");
    assert_eq!(v["federations"][0]["refreshed_at"], "never", "{v}");
    // Counted in the CA's metrics.
    let failures = ca_metric(&a, FAILURES_OF_B);
    assert!(failures >= 1, "{failures}");
}

const FAILURES_OF_B: &str =
    "mtls_ca_federation_refresh_failures_total{trust_domain=\"b.example\"} ";
const REFRESHES_OF_B: &str = "mtls_ca_federation_refreshes_total{trust_domain=\"b.example\"} ";

/// A failed refresh keeps the last good bundle: with CA b stopped after a stored its bundle, a
/// keeps handing b's roots to its services (the server still admits b's x on new connections),
/// counts the failures and logs why; with b back on its address, a's refresh succeeds again.
/// A refreshes b's bundle every 5 s (`--federation-refresh-max`), so it notices b gone
/// within seconds.
#[test]
fn a_federated_bundle_outlives_its_endpoint_going_away_and_refreshes_when_it_is_back() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let a = start_ca(
        "a.example",
        &dir.path().join("a.example"),
        "127.0.0.1:0",
        &[
            "--trust-domain",
            "a.example",
            "--federation-refresh-max",
            "5s",
        ],
    );
    let mut b = start_domain_ca(dir.path(), "b.example");
    federate(&a, &b, "b.example");
    federate(&b, &a, "a.example");
    // The server closes a connection idle for 1 s and x calls every 2 s: every call is a new
    // handshake, judged against the federated roots the server holds then.
    let server = start_server_of_a(&a, dir.path(), &["--idle-timeout", "1s"]);
    let client = x_calls_repeatedly(&b, dir.path(), "client-b-x", &server, "2s", &[]);
    client.wait_for(|l| l.starts_with("[CLIENT] request 1/"), LONG);

    // b goes away.
    let (b_port, b_data) = (b.port, b.data_dir.clone());
    let mark = a.proc.mark();
    b.proc.kill();
    let failed = a.proc.wait_for_after(
        mark,
        |l| l.contains("federated_bundle_refresh_failed") && l.contains("b.example"),
        LONG,
    );
    assert!(failed.contains("keeping the last good bundle"), "{failed}");
    assert!(ca_metric(&a, FAILURES_OF_B) >= 1);
    let (ok, listed) = mtls_ca(&a, &["federation", "list"]);
    let row = listed.lines().find(|l| l.starts_with("b.example"));
    assert!(
        ok && row.is_some_and(|r| r.split_whitespace().nth(1) == Some("1")),
        "{listed}"
    );
    // New handshakes of x after the failure still get in.
    let (server_mark, client_mark) = (server.proc.mark(), client.mark());
    server.proc.wait_for_after(
        server_mark,
        |l| l.contains("event=\"handshake_ok\"") && l.contains(X),
        LONG,
    );
    let served = client.wait_for_after(
        client_mark,
        |l| l.starts_with("[CLIENT] request ") && !l.contains(": FAILED: "),
        LONG,
    );
    assert!(served.contains(": 200"), "{served}");
    assert_eq!(
        client.lines_matching(|l| l.contains(": FAILED: ")),
        Vec::<String>::new()
    );

    // b back on the same address: a's next retry (every 5 s) fetches the bundle again.
    let refreshes = ca_metric(&a, REFRESHES_OF_B);
    let mark = a.proc.mark();
    let _b = programs::start_ca(
        "b.example-again",
        &b_data,
        &format!("127.0.0.1:{b_port}"),
        &["--trust-domain", "b.example"],
    );
    a.proc.wait_for_after(
        mark,
        |l| l.contains("federated_bundle_refresh_recovered") && l.contains("b.example"),
        LONG,
    );
    assert!(ca_metric(&a, REFRESHES_OF_B) > refreshes);
}

/// `mtls-proxy outbound` for a client of `ca` with identity `id`, routed to the inbound proxy on
/// `inbound_port` (which must present `SERVER_ID`); the outbound port.
fn outbound_of(
    ca: &CaProc,
    dir: &std::path::Path,
    name: &str,
    id: &str,
    inbound_port: u16,
) -> (crate::proxy::common::ProxyProc, u16) {
    use crate::proxy::common::{args, enrolled, start_proxy, token_file};
    let token = token_file(ca, dir, name, id);
    let mut a = args(&[
        "outbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &format!("localhost:{inbound_port}"),
        "--server-id",
        SERVER_ID,
    ]);
    a.extend(enrolled(ca, id, &token));
    let proxy = start_proxy(name, &a);
    let port = proxy.outbound[0];
    (proxy, port)
}

/// The inbound proxy is a service like `mtls-server`: a caller of a federated trust domain gets
/// through the handshake only when the proxy's policy names it, and a reloaded policy decides
/// from then on. Apps behind: the L4 echo app, which counts what reaches it.
#[test]
fn an_inbound_proxy_admits_a_federated_caller_only_while_its_policy_names_it() {
    use crate::proxy::common::{
        args, enrolled, exchange, start_proxy_logging, token_file, App, REFRESH_LOG,
    };
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = three_domains(dir.path());

    let app = App::start();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "allow = [\"spiffe://b.example/service/x\"]\n").unwrap();
    let token = token_file(&a, dir.path(), "inbound", SERVER_ID);
    let mut inbound_args = args(&[
        "inbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &app.to(),
        "--policy",
        &policy.display().to_string(),
    ]);
    inbound_args.extend(enrolled(&a, SERVER_ID, &token));
    let inbound = start_proxy_logging("inbound-a", &inbound_args, REFRESH_LOG);

    let (_x, x_port) = outbound_of(
        &b,
        dir.path(),
        "outbound-b-x",
        "spiffe://b.example/service/x",
        inbound.inbound(),
    );
    let (_y, y_port) = outbound_of(
        &b,
        dir.path(),
        "outbound-b-y",
        "spiffe://b.example/service/y",
        inbound.inbound(),
    );
    let (_z, z_port) = outbound_of(
        &c,
        dir.path(),
        "outbound-c-x",
        "spiffe://c.example/service/x",
        inbound.inbound(),
    );

    // The caller of b the policy names gets through to the app.
    assert_eq!(exchange(x_port, "from x").as_deref(), Ok("from x\n"));
    assert_eq!(app.accepted(), 1);
    // Another caller of b, and a caller of c (not federated at a): refused, and the app never
    // sees them.
    assert_ne!(exchange(y_port, "from y").as_deref(), Ok("from y\n"));
    assert_ne!(exchange(z_port, "from z").as_deref(), Ok("from z\n"));
    assert_eq!(app.accepted(), 1);

    // The policy now names y instead of x: without a restart, y gets in and x does not.
    let mark = inbound.proc.mark();
    std::fs::write(&policy, "allow = [\"spiffe://b.example/service/y\"]\n").unwrap();
    inbound
        .proc
        .wait_for_after(mark, |l| l.contains("policy_reloaded"), LONG);
    assert_eq!(exchange(y_port, "from y").as_deref(), Ok("from y\n"));
    assert_ne!(exchange(x_port, "from x").as_deref(), Ok("from x\n"));
    assert_eq!(app.accepted(), 2);
}
