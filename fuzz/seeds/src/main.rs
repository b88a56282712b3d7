//! Writes the seed corpora of the fuzz targets (`fuzz/corpus/<target>/`) and the certificates
//! the CRL target verifies against (`fuzz/fixtures/crl_issuers/`), from our own code (`pki`,
//! rcgen) and from the system `openssl`. Keys are made in a temporary directory and thrown away;
//! only certificates, CSRs, CRLs, key shares (public points), JSON and text are written.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml -p mtls-mesh-fuzz-seeds
//!
//! Each seed is then checked to mean what its name says (`check.rs`). Every run makes new keys, so the bytes differ from run to run while the kinds of input stay
//! the same. Files named `regression-*` (inputs that once crashed a target) are kept.

#![allow(clippy::unwrap_used)] // a developer tool: a panic with its message is the error report

mod bodies;
mod check;
mod crls;
mod csr_signed;
mod csrs;
mod inspect;
mod ocsp;
mod openssl;
mod out;
mod p521;
mod spiffe;

use std::path::PathBuf;

fn main() {
    let fuzz_dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .canonicalize()
        .unwrap();
    let ssl = openssl::OpenSsl::new();

    let csrs = csrs::write(&out::Corpus::new(&fuzz_dir, "csr"), &ssl);
    csr_signed::write(&out::Corpus::new(&fuzz_dir, "csr_signed"), &csrs);
    spiffe::write(&out::Corpus::new(&fuzz_dir, "spiffe_id"));
    p521::write(&out::Corpus::new(&fuzz_dir, "p521_key_share"), &ssl);
    let crls = crls::write(
        &out::Corpus::new(&fuzz_dir, "crl"),
        &fuzz_dir.join("fixtures").join("crl_issuers"),
        &ssl,
    );
    inspect::write(
        &out::Corpus::new(&fuzz_dir, "inspect_input"),
        &ssl,
        &csrs,
        &crls,
    );
    bodies::write(&out::Corpus::new(&fuzz_dir, "ca_request_body"), &csrs);
    let requests = ocsp::write_requests(
        &out::Corpus::new(&fuzz_dir, "ocsp_request"),
        &fuzz_dir.join("fixtures").join("crl_issuers"),
        &ssl,
    );
    ocsp::write_get_paths(
        &out::Corpus::new(&fuzz_dir, "ocsp_get_path"),
        &requests,
        &ssl,
    );
    ocsp::write_responses(&out::Corpus::new(&fuzz_dir, "ocsp_response"), &ssl);
    check::all(&fuzz_dir);
    println!(
        "seed corpora written and checked under {}",
        fuzz_dir.join("corpus").display()
    );
}
