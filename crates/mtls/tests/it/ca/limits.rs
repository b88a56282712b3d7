//! Resource limits of the CA's listener: connections beyond --max-connections wait in the
//! accept queue instead of being served, and are served once a slot frees up.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use super::common::*;

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let ca = Ca::start(&["--max-connections", "1"]);
    let http = client(&ca.root_pem(), None);

    // A raw TCP connection that never starts TLS occupies the only slot.
    let hog = tokio::net::TcpStream::connect(("127.0.0.1", ca.port))
        .await
        .unwrap();
    let blocked = http
        .get(ca.url("/healthz"))
        .timeout(Duration::from_secs(1))
        .send()
        .await;
    assert!(
        blocked.is_err(),
        "a second connection was served despite --max-connections 1"
    );

    // Freeing the slot lets the next connection through.
    drop(hog);
    let resp = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match http
                .get(ca.url("/healthz"))
                .timeout(Duration::from_secs(5))
                .send()
                .await
            {
                Ok(r) => break r,
                Err(_) => continue,
            }
        }
    })
    .await
    .expect("served once the slot is free");
    assert_eq!(resp.status().as_u16(), 200);
}
