//! Test helpers for mtls-mesh: throwaway PKIs (good, expired, not yet valid, wrong EKU,
//! CA-as-client, bad key usage, foreign CA, self-signed for pinning, CRLs, large bundles),
//! child-process helpers that wait on output lines with timeouts instead of sleeping, and a
//! byte-level TLS client (`raw_tls`). A helper library only: the tests that use it live with
//! the crates they test (the programs' tests in crates/mtls/tests/it).

pub mod bins;
pub mod bundle;
pub mod pki_kit;
pub mod postgres;
pub mod process;
pub mod raw_tls;
pub mod services;
pub mod softhsm;

pub use bins::bin_path;
pub use pki_kit::{self_signed, Leaf, LeafSpec, TestCa};
pub use process::{run, Proc};
/// For `TestCa::with_key_usages`.
pub use rcgen::KeyUsagePurpose;
pub use services::{
    http_get, http_get_at, start_ca, start_ca_with_env, start_server, start_server_with_log,
    start_server_with_open_files, CaProc, ServerProc,
};
