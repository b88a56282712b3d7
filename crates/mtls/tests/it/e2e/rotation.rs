//! Rotation under load: ~10 s certificates, server and client each rotate at least five times
//! while a bounded request loop runs on the client; not one request may fail.

use std::collections::BTreeSet;
use std::time::Duration;

use super::common::*;
use crate::programs::start_ca;

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .map(|v| v.trim_matches('"'))
}

#[test]
fn both_sides_rotate_five_times_under_load_without_a_failed_request() {
    require_binaries();
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca(
        "ca",
        &dir.path().join("ca"),
        "127.0.0.1:0",
        &["--cert-duration", "10s"],
    );
    let server = enrolled_server(&ca, dir.path(), &["--crl-refresh", "1s"]);
    // 320 requests, 100 ms apart: about 35 s, long enough for 5+ rotations at ~5 s each.
    let mut client = spawn_client(
        &ca,
        dir.path(),
        &server,
        &[
            "--server-id",
            SERVER_ID,
            "--count",
            "320",
            "--interval",
            "100ms",
            "--quiet",
        ],
    );
    let status = client
        .wait_exit(Duration::from_secs(120))
        .expect("client finished in time");
    let out = client.output();
    assert!(
        out.contains("320 request(s): 320 ok, 0 failed"),
        "requests failed during rotation:\n{out}"
    );
    assert!(status.success(), "{out}");

    let client_rotations = client.lines_matching(|l| l.contains("certificate rotated"));
    let server_rotations = server
        .proc
        .lines_matching(|l| l.contains("certificate rotated"));
    assert!(
        client_rotations.len() >= 5,
        "client rotated {} times:\n{out}",
        client_rotations.len()
    );
    assert!(
        server_rotations.len() >= 5,
        "server rotated {} times:\n{}",
        server_rotations.len(),
        server.proc.output()
    );
    // Each rotation log names old serial, new serial, NotAfter and the next rotation.
    for line in client_rotations.iter().chain(&server_rotations) {
        for key in ["old_serial=", "new_serial=", "not_after=", "next_rotation="] {
            assert!(line.contains(key), "{key} missing in {line}");
        }
    }
    // Serials change every time: the chain of old -> new is unbroken and never repeats.
    for rotations in [&client_rotations, &server_rotations] {
        let olds: Vec<_> = rotations
            .iter()
            .filter_map(|l| field(l, "old_serial="))
            .collect();
        let news: Vec<_> = rotations
            .iter()
            .filter_map(|l| field(l, "new_serial="))
            .collect();
        let distinct: BTreeSet<_> = news.iter().collect();
        assert_eq!(distinct.len(), news.len(), "a serial repeated: {news:?}");
        for pair in olds.iter().skip(1).zip(news.iter()) {
            assert_eq!(
                pair.0, pair.1,
                "rotations do not chain: {olds:?} / {news:?}"
            );
        }
    }
    // The client presented several certificates and saw several server certificates.
    let connected = client.lines_matching(|l| l.starts_with("[CLIENT] connected:"));
    let own: BTreeSet<_> = connected
        .iter()
        .filter_map(|l| field(l, "own_serial="))
        .collect();
    let theirs: BTreeSet<_> = connected
        .iter()
        .filter_map(|l| field(l, "server_serial="))
        .collect();
    assert!(own.len() >= 5, "client presented {own:?}");
    assert!(theirs.len() >= 3, "client saw server serials {theirs:?}");
    // The server saw every one of the client's certificates in a handshake.
    let server_log = server.proc.output();
    for serial in &own {
        assert!(
            server_log.contains(serial),
            "server never saw client serial {serial}"
        );
    }
}
