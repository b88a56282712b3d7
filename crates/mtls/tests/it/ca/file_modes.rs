//! The data directory is the CA's alone: created 0700 with the root key, `ca.db`, `ca.db-wal`
//! and `ca.db-shm` 0600 whatever the umask, and loosened modes found at a start (service or
//! subcommand) are tightened and logged before the database is opened. Real files, real
//! processes.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::common::*;
use crate::programs;

const ID: &str = "spiffe://mesh.local/service/modes";
const PRIVATE: [&str; 4] = ["root.key", "ca.db", "ca.db-wal", "ca.db-shm"];

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `mtls-ca` serving `dir` under `umask 000`, so only the CA's own modes protect its files.
fn start_with_open_umask(dir: &Path) -> Ca {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(programs::ca())
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"]);
    Ca::try_start_command(dir, cmd).unwrap()
}

fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for name in PRIVATE {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
}

#[tokio::test]
async fn every_private_file_is_owner_only_even_under_an_open_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let ca = start_with_open_umask(&dir);
    // An issuance writes through the WAL: ca.db-wal and ca.db-shm exist from here on.
    enroll(&ca, ID).await;
    assert_private(&dir);
    assert_eq!(
        mode(&dir.join("root.crt")),
        0o644,
        "the certificate is public"
    );
}

#[tokio::test]
async fn loosened_modes_are_tightened_and_logged_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let ca = Ca::start_in(&dir, &[]);
    enroll(&ca, ID).await;
    // Killed, so ca.db-wal and ca.db-shm are left behind (a clean stop removes them).
    let dir: PathBuf = ca.kill9();

    // A careless restore: everything open to everyone.
    set_mode(&dir, 0o777);
    for name in PRIVATE {
        set_mode(&dir.join(name), 0o666);
    }
    let ca = Ca::start_in(&dir, &[]);
    assert_private(&dir);
    let logs = ca.logs();
    assert!(
        logs.contains("the data directory")
            && logs.contains("was open to group or others (mode 777); it is now 700"),
        "{logs}"
    );
    for name in PRIVATE {
        assert!(
            logs.lines()
                .any(|l| l.contains(name) && l.contains("(mode 666); it is now 600")),
            "{name} not logged:\n{logs}"
        );
    }
    // Still the same CA with the same records.
    assert_eq!(ca.cert_count(), 1);
    let dir = ca.stop();

    // A subcommand tightens too, before it opens the database.
    set_mode(&dir, 0o755);
    set_mode(&dir.join("ca.db"), 0o644);
    let out = admin_in(&dir, &["list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (The subcommand's connection was the last: SQLite removed -wal and -shm at its close.)
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("ca.db")), 0o600);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("permissions_tightened"), "{stderr}");
}
