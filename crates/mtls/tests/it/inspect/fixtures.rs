//! The committed fixtures of crates/inspect/tests/data exist and parse; regenerate them with
//! `cargo run -p mtls-inspect --example regenerate_fixtures`.

#![allow(clippy::unwrap_used)]

use super::common;

use std::path::Path;

#[test]
fn fixtures_are_present_and_parse() {
    let data = common::data_dir();
    for name in [
        "root.pem",
        "other-root.pem",
        "leaf.pem",
        "leaf.der",
        "bundle.pem",
        "revoked.pem",
        "crl.pem",
        "crl.der",
        "server-only.pem",
        "csr.pem",
        "bad.pem",
        "rsa.pem",
    ] {
        let path = data.join(name);
        assert!(
            Path::new(&path).exists(),
            "{name} is missing: regenerate the fixtures"
        );
        let r = common::run_in(&data, &["show", "--short", name]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
    }
}
