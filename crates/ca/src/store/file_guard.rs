//! Notices when the database file the store opened is no longer the file at its path.
//!
//! SQLite keeps writing through its open file descriptor after `rm ca.db*`: the CA would go on
//! issuing into an unlinked file that vanishes at exit, taking every record (and revocation)
//! with it. The guard remembers the identity (device and inode) of `ca.db` and of its WAL file
//! at open and compares them with what the paths name now, before every write.

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Device and inode: what makes a path name the same file over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

/// The file name alone: reasons reach unauthenticated `/healthz` callers, the log has the path.
fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "the database".into())
}

fn file_id(path: &Path) -> std::io::Result<FileId> {
    let meta = std::fs::metadata(path)?;
    Ok(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// The WAL file SQLite keeps next to the database (`ca.db-wal`).
pub fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

pub struct FileGuard {
    path: PathBuf,
    db: FileId,
    /// None when no WAL file existed at open (SQLite creates it on first use in WAL mode;
    /// while any connection is open it is never deleted).
    wal: Option<FileId>,
    reported: AtomicBool,
}

impl FileGuard {
    /// Records what `path` (and its WAL) name now; call right after opening the connection.
    pub fn capture(path: &Path) -> std::io::Result<FileGuard> {
        Ok(FileGuard {
            path: path.to_path_buf(),
            db: file_id(path)?,
            wal: file_id(&wal_path(path)).ok(),
            reported: AtomicBool::new(false),
        })
    }

    /// Ok while the paths still name the files opened; otherwise what happened, logged loudly
    /// the first time.
    pub fn check(&self) -> Result<(), String> {
        let problem = self
            .problem_with(&self.path, Some(self.db), "database")
            .or_else(|| {
                self.wal
                    .and_then(|wal| self.problem_with(&wal_path(&self.path), Some(wal), "WAL"))
            });
        match problem {
            None => Ok(()),
            Some(reason) => {
                if !self.reported.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        event = "store_unavailable",
                        path = %self.path.display(),
                        reason = %reason,
                        "the CA database is gone: refusing every write until the CA is \
                         restarted on a restored ca.db"
                    );
                }
                Err(reason)
            }
        }
    }

    /// Ok when the database file could be opened for writing again after a restart: the
    /// running connection keeps its descriptor, so a `chmod a-w` shows nowhere else.
    pub fn check_writable(&self) -> Result<(), String> {
        let meta = std::fs::metadata(&self.path)
            .map_err(|e| format!("cannot read the metadata of {}: {e}", name(&self.path)))?;
        let mode = meta.permissions().mode();
        if mode & 0o200 == 0 {
            return Err(format!(
                "the CA database {} is read-only (mode {:o}); the CA could not open it after a \
                 restart: restore write permission (chmod 600)",
                name(&self.path),
                mode & 0o7777
            ));
        }
        Ok(())
    }

    fn problem_with(&self, path: &Path, expected: Option<FileId>, what: &str) -> Option<String> {
        match (file_id(path), expected) {
            (Ok(now), Some(opened)) if now == opened => None,
            (Ok(_), _) => Some(format!(
                "the {what} file {} was replaced by another file after the CA opened it; \
                 writes would go to a file no process will see again. Stop the CA, restore \
                 ca.db from a backup and start it again",
                name(path)
            )),
            (Err(e), _) if e.kind() == ErrorKind::NotFound => Some(format!(
                "the {what} file {} was removed while the CA was running; writes would go to \
                 a deleted file and be lost. Stop the CA, restore ca.db from a backup and \
                 start it again",
                name(path)
            )),
            (Err(e), _) => Some(format!("cannot check the {what} file {}: {e}", name(path))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn removed_and_replaced_files_are_noticed() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("ca.db");
        std::fs::write(&db, b"x").unwrap();
        let guard = FileGuard::capture(&db).unwrap();
        assert!(guard.check().is_ok());

        // Rewriting in place keeps the identity.
        std::fs::write(&db, b"y").unwrap();
        assert!(guard.check().is_ok());

        // A rename over the path replaces it.
        let other = tmp.path().join("other");
        std::fs::write(&other, b"z").unwrap();
        std::fs::rename(&other, &db).unwrap();
        assert!(guard.check().unwrap_err().contains("was replaced"));

        std::fs::remove_file(&db).unwrap();
        assert!(guard.check().unwrap_err().contains("was removed"));
    }

    #[test]
    fn a_removed_wal_is_noticed() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("ca.db");
        std::fs::write(&db, b"x").unwrap();
        std::fs::write(wal_path(&db), b"w").unwrap();
        let guard = FileGuard::capture(&db).unwrap();
        assert!(guard.check().is_ok());
        std::fs::remove_file(wal_path(&db)).unwrap();
        assert!(guard.check().unwrap_err().contains("WAL file"));
    }

    #[test]
    fn a_read_only_database_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("ca.db");
        std::fs::write(&db, b"x").unwrap();
        let guard = FileGuard::capture(&db).unwrap();
        assert!(guard.check_writable().is_ok());
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
        assert!(guard.check_writable().unwrap_err().contains("read-only"));
    }
}
