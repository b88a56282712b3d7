//! The README's "Enroll with nothing but OpenSSL and curl" block, run by bash as written against a
//! real CA (only the CA's port differs). It must write a certificate that OpenSSL verifies, and on
//! a refusal it must fail with the CA's message and leave no `api.crt` behind (it once wrote the
//! literal `null` there and exited 0). Needs bash, openssl, curl 7.76+ and jq.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::programs::{self, start_ca};

/// The marker in README.md right above the block.
pub(crate) const MARKER: &str = "<!-- recipe: enroll-with-curl -->";
/// The CA address the README uses; the test's CA listens elsewhere.
pub(crate) const README_CA: &str = "https://localhost:8443";

pub(crate) fn readme_block() -> String {
    doc_block("README.md", MARKER)
}

/// The first ```sh block after `marker` in the repository's file `doc`.
pub(crate) fn doc_block(doc: &str, marker: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(doc);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {doc}: {e}"));
    let after = text
        .split_once(marker)
        .unwrap_or_else(|| panic!("{doc} has no {marker}"))
        .1;
    let body = after
        .split_once("```sh\n")
        .expect("a sh block after the marker")
        .1;
    body.split_once("```")
        .expect("the block is closed")
        .0
        .to_string()
}

/// Runs `script` with `bash -e` in `dir`, where `ca` is the CA's data directory and the
/// programs of this build come first on PATH.
pub(crate) fn run_in(dir: &Path, ca_data: &Path, script: &str) -> Output {
    let link = dir.join("ca");
    if !link.exists() {
        std::os::unix::fs::symlink(ca_data, &link).expect("link ca");
    }
    let path = format!(
        "{}:{}",
        programs::bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .args(["-e", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .output()
        .expect("run bash")
}

pub(crate) fn report(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn read(path: PathBuf) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[test]
fn the_curl_enrollment_recipe_works_and_fails_loudly_on_a_refusal() {
    programs::require(&["mtls-ca"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_data = dir.path().join("ca-data");
    let ca = start_ca("ca", &ca_data, "127.0.0.1:0", &[]);
    let block = readme_block();
    assert!(block.contains(README_CA), "the recipe names {README_CA}");
    let script = block.replace(README_CA, &ca.url());

    // As written: a certificate that the recipe's own `openssl verify` accepts.
    let first = dir.path().join("first");
    std::fs::create_dir(&first).expect("mkdir");
    let out = run_in(&first, &ca_data, &script);
    assert!(out.status.success(), "{}", report(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("api.crt: OK"),
        "{}",
        report(&out)
    );
    let cert = read(first.join("api.crt")).expect("api.crt written");
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");

    // The same recipe with a token that is already used: the CA refuses, the recipe fails
    // with the CA's message and no api.crt is left, not even the one of an earlier run.
    let token = ca.token("spiffe://mesh.local/service/api", &["--dns", "localhost"]);
    let token_line = block
        .lines()
        .find(|l| l.starts_with("T=$("))
        .expect("the recipe makes a token");
    let with_token = script.replace(token_line, &format!("T={token}"));
    let second = dir.path().join("second");
    std::fs::create_dir(&second).expect("mkdir");
    let out = run_in(&second, &ca_data, &with_token);
    assert!(out.status.success(), "first use: {}", report(&out));
    assert!(second.join("api.crt").exists());
    let out = run_in(&second, &ca_data, &with_token);
    assert!(!out.status.success(), "a used token: {}", report(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the join token has already been used"),
        "the CA's message is shown: {}",
        report(&out)
    );
    assert!(
        !second.join("api.crt").exists(),
        "no api.crt after a refusal: {:?}",
        read(second.join("api.crt"))
    );
}
