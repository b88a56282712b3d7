//! Root rotation under load (docs/operations.md, "Root rotation"): three enrolled mtls-server
//! processes, each under a continuous request loop from its own enrolled mtls-client, through
//! `root rotate` → (the running CA publishes both roots; every service refreshes its bundle) →
//! `root activate` → (the CA signs with the new root; every service rotates its leaf under it)
//! → `root retire` (refused, listing the old leaves, until they expire) → (every service drops
//! the old root). The CA is never restarted. Not one request may fail, and at the end a client
//! certificate signed by the old root is refused.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use testkit::{CaProc, Proc, ServerProc};

use super::common::*;
use crate::programs::{self, start_ca, start_server};

const SERVICES: [&str; 3] = ["alpha", "beta", "gamma"];
/// Requests per client, 100 ms apart: about 90 s, longer than the whole sequence.
const REQUESTS: u32 = 900;
const EVENT: Duration = Duration::from_secs(60);
/// The first root's subject as the services log it (`trust bundle updated: [...]`), and the
/// start of the rotated root's (`mtls-mesh Root CA <time>`).
const OLD_SUBJECT: &str = "CN=mtls-mesh Root CA\"";
const NEW_SUBJECT: &str = "CN=mtls-mesh Root CA 20";

fn id(service: &str, role: &str) -> String {
    format!("spiffe://mesh.local/service/{service}-{role}")
}

fn token(ca: &CaProc, dir: &Path, name: &str, spiffe_id: &str, extra: &[&str]) -> String {
    let path = dir.join(format!("{name}.token"));
    std::fs::write(&path, ca.token(spiffe_id, extra)).expect("write token");
    path.display().to_string()
}

fn start_pair(ca: &CaProc, dir: &Path, service: &str) -> (ServerProc, Proc) {
    let server_id = id(service, "server");
    let server_token = token(
        ca,
        dir,
        &format!("{service}-server"),
        &server_id,
        &["--dns", "localhost", "--ip", "127.0.0.1"],
    );
    let mut args = enrolled_args(ca, &server_id, &server_token);
    args.extend(["--crl-refresh", "1s"].map(String::from));
    let server = start_server(&format!("{service}-server"), &args);
    let client_id = id(service, "client");
    let client_token = token(ca, dir, &format!("{service}-client"), &client_id, &[]);
    let mut cmd = Command::new(programs::client());
    cmd.args(enrolled_args(ca, &client_id, &client_token))
        .args(["--server", &server.url(), "--server-id", &server_id])
        .args(["--crl-refresh", "1s", "--interval", "100ms", "--quiet"])
        .args(["--count", &REQUESTS.to_string()])
        .env("RUST_LOG", "info");
    let client = Proc::spawn(&format!("{service}-client"), cmd);
    client.wait_for(|l| l.contains("[CLIENT] request 1/"), EVENT);
    (server, client)
}

/// `mtls-ca --data-dir DIR ARGS...`: (success, stdout, stderr).
fn admin(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(programs::ca());
    cmd.arg("--data-dir").arg(dir).args(args);
    let (status, stdout, out) = testkit::run("mtls-ca", cmd, EVENT);
    (status.success(), stdout, out)
}

/// Waits until the running CA logs that it switched to `phase` after `mark`; returns the line.
fn ca_follows(ca: &CaProc, mark: usize, phase: &str) -> String {
    ca.proc
        .try_wait_for_after(
            mark,
            |l| l.contains(&format!("now serving phase {phase}")),
            EVENT,
        )
        .unwrap_or_else(|| panic!("the CA never switched to {phase}:\n{}", ca.proc.output()))
}

/// Every server and client with its current mark.
fn procs(pairs: &[(ServerProc, Proc)]) -> Vec<(&Proc, usize)> {
    pairs
        .iter()
        .flat_map(|(server, client)| [&server.proc, client])
        .map(|p| (p, p.mark()))
        .collect()
}

/// Waits until each process logged a line matching `pred` after its mark.
fn each_logs(procs: &[(&Proc, usize)], what: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
    procs
        .iter()
        .map(|(p, mark)| {
            p.try_wait_for_after(*mark, &pred, EVENT)
                .unwrap_or_else(|| panic!("{} never logged {what}:\n{}", p.name, p.output()))
        })
        .collect()
}

