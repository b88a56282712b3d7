//! The data directory: `root.crt`, `root.key` (0600) and `ca.db`.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use pki::{files, CaMaterial, TrustDomain};
use time::OffsetDateTime;

use crate::store::{SqliteStore, Store};

pub struct DataDir {
    pub path: PathBuf,
}

/// How the CA obtained its root on this start.
pub enum RootOrigin {
    Created,
    Loaded,
}

impl DataDir {
    pub fn new(path: &Path) -> DataDir {
        DataDir {
            path: path.to_path_buf(),
        }
    }

    pub fn root_cert(&self) -> PathBuf {
        self.path.join("root.crt")
    }

    pub fn root_key(&self) -> PathBuf {
        self.path.join("root.key")
    }

    pub fn db(&self) -> PathBuf {
        self.path.join("ca.db")
    }

    /// Creates the directory (0700) if missing.
    pub fn ensure(&self) -> anyhow::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .with_context(|| format!("creating data directory {}", self.path.display()))
    }

    /// Opens the store of an initialised data directory (for the admin subcommands).
    pub fn open_existing_store(&self) -> anyhow::Result<SqliteStore> {
        if !self.db().exists() {
            bail!(
                "{} holds no CA database; start the CA once with `mtls-ca --data-dir {}` first",
                self.path.display(),
                self.path.display()
            );
        }
        Ok(SqliteStore::open(&self.db())?)
    }

    pub fn open_store(&self) -> anyhow::Result<SqliteStore> {
        Ok(SqliteStore::open(&self.db())?)
    }

    /// Loads the root from the data dir, or from `--root-cert/--root-key`, or creates one.
    pub fn load_or_create_root(
        &self,
        external: Option<(&Path, &Path)>,
        now: OffsetDateTime,
    ) -> anyhow::Result<(CaMaterial, RootOrigin)> {
        if let Some((cert, key)) = external {
            let ca =
                CaMaterial::load(&files::read(cert)?, &files::read(key)?).with_context(|| {
                    format!(
                        "loading the root from {} and {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            self.pin_root(&ca)?;
            return Ok((ca, RootOrigin::Loaded));
        }
        let (cert_path, key_path) = (self.root_cert(), self.root_key());
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let ca = CaMaterial::load(&files::read(&cert_path)?, &files::read(&key_path)?)
                    .with_context(|| format!("loading the root from {}", self.path.display()))?;
                Ok((ca, RootOrigin::Loaded))
            }
            (false, false) => {
                let ca = CaMaterial::generate_root("mtls-mesh Root CA", now)?;
                // Key first: a crash between the two writes leaves no certificate without key.
                files::write_atomic(&key_path, ca.key_pem().as_bytes(), files::KEY_MODE)?;
                files::write_atomic(&cert_path, ca.cert_pem().as_bytes(), files::PUBLIC_MODE)?;
                Ok((ca, RootOrigin::Created))
            }
            (true, false) => bail!(
                "{} exists but {} is missing; restore the key or move the certificate away",
                cert_path.display(),
                key_path.display()
            ),
            (false, true) => bail!(
                "{} exists without {}; restore the certificate or move the key away",
                key_path.display(),
                cert_path.display()
            ),
        }
    }

    /// With an external root, keeps a copy of its certificate in the data dir and refuses to
    /// switch a data dir (whose records were issued by one root) to a different root.
    fn pin_root(&self, ca: &CaMaterial) -> anyhow::Result<()> {
        let path = self.root_cert();
        if path.exists() {
            let existing = pki::pem::parse_certificates(&files::read(&path)?)?;
            let fp = existing
                .first()
                .map(|c| pki::sha256_hex(c))
                .unwrap_or_default();
            if fp != ca.fingerprint() {
                bail!(
                    "this data directory belongs to root {fp}, not {}; use a new --data-dir for a different root",
                    ca.fingerprint()
                );
            }
            return Ok(());
        }
        files::write_atomic(&path, ca.cert_pem().as_bytes(), files::PUBLIC_MODE)?;
        Ok(())
    }
}

/// Records the trust domain on first start and refuses to change it later: every stored token
/// and certificate belongs to it.
pub fn pin_trust_domain(store: &dyn Store, requested: &TrustDomain) -> anyhow::Result<()> {
    let stored = store.init_meta("trust_domain", requested.as_str())?;
    if stored != requested.as_str() {
        bail!(
            "this data directory serves trust domain {stored}, not {requested}; start with --trust-domain {stored} or use a new --data-dir"
        );
    }
    Ok(())
}

/// The trust domain recorded in an initialised store.
pub fn stored_trust_domain(store: &dyn Store) -> anyhow::Result<TrustDomain> {
    let td = store
        .get_meta("trust_domain")?
        .context("the CA database has no trust domain yet; start the CA once first")?;
    Ok(TrustDomain::parse(&td)?)
}
