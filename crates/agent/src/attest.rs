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
//!
//! What is cached, because every fetch is attested (docs/agent.md, "Attestation"): the SHA-256
//! of an executable by file identity, and user and group names for [`NAME_TTL`] (a renamed
//! user or group is seen within that time). The `/proc` reads are never cached: they are what
//! ties the call to the process making it.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use pki::clock::Clock;
use time::{Duration, OffsetDateTime};

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

/// A file's (device, inode).
type FileIdentity = (u64, u64);

/// Entries kept before the cache is cleared (executables on one host: a few hundred at most).
const HASH_CACHE_MAX: usize = 4096;

impl HashCache {
    /// The SHA-256 of the file `exe` opens, and that file's (device, inode); Ok(None) when it
    /// is not cached and `work` does not allow hashing it.
    fn get_or_hash(
        &self,
        exe: &Path,
        work: Work,
    ) -> Result<Option<(String, FileIdentity)>, AttestError> {
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
        let identity = (key.dev, key.ino);
        if let Some(h) = lock(&self.by_file).get(&key) {
            return Ok(Some((h.clone(), identity)));
        }
        if work == Work::CachedOnly {
            return Ok(None);
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
        let mut cache = lock(&self.by_file);
        if cache.len() >= HASH_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, hash.clone());
        Ok(Some((hash, identity)))
    }
}

/// How long a user or group name is reused before it is looked up again.
pub const NAME_TTL: Duration = Duration::seconds(5);

/// User and group names by id, each kept for [`NAME_TTL`]: a lookup goes through NSS (reading
/// `/etc/passwd` and `/etc/group`, or a directory service), which cost more than the rest of
/// an attestation together. A failed lookup is not kept.
pub struct NameCache {
    clock: Arc<dyn Clock>,
    users: Mutex<HashMap<u32, (Option<String>, OffsetDateTime)>>,
    groups: Mutex<HashMap<u32, (Option<String>, OffsetDateTime)>>,
}

impl NameCache {
    /// An empty cache whose entries age by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> NameCache {
        NameCache {
            clock,
            users: Mutex::default(),
            groups: Mutex::default(),
        }
    }

    /// The name of `uid`; None when it is not cached and `work` does not allow a lookup.
    fn user(&self, uid: u32, work: Work) -> Option<Option<String>> {
        self.cached(&self.users, uid, work, || {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .map(|u| u.map(|u| u.name))
                .map_err(|e| {
                    tracing::warn!(uid, error = %e, "looking up the user name of a workload's uid")
                })
        })
    }

    /// The name of `gid`; None when it is not cached and `work` does not allow a lookup.
    fn group(&self, gid: u32, work: Work) -> Option<Option<String>> {
        self.cached(&self.groups, gid, work, || {
            nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                .map(|g| g.map(|g| g.name))
                .map_err(|e| {
                    tracing::warn!(gid, error = %e, "looking up the group name of a workload's gid")
                })
        })
    }

    fn cached(
        &self,
        map: &Mutex<HashMap<u32, (Option<String>, OffsetDateTime)>>,
        id: u32,
        work: Work,
        look_up: impl FnOnce() -> Result<Option<String>, ()>,
    ) -> Option<Option<String>> {
        let now = self.clock.now();
        let fresh = |at: OffsetDateTime| {
            let age = now - at;
            !age.is_negative() && age < NAME_TTL
        };
        if let Some((name, at)) = lock(map).get(&id) {
            if fresh(*at) {
                return Some(name.clone());
            }
        }
        if work == Work::CachedOnly {
            return None;
        }
        // Looked up without the lock held: NSS may be slow, and other ids need not wait.
        let Ok(name) = look_up() else {
            return Some(None);
        };
        let mut map = lock(map);
        if map.len() >= HASH_CACHE_MAX {
            map.retain(|_, (_, at)| fresh(*at));
        }
        map.insert(id, (name.clone(), now));
        Some(name)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves a consistent map (inserts are single calls).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How much work an attestation may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    /// Everything: hash an executable, look names up (blocking).
    Blocking,
    /// Only the `/proc` reads (in-memory files): an uncached hash or name ends it.
    CachedOnly,
}

/// Attests the peer `cred` using the proc file system at `proc_root` (`/proc`; tests point it
/// elsewhere). Blocking (file reads, NSS): call it from `spawn_blocking`.
pub fn attest(
    cred: PeerCred,
    proc_root: &Path,
    hashes: &HashCache,
    names: &NameCache,
) -> Result<Observed, AttestError> {
    // With Work::Blocking every step runs, so None is never returned.
    attest_with(cred, proc_root, hashes, names, Work::Blocking, &mut || {})?.ok_or(
        AttestError::Incomplete {
            pid: cred.pid.unwrap_or_default(),
        },
    )
}

/// [`attest`] when the executable's hash and the names are cached: only the `/proc` reads,
/// which are in-memory files, so the caller may run it on an async thread and save two thread
/// hand-offs per call. Ok(None) when something is not cached: call [`attest`] then.
pub fn attest_cached(
    cred: PeerCred,
    proc_root: &Path,
    hashes: &HashCache,
    names: &NameCache,
) -> Result<Option<Observed>, AttestError> {
    attest_with(cred, proc_root, hashes, names, Work::CachedOnly, &mut || {})
}