/// How the CA holds its root: the flavour of the rotation under test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tiers {
    /// Root key in the data directory: `root rotate` alone.
    One,
    /// Offline root (`init --offline-root`): the ceremony, then `root rotate --from`.
    Two,
}

const PASSPHRASE: &str = "a long enough passphrase\n";

#[test]
fn three_services_under_load_through_rotate_activate_retire_without_a_failed_request() {
    rotate_under_load(Tiers::One);
}

/// The same for a two-tier CA (docs/operations.md, "Root rotation of a two-tier CA"): the
/// offline ceremony → `root rotate --from` → `activate` → `retire`, the intermediate key
/// signing throughout, certified by the old root and then by the new one.
#[test]
fn a_two_tier_ca_rotates_its_offline_root_under_load_without_a_failed_request() {
    rotate_under_load(Tiers::Two);
}

fn rotate_under_load(tiers: Tiers) {
    require_binaries();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_dir = dir.path().join("ca");
    let (old_offline, new_offline) = (dir.path().join("offline"), dir.path().join("offline-new"));
    let pass = dir.path().join("pass");
    if tiers == Tiers::Two {
        std::fs::write(&pass, PASSPHRASE).expect("passphrase");
        let (ok, _, out) = admin(
            &ca_dir,
            &[
                "init",
                "--offline-root",
                &s(&old_offline),
                "--passphrase-file",
                &s(&pass),
            ],
        );
        assert!(ok, "{out}");
    }
    let ca = start_ca("ca", &ca_dir, "127.0.0.1:0", &["--cert-duration", "12s"]);
    let old_fp = ca.fingerprint.clone();
    let old_root = std::fs::read_to_string(ca_dir.join("root.crt")).expect("root");
    let pairs: Vec<(ServerProc, Proc)> = SERVICES
        .iter()
        .map(|s| start_pair(&ca, dir.path(), s))
        .collect();

    // A client certificate signed by the old root with its key (in the data directory, or
    // opened from the offline directory), accepted while the old root is trusted and refused
    // at the end.
    let old = testkit::TestCa {
        ca: match tiers {
            Tiers::One => pki::CaMaterial::load(
                old_root.as_bytes(),
                &std::fs::read(ca_dir.join("root.key")).expect("root key"),
            )
            .expect("old root"),
            Tiers::Two => mtls_ca::datadir_hierarchy::OfflineRoot::new(&old_offline)
                .open(
                    &pki::sealed_key::Passphrase::new(PASSPHRASE.trim().as_bytes().to_vec())
                        .expect("passphrase"),
                )
                .expect("old offline root"),
        },
    };
    let outsider = old.client("spiffe://mesh.local/service/outsider");
    let (cert, key) = outsider.write(dir.path(), "outsider");
    let outsider_calls = |server: &ServerProc, trust: &Path| {
        let mut cmd = Command::new(programs::client());
        cmd.args([
            "--cert",
            &s(&cert),
            "--key",
            &s(&key),
            "--ca-cert",
            &s(trust),
        ])
        .args(["--server", &server.url(), "--timeout", "10s"]);
        let (status, _, out) = testkit::run("outsider", cmd, EVENT);
        (status.success(), out)
    };
    let (ok, out) = outsider_calls(&pairs[0].0, &ca_dir.join("root.crt"));
    assert!(
        ok,
        "a leaf of the old root is accepted before the rotation:\n{out}"
    );

    // 1. rotate; the running CA publishes both roots and every service trusts them.
    let (marks, ca_mark) = (procs(&pairs), ca.proc.mark());
    let stdout = match tiers {
        Tiers::One => {
            let (ok, stdout, out) = admin(&ca_dir, &["root", "rotate"]);
            assert!(ok, "{out}");
            stdout
        }
        Tiers::Two => two_tier_rotate(dir.path(), &ca_dir, &[], &old_offline, &new_offline, &pass),
    };
    let new_fp = stdout
        .trim()
        .strip_prefix("new root fingerprint (SHA-256): ")
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    let line = ca_follows(&ca, ca_mark, "Rotated");
    assert!(
        line.contains(&old_fp),
        "the old root signs until activate: {line}"
    );
    let updates = each_logs(&marks, "the bundle with both roots", |l| {
        l.contains("trust bundle updated")
    });
    for line in &updates {
        assert!(
            line.contains(OLD_SUBJECT) && line.contains(NEW_SUBJECT),
            "{line}"
        );
    }

    // 2. activate: every service has refreshed (the events above), which is what
    // --min-overlap stands for; --force instead of waiting its default five minutes.
    let (marks, ca_mark) = (procs(&pairs), ca.proc.mark());
    let (ok, _, out) = admin(&ca_dir, &["root", "activate", "--force"]);
    assert!(ok, "{out}");
    let line = ca_follows(&ca, ca_mark, "Activated");
    assert!(line.contains(&new_fp), "the new root signs: {line}");
    each_logs(&marks, "a rotation under the new root", |l| {
        l.contains("certificate rotated")
    });

    // 3. retire: refused, naming the old leaves still valid, until the last one expires.
    let (ok, _, out) = admin(&ca_dir, &["root", "retire"]);
    assert!(!ok, "the old leaves are still valid:\n{out}");
    assert!(out.contains("still chain to the old root"), "{out}");
    for service in SERVICES {
        assert!(out.contains(&id(service, "server")), "{out}");
        assert!(out.contains(&id(service, "client")), "{out}");
    }
    // A two-tier CA's leaves carry no sign of their chain: retire also waits for those issued
    // in the few seconds after activate (`root_rotation_two_tier::SWITCH_MARGIN`), which may
    // be issued after this first refusal; each refusal names its last expiry.
    let mut refusal = out;
    let (marks, ca_mark) = loop {
        wait_until_expired(&refusal);
        let (marks, ca_mark) = (procs(&pairs), ca.proc.mark());
        let (ok, _, out) = admin(&ca_dir, &["root", "retire"]);
        if ok {
            break (marks, ca_mark);
        }
        assert!(
            tiers == Tiers::Two && out.contains("still chain to the old root"),
            "every service's current leaf is from the new root:\n{out}"
        );
        refusal = out;
    };
    ca_follows(&ca, ca_mark, "Retired");
    let updates = each_logs(&marks, "the bundle without the old root", |l| {
        l.contains("trust bundle updated")
    });
    for line in &updates {
        assert!(
            !line.contains(OLD_SUBJECT) && line.contains(NEW_SUBJECT),
            "{line}"
        );
    }

    // Zero failed requests through the whole sequence.
    let mut pairs = pairs;
    for (_, client) in &mut pairs {
        let status = client
            .wait_exit(Duration::from_secs(180))
            .expect("client finished");
        let out = client.output();
        assert!(
            out.contains(&format!("{REQUESTS} request(s): {REQUESTS} ok, 0 failed")),
            "requests failed during the root rotation:\n{out}"
        );
        assert!(status.success(), "{out}");
    }

    // No trust in the old root: its leaf is refused by every server.
    let trust = dir.path().join("trust.pem");
    let mut pem = old_root.clone();
    match tiers {
        Tiers::One => {
            for entry in std::fs::read_dir(ca_dir.join("roots")).expect("roots") {
                let path = entry.expect("entry").path();
                if path.extension().is_some_and(|e| e == "crt") {
                    pem.push_str(&std::fs::read_to_string(path).expect("root"));
                }
            }
        }
        Tiers::Two => {
            pem.push_str(&std::fs::read_to_string(new_offline.join("root.crt")).expect("new root"));
        }
    }
    std::fs::write(&trust, pem).expect("trust");
    for (server, _) in &pairs {
        let (ok, out) = outsider_calls(server, &trust);
        assert!(!ok, "the old root is still trusted:\n{out}");
    }
    drop(ca);
}

/// Waits until the last certificate a `retire` refusal names has expired (its NotAfter, as
/// the CA reported it: expiry of certificates in other processes is no event anyone signals,
/// and their clock cannot be paused. A timer to that instant, not a race).
fn wait_until_expired(refusal: &str) {
    let last = refusal
        .split("the last expires at ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("{refusal}"));
    let last = pki::timefmt::parse_rfc3339(last).expect("time");
    let wait = last - time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    if wait.is_positive() {
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(wait.unsigned_abs());
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}
