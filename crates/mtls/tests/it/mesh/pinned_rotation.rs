//! Pinned mode with a pins file (`--trust-pins-file`, docs/rotation.md "Pinned keys"): two pinned
//! peers rotate both keys under continuous load through the overlap sequence add-new-pin →
//! rotate the key/certificate files → remove-old-pin, without a failed request; a pins file that
//! does not parse on the way is refused and the pins in use kept; an open connection from a key
//! whose pin is removed is closed; at the end neither old key is accepted any more.
//! Every step waits for the programs' own events (log lines, counters), never for time.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::common::*;
use crate::programs::{self, start_server};
use testkit::{Leaf, Proc};

const STEP: Duration = Duration::from_secs(20);

fn write_pins(path: &Path, pins: &[String]) {
    let mut text = String::from("# peers this service trusts (one sha256: SPKI pin per line)\n\n");
    for pin in pins {
        text.push_str(pin);
        text.push('\n');
    }
    pki::files::write_atomic(path, text.as_bytes(), pki::files::PUBLIC_MODE).unwrap();
}

/// Installs `leaf` as the live files `name.crt`/`name.key` in `dir`: key first, so in between
/// the pair does not match and the watcher must keep the old one.
fn install(dir: &Path, name: &str, leaf: &Leaf) {
    pki::files::write_atomic(
        &dir.join(format!("{name}.key")),
        leaf.key_pem.as_bytes(),
        pki::files::KEY_MODE,
    )
    .unwrap();
    pki::files::write_atomic(
        &dir.join(format!("{name}.crt")),
        leaf.cert_pem.as_bytes(),
        pki::files::PUBLIC_MODE,
    )
    .unwrap();
}

/// Waits for `n` more successful requests of the load client after `mark`.
fn wait_requests(client: &Proc, n: usize) {
    let mark = client.mark();
    for _ in 0..n {
        let mark = client.mark().max(mark);
        client.wait_for_after(
            mark,
            |l| l.contains("[CLIENT] request ") && l.contains(": 200 "),
            STEP,
        );
    }
}

/// `--cert CERT --key KEY --trust-pins-file PINS`.
fn pinned(cert: &Path, key: &Path, pins: &Path) -> Vec<String> {
    [
        "--cert",
        &s(cert),
        "--key",
        &s(key),
        "--trust-pins-file",
        &s(pins),
    ]
    .map(String::from)
    .to_vec()
}

fn metric(server: &testkit::ServerProc, name: &str) -> u64 {
    let (status, body) = server.admin_get("/metrics");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{body}"))
}

