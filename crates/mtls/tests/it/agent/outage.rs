//! The CA goes away: the agent keeps serving its cached, still-valid SVIDs (renewal fails and
//! is retried), and mints again when the CA returns.

use futures::StreamExt;

use super::common::*;
use crate::programs;

#[tokio::test]
async fn cached_svids_are_served_while_the_ca_is_down_and_renewed_when_it_returns() {
    let mut agent = start();
    let mark = agent.proc.mark();
    agent.entry(
        WEB_ID,
        &[&format!("unix:uid:{}", my_uid())],
        &["--ttl", "6s"],
    );
    agent.wait_minted(mark, WEB_ID);
    let client = agent.client().await;
    let before = client.fetch_x509_svid().await.unwrap();
    let serial_of = |svid: &spiffe::X509Svid| {
        pki::CertInfo::from_der(svid.leaf().as_bytes())
            .unwrap()
            .serial_hex
    };
    let first = serial_of(&before);

    let port = agent.ca.port;
    agent.ca.proc.kill();
    let down = agent.proc.mark();
    // Renewal is due at half the lifetime and fails...
    agent
        .proc
        .wait_for_after(down, |l| l.contains("svid_mint_failed"), LONG);
    // ...and the cached SVID, still valid, is served.
    let during = client.fetch_x509_svid().await.unwrap();
    assert_eq!(serial_of(&during), first);
    let info = pki::CertInfo::from_der(during.leaf().as_bytes()).unwrap();
    assert!(
        info.not_after > time::OffsetDateTime::now_utc(),
        "still valid"
    );

    // The CA returns on the same address: a new SVID.
    let back = agent.proc.mark();
    agent.ca = programs::start_ca(
        "ca-again",
        &agent.ca.data_dir.clone(),
        &format!("127.0.0.1:{port}"),
        &[],
    );
    agent.wait_minted(back, WEB_ID);
    // The agent publishes the new SVID when its refresh round ends (after it has also fetched
    // and checked the CRL), so the stream, not the mint log line, says when it is served.
    let mut stream = client.stream_x509_svids().await.unwrap();
    let after = tokio::time::timeout(LONG, async {
        loop {
            let svid = stream.next().await.unwrap().unwrap();
            if serial_of(&svid) != first {
                return svid;
            }
        }
    })
    .await
    .expect("a new SVID on the stream once the CA is back");
    assert_eq!(after.spiffe_id().to_string(), WEB_ID);
}
