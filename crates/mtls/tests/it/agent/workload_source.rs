//! `--workload-api`: mtls-server, mtls-client and mtls-proxy take their SVID, bundle and CRL
//! from the agent's `FetchX509SVID` stream. A server and a client on it call each other while
//! both rotate (no failed request); the agent stopped, they keep serving with their cached
//! SVIDs; the agent restarted, the stream resumes with new SVIDs; a workload no entry matches
//! is refused with PERMISSION_DENIED and never serves.

use std::collections::BTreeSet;
use std::process::Command;

use testkit::Proc;

use super::common::*;
use crate::programs;
use crate::proxy::common::{start_proxy, PythonApp};

const CLIENT_ID: &str = "spiffe://mesh.local/service/client";

fn uid_selector() -> String {
    format!("unix:uid:{}", my_uid())
}

/// Registers WEB_ID (DNS name localhost, to serve) and CLIENT_ID for this test's uid with
/// lifetime `ttl`, and waits until the agent has minted both.
fn register_both(agent: &Agent, ttl: &str) {
    let mark = agent.proc.mark();
    let uid = uid_selector();
    agent.entry(WEB_ID, &[&uid], &["--ttl", ttl, "--dns", "localhost"]);
    agent.entry(CLIENT_ID, &[&uid], &["--ttl", ttl]);
    agent.wait_minted(mark, WEB_ID);
    agent.wait_minted(mark, CLIENT_ID);
}

fn start_server(agent: &Agent) -> testkit::ServerProc {
    programs::start_server(
        "server",
        &[
            "--workload-api".into(),
            agent.endpoint(),
            "--spiffe-id".into(),
            WEB_ID.into(),
        ],
    )
}

/// `mtls-client --workload-api ... --count COUNT --interval 200ms --quiet` against `server`.
fn start_client(agent: &Agent, server: &testkit::ServerProc, count: u32) -> Proc {
    let mut cmd = Command::new(programs::client());
    cmd.args([
        "--workload-api",
        &agent.endpoint(),
        "--spiffe-id",
        CLIENT_ID,
    ])
    .args(["--server", &server.url(), "--server-id", WEB_ID])
    .args([
        "--count",
        &count.to_string(),
        "--interval",
        "200ms",
        "--quiet",
    ])
    .env("RUST_LOG", "info");
    Proc::spawn("client", cmd)
}

/// The distinct values of `key=` in the client's `connected:` lines.
fn serials(client: &Proc, key: &str) -> BTreeSet<String> {
    serials_in_order(client, key).into_iter().collect()
}

/// The values of `key=` in the client's `connected:` lines, one per connection, in order.
fn serials_in_order(client: &Proc, key: &str) -> Vec<String> {
    client
        .lines_matching(|l| l.contains("[CLIENT] connected:"))
        .iter()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_string))
        })
        .collect()
}

fn assert_all_ok(client: &mut Proc, count: u32) {
    let status = client.wait_exit(LONG).expect("the client finishes");
    let out = client.output();
    assert!(status.success(), "a request failed:\n{out}");
    assert!(
        out.contains(&format!("{count} request(s): {count} ok, 0 failed")),
        "{out}"
    );
}

#[test]
fn a_server_and_a_client_on_the_workload_api_call_each_other_through_rotations() {
    let agent = start();
    // 6 s SVIDs, renewed by the agent at half their lifetime: both sides rotate every ~3 s.
    register_both(&agent, "6s");
    let server = start_server(&agent);
    let out = server.proc.output();
    assert!(out.contains("mode: workload api"), "{out}");
    assert!(out.contains(WEB_ID), "{out}");

    let count = 50; // 10 s of requests
    let mut client = start_client(&agent, &server, count);
    assert_all_ok(&mut client, count);
    // Both sides presented more than one SVID during the loop, with no failed request: the
    // rotations from the stream were swapped in under live traffic.
    let (own, theirs) = (
        serials(&client, "own_serial"),
        serials(&client, "server_serial"),
    );
    assert!(own.len() >= 2, "the client never rotated: {own:?}");
    assert!(theirs.len() >= 2, "the server never rotated: {theirs:?}");
    let rotated = server.proc.lines_matching(|l| {
        l.contains("certificate rotated") && l.contains("from the Workload API")
    });
    assert!(!rotated.is_empty(), "{}", server.proc.output());
    assert!(client.output().contains("certificate rotated"));
}

