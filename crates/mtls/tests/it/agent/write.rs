//! `mtls-agent write`: the files appear with their modes, each new version replaces the last
//! atomically (a reader in a tight loop never gets a certificate with another version's key),
//! and the hook runs once per version.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use testkit::Proc;

use super::common::*;
use crate::programs;

/// The serial of the certificate in `dir`, after checking that the key in the same directory
/// is the certificate's.
fn matching_pair(dir: &Path) -> Option<String> {
    let cert = std::fs::read(dir.join("svid.pem")).ok()?;
    let key = std::fs::read(dir.join("svid.key")).ok()?;
    let leaf = pki::pem::parse_certificates(&cert).expect("a whole certificate file");
    let info = pki::CertInfo::from_der(&leaf[0]).unwrap();
    let (key, _) = pki::keys::parse_private_key_pem(&key).expect("a whole key file");
    assert_eq!(
        info.spki_sha256,
        pki::sha256_hex(&pki::keys::spki_der(&key)),
        "certificate {} with another version's key",
        info.serial_hex
    );
    Some(info.serial_hex)
}

#[test]
fn files_are_replaced_atomically_and_the_hook_runs_once_per_rotation() {
    let agent = start();
    let mark = agent.proc.mark();
    agent.entry(
        WEB_ID,
        &[&format!("unix:uid:{}", my_uid())],
        &["--ttl", "4s"],
    );
    agent.wait_minted(mark, WEB_ID);
    let out = agent.dir.path().join("web");
    let hooks = agent.dir.path().join("hooks.log");
    let mut cmd = Command::new(programs::agent());
    cmd.args(["write", "--socket"])
        .arg(&agent.socket)
        .args(["--spiffe-id", WEB_ID, "--dir"])
        .arg(&out)
        .arg("--on-rotate")
        .arg(format!("echo rotated >> {}", hooks.display()));
    let writer = Proc::spawn("write", cmd);
    writer.wait_for(|l| l.starts_with("[WRITE] ") && l.contains("written"), LONG);

    let mode = |name: &str| {
        std::fs::metadata(out.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("svid.key"), 0o600);
    assert_eq!(mode("svid.pem"), 0o644);
    assert!(std::fs::read_to_string(out.join("bundle.pem"))
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert!(std::fs::read_to_string(out.join("crl.pem"))
        .unwrap()
        .contains("BEGIN X509 CRL"));

    // A reader in a tight loop, as docs/agent.md says: resolve `current`, read both files there.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (out, stop) = (out.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut serials = std::collections::BTreeSet::new();
            let mut reads = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let Ok(link) = std::fs::read_link(out.join("current")) else {
                    continue;
                };
                if let Some(serial) = matching_pair(&out.join(link)) {
                    serials.insert(serial);
                    reads += 1;
                }
            }
            (reads, serials)
        })
    };
    // Three rotations (every 2 s).
    for _ in 0..3 {
        let m = writer.mark();
        writer.wait_for_after(
            m,
            |l| l.starts_with("[WRITE] ") && l.contains("written"),
            LONG,
        );
    }
    stop.store(true, Ordering::SeqCst);
    let (reads, serials) = reader.join().unwrap();
    assert!(
        serials.len() >= 2,
        "the reader saw rotations: {reads} reads, {serials:?}"
    );

    let written = writer
        .lines_matching(|l| l.starts_with("[WRITE] ") && l.contains("written"))
        .len();
    let hook_lines = writer
        .lines_matching(|l| l.contains("on-rotate hook ran"))
        .len();
    let ran = std::fs::read_to_string(&hooks).unwrap().lines().count();
    // The hook of the last version may still be running: at most one behind.
    assert!(
        ran == written || ran + 1 == written,
        "{written} versions written, hook ran {ran} times ({hook_lines} reported)"
    );
    // Each version is a new certificate: nothing is written twice.
    assert!(written <= 6, "{written} versions for about 4 rotations: a change other than a rotation is rewriting the files");
}
