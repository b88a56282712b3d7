//! Certificates on disk for programs that read files (`mtls-agent write`): `svid.pem` (leaf
//! then intermediates), `svid.key` (PKCS#8, mode 0600), `bundle.pem` and `crl.pem`, replaced
//! so that a reader never sees a certificate with another version's key.
//!
//! Layout of DIR:
//!
//! ```text
//! DIR/.svid-00000000000000000007/{svid.pem,svid.key,bundle.pem,crl.pem}   one version
//! DIR/current -> .svid-00000000000000000007                              the version in use
//! DIR/svid.pem -> current/svid.pem   (and svid.key, bundle.pem, crl.pem)  stable paths
//! ```
//!
//! A new version is written completely (each file synced) in a new directory, then `current`
//! is switched to it with one `rename(2)` of a symlink, which is atomic; the version before it
//! is kept (a reader that resolved `current` just before the switch still reads a complete,
//! matching set), older ones are removed. A reader that needs the certificate and the key to
//! match resolves `DIR/current` once and opens both files in the directory it names (if one is
//! missing, a newer version replaced it twice meanwhile: resolve again). A program that takes
//! two file paths (nginx, PostgreSQL) is given `DIR/svid.pem` and `DIR/svid.key` and reloaded
//! by the `--on-rotate` hook, which runs after the switch.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// One version of the files, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvidFiles {
    /// `svid.pem`: the leaf, then intermediates.
    pub svid_pem: String,
    /// `svid.key`: the private key (PKCS#8 PEM).
    pub key_pem: String,
    /// `bundle.pem`: the trusted roots.
    pub bundle_pem: String,
    /// `crl.pem`: the CRLs (empty when there is none).
    pub crl_pem: String,
}

/// The file names, in the version directories and as stable links in DIR.
pub const FILE_NAMES: [&str; 4] = ["svid.pem", "svid.key", "bundle.pem", "crl.pem"];

const VERSION_PREFIX: &str = ".svid-";
const CURRENT: &str = "current";

/// Why the files could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {reason}")]
pub struct WriteError {
    what: &'static str,
    path: PathBuf,
    reason: String,
}

fn fail<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WriteError + 'a {
    move |e| WriteError {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Writes versions into one directory.
pub struct FileWriter {
    dir: PathBuf,
    last: u64,
}

impl FileWriter {
    /// Prepares `dir` (created when missing): the stable links are made, a file that is in
    /// the way of one is refused.
    pub fn new(dir: &Path) -> Result<FileWriter, WriteError> {
        std::fs::create_dir_all(dir).map_err(fail("creating the directory", dir))?;
        let mut last = 0;
        for entry in std::fs::read_dir(dir).map_err(fail("listing", dir))? {
            let entry = entry.map_err(fail("listing", dir))?;
            if let Some(n) = version_number(&entry.file_name().to_string_lossy()) {
                last = last.max(n);
            }
        }
        for name in FILE_NAMES {
            let link = dir.join(name);
            let target = Path::new(CURRENT).join(name);
            match std::fs::symlink_metadata(&link) {
                Ok(m) if m.file_type().is_symlink() => {
                    if std::fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
                        std::fs::remove_file(&link).map_err(fail("replacing the link", &link))?;
                        std::os::unix::fs::symlink(&target, &link)
                            .map_err(fail("creating the link", &link))?;
                    }
                }
                Ok(_) => {
                    return Err(WriteError {
                        what: "a file is in the way of the link",
                        path: link,
                        reason: "remove it (DIR/svid.pem and the others are links to the \
                                 current version)"
                            .into(),
                    })
                }
                Err(_) => std::os::unix::fs::symlink(&target, &link)
                    .map_err(fail("creating the link", &link))?,
            }
        }
        Ok(FileWriter {
            dir: dir.to_path_buf(),
            last,
        })
    }

    /// Writes `files` as a new version and makes it current. Returns its directory.
    pub fn write(&mut self, files: &SvidFiles) -> Result<PathBuf, WriteError> {
        self.last += 1;
        let name = format!("{VERSION_PREFIX}{:020}", self.last);
        let version = self.dir.join(&name);
        std::fs::create_dir(&version).map_err(fail("creating the version directory", &version))?;
        std::fs::set_permissions(&version, std::fs::Permissions::from_mode(0o755))
            .map_err(fail("setting the mode of", &version))?;
        for (file, text, mode) in [
            ("svid.pem", &files.svid_pem, 0o644),
            ("svid.key", &files.key_pem, 0o600),
            ("bundle.pem", &files.bundle_pem, 0o644),
            ("crl.pem", &files.crl_pem, 0o644),
        ] {
            write_synced(&version.join(file), text.as_bytes(), mode)?;
        }
        sync_dir(&version)?;
        // The switch: a new symlink renamed over `current` (rename is atomic).
        let tmp = self.dir.join(format!(".current-{}", self.last));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&name, &tmp).map_err(fail("creating the link", &tmp))?;
        std::fs::rename(&tmp, self.dir.join(CURRENT))
            .map_err(fail("switching `current` to", &version))?;
        sync_dir(&self.dir)?;
        self.prune();
        Ok(version)
    }

    /// Removes versions older than the previous one (best effort: a failure is logged).
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if version_number(&name).is_some_and(|n| n + 1 < self.last) {
                if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                    tracing::warn!(path = %entry.path().display(), error = %e, "removing an old SVID version");
                }
            }
        }
    }
}

