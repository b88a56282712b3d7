//! SIGTERM: the proxy stops accepting at once, an in-flight long response completes, and the
//! process exits 0 once it has. An L4 connection still open at the drain deadline (inbound or
//! outbound) is cut so that no side takes it for a finished stream (the plaintext side is
//! reset, the TLS side gets no close_notify), and the process still exits 0.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::*;
use testkit::raw_tls::read_until;

/// An inbound proxy in front of `app` with the given `--drain`.
fn inbound_with_drain(pki: &Pki, app: &App, drain: &str) -> ProxyProc {
    let mut a = args(&[
        "inbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &app.to(),
        "--drain",
        drain,
    ]);
    a.extend(pki.proxy_creds());
    start_proxy("proxy", &a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_response_completes_and_new_connections_are_refused() {
    let pki = Pki::new();
    let app = App::start();
    let mut proxy = inbound_with_drain(&pki, &app, "30s");
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

/// Waits (off the async runtime) for the proxy to exit; its status and the proxy back.
async fn exit_of(mut proxy: ProxyProc) -> (std::process::ExitStatus, ProxyProc) {
    tokio::task::spawn_blocking(move || {
        let status = proxy.proc.wait_exit(LONG).expect("exited");
        (status, proxy)
    })
    .await
    .expect("the waiting task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_connection_still_open_at_the_drain_deadline_is_cut_and_the_proxy_exits_0() {
    let pki = Pki::new();
    let app = App::start();
    let mut proxy = inbound_with_drain(&pki, &app, "3s");
    let port = proxy.inbound();
    // An idle connection (an L4 proxy cannot tell it from one waiting for a slow answer) and a
    // busy one whose response (5 chunks, 200 ms apart) fits in the drain time.
    let mut idle = pki.client().connect(port).await.unwrap();
    idle.write_all(b"ECHO\nhello\n").await.unwrap();
    read_until(&mut idle, b"hello\n", LONG).await;
    let mut busy = pki.client().connect(port).await.unwrap();
    busy.write_all(b"SLOW 5\n").await.unwrap();
    read_until(&mut busy, b"chunk 0\n", LONG).await;

    proxy.proc.terminate();
    proxy.proc.wait_for(|l| l.contains("drain_started"), LONG);
    let mut rest = Vec::new();
    tokio::time::timeout(LONG, busy.read_to_end(&mut rest))
        .await
        .expect("the response finished")
        .expect("a clean end (close_notify), not a cut");
    assert!(String::from_utf8_lossy(&rest).ends_with("chunk 4\n"));
    busy.shutdown().await.unwrap();
    assert_eq!(app.next_end(LONG), AppEnd::Clean, "the busy connection");

    // The idle one is cut at the deadline: a truncation for the caller (no close_notify), a
    // reset for the app; neither can take it for a finished stream.
    let mut rest = Vec::new();
    let end = tokio::time::timeout(LONG, idle.read_to_end(&mut rest))
        .await
        .expect("cut at the drain deadline");
    assert_eq!(
        end.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::UnexpectedEof),
        "a clean close_notify after {rest:?}"
    );
    assert_eq!(
        app.next_end(LONG),
        AppEnd::Failed(std::io::ErrorKind::ConnectionReset),
        "the idle connection"
    );
    let (status, proxy) = exit_of(proxy).await;
    let output = proxy.proc.output();
    assert!(status.success(), "{output}");
    assert!(
        output.contains("1 of 2 connections closed in time, 1 cut"),
        "{output}"
    );
    let line = proxy.proc.wait_for(
        |l| l.contains("proxy_connection") && l.contains("reason=\"drain_timeout\""),
        LONG,
    );
    assert!(line.contains(CLIENT_ID), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_connection_still_open_at_the_drain_deadline_is_reset_and_the_proxy_exits_0() {
    let pki = Pki::new();
    let app = App::start();
    let mut b_args = args(&["inbound", "--listen", "127.0.0.1:0", "--to", &app.to()]);
    b_args.extend(pki.proxy_creds());
    let b = start_proxy("proxy-b", &b_args);
    let mut a_args = args(&[
        "outbound",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &format!("localhost:{}", b.inbound()),
        "--server-id",
        PROXY_ID,
        "--drain",
        "3s",
    ]);
    a_args.extend(args(&["--cert", &s(&pki.client_cert)]));
    a_args.extend(args(&["--key", &s(&pki.client_key)]));
    a_args.extend(args(&["--ca-cert", &s(&pki.ca_path)]));
    let mut a = start_proxy("proxy-a", &a_args);
    let port = a.outbound[0];
    let busy_port = port;
    let (idle, busy) = tokio::task::spawn_blocking(move || {
        let idle = open_echo(port);
        let mut busy = std::net::TcpStream::connect(("127.0.0.1", busy_port)).unwrap();
        busy.set_read_timeout(Some(LONG)).ok();
        std::io::Write::write_all(&mut busy, b"SLOW 5\n").unwrap();
        (idle, busy)
    })
    .await
    .unwrap();

    a.proc.terminate();
    a.proc.wait_for(|l| l.contains("drain_started"), LONG);
    let (busy_got, idle_end) = tokio::task::spawn_blocking(move || {
        let (mut idle, mut busy) = (idle, busy);
        let mut got = String::new();
        let busy_got = std::io::Read::read_to_string(&mut busy, &mut got).map(|_| got);
        // The busy one's app side ended cleanly; hang up our side too.
        drop(busy);
        (busy_got, read_reset(&mut idle))
    })
    .await
    .unwrap();
    let got = busy_got.expect("the response finished with a clean end");
    assert!(got.ends_with("chunk 4\n"), "{got}");
    // The idle one: reset at the deadline, on both ends of the chain (B saw A's TLS side end
    // without close_notify and reset its app).
    assert_eq!(idle_end, std::io::ErrorKind::ConnectionReset);
    let ends = [app.next_end(LONG), app.next_end(LONG)];
    assert!(
        ends.contains(&AppEnd::Clean)
            && ends.contains(&AppEnd::Failed(std::io::ErrorKind::ConnectionReset)),
        "{ends:?}"
    );
    let (status, a) = exit_of(a).await;
    let output = a.proc.output();
    assert!(status.success(), "{output}");
    assert!(
        output.contains("1 of 2 connections closed in time, 1 cut"),
        "{output}"
    );
    assert!(
        output.contains("reason=\"drain_timeout\"") && output.contains("direction=\"outbound\""),
        "{output}"
    );
}
