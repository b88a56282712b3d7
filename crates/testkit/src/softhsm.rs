//! A throwaway SoftHSM2 (Debian `softhsm2`) for tests of CA keys in a PKCS#11 token: its own
//! `softhsm2.conf` and token directory under a temp dir, pointed at by `SOFTHSM2_CONF` for the
//! processes that use it, so no test touches the machine's tokens. Missing SoftHSM2 fails the
//! test (`.ci/run` installs it).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// SoftHSM2's PKCS#11 module on Debian.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A SoftHSM2 configuration of its own, in a directory the test owns.
pub struct SoftHsm {
    /// The `softhsm2.conf` to put in `SOFTHSM2_CONF`.
    pub conf: PathBuf,
}

impl SoftHsm {
    /// A configuration in `dir` (created) with an empty token directory `dir/tokens`.
    pub fn new(dir: &Path) -> SoftHsm {
        assert!(
            Path::new(MODULE).is_file(),
            "{MODULE} is missing: install SoftHSM2 (Debian package softhsm2; .ci/run does)"
        );
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).expect("create the token directory");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
                 slots.removable = false\n",
                tokens.display()
            ),
        )
        .expect("write softhsm2.conf");
        SoftHsm { conf }
    }

    /// The environment a process needs to see these tokens.
    pub fn env(&self) -> [(&'static str, &OsStr); 1] {
        [("SOFTHSM2_CONF", self.conf.as_os_str())]
    }

    /// `softhsm2-util --init-token --free --label LABEL --pin PIN --so-pin SO_PIN`.
    pub fn init_token(&self, label: &str, pin: &str) {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .args(["--init-token", "--free", "--label", label, "--pin", pin])
            .args(["--so-pin", "so-pin-for-tests"])
            .output()
            .expect("softhsm2-util must be installed (Debian package softhsm2)");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A `Command` for `program` that sees these tokens.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("SOFTHSM2_CONF", &self.conf);
        cmd
    }
}