pub use workload::split_der_certificates;

fn version_number(name: &str) -> Option<u64> {
    name.strip_prefix(VERSION_PREFIX)?.parse().ok()
}

fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(fail("creating", path))?;
    // The umask may have cleared bits of `mode`; the key must be exactly 0600.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(fail("setting the mode of", path))?;
    f.write_all(bytes).map_err(fail("writing", path))?;
    f.sync_all().map_err(fail("syncing", path))
}

fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail("syncing", dir))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    fn version(n: u64) -> SvidFiles {
        // Large enough that a torn read would show.
        let body = format!("{n:08}").repeat(4096);
        SvidFiles {
            svid_pem: format!("CERT {n}\n{body}\nEND {n}\n"),
            key_pem: format!("KEY {n}\n{body}\nEND {n}\n"),
            bundle_pem: format!("BUNDLE {n}\n"),
            crl_pem: String::new(),
        }
    }

    fn number_of(text: &str, tag: &str) -> u64 {
        let first = text.lines().next().unwrap();
        let n: u64 = first.strip_prefix(tag).unwrap().trim().parse().unwrap();
        assert!(text.ends_with(&format!("END {n}\n")), "torn file");
        n
    }

    #[test]
    fn modes_links_and_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = FileWriter::new(dir.path()).unwrap();
        for n in 1..=4 {
            w.write(&version(n)).unwrap();
        }
        let key = dir.path().join("svid.key");
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("svid.pem"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o644
        );
        assert_eq!(number_of(&std::fs::read_to_string(&key).unwrap(), "KEY"), 4);
        let versions: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| version_number(&e.unwrap().file_name().to_string_lossy()))
            .collect();
        assert_eq!(
            versions.len(),
            2,
            "the current and the previous version: {versions:?}"
        );
        // A restarted writer continues the numbering.
        let mut w = FileWriter::new(dir.path()).unwrap();
        let v = w.write(&version(5)).unwrap();
        assert!(v.ends_with(".svid-00000000000000000005"), "{}", v.display());
    }

    #[test]
    fn a_regular_file_in_the_way_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("svid.key"), b"precious").unwrap();
        let err = FileWriter::new(dir.path()).err().unwrap().to_string();
        assert!(err.contains("in the way"), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join("svid.key")).unwrap(),
            b"precious"
        );
    }

    /// A reader in a tight loop, resolving `current` once per read as documented, never sees
    /// a torn file or a certificate with another version's key while versions are replaced.
    #[test]
    fn a_tight_loop_reader_never_sees_a_mismatched_pair() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = FileWriter::new(dir.path()).unwrap();
        w.write(&version(1)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let dir = dir.path().to_path_buf();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut reads, mut retries, mut highest) = (0u64, 0u64, 0u64);
                while !stop.load(Ordering::SeqCst) {
                    let current = dir.join(std::fs::read_link(dir.join("current")).unwrap());
                    let (Ok(cert), Ok(key)) = (
                        std::fs::read_to_string(current.join("svid.pem")),
                        std::fs::read_to_string(current.join("svid.key")),
                    ) else {
                        retries += 1;
                        continue;
                    };
                    let n = number_of(&cert, "CERT");
                    assert_eq!(n, number_of(&key, "KEY"), "mismatched pair");
                    highest = highest.max(n);
                    reads += 1;
                }
                (reads, retries, highest)
            })
        };
        for n in 2..=120 {
            w.write(&version(n)).unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        let (reads, _retries, highest) = reader.join().unwrap();
        assert!(
            reads > 0 && highest > 1,
            "the reader read {reads} pairs up to {highest}"
        );
    }
}
