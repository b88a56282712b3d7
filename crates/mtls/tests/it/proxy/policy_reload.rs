//! The policy file is re-read when it changes: a caller allowed at first is refused after the
//! change, without a restart; a change that does not parse is refused and the policy in force
//! stays.

use tokio::io::AsyncWriteExt;

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
    std::fs::write(&policy, "allow = [\"web\"]\n").unwrap();
    proxy
        .proc
        .wait_for(|l| l.contains("policy_reload_failed"), LONG);
    assert!(
        echo_works(&pki, port).await,
        "a broken policy file changed the policy"
    );

    let mark = proxy.proc.mark();
    std::fs::write(&policy, "allow = [\"spiffe://mesh.local/service/other\"]\n").unwrap();
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
