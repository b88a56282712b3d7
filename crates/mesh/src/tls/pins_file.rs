//! The pins file of pinned mode (`--trust-pins-file`, docs/rotation.md "Pinned keys"): one
//! `sha256:<hex>` SPKI pin per line; `#` starts a comment, blank lines are ignored. A file
//! without a single pin is refused rather than read as "trust nobody": an empty file is far
//! more often a half-written or truncated one than a decision, and refusing it keeps the pins in
//! use (at start it stops the service; to stop trusting every peer, stop the service).

use std::path::{Path, PathBuf};

use crate::error::{ConfigError, MeshError, Result};
use crate::tls::pinned::{Pin, PinSet};

/// The pins read from one file, and the hash of its bytes (what the file watcher compares).
#[derive(Clone, Debug)]
pub(crate) struct PinsFile {
    pub(crate) pins: PinSet,
    pub(crate) digest: String,
}

/// Reads and parses the pins file at `path`.
pub(crate) fn read(path: &Path) -> Result<PinsFile> {
    let bytes = std::fs::read(path)
        .map_err(|e| MeshError::io(format!("reading the pins file {}", path.display()), e))?;
    let digest = pki::sha256_hex(&bytes);
    let pins = parse(path, &bytes)?;
    Ok(PinsFile { pins, digest })
}

/// Parses the contents of a pins file; `path` names it in errors.
pub fn parse(path: &Path, bytes: &[u8]) -> std::result::Result<PinSet, ConfigError> {
    let file = || PathBuf::from(path);
    let text =
        std::str::from_utf8(bytes).map_err(|_| ConfigError::PinsFileEncoding { path: file() })?;
    let mut pins = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let pin = Pin::parse(line).map_err(|error| ConfigError::PinsFileLine {
            path: file(),
            line: index + 1,
            error: Box::new(error),
        })?;
        pins.push(pin);
    }
    PinSet::new(pins).map_err(|_| ConfigError::PinsFileEmpty { path: file() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blank_lines_and_errors_name_file_and_line() {
        let path = Path::new("/etc/pins");
        let (a, b) = ("ab".repeat(32), "CD".repeat(32));
        let text = format!("# peers\n\nsha256:{a}  # api, old key\n  sha256:{b}\nsha256:{a}\n");
        let set = parse(path, text.as_bytes()).unwrap();
        assert!(set.contains_hex(&a) && set.contains_hex(&b.to_lowercase()));
        assert_eq!(set.len(), 2);

        let bad = format!("sha256:{a}\n\nsha1:{b}\n");
        let err = parse(path, bad.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("/etc/pins line 3: "), "{err}");
        assert!(err.contains("sha1:"), "{err}");

        for empty in ["", "\n# nothing pinned\n  \n"] {
            let err = parse(path, empty.as_bytes()).unwrap_err().to_string();
            assert!(err.contains("/etc/pins") && err.contains("no pin"), "{err}");
        }
        assert!(parse(path, b"\xff\xfe").is_err());
    }
}
