//! Locating the workspace binaries (mtls-ca, mtls-server, mtls-client) from a test.

use std::path::PathBuf;

/// Path of a binary built into the same target directory as the running test. Cargo sets
/// `CARGO_BIN_EXE_<name>` only for the test's own package, so other packages' binaries are found
/// next to the test executable (`target/<profile>/deps/..`).
pub fn bin_path(name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(format!("CARGO_BIN_EXE_{name}")) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    profile_dir.join(name)
}

/// True when the binary has been built.
pub fn bin_exists(name: &str) -> bool {
    bin_path(name).is_file()
}
