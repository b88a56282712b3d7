//! The policy file is re-read when it changes: a caller allowed at first is refused after the
//! change, without a restart, and its open L4 connections are closed; a change that does not
//! parse is refused and the policy in force stays.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::*;
use testkit::raw_tls::{read_until, read_until_closed};

async fn echo_works(pki: &Pki, port: u16) -> bool {
    let Ok(mut tls) = pki.client().connect(port).await else {
        return false;
    };
    if tls.write_all(b"ECHO\nping\n").await.is_err() {
        return false;
    }
    let got = read_until_closed(&mut tls, std::time::Duration::from_secs(2)).await;
    match got {
        // Still open after answering: allowed.
        Err(seen) => seen == b"ping\n",
        Ok(seen) => {
            assert!(seen.is_empty(), "a refused caller got {seen:?}");
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_allowed_then_refused_after_the_policy_file_changes() {
    let pki = Pki::new();
    let app = App::start();
    let policy = pki.path().join("policy.toml");
    std::fs::write(&policy, format!("allow = [\"{CLIENT_ID}\"]\n")).unwrap();
    let mut a = args(&[
        "inbound",
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
    let mut tls = pki.client().connect(port).await.unwrap();
    tls.write_all(b"ECHO\nallowed\n").await.unwrap();
    read_until(&mut tls, b"allowed\n", LONG).await;
    drop(tls);

    // A broken edit: refused, logged, and the caller is still allowed.
    replace(&policy, "allow = [\"web\"]\n");
    proxy
        .proc
        .wait_for(|l| l.contains("policy_reload_failed"), LONG);
    assert!(
        echo_works(&pki, port).await,
        "a broken policy file changed the policy"
    );

    let mark = proxy.proc.mark();
    replace(&policy, "allow = [\"spiffe://mesh.local/service/other\"]\n");
    proxy
        .proc
        .wait_for_after(mark, |l| l.contains("policy_reloaded"), LONG);
    assert!(
        !echo_works(&pki, port).await,
        "still allowed after the change"
    );
    proxy.proc.wait_for(
        |l| l.contains("refusing the connection") && l.contains("not allowed by the policy"),
        LONG,
    );
    let metrics = proxy.metrics();
    assert!(
        metrics.contains("mtls_proxy_policy_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mtls_proxy_policy_reloads_total{result=\"refused\"} 1"),
        "{metrics}"
    );
    assert_eq!(app.accepted(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_connection_of_a_caller_the_reloaded_policy_refuses_is_closed() {
    let pki = Pki::new();
    let app = App::start();
    let policy = pki.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!("allow = [\"{CLIENT_ID}\", \"{OTHER_ID}\"]\n"),
    )
    .unwrap();
    let mut a = args(&[
        "inbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &app.to(),
        "--policy",
        &s(&policy),
    ]);
    a.extend(pki.proxy_creds());
    let proxy = start_proxy("proxy", &a);
    let port = proxy.inbound();
    let (other_cert, other_key) = pki.write(&pki.ca.client(OTHER_ID), "other");
    let mut dropped = pki.client().connect(port).await.unwrap();
    dropped.write_all(b"ECHO\nallowed\n").await.unwrap();
    read_until(&mut dropped, b"allowed\n", LONG).await;
    let mut kept = pki
        .client_with(&other_cert, &other_key)
        .connect(port)
        .await
        .unwrap();
    kept.write_all(b"ECHO\nalso allowed\n").await.unwrap();
    read_until(&mut kept, b"also allowed\n", LONG).await;

    // The caller is taken off the list: its open connection is cut (no close_notify for the
    // caller, a reset for the app), the other caller's goes on.
    let mark = proxy.proc.mark();
    replace(&policy, &format!("allow = [\"{OTHER_ID}\"]\n"));
    let mut rest = Vec::new();
    let end = tokio::time::timeout(LONG, dropped.read_to_end(&mut rest))
        .await
        .expect("closed after the reload");
    assert_eq!(
        end.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::UnexpectedEof),
        "{rest:?}"
    );
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(
        app.next_end(LONG),
        AppEnd::Failed(std::io::ErrorKind::ConnectionReset)
    );
    let line = proxy.proc.wait_for_after(
        mark,
        |l| l.contains("proxy_connection") && l.contains("reason=\"forbidden\""),
        LONG,
    );
    assert!(
        line.contains(CLIENT_ID) && line.contains("the reloaded policy refuses it"),
        "{line}"
    );
    let reloaded = proxy
        .proc
        .wait_for_after(mark, |l| l.contains("policy_reloaded"), LONG);
    assert!(!reloaded.is_empty());
    kept.write_all(b"still here\n").await.unwrap();
    read_until(&mut kept, b"still here\n", LONG).await;
    assert_eq!(app.accepted(), 2);
}

/// Replaces the policy file the way an operator's tooling should: atomically. `std::fs::write`
/// truncates first, and a reload that reads the empty or half-written file counts one more
/// refused version than the test made.
fn replace(path: &std::path::Path, text: &str) {
    pki::files::write_atomic(path, text.as_bytes(), pki::files::PUBLIC_MODE)
        .expect("replace the policy file");
}
