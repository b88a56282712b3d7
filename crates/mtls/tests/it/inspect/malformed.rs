//! Malformed input (truncated PEM, garbage DER, an empty file, a 10 MiB random file) gives a
//! clear error and exit 2 from every command, never a panic.

#![allow(clippy::unwrap_used)]

use super::common;

use std::path::Path;

use super::common::run_in;

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Runs every command that reads FILE and checks: exit 2, the message, no panic.
fn every_command_rejects(dir: &Path, file: &str, needle: &str) {
    let commands: Vec<Vec<&str>> = vec![
        vec!["show", file],
        vec!["show", "--format", "json", file],
        vec!["lint", file],
        vec!["verify", file, "--roots", "root.pem"],
        vec!["verify", "leaf.pem", "--roots", file],
        vec![
            "verify",
            "leaf.pem",
            "--roots",
            "root.pem",
            "--intermediates",
            file,
        ],
        vec!["verify", "leaf.pem", "--roots", "root.pem", "--crl", file],
        vec!["needs-renewal", file],
        vec!["lint", "--issuer", file, "leaf.pem"],
        vec!["remote", "127.0.0.1:1", "--cert", file, "--key", file],
    ];
    for args in commands {
        let r = run_in(dir, &args);
        assert_eq!(
            r.code, 2,
            "{args:?}: stdout {} stderr {}",
            r.stdout, r.stderr
        );
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
        if args[0] == "show" && args.len() > 2 {
            // JSON mode reports the error in the document.
            let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
            assert!(
                doc["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains(needle),
                "{}",
                r.stdout
            );
        } else {
            assert!(
                r.stderr.contains(needle),
                "{args:?}: expected {needle:?} in {}",
                r.stderr
            );
        }
    }
}

fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["root.pem", "leaf.pem"] {
        std::fs::copy(common::data_dir().join(f), dir.path().join(f)).unwrap();
    }
    dir
}

#[test]
fn empty_file() {
    let dir = workdir();
    std::fs::write(dir.path().join("empty.pem"), b"").unwrap();
    every_command_rejects(dir.path(), "empty.pem", "empty.pem: the input is empty");
}

#[test]
fn truncated_pem() {
    let dir = workdir();
    let pem = std::fs::read_to_string(dir.path().join("leaf.pem")).unwrap();
    std::fs::write(dir.path().join("cut.pem"), &pem[..pem.len() / 2]).unwrap();
    every_command_rejects(
        dir.path(),
        "cut.pem",
        "cut.pem: the CERTIFICATE block at line 1 has no -----END CERTIFICATE----- line (truncated?)",
    );
    // Lines missing from the middle: the framing is fine, the DER inside is not.
    let lines: Vec<&str> = pem.lines().collect();
    let mut holed = lines[..3].to_vec();
    holed.extend_from_slice(&lines[lines.len() - 1..]);
    std::fs::write(dir.path().join("holed.pem"), holed.join("\n")).unwrap();
    every_command_rejects(
        dir.path(),
        "holed.pem",
        "holed.pem: the CERTIFICATE block at line 1 is not a valid certificate",
    );
}

#[test]
fn garbage_der() {
    let dir = workdir();
    let mut garbage = vec![0x30, 0x82, 0x01, 0x00];
    garbage.extend(random_bytes(256, 7));
    std::fs::write(dir.path().join("garbage.der"), &garbage).unwrap();
    every_command_rejects(
        dir.path(),
        "garbage.der",
        "garbage.der: DER input is not a certificate, CSR, CRL or OCSP response",
    );
    std::fs::write(dir.path().join("text.txt"), b"this is not a certificate\n").unwrap();
    every_command_rejects(
        dir.path(),
        "text.txt",
        "neither PEM (no -----BEGIN line) nor DER",
    );
}

#[test]
fn ten_mib_of_random_bytes() {
    let dir = workdir();
    let mut bytes = random_bytes(10 << 20, 42);
    bytes[0] = 0x30; // start like DER so the parsers get to work on it
    std::fs::write(dir.path().join("random.bin"), &bytes).unwrap();
    // Real time is the point: a generous bound that catches a parser going quadratic.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    every_command_rejects(
        dir.path(),
        "random.bin",
        "random.bin: DER input is not a certificate, CSR, CRL or OCSP response",
    );
    assert!(
        started.elapsed().as_secs() < 60,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let dir = workdir();
    std::fs::write(dir.path().join("huge.bin"), vec![b'A'; (16 << 20) + 1]).unwrap();
    let r = run_in(dir.path(), &["show", "huge.bin"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("huge.bin: larger than 16 MiB"),
        "{}",
        r.stderr
    );
}

#[test]
fn random_bytes_on_stdin() {
    for seed in 1..=8u64 {
        let bytes = random_bytes(64 + seed as usize * 100, seed);
        for args in [["show", "-"], ["lint", "-"], ["needs-renewal", "-"]] {
            let r = common::run_stdin(&args, &bytes);
            assert_eq!(r.code, 2, "{args:?} seed {seed}");
            assert!(r.stderr.contains("<stdin>: "), "{args:?}: {}", r.stderr);
            assert!(!r.stderr.contains("panicked"));
        }
    }
}
