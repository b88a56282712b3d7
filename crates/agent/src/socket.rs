//! The Workload API socket: its address (`/path` or the `SPIFFE_ENDPOINT_SOCKET` form
//! `unix:///path`), the checks on its directory, and binding it with the documented mode.
//!
//! The socket is mode 0666 by default: any local process may connect, because attestation (the
//! caller's uid, gid and executable, docs/agent.md) decides what it gets, not the file mode. A
//! directory that anyone may write to without the sticky bit is refused: there another user
//! could replace the socket with their own and hand workloads a false identity.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use tokio::net::UnixListener;

use crate::error::AgentError;

/// Socket file mode when none is given: every local user may connect (attestation decides).
pub const DEFAULT_SOCKET_MODE: u32 = 0o666;

pub use workload::parse_socket_address;

/// Refuses a socket directory that anyone may write to without the sticky bit, or that does
/// not exist.
pub fn check_socket_dir(socket: &Path) -> Result<(), AgentError> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("/"));
    let meta = std::fs::metadata(dir).map_err(|e| AgentError::Socket {
        path: socket.to_path_buf(),
        reason: format!("its directory {}: {e}", dir.display()),
    })?;
    if !meta.is_dir() {
        return Err(AgentError::Socket {
            path: socket.to_path_buf(),
            reason: format!("{} is not a directory", dir.display()),
        });
    }
    let mode = meta.permissions().mode();
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err(AgentError::Socket {
            path: socket.to_path_buf(),
            reason: format!(
                "its directory {} is world-writable without the sticky bit (mode {:o}): another \
                 user could replace the socket; use a directory only the agent's user may write \
                 to (e.g. /run/mtls-mesh, mode 0755) or set the sticky bit",
                dir.display(),
                mode & 0o7777
            ),
        });
    }
    Ok(())
}

/// Binds the socket: removes a stale socket file left by an earlier run (never any other kind
/// of file), binds, and sets `mode`.
pub fn bind(path: &Path, mode: u32) -> Result<UnixListener, AgentError> {
    check_socket_dir(path)?;
    let fail = |reason: String| AgentError::Socket {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|e| fail(format!("removing the old socket: {e}")))?
        }
        Ok(_) => {
            return Err(fail(
                "a file that is not a socket is in the way; remove it or choose another path"
                    .into(),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    let listener = UnixListener::bind(path).map_err(|e| fail(format!("binding: {e}")))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| fail(format!("setting mode {mode:o}: {e}")))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_writable_directory_without_sticky_bit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_socket_dir(&sock).unwrap_err().to_string();
        assert!(
            err.contains("world-writable without the sticky bit"),
            "{err}"
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        check_socket_dir(&sock).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        check_socket_dir(&sock).unwrap();
    }

    #[tokio::test]
    async fn bind_sets_the_mode_and_refuses_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let l = bind(&sock, DEFAULT_SOCKET_MODE).unwrap();
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        drop(l);
        // A stale socket from an earlier run is replaced.
        bind(&sock, 0o600).unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = bind(&file, DEFAULT_SOCKET_MODE).unwrap_err().to_string();
        assert!(err.contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }
}
