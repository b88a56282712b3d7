//! `mtls-ca backup`: a consistent online copy of a SQLite store while a CA writes to it, with
//! SQLite's backup API (`rusqlite::backup`), checked before it is given its name.

use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::OpenFlags;

use super::{AuditCheck, Result, SqliteStore, Store, StoreError};

/// How long the copy waits for a writer to release the database before giving up.
const BUSY_LIMIT: Duration = Duration::from_secs(30);

/// Copies the SQLite store at `src` to the new file `dst` (never overwritten; mode 0600) and
/// verifies the copy's audit chain against its tables. The copy is one snapshot: every page in
/// one step under one read lock, so a CA committing meanwhile is either wholly in it or not at
/// all. It is written as `dst.partial` and renamed once verified. Returns the copy's verdict.
pub fn backup_sqlite(src: &Path, dst: &Path) -> Result<AuditCheck> {
    let setup = |what: String| StoreError::Setup(what);
    if dst.symlink_metadata().is_ok() {
        return Err(setup(format!(
            "{} exists: backup never overwrites a file; name a new one",
            dst.display()
        )));
    }
    let partial = {
        let mut name = dst.as_os_str().to_owned();
        name.push(".partial");
        PathBuf::from(name)
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => setup(format!(
                "{} exists (another backup running, or one that was interrupted): remove it \
                 and try again",
                partial.display()
            )),
            _ => setup(format!("cannot create {}: {e}", partial.display())),
        })?;
    let copied = copy_pages(src, &partial).and_then(|()| {
        let copy = SqliteStore::open(&partial)?;
        copy.verify_audit()
    });
    match copied {
        Ok(check @ AuditCheck::Intact { .. }) => {
            std::fs::rename(&partial, dst).map_err(|e| {
                setup(format!(
                    "renaming {} to {}: {e}",
                    partial.display(),
                    dst.display()
                ))
            })?;
            Ok(check)
        }
        Ok(other) => {
            let _ = std::fs::remove_file(&partial);
            Err(setup(format!(
                "the copy of {} does not verify ({other:?}): the source is damaged; run \
                 `mtls-ca audit verify` on it",
                src.display()
            )))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn copy_pages(src: &Path, dst: &Path) -> Result<()> {
    let db = |context: &'static str| move |source| StoreError::Db { context, source };
    let source = rusqlite::Connection::open_with_flags(
        src,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| {
        StoreError::Setup(format!(
            "cannot open the SQLite store {} to back it up: {e}",
            src.display()
        ))
    })?;
    // A writer holding a lock (the CA's transactions are short) is waited for by SQLite's busy
    // handler, up to the limit; in WAL mode a reader is rarely kept waiting at all.
    source
        .busy_timeout(BUSY_LIMIT)
        .map_err(db("setting the busy timeout"))?;
    let mut target = rusqlite::Connection::open(dst).map_err(db("opening the backup file"))?;
    let backup = Backup::new(&source, &mut target).map_err(db("starting the backup"))?;
    loop {
        // -1: every page in one step, under one read lock: a consistent snapshot.
        match backup.step(-1).map_err(db("copying the database pages"))? {
            StepResult::Done => return Ok(()),
            StepResult::More => continue,
            _ => {
                return Err(StoreError::Setup(format!(
                    "{} stayed locked by a writer for {} s; try again",
                    src.display(),
                    BUSY_LIMIT.as_secs()
                )))
            }
        }
    }
}