/// [`attest`] with `work`, and `meanwhile` run after the first start-time read and the
/// executable's: the tests let the pid change hands there.
fn attest_with(
    cred: PeerCred,
    proc_root: &Path,
    hashes: &HashCache,
    names: &NameCache,
    work: Work,
    meanwhile: &mut dyn FnMut(),
) -> Result<Option<Observed>, AttestError> {
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
    let Some((sha256, running)) = hashes.get_or_hash(&exe_link, work)? else {
        return Ok(None);
    };
    let path = exe_path(&target, running);
    meanwhile();
    let (uid, gid) = effective_ids(&dir)?;
    // The pid-reuse guard (module documentation): everything read above belongs to the process
    // that had this start time before the first read and still has it after the last one.
    if start_time(&dir)? != started {
        return Err(AttestError::PidReused { pid });
    }
    if (uid, gid) != (cred.uid, cred.gid) {
        return Err(AttestError::CredentialsChanged {
            pid,
            connected: (cred.uid, cred.gid),
            now: (uid, gid),
        });
    }
    let (Some(user), Some(group)) = (names.user(uid, work), names.group(gid, work)) else {
        return Ok(None);
    };
    Ok(Some(Observed {
        pid,
        uid,
        gid,
        user,
        group,
        path,
        sha256,
    }))
}

/// The executable's path, unless it is not UTF-8 or the file it named is gone (the kernel
/// appends " (deleted)") or was replaced (the path's inode is not `running`'s, the file the
/// process runs).
fn exe_path(target: &Path, running: FileIdentity) -> Option<String> {
    let s = target.to_str()?;
    if s.ends_with(" (deleted)") {
        return None;
    }
    let named = std::fs::metadata(target).ok()?;
    if running != (named.dev(), named.ino()) {
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

    fn names() -> NameCache {
        NameCache::new(Arc::new(pki::clock::SystemClock))
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
        let seen = attest(me(), &proc_root(), &cache, &names()).unwrap();
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
        let err = attest(cred, &proc_root(), &cache, &names()).unwrap_err();
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
        let seen = attest(cred, root.path(), &cache, &names()).unwrap();
        assert_eq!(seen.sha256, pki::sha256_hex(b"binary"));
        assert_eq!(seen.path.as_deref(), exe.to_str());

        // The pid changes hands while the executable is read: new start time.
        let err = attest_with(
            cred,
            root.path(),
            &cache,
            &names(),
            Work::Blocking,
            &mut || {
                std::fs::write(dir.join("stat"), stat(101)).unwrap();
            },
        )
        .unwrap_err();
        assert!(matches!(err, AttestError::PidReused { pid: 77 }), "{err}");

        // Same start time but the process now runs as another user than the connection's.
        std::fs::write(dir.join("stat"), stat(100)).unwrap();
        let err = attest_with(
            cred,
            root.path(),
            &cache,
            &names(),
            Work::Blocking,
            &mut || {
                std::fs::write(dir.join("status"), status(0)).unwrap();
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, AttestError::CredentialsChanged { .. }),
            "{err}"
        );
    }

    /// A name is reused within NAME_TTL, looked up again after it, and a failed lookup is
    /// tried again at once.
    #[test]
    fn names_are_kept_for_their_ttl() {
        let clock = Arc::new(pki::clock::ManualClock::new(OffsetDateTime::UNIX_EPOCH));
        let names = NameCache::new(clock.clone());
        let lookups = std::cell::Cell::new(0);
        let look = |answer: Result<Option<String>, ()>| {
            lookups.set(lookups.get() + 1);
            answer
        };
        let get = |answer: Result<Option<String>, ()>| {
            names.cached(&names.users, 1000, Work::Blocking, || look(answer))
        };
        assert_eq!(get(Err(())), Some(None));
        assert_eq!(get(Ok(Some("alice".into()))), Some(Some("alice".into())));
        assert_eq!(lookups.get(), 2, "a failed lookup is not kept");
        clock.advance(NAME_TTL - Duration::seconds(1));
        assert_eq!(get(Ok(Some("bob".into()))), Some(Some("alice".into())));
        assert_eq!(lookups.get(), 2);
        clock.advance(Duration::seconds(1));
        assert_eq!(get(Ok(Some("bob".into()))), Some(Some("bob".into())));
        assert_eq!(lookups.get(), 3);
        // A clock that went backwards does not keep an entry alive.
        clock.set(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(get(Ok(None)), Some(None));
        assert_eq!(lookups.get(), 4);
    }

    #[test]
    fn this_process_user_name_is_the_one_nss_gives() {
        let names = names();
        let expected = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(me().uid))
            .unwrap()
            .map(|u| u.name);
        assert_eq!(
            names.user(me().uid, Work::CachedOnly),
            None,
            "nothing cached yet"
        );
        assert_eq!(names.user(me().uid, Work::Blocking), Some(expected.clone()));
        assert_eq!(names.user(me().uid, Work::CachedOnly), Some(expected));
    }

    /// The async fast path answers only from the caches, and then exactly as `attest` does.
    #[test]
    fn the_cached_path_needs_a_full_attestation_first() {
        let (hashes, names) = (HashCache::default(), names());
        assert_eq!(
            attest_cached(me(), &proc_root(), &hashes, &names).unwrap(),
            None
        );
        let full = attest(me(), &proc_root(), &hashes, &names).unwrap();
        let fast = attest_cached(me(), &proc_root(), &hashes, &names).unwrap();
        assert_eq!(fast, Some(full));
        // The /proc checks are not skipped on the fast path.
        let mut cred = me();
        cred.gid += 1;
        let err = attest_cached(cred, &proc_root(), &hashes, &names).unwrap_err();
        assert!(
            matches!(err, AttestError::CredentialsChanged { .. }),
            "{err}"
        );
    }
}
