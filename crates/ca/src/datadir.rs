//! The data directory: `root.crt`, `root.key` (0600) and `ca.db`, and the rules that keep them
//! together. The root and the database are one CA: the database records everything the root
//! signed (and revoked), so neither may ever be recreated next to the other. A root without a
//! database, a database without a root, or a database of another root refuses to start; only
//! an empty directory becomes a new CA. The database records which root it belongs to (meta
//! `root_fingerprint`, written when both are created together).

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use pki::{files, CaMaterial, TrustDomain};
use time::OffsetDateTime;

use crate::store::{SqliteStore, Store};

/// Metadata key holding the hex SHA-256 of the root certificate DER the database belongs to.
pub const ROOT_FINGERPRINT: &str = "root_fingerprint";

pub struct DataDir {
    pub path: PathBuf,
}

/// How the CA obtained its root on this start.
pub enum RootOrigin {
    Created,
    Loaded,
}

/// What an inspected data directory holds.
enum Contents {
    /// Neither root nor database: a new CA may be created here.
    Empty,
    /// Root certificate and database (whether they belong together is checked on open).
    Complete,
}

fn exists(path: &Path) -> anyhow::Result<bool> {
    path.try_exists()
        .with_context(|| format!("checking {}", path.display()))
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

    /// A new database is built here, then renamed to `ca.db` once the root is on disk, so
    /// `ca.db` exists only next to the root it belongs to.
    fn pending_db(&self) -> PathBuf {
        self.path.join("ca.db.new")
    }

    /// Creates the directory (0700) if missing.
    pub fn ensure(&self) -> anyhow::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .with_context(|| format!("creating data directory {}", self.path.display()))
    }

    /// For `serve`: checks the directory, then opens its root and database, or creates both
    /// in an empty directory. Never creates a database next to an existing root, nor a root
    /// next to an existing database.
    pub fn open_or_init(
        &self,
        external: Option<(&Path, &Path)>,
        trust_domain: &TrustDomain,
        now: OffsetDateTime,
    ) -> anyhow::Result<(CaMaterial, RootOrigin, SqliteStore)> {
        self.finish_interrupted_init()?;
        match self.contents()? {
            Contents::Empty => self.init(external, trust_domain, now),
            Contents::Complete => {
                let ca = self.load_root(external)?;
                let store = self.open_store_of(&ca.fingerprint())?;
                pin_trust_domain(&store, trust_domain)?;
                Ok((ca, RootOrigin::Loaded, store))
            }
        }
    }

    /// Opens the store of an initialised data directory (for the admin subcommands), with
    /// the same checks as `open_or_init` and without creating anything.
    pub fn open_existing_store(&self) -> anyhow::Result<SqliteStore> {
        match self.contents()? {
            Contents::Empty => bail!(
                "{} holds no CA database; start the CA once with `mtls-ca --data-dir {}` first",
                self.path.display(),
                self.path.display()
            ),
            Contents::Complete => self.open_store_of(&self.stored_root_fingerprint()?),
        }
    }

    /// Which of root and database are here; refuses the combinations that would lose or
    /// orphan records.
    fn contents(&self) -> anyhow::Result<Contents> {
        let (cert, key, db) = (
            exists(&self.root_cert())?,
            exists(&self.root_key())?,
            exists(&self.db())?,
        );
        if !cert && key {
            bail!(
                "{} exists without {}; restore the certificate or move the key away",
                self.root_key().display(),
                self.root_cert().display()
            );
        }
        match (cert, db) {
            (false, false) => Ok(Contents::Empty),
            (true, true) => Ok(Contents::Complete),
            (true, false) => {
                let fp = self
                    .stored_root_fingerprint()
                    .unwrap_or_else(|e| format!("(unreadable: {e:#})"));
                bail!(
                    "{} holds root {fp} but no database ca.db: the issued certificates, \
                     revocations and audit log are missing; restore ca.db from a backup, or move \
                     the directory away to start a new CA",
                    self.path.display()
                )
            }
            (false, true) => bail!(
                "{} holds the database ca.db but no root certificate root.crt: a new root cannot \
                 take over the certificates, revocations and audit log of that database; restore \
                 root.crt and root.key from a backup, or move the directory away to start a new CA",
                self.path.display()
            ),
        }
    }

    /// SHA-256 of the root certificate kept in the directory.
    fn stored_root_fingerprint(&self) -> anyhow::Result<String> {
        let path = self.root_cert();
        let certs = pki::pem::parse_certificates(&files::read(&path)?)
            .with_context(|| format!("reading {}", path.display()))?;
        let first = certs
            .first()
            .with_context(|| format!("{} holds no certificate", path.display()))?;
        Ok(pki::sha256_hex(first))
    }

    /// Opens `ca.db` and checks it belongs to the root with fingerprint `fp`. A database made
    /// by a version that did not record its root adopts this one, once.
    fn open_store_of(&self, fp: &str) -> anyhow::Result<SqliteStore> {
        let db = self.db();
        let store = SqliteStore::open(&db)?;
        match store.get_meta(ROOT_FINGERPRINT)? {
            Some(recorded) if recorded == fp => {}
            Some(recorded) => bail!(
                "{} belongs to root {recorded}, but {} is root {fp}: the database was made by \
                 another CA; restore this CA's ca.db from a backup, or use a new --data-dir",
                db.display(),
                self.root_cert().display()
            ),
            None => {
                store.init_meta(ROOT_FINGERPRINT, fp)?;
                tracing::info!(
                    event = "root_adopted",
                    root_fingerprint = %fp,
                    "{} recorded no root (made by an earlier version); it now belongs to the \
                     root in {}",
                    db.display(),
                    self.root_cert().display()
                );
            }
        }
        Ok(store)
    }

    /// A new CA: the root (generated, or the external one) and its database, created so that
    /// `ca.db` appears only once the root is on disk.
    fn init(
        &self,
        external: Option<(&Path, &Path)>,
        trust_domain: &TrustDomain,
        now: OffsetDateTime,
    ) -> anyhow::Result<(CaMaterial, RootOrigin, SqliteStore)> {
        let (ca, origin) = match external {
            Some((cert, key)) => (load_external(cert, key)?, RootOrigin::Loaded),
            None => (
                CaMaterial::generate_root("mtls-mesh Root CA", now)?,
                RootOrigin::Created,
            ),
        };
        let pending = self.pending_db();
        SqliteStore::initialise(
            &pending,
            &[
                ("trust_domain", trust_domain.as_str()),
                (ROOT_FINGERPRINT, &ca.fingerprint()),
            ],
        )?;
        if external.is_none() {
            // Key first: a crash between the two writes leaves no certificate without key.
            files::write_atomic(&self.root_key(), ca.key_pem().as_bytes(), files::KEY_MODE)?;
        }
        files::write_atomic(
            &self.root_cert(),
            ca.cert_pem().as_bytes(),
            files::PUBLIC_MODE,
        )?;
        self.commit_pending()?;
        Ok((ca, origin, SqliteStore::open(&self.db())?))
    }

    /// Renames the pending database to `ca.db` and makes the rename durable.
    fn commit_pending(&self) -> anyhow::Result<()> {
        fs::rename(self.pending_db(), self.db()).with_context(|| {
            format!(
                "renaming {} to {}",
                self.pending_db().display(),
                self.db().display()
            )
        })?;
        fs::File::open(&self.path)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing directory {}", self.path.display()))
    }

    /// A first start that crashed between creating the pending database and renaming it:
    /// finish it when the root it names is on disk, discard it when no root was written (then
    /// nothing was ever signed or recorded).
    fn finish_interrupted_init(&self) -> anyhow::Result<()> {
        let pending = self.pending_db();
        if !exists(&pending)? {
            return Ok(());
        }
        if exists(&self.db())? {
            tracing::warn!(
                path = %pending.display(),
                "ignoring a stray pending database next to ca.db; move it away"
            );
            return Ok(());
        }
        if !exists(&self.root_cert())? {
            fs::remove_file(&pending).with_context(|| format!("removing {}", pending.display()))?;
            tracing::info!("discarded the database of a first start that never wrote its root");
            return Ok(());
        }
        let recorded = SqliteStore::peek_meta(&pending, ROOT_FINGERPRINT)?;
        let root = self.stored_root_fingerprint()?;
        if recorded.as_deref() != Some(root.as_str()) {
            bail!(
                "{} is left from an interrupted first start but belongs to root {}, not to {} \
                 ({root}); move the directory away to start a new CA",
                pending.display(),
                recorded.unwrap_or_else(|| "(none)".into()),
                self.root_cert().display()
            );
        }
        self.commit_pending()?;
        tracing::info!("completed a first start that was interrupted before ca.db was in place");
        Ok(())
    }

    /// The root of a complete directory: the one kept here, or the external one (which must
    /// be the one this directory was created with).
    fn load_root(&self, external: Option<(&Path, &Path)>) -> anyhow::Result<CaMaterial> {
        if let Some((cert, key)) = external {
            let ca = load_external(cert, key)?;
            self.pin_root(&ca)?;
            return Ok(ca);
        }
        let (cert_path, key_path) = (self.root_cert(), self.root_key());
        if !exists(&key_path)? {
            bail!(
                "{} exists but {} is missing; restore the key or move the certificate away",
                cert_path.display(),
                key_path.display()
            );
        }
        CaMaterial::load(&files::read(&cert_path)?, &files::read(&key_path)?)
            .with_context(|| format!("loading the root from {}", self.path.display()))
    }

    /// With an external root, the directory keeps a copy of its certificate (written at
    /// creation) and refuses to switch to a different root: its records were issued by one.
    fn pin_root(&self, ca: &CaMaterial) -> anyhow::Result<()> {
        let fp = self.stored_root_fingerprint()?;
        if fp != ca.fingerprint() {
            bail!(
                "this data directory belongs to root {fp}, not {}; use a new --data-dir for a different root",
                ca.fingerprint()
            );
        }
        Ok(())
    }
}

fn load_external(cert: &Path, key: &Path) -> anyhow::Result<CaMaterial> {
    CaMaterial::load(&files::read(cert)?, &files::read(key)?).with_context(|| {
        format!(
            "loading the root from {} and {}",
            cert.display(),
            key.display()
        )
    })
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
