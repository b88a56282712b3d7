//! Helpers for the in-process tests.

use std::path::PathBuf;

/// The committed fixtures (tests/data).
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
}