#[test]
fn both_pinned_peers_rotate_keys_under_load_through_the_pins_file_without_a_failed_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let (server_old, client_old) = (
        testkit::self_signed(SERVER_ID),
        testkit::self_signed(CLIENT_ID),
    );
    let (server_new, client_new) = (
        testkit::self_signed(SERVER_ID),
        testkit::self_signed(CLIENT_ID),
    );
    install(path, "server", &server_old);
    install(path, "client", &client_old);
    let (old_client_cert, old_client_key) = client_old.write(path, "client-old");
    let server_pins = path.join("server-pins.txt");
    let client_pins = path.join("client-pins.txt");
    write_pins(&server_pins, &[client_old.spki_pin()]);
    write_pins(&client_pins, &[server_old.spki_pin()]);

    let mut args = pinned(
        &path.join("server.crt"),
        &path.join("server.key"),
        &server_pins,
    );
    args.extend(["--reload-interval".into(), "1s".into()]);
    let server = start_server("server", &args);
    // The load: a request every 20 ms on a kept-alive connection, for longer than any run.
    let mut cmd = Command::new(programs::client());
    cmd.args(pinned(
        &path.join("client.crt"),
        &path.join("client.key"),
        &client_pins,
    ))
    .args(["--reload-interval", "1s", "--server", &server.url()])
    .args(["--count", "1000000", "--interval", "20ms", "--quiet"])
    .env("RUST_LOG", "info");
    let mut client = Proc::spawn("client", cmd);
    wait_requests(&client, 3);

    // 1. Add the new pins next to the old ones.
    let (sm, cm) = (server.proc.mark(), client.mark());
    write_pins(
        &server_pins,
        &[client_old.spki_pin(), client_new.spki_pin()],
    );
    write_pins(
        &client_pins,
        &[server_old.spki_pin(), server_new.spki_pin()],
    );
    let reloaded = |l: &str| l.contains("pins reloaded") && l.contains("2 pinned key(s), 1 added");
    server.proc.wait_for_after(sm, reloaded, STEP);
    client.wait_for_after(cm, reloaded, STEP);
    wait_requests(&client, 3);

    // A pins file that does not parse is refused: the two pins stay, traffic goes on.
    let sm = server.proc.mark();
    let bad = format!("{}\nsha256:not-a-hash\n", client_new.spki_pin());
    pki::files::write_atomic(&server_pins, bad.as_bytes(), pki::files::PUBLIC_MODE).unwrap();
    let line = server.proc.wait_for_after(
        sm,
        |l| l.contains("pins file changed but cannot be used"),
        STEP,
    );
    assert!(
        line.contains("server-pins.txt line 2") && line.contains("keeping the 2 pin(s)"),
        "{line}"
    );
    assert_eq!(metric(&server, "mesh_pins_reload_failures_total"), 1);
    assert_eq!(metric(&server, "mesh_pins_reloads_total"), 1);
    wait_requests(&client, 3);

    // 2. Rotate the server's key and certificate, then the client's.
    let sm = server.proc.mark();
    install(path, "server", &server_new);
    server.proc.wait_for_after(
        sm,
        |l| l.contains("certificate rotated") && l.contains(&server_new.serial_hex),
        STEP,
    );
    wait_requests(&client, 3);
    let cm = client.mark();
    install(path, "client", &client_new);
    client.wait_for_after(
        cm,
        |l| l.contains("certificate rotated") && l.contains(&client_new.serial_hex),
        STEP,
    );
    // The client's next connection presents its new certificate and meets the server's new one.
    client.wait_for_after(
        cm,
        |l| {
            l.contains("[CLIENT] connected:")
                && l.contains(&format!("server_serial={}", server_new.serial_hex))
                && l.contains(&format!("own_serial={}", client_new.serial_hex))
        },
        STEP,
    );
    wait_requests(&client, 3);

    // A connection still open with the old client key (an idle peer that did not rotate).
    let mut straggler = Command::new("openssl");
    straggler
        .args(["s_client", "-ign_eof", "-connect", &server.addr()])
        .arg("-cert")
        .arg(&old_client_cert)
        .arg("-key")
        .arg(&old_client_key);
    let sm = server.proc.mark();
    let mut straggler = Proc::spawn("s_client", straggler);
    server.proc.wait_for_after(
        sm,
        |l| l.contains("handshake_ok") && l.contains(&client_old.serial_hex),
        STEP,
    );

    // 3. Remove the old pins: the new keys carry on, the straggler's connection is closed.
    let (sm, cm) = (server.proc.mark(), client.mark());
    write_pins(&server_pins, &[client_new.spki_pin()]);
    write_pins(&client_pins, &[server_new.spki_pin()]);
    let dropped =
        |l: &str| l.contains("pins reloaded") && l.contains("1 pinned key(s), 0 added, 1 removed");
    server.proc.wait_for_after(sm, dropped, STEP);
    client.wait_for_after(cm, dropped, STEP);
    server.proc.wait_for_after(
        sm,
        |l| l.contains(&client_old.serial_hex) && l.contains("unpinned"),
        STEP,
    );
    assert!(
        straggler.wait_exit(STEP).is_some(),
        "s_client still connected after its pin was removed:\n{}",
        straggler.output()
    );
    wait_requests(&client, 3);
    assert_eq!(metric(&server, "mesh_pins_reloads_total"), 2);

    client.terminate();
    client.wait_exit(STEP);
    let out = client.output();
    let ok = client.lines_matching(|l| l.contains("[CLIENT] request ") && l.contains(": 200 "));
    assert!(ok.len() >= 20, "{out}");
    assert!(
        !out.contains("FAILED") && !out.contains("mtls-client: request"),
        "requests failed during the pin rotation:\n{out}"
    );

    // At the end the old keys are refused both ways: the server refuses the old client key...
    let sm = server.proc.mark();
    let mut args = pinned(&old_client_cert, &old_client_key, &client_pins);
    args.extend(["--server".into(), server.url()]);
    let (status, _, all) = run_client(&args);
    assert!(!status.success(), "{all}");
    let line = server.proc.wait_for_after(
        sm,
        |l| l.contains("handshake_failed") || l.contains("failed:"),
        STEP,
    );
    assert!(line.contains("matches none of the pinned keys"), "{line}");
    // ... and the client refuses a server still presenting the old server key.
    let (old_server_cert, old_server_key) = server_old.write(path, "server-old");
    let stale = start_server(
        "stale server",
        &pinned(&old_server_cert, &old_server_key, &server_pins),
    );
    let mut args = pinned(
        &path.join("client.crt"),
        &path.join("client.key"),
        &client_pins,
    );
    args.extend(["--server".into(), stale.url()]);
    let (status, _, all) = run_client(&args);
    assert!(!status.success(), "{all}");
    assert!(all.contains("matches none of the pinned keys"), "{all}");
}
