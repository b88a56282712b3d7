//! SIGTERM: the proxy stops accepting at once, an in-flight long response completes, and the
//! process exits 0 once it has.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::*;
use testkit::raw_tls::read_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_response_completes_and_new_connections_are_refused() {
    let pki = Pki::new();
    let app = App::start();
    let mut a = args(&[
        "inbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &app.to(),
        "--drain",
        "30s",
    ]);
    a.extend(pki.proxy_creds());
    let mut proxy = start_proxy("proxy", &a);
    let port = proxy.inbound();
    let mut tls = pki.client().connect(port).await.unwrap();
    // 10 chunks, 200 ms apart: about 2 s of response.
    tls.write_all(b"SLOW 10\n").await.unwrap();
    read_until(&mut tls, b"chunk 0\n", LONG).await;

    proxy.proc.terminate();
    proxy.proc.wait_for(|l| l.contains("drain_started"), LONG);
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert!(
        refused.is_err(),
        "a new connection was accepted while draining"
    );

    let mut rest = Vec::new();
    tokio::time::timeout(LONG, tls.read_to_end(&mut rest))
        .await
        .expect("the response finished")
        .expect("a clean end (close_notify), not a cut");
    let text = String::from_utf8_lossy(&rest);
    assert!(text.ends_with("chunk 9\n"), "{text}");
    // The client ends its side too: the connection is over, and the drain with it.
    tls.shutdown().await.unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let status = proxy.proc.wait_exit(Duration::from_secs(60));
        (status, proxy)
    })
    .await
    .unwrap();
    let (status, proxy) = status;
    assert!(status.expect("exited").success(), "{}", proxy.proc.output());
    assert!(
        proxy
            .proc
            .output()
            .contains("1 of 1 connections closed in time"),
        "{}",
        proxy.proc.output()
    );
}
