//! Workload attestation: what the agent observes about the process at the other end of a
//! Workload API connection, from the kernel's peer credentials of the Unix socket (pid, uid,
//! gid, fixed at connect time) and `/proc/<pid>`: the executable's path and SHA-256, and the
//! names of the uid and gid (getpwuid_r/getgrgid_r through the `nix` crate, so NSS users count).
//!
//! A pid can be reused: the workload may exit and another process take its pid between the
//! connect and our reads of `/proc`. The guard: the process start time (`/proc/<pid>/stat`
//! field 22) is read before and after the executable, and must not change; and the process's
//! effective uid and gid (`/proc/<pid>/status`), read after the executable, must still be the
//! connection's. A process that does not pass gets no selectors at all (PERMISSION_DENIED).

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aws_lc_rs::digest;

use crate::error::AttestError;

/// The kernel's credentials of a connection's peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id (None when the kernel gave none).
    pub pid: Option<i32>,
    /// Effective user id at connect time.
    pub uid: u32,
    /// Effective group id at connect time.
    pub gid: u32,
}

/// What attestation saw about one caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The process id.
    pub pid: i32,
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// The uid's user name, when it has one.
    pub user: Option<String>,
    /// The gid's group name, when it has one.
    pub group: Option<String>,
    /// The executable's path; None when it is not UTF-8 or the file was deleted or replaced
    /// since the process started (the path then names another file).
    pub path: Option<String>,
    /// Lowercase hex SHA-256 of the executable the process runs.
    pub sha256: String,
}

/// Cache of executable hashes by file identity, so a busy workload's binary is not re-read on
/// every call. The key changes when the file does (inode, size, mtime and ctime).
#[derive(Default)]
pub struct HashCache {
    by_file: Mutex<HashMap<FileKey, String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

/// Entries kept before the cache is cleared (executables on one host: a few hundred at most).
const HASH_CACHE_MAX: usize = 4096;

impl HashCache {
    fn get_or_hash(&self, exe: &Path) -> Result<String, AttestError> {
        let mut file = std::fs::File::open(exe).map_err(|e| AttestError::Proc {
            what: "opening the executable",
            path: exe.to_path_buf(),
            reason: e.to_string(),
        })?;
        let meta = file.metadata().map_err(|e| AttestError::Proc {
            what: "reading the executable's metadata",
            path: exe.to_path_buf(),
            reason: e.to_string(),
        })?;
        let key = FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        };
        if let Some(h) = self.lock().get(&key) {
            return Ok(h.clone());
        }
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(|e| AttestError::Proc {
                what: "reading the executable",
                path: exe.to_path_buf(),
                reason: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        let hash = hex::encode(ctx.finish().as_ref());
        let mut cache = self.lock();
        if cache.len() >= HASH_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, hash.clone());
        Ok(hash)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileKey, String>> {
        // A panic while holding the lock leaves a consistent map (inserts are single calls).
        self.by_file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Attests the peer `cred` using the proc file system at `proc_root` (`/proc`; tests point it
/// elsewhere). Blocking (file reads, NSS): call it from `spawn_blocking`.
pub fn attest(
    cred: PeerCred,
    proc_root: &Path,
    cache: &HashCache,
) -> Result<Observed, AttestError> {
    attest_with(cred, proc_root, cache, &mut || {})
}

/// [`attest`] with `meanwhile` run after the first start-time read and the executable's: the
/// tests let the pid change hands there.
fn attest_with(
    cred: PeerCred,
    proc_root: &Path,
    cache: &HashCache,
    meanwhile: &mut dyn FnMut(),
) -> Result<Observed, AttestError> {
    let pid = cred.pid.filter(|p| *p > 0).ok_or(AttestError::NoPid)?;
    let dir = proc_root.join(pid.to_string());
    let started = start_time(&dir)?;
    let exe_link = dir.join("exe");
    let target = std::fs::read_link(&exe_link).map_err(|e| AttestError::Proc {
        what: "reading the executable's path",
        path: exe_link.clone(),
        reason: e.to_string(),
    })?;
    // Hash through /proc/<pid>/exe: it opens the file the process runs even when the path now
    // names another file.
    let sha256 = cache.get_or_hash(&exe_link)?;
    let path = exe_path(&target, &exe_link);
    meanwhile();
    // The pid-reuse guard (module documentation).
    let started_after = start_time(&dir)?;
    if started_after != started {
        return Err(AttestError::PidReused { pid });
    }
    let (uid, gid) = effective_ids(&dir)?;
    if (uid, gid) != (cred.uid, cred.gid) {
        return Err(AttestError::CredentialsChanged {
            pid,
            connected: (cred.uid, cred.gid),
            now: (uid, gid),
        });
    }
    if start_time(&dir)? != started {
        return Err(AttestError::PidReused { pid });
    }
    Ok(Observed {
        pid,
        uid,
        gid,
        user: user_name(uid),
        group: group_name(gid),
        path,
        sha256,
    })
}

/// The executable's path, unless it is not UTF-8 or the file it named is gone (the kernel
/// appends " (deleted)") or was replaced (the path's inode is not the running one).
fn exe_path(target: &Path, exe_link: &Path) -> Option<String> {
    let s = target.to_str()?;
    if s.ends_with(" (deleted)") {
        return None;
    }
    let running = std::fs::metadata(exe_link).ok()?;
    let named = std::fs::metadata(target).ok()?;
    if (running.dev(), running.ino()) != (named.dev(), named.ino()) {
        return None;
    }
    Some(s.to_string())
}

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks since boot). The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after the last ')'.
fn start_time(dir: &Path) -> Result<u64, AttestError> {
    let path = dir.join("stat");
    let text = std::fs::read_to_string(&path).map_err(|e| AttestError::Proc {
        what: "reading the process status",
        path: path.clone(),
        reason: e.to_string(),
    })?;
    parse_start_time(&text).ok_or(AttestError::Proc {
        what: "parsing the process start time",
        path,
        reason: "field 22 missing or not a number".into(),
    })
}

fn parse_start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields 3 onwards; field 22 is the 20th of them.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The effective uid and gid from `/proc/<pid>/status` (`Uid:` real effective saved fs).
fn effective_ids(dir: &Path) -> Result<(u32, u32), AttestError> {
    let path = dir.join("status");
    let text = std::fs::read_to_string(&path).map_err(|e| AttestError::Proc {
        what: "reading the process credentials",
        path: path.clone(),
        reason: e.to_string(),
    })?;
    parse_effective_ids(&text).ok_or(AttestError::Proc {
        what: "parsing the process credentials",
        path,
        reason: "no Uid:/Gid: lines".into(),
    })
}

fn parse_effective_ids(status: &str) -> Option<(u32, u32)> {
    let field = |name: &str| -> Option<u32> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("Uid:")?, field("Gid:")?))
}

fn user_name(uid: u32) -> Option<String> {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(user) => user.map(|u| u.name),
        Err(e) => {
            tracing::warn!(uid, error = %e, "looking up the user name of a workload's uid");
            None
        }
    }
}

fn group_name(gid: u32) -> Option<String> {
    match nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)) {
        Ok(group) => group.map(|g| g.name),
        Err(e) => {
            tracing::warn!(gid, error = %e, "looking up the group name of a workload's gid");
            None
        }
    }
}

