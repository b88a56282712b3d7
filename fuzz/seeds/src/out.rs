//! One target's seed directory: emptied of earlier seeds (never of `regression-*` files), then
//! filled file by file.

use std::path::{Path, PathBuf};

pub struct Corpus {
    dir: PathBuf,
}

/// Crash inputs kept as seeds so CI replays them (docs/fuzzing.md).
pub const REGRESSION_PREFIX: &str = "regression-";

impl Corpus {
    pub fn new(fuzz_dir: &Path, target: &str) -> Corpus {
        let dir = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if !entry
                .file_name()
                .to_string_lossy()
                .starts_with(REGRESSION_PREFIX)
            {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
        Corpus { dir }
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref();
        assert!(
            bytes.len() <= 8 * 1024,
            "seed {name} is {} bytes; keep seeds small",
            bytes.len()
        );
        std::fs::write(self.dir.join(name), bytes).unwrap();
    }
}
