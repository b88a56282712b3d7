//! Crash-safe file writes: a reader sees either the old file or the complete new one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{PkiError, Result};

/// Mode for private keys: readable by the owner only.
pub const KEY_MODE: u32 = 0o600;
/// Mode for certificates and other public material.
pub const PUBLIC_MODE: u32 = 0o644;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, created with
/// `mode` (so a key is never readable by others, not even briefly), fsynced, renamed over the
/// target, then the directory fsynced so the rename survives a power cut.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| {
            PkiError::io(
                format!("{} has no file name", path.display()),
                std::io::ErrorKind::InvalidInput.into(),
            )
        })?
        .to_string_lossy();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| PkiError::io(format!("creating {}", tmp.display()), e))?;
        file.write_all(bytes)
            .map_err(|e| PkiError::io(format!("writing {}", tmp.display()), e))?;
        file.sync_all()
            .map_err(|e| PkiError::io(format!("syncing {}", tmp.display()), e))?;
        fs::rename(&tmp, path).map_err(|e| {
            PkiError::io(
                format!("renaming {} to {}", tmp.display(), path.display()),
                e,
            )
        })?;
        // The directory entry must reach the disk too, or a crash can lose the rename.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| PkiError::io(format!("syncing directory {}", dir.display()), e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| PkiError::io(format!("reading {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_with_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        write_atomic(&path, b"one", KEY_MODE).unwrap();
        write_atomic(&path, b"two", KEY_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file may be left behind");
    }

    #[test]
    fn missing_directory_is_a_clear_error() {
        let err = write_atomic(Path::new("/nonexistent-dir/x/k.pem"), b"x", KEY_MODE).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x"), "{err}");
    }
}
