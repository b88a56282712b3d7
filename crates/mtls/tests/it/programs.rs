//! The programs under test: the binaries Cargo built for this test binary
//! (`CARGO_BIN_EXE_<name>`), or the prebuilt ones in `$MTLS_BIN_DIR` (testkit::bins). Also
//! testkit's process starters bound to them.

use std::path::{Path, PathBuf};

use testkit::{CaProc, ServerProc};

pub fn ca() -> PathBuf {
    testkit::bin_path(env!("CARGO_BIN_EXE_mtls-ca"))
}

pub fn server() -> PathBuf {
    testkit::bin_path(env!("CARGO_BIN_EXE_mtls-server"))
}

pub fn client() -> PathBuf {
    testkit::bin_path(env!("CARGO_BIN_EXE_mtls-client"))
}

pub fn inspect() -> PathBuf {
    testkit::bin_path(env!("CARGO_BIN_EXE_mtls-inspect"))
}

pub fn proxy() -> PathBuf {
    testkit::bin_path(env!("CARGO_BIN_EXE_mtls-proxy"))
}

pub fn agent() -> PathBuf {
    testkit::bin_path(env!("CARGO_BIN_EXE_mtls-agent"))
}

pub fn bench() -> PathBuf {
    testkit::bin_path(env!("CARGO_BIN_EXE_mtls-bench"))
}

/// The example of crates/mesh that serves axum routes with the library: this package declares
/// it as its example `mesh-axum-service` (crates/mtls/Cargo.toml), so `cargo test` builds it
/// into `<target>/<profile>/examples`, next to the `deps` directory this test binary runs from
/// (Cargo names no environment variable for examples). With `$MTLS_BIN_DIR` set, it is taken
/// from there like the programs.
pub fn mesh_example() -> PathBuf {
    const NAME: &str = "mesh-axum-service";
    if let Some(dir) = std::env::var_os(testkit::bins::BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        return Path::new(&dir).join(NAME);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary runs from <target>/<profile>/deps");
    let path = profile_dir.join("examples").join(NAME);
    assert!(
        path.is_file(),
        "{} is missing: `cargo test` builds it unless a test target is named; build it with \
         `cargo build -p mtls --example {NAME}`",
        path.display()
    );
    path
}

/// A program by its name, for checks over several of them.
pub fn by_name(name: &str) -> PathBuf {
    match name {
        "mtls-ca" => ca(),
        "mtls-server" => server(),
        "mtls-client" => client(),
        "mtls-inspect" => inspect(),
        "mtls-bench" => bench(),
        "mtls-proxy" => proxy(),
        "mtls-agent" => agent(),
        other => panic!("{other} is not an mtls-mesh program"),
    }
}

/// Fails with the fix when one of the programs is missing: Cargo builds them for this test,
/// so only a `$MTLS_BIN_DIR` without them gets here.
pub fn require(names: &[&str]) {
    for name in names {
        let path = by_name(name);
        assert!(
            path.is_file(),
            "{} is missing: build it (`cargo build -p mtls`) or point {} at a directory that \
             holds every mtls-mesh program",
            path.display(),
            testkit::bins::BIN_DIR_ENV
        );
    }
}

/// The directory holding the programs, for scripts that take one (`scripts/demo.sh --bin-dir`).
pub fn bin_dir() -> PathBuf {
    ca().parent()
        .expect("a program path has a directory")
        .to_path_buf()
}

/// `testkit::start_server` with this build's mtls-server.
pub fn start_server(name: &str, args: &[String]) -> ServerProc {
    testkit::start_server(&server(), name, args)
}

/// `testkit::start_server_with_log` with this build's mtls-server.
pub fn start_server_with_log(name: &str, args: &[String], rust_log: &str) -> ServerProc {
    testkit::start_server_with_log(&server(), name, args, rust_log)
}

/// `testkit::start_server_with_open_files` with this build's mtls-server.
pub fn start_server_with_open_files(name: &str, args: &[String], open_files: u64) -> ServerProc {
    testkit::start_server_with_open_files(&server(), name, args, open_files)
}

/// `testkit::start_ca` with this build's mtls-ca.
pub fn start_ca(name: &str, data_dir: &Path, listen: &str, args: &[&str]) -> CaProc {
    testkit::start_ca(&ca(), name, data_dir, listen, args)
}
