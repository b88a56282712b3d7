//! Where the programs under test are. Only the tests of the package that builds them
//! (crates/mtls) know: Cargo gives them `CARGO_BIN_EXE_<name>` (read with `env!`), and they
//! pass that path to `bin_path`. `MTLS_BIN_DIR` points every program at a directory of
//! prebuilt binaries instead (a release build, binaries built elsewhere). Nothing here guesses
//! where a target directory is.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The environment variable naming a directory of prebuilt mtls-mesh binaries.
pub const BIN_DIR_ENV: &str = "MTLS_BIN_DIR";

/// The program to run for `built`, the path Cargo built it at (`env!("CARGO_BIN_EXE_mtls-ca")`):
/// the binary of the same file name in `$MTLS_BIN_DIR` when that is set, else `built` itself.
pub fn bin_path(built: &str) -> PathBuf {
    resolve(Path::new(built), std::env::var_os(BIN_DIR_ENV).as_deref())
}

fn resolve(built: &Path, bin_dir: Option<&OsStr>) -> PathBuf {
    match (bin_dir, built.file_name()) {
        (Some(dir), Some(file)) if !dir.is_empty() => Path::new(dir).join(file),
        _ => built.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_path_unless_a_bin_dir_is_given() {
        let built = Path::new("/work/target/debug/mtls-ca");
        assert_eq!(resolve(built, None), built);
        assert_eq!(resolve(built, Some(OsStr::new(""))), built);
        assert_eq!(
            resolve(built, Some(OsStr::new("/opt/mtls/bin"))),
            Path::new("/opt/mtls/bin/mtls-ca")
        );
    }
}
