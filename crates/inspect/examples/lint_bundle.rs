//! Writes a large certificate bundle to measure `mtls-inspect lint` (docs/performance.md):
//!
//!     cargo run --release -p mtls-inspect --example lint_bundle -- 2000 bundle.pem
//!     cargo run --release -p mtls-inspect --example lint_bundle -- 15MiB big.pem
//!     time target/release/mtls-inspect lint bundle.pem > /dev/null
//!
//! COUNT is a number of leaves, or a size ending in MiB; the root comes last in the file.

#![allow(clippy::unwrap_used)] // a developer tool: a panic is the error report

use testkit::bundle;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, count, out] = args.as_slice() else {
        eprintln!("usage: lint_bundle COUNT|SIZEMiB OUT.pem");
        std::process::exit(2);
    };
    let now = time::OffsetDateTime::now_utc();
    let root = pki::CaMaterial::generate_root("Bundle Root", now).unwrap();
    let pem = match count.strip_suffix("MiB") {
        Some(mib) => bundle::bundle_of_size(&root, mib.parse::<usize>().unwrap() << 20, now),
        None => bundle::leaf_bundle(&root, count.parse().unwrap(), now),
    };
    std::fs::write(out, &pem).unwrap();
    eprintln!(
        "{out}: {} certificates, {} bytes",
        pem.matches("BEGIN CERTIFICATE").count(),
        pem.len()
    );
}