/// The default proc file system.
pub fn proc_root() -> PathBuf {
    PathBuf::from("/proc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_counted_after_the_last_parenthesis() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 50";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("42 (x) S 1"), None);
    }

    #[test]
    fn effective_ids_are_the_second_column() {
        let status = "Name:\tx\nUid:\t0\t1000\t1000\t1000\nGid:\t5\t100\t100\t100\n";
        assert_eq!(parse_effective_ids(status), Some((1000, 100)));
    }

    fn me() -> PeerCred {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let (uid, gid) = parse_effective_ids(&status).unwrap();
        PeerCred {
            pid: Some(std::process::id() as i32),
            uid,
            gid,
        }
    }

    #[test]
    fn attests_this_process() {
        let cache = HashCache::default();
        let seen = attest(me(), &proc_root(), &cache).unwrap();
        let exe = std::env::current_exe().unwrap();
        assert_eq!(seen.path.as_deref(), exe.to_str());
        let bytes = std::fs::read(&exe).unwrap();
        assert_eq!(seen.sha256, pki::sha256_hex(&bytes));
        assert_eq!(seen.uid, me().uid);
    }

    #[test]
    fn credentials_that_differ_from_the_process_are_refused() {
        let cache = HashCache::default();
        let mut cred = me();
        cred.uid += 1;
        let err = attest(cred, &proc_root(), &cache).unwrap_err();
        assert!(
            matches!(err, AttestError::CredentialsChanged { .. }),
            "{err}"
        );
    }

    /// A fake proc tree whose process is replaced (new start time, another uid) while the
    /// executable is read stands for a pid taken over by another process: refused.
    #[test]
    fn a_pid_reused_during_attestation_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("77");
        std::fs::create_dir(&dir).unwrap();
        let stat =
            |start: u64| format!("77 (w) S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0");
        let status = |uid: u32| format!("Uid:\t0\t{uid}\t{uid}\t{uid}\nGid:\t0\t8\t8\t8\n");
        std::fs::write(dir.join("stat"), stat(100)).unwrap();
        std::fs::write(dir.join("status"), status(7)).unwrap();
        let exe = root.path().join("bin");
        std::fs::write(&exe, b"binary").unwrap();
        std::os::unix::fs::symlink(&exe, dir.join("exe")).unwrap();
        let cred = PeerCred {
            pid: Some(77),
            uid: 7,
            gid: 8,
        };
        let cache = HashCache::default();
        let seen = attest(cred, root.path(), &cache).unwrap();
        assert_eq!(seen.sha256, pki::sha256_hex(b"binary"));
        assert_eq!(seen.path.as_deref(), exe.to_str());

        // The pid changes hands while the executable is read: new start time.
        let err = attest_with(cred, root.path(), &cache, &mut || {
            std::fs::write(dir.join("stat"), stat(101)).unwrap();
        })
        .unwrap_err();
        assert!(matches!(err, AttestError::PidReused { pid: 77 }), "{err}");

        // Same start time but the process now runs as another user than the connection's.
        std::fs::write(dir.join("stat"), stat(100)).unwrap();
        let err = attest_with(cred, root.path(), &cache, &mut || {
            std::fs::write(dir.join("status"), status(0)).unwrap();
        })
        .unwrap_err();
        assert!(
            matches!(err, AttestError::CredentialsChanged { .. }),
            "{err}"
        );
    }
}
