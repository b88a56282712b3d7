//! L4 mode with protocols other than HTTP: a line-based echo, and ≥ 100 MiB each way with
//! half-close, checksummed on both ends (the app hashes what it received after the client's
//! half-close; the client hashes what the app sent back).

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::common::*;
use testkit::raw_tls::read_until;

const BULK: u64 = 100 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_protocol_and_100_mib_each_way_with_half_close() {
    let pki = Pki::new();
    let app = App::start();
    let mut a = args(&["inbound", "--listen", "127.0.0.1:0", "--to", &app.to()]);
    a.extend(pki.proxy_creds());
    let proxy = start_proxy("proxy", &a);
    let client = pki.client();

    let mut echo = client.connect(proxy.inbound()).await.unwrap();
    echo.write_all(b"ECHO\none\ntwo\n").await.unwrap();
    read_until(&mut echo, b"one\ntwo\n", LONG).await;
    echo.shutdown().await.unwrap();
    let mut rest = Vec::new();
    echo.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "{rest:?}");

    let tls = client.connect(proxy.inbound()).await.unwrap();
    let (rd, mut wr) = tokio::io::split(tls);
    #[allow(clippy::disallowed_methods)] // the test reports how long the real transfer took
    let started = std::time::Instant::now();
    let upload = async move {
        wr.write_all(format!("BULK {BULK}\n").as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let mut sent = 0u64;
        while sent < BULK {
            let n = (BULK - sent).min(buf.len() as u64) as usize;
            pattern(sent, &mut buf[..n]);
            wr.write_all(&buf[..n]).await.unwrap();
            sent += n as u64;
        }
        // Half-close: the app sees the end of the upload and only then answers.
        wr.shutdown().await.unwrap();
        wr
    };
    let download = async move {
        let mut rd = BufReader::with_capacity(256 * 1024, rd);
        let mut line = String::new();
        rd.read_line(&mut line).await.unwrap();
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        loop {
            let n = rd.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
            got += n as u64;
        }
        (line.trim().to_string(), got, hex::encode(ctx.finish()))
    };
    let (_wr, (app_saw, got, got_hash)) = tokio::join!(upload, download);
    let expected = pattern_sha256(BULK);
    assert_eq!(
        app_saw, expected,
        "what the app received differs from what was sent"
    );
    assert_eq!(got, BULK);
    assert_eq!(
        got_hash, expected,
        "what arrived differs from what the app sent"
    );
    eprintln!("200 MiB through the proxy in {:?}", started.elapsed());

    let line = proxy.proc.wait_for(
        |l| {
            l.contains("proxy_connection")
                && l.contains(&format!("bytes_from_client={}", BULK + 15))
        },
        LONG,
    );
    assert!(
        line.contains(&format!("bytes_to_client={}", BULK + 65)),
        "{line}"
    );
    assert!(
        line.contains("reason=\"closed\"") || line.contains("reason=closed"),
        "{line}"
    );
    assert_eq!(app.accepted(), 2);
}
