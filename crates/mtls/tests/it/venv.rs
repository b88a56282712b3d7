//! A throwaway Python venv with one package from PyPI, for tests that drive a tool nobody here
//! wrote (py-spiffe, kubernetes-validate). It fails, it does not skip, when the venv or the
//! package cannot be made: CI installs python3-venv and has pip access.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

/// Creates a venv at `dir/venv` and installs `requirement` (e.g. `spiffe==0.3.2`) into it;
/// returns the venv's directory (`bin/python`, `bin/<tool>`).
pub fn with_package(dir: &Path, requirement: &str) -> PathBuf {
    let venv = dir.join("venv");
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "python3 -m venv failed (install python3-venv): {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pip = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            requirement,
        ])
        .output()
        .unwrap();
    assert!(
        pip.status.success(),
        "installing {requirement} failed: {}{}",
        String::from_utf8_lossy(&pip.stdout),
        String::from_utf8_lossy(&pip.stderr)
    );
    venv
}