#[test]
fn the_cached_svid_serves_while_the_agent_is_down_and_the_stream_resumes_when_it_returns() {
    let mut agent = start();
    register_both(&agent, "2m");
    let server = start_server(&agent);
    // 20 s of requests across the agent's outage and restart.
    let count = 100;
    let mut client = start_client(&agent, &server, count);
    client.wait_for(|l| l.contains("request 3/"), LONG);

    let mark = server.proc.mark();
    agent.proc.kill();
    server
        .proc
        .wait_for_after(mark, |l| l.contains("workload_api_lost"), LONG);
    // Requests keep succeeding on the cached SVIDs.
    let during = client.mark();
    client.wait_for_after(
        during,
        |l| l.contains("request") && l.contains(": 200"),
        LONG,
    );

    // The agent returns (a restarted agent enrolls again: a fresh join token).
    std::fs::remove_file(agent.dir.path().join("agent.token")).unwrap();
    let back = server.proc.mark();
    let (proc, _) = start_agent(&agent.ca, agent.dir.path(), "agent");
    agent.proc = proc;
    server
        .proc
        .wait_for_after(back, |l| l.contains("workload_api_resumed"), LONG);
    // The new agent minted new SVIDs: the server swaps its own in.
    server.proc.wait_for_after(
        back,
        |l| l.contains("certificate rotated") && l.contains("from the Workload API"),
        LONG,
    );
    assert_all_ok(&mut client, count);
    // The running client keeps its connection until its own SVID rotates, which may come
    // before or after the server's: a client connecting now sees the server's new SVID.
    let first = serials_in_order(&client, "server_serial");
    assert!(!first.is_empty(), "{}", client.output());
    let mut fresh = start_client(&agent, &server, 1);
    let status = fresh.wait_exit(LONG).expect("the second client finishes");
    assert!(status.success(), "{}", fresh.output());
    let now = serials_in_order(&fresh, "server_serial");
    assert_eq!(now.len(), 1, "{}", fresh.output());
    assert_ne!(
        now.first(),
        first.first(),
        "the server still presents the SVID it had before the outage"
    );
}

#[test]
fn a_workload_no_entry_matches_gets_permission_denied_and_never_serves() {
    let agent = start();
    // An entry for another uid only.
    agent.entry(WEB_ID, &[&format!("unix:uid:{}", my_uid() + 1)], &[]);
    let mut cmd = Command::new(programs::server());
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--workload-api",
        &agent.endpoint(),
    ])
    .args(["--enroll-timeout", "2s"])
    .env("RUST_LOG", "info");
    let mut server = Proc::spawn("server", cmd);
    let status = server.wait_exit(LONG).expect("the server gives up");
    let out = server.output();
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("PERMISSION_DENIED"), "{out}");
    // The agent's message names the selectors it saw, so the operator can write the entry.
    assert!(out.contains(&uid_selector()), "{out}");
    assert!(out.contains("mtls-ca entry create"), "{out}");
    assert!(
        !out.contains("listening on"),
        "served without an SVID:\n{out}"
    );
}

#[test]
fn an_inbound_proxy_on_the_workload_api_forwards_a_client_on_it_to_an_unmodified_app() {
    let agent = start();
    register_both(&agent, "2m");
    let app = PythonApp::start();
    let proxy = start_proxy(
        "proxy",
        &[
            "inbound".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--to".into(),
            app.to(),
            "--allow-id".into(),
            CLIENT_ID.into(),
            "--workload-api".into(),
            agent.endpoint(),
            "--spiffe-id".into(),
            WEB_ID.into(),
        ],
    );
    let mut cmd = Command::new(programs::client());
    cmd.args([
        "--workload-api",
        &agent.endpoint(),
        "--spiffe-id",
        CLIENT_ID,
    ])
    .args([
        "--server",
        &format!("https://localhost:{}", proxy.inbound()),
    ])
    .args(["--server-id", WEB_ID, "--path", "/hello.txt"]);
    let mut client = Proc::spawn("client", cmd);
    let status = client.wait_exit(LONG).expect("the client finishes");
    let out = client.output();
    assert!(status.success(), "{out}");
    assert!(out.contains("hello from the app"), "{out}");
}
