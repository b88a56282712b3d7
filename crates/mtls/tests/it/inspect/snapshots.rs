//! Snapshot tests of human output, JSON, error text and `--help`, on the committed fixtures
//! at a fixed time. Review changes with `cargo insta review` (or INSTA_UPDATE=always and git
//! diff); CI runs with CI=true, so a missing or different snapshot fails.

#![allow(clippy::unwrap_used)]

use super::common;

use super::common::run_in;

const AT: &str = "2026-01-01T00:30:00Z";

/// Runs each command in tests/data and records "$ command", its output and exit code.
fn transcript(commands: &[&[&str]]) -> String {
    let mut s = String::new();
    for args in commands {
        let r = run_in(&common::data_dir(), args);
        s.push_str(&format!("$ mtls-inspect {}\n", args.join(" ")));
        s.push_str(&r.stdout);
        if !r.stderr.is_empty() {
            s.push_str("[stderr]\n");
            s.push_str(&r.stderr);
        }
        s.push_str(&format!("[exit {}]\n\n", r.code));
    }
    s
}

#[test]
fn show_text() {
    insta::assert_snapshot!(transcript(&[
        &["show", "--at", AT, "leaf.pem"],
        &["show", "--at", AT, "csr.pem", "crl.pem"],
        &["show", "--at", AT, "bad.pem"],
    ]));
}

#[test]
fn show_short() {
    insta::assert_snapshot!(transcript(&[&[
        "show",
        "--short",
        "--at",
        AT,
        "bundle.pem",
        "revoked.pem",
        "csr.pem",
        "crl.der"
    ]]));
}

#[test]
fn show_json() {
    insta::assert_snapshot!(transcript(&[&[
        "show", "--format", "json", "--at", AT, "leaf.pem", "crl.pem"
    ]]));
}

#[test]
fn show_errors() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = std::fs::read_to_string(common::data_dir().join("leaf.pem")).unwrap();
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    std::fs::write(dir.path().join("cut.pem"), &leaf[..300]).unwrap();
    std::fs::write(dir.path().join("junk.der"), [0x30, 0x03, 0x01, 0x02, 0x03]).unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello\n").unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
    )
    .unwrap();
    let mut s = String::new();
    for f in [
        "empty.pem",
        "cut.pem",
        "junk.der",
        "hello.txt",
        "key.pem",
        "missing.pem",
    ] {
        let r = run_in(dir.path(), &["show", f]);
        s.push_str(&format!(
            "$ mtls-inspect show {f}\n{}[exit {}]\n",
            r.stderr, r.code
        ));
    }
    insta::assert_snapshot!(s);
}

#[test]
fn verify_results() {
    insta::assert_snapshot!(transcript(&[
        &[
            "verify",
            "leaf.pem",
            "--roots",
            "root.pem",
            "--purpose",
            "server",
            "--hostname",
            "localhost",
            "--spiffe-id",
            "spiffe://mesh.local/service/api",
            "--crl",
            "crl.pem",
            "--at",
            AT
        ],
        &[
            "verify",
            "leaf.pem",
            "--roots",
            "root.pem",
            "--at",
            "2026-01-01T03:00:00Z"
        ],
        &[
            "verify",
            "leaf.pem",
            "--roots",
            "root.pem",
            "--at",
            "2025-12-31T00:00:00Z"
        ],
        &[
            "verify",
            "leaf.pem",
            "--roots",
            "other-root.pem",
            "--at",
            AT
        ],
        &[
            "verify",
            "leaf.pem",
            "--roots",
            "root.pem",
            "--spiffe-id",
            "spiffe://mesh.local/service/web",
            "--at",
            AT
        ],
        &[
            "verify",
            "leaf.pem",
            "--roots",
            "root.pem",
            "--trust-domain",
            "example.org",
            "--at",
            AT
        ],
        &[
            "verify",
            "leaf.pem",
            "--roots",
            "root.pem",
            "--hostname",
            "localhost2",
            "--at",
            AT
        ],
        &[
            "verify",
            "server-only.pem",
            "--roots",
            "root.pem",
            "--purpose",
            "client",
            "--at",
            AT
        ],
        &["verify", "root.pem", "--roots", "root.pem", "--at", AT],
        &[
            "verify",
            "revoked.pem",
            "--roots",
            "root.pem",
            "--crl",
            "crl.pem",
            "--at",
            AT
        ],
        &[
            "verify",
            "leaf.pem",
            "--roots",
            "root.pem",
            "--crl",
            "crl.pem",
            "--at",
            "2026-01-01T00:59:00Z",
            "--format",
            "json"
        ],
        &[
            "verify",
            "leaf.pem",
            "--roots",
            "root.pem",
            "--crl",
            "crl.pem",
            "--at",
            "2026-01-01T00:05:00Z"
        ],
        &[
            "verify",
            "bad.pem",
            "--roots",
            "root.pem",
            "--spiffe-id",
            "spiffe://mesh.local/a",
            "--at",
            AT
        ],
        &[
            "verify",
            "leaf.pem",
            "--roots",
            "root.pem",
            "--spiffe-id",
            "not-an-id"
        ],
    ]));
}

#[test]
fn lint_reports() {
    insta::assert_snapshot!(transcript(&[
        &["lint", "--issuer", "root.pem", "leaf.pem", "root.pem", "bad.pem", "rsa.pem"],
        &["lint", "--format", "json", "--issuer", "root.pem", "bad.pem"],
        &["lint", "--list-rules"],
    ]));
}

#[test]
fn needs_renewal() {
    insta::assert_snapshot!(transcript(&[
        &["needs-renewal", "leaf.pem", "--at", "2026-01-01T00:10:00Z"],
        &["needs-renewal", "leaf.pem", "--at", AT],
        &[
            "needs-renewal",
            "leaf.pem",
            "--at-fraction",
            "0.9",
            "--at",
            AT,
            "--format",
            "json"
        ],
        &["needs-renewal", "leaf.pem", "--at", "2026-01-01T05:00:00Z"],
    ]));
}

#[test]
fn help_texts() {
    let mut s = String::new();
    for args in [
        &["--help"][..],
        &["show", "--help"],
        &["verify", "--help"],
        &["lint", "--help"],
        &["remote", "--help"],
        &["needs-renewal", "--help"],
    ] {
        let r = common::run(args);
        assert_eq!(r.code, 0);
        s.push_str(&format!(
            "$ mtls-inspect {}\n{}\n",
            args.join(" "),
            r.stdout
        ));
        if args.len() > 1 {
            assert!(r.stdout.contains("EXAMPLES:"), "{args:?}");
        }
        assert!(r.stdout.contains("EXIT CODES"), "{args:?}");
    }
    insta::assert_snapshot!(s);
}
