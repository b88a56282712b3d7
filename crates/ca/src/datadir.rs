//! The data directory: `root.crt`, `root.key` (0600) and `ca.db`, and the rules that keep them
//! together. A two-tier CA (`mtls-ca init --offline-root`, `datadir_hierarchy.rs`) holds
//! `intermediate.crt` and `intermediate.key` (0600) instead of `root.key`, whose key stays in
//! the offline directory. The root and the database are one CA: the database records everything the root
//! signed (and revoked), so neither may ever be recreated next to the other. A root without a
//! database, a database without a root, or a database of another root refuses to start; only
//! an empty directory becomes a new CA. The database records which root it belongs to (meta
//! `root_fingerprint`, written when both are created together).

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use pki::{files, CaMaterial, TrustDomain};
use time::OffsetDateTime;

use crate::store::{SqliteStore, Store};

/// Metadata key holding the hex SHA-256 of the root certificate DER the database belongs to.
pub const ROOT_FINGERPRINT: &str = "root_fingerprint";

/// Mode of the data directory: the owner only.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the root key and the database files: the owner only.
pub const FILE_MODE: u32 = pki::files::KEY_MODE;
/// The permission bits of group and others.
const GROUP_OTHER: u32 = 0o077;

/// A CA's data directory (see the module documentation).
pub struct DataDir {
    /// Where it is.
    pub path: PathBuf,
    /// The SQLite database: `ca.db` in the directory unless `--store sqlite:PATH` moves it.
    db: PathBuf,
    /// How to reach a PKCS#11 token holding the CA key (`--pkcs11-module`,
    /// `--pkcs11-pin-file`; datadir_token.rs).
    pub(crate) token_access: Option<crate::pkcs11::TokenAccess>,
}

/// How the CA obtained its root on this start.
pub enum RootOrigin {
    /// This start created a new root.
    Created,
    /// The root existed (in the directory, or given with `--root-cert`).
    Loaded,
}

/// What an inspected data directory holds.
pub(crate) enum Contents {
    /// Neither root nor database: a new CA may be created here.
    Empty,
    /// Root certificate and database (whether they belong together is checked on open).
    Complete,
}

pub(crate) fn exists(path: &Path) -> anyhow::Result<bool> {
    path.try_exists()
        .with_context(|| format!("checking {}", path.display()))
}

impl DataDir {
    /// The data directory at `path` (nothing is read or created yet).
    pub fn new(path: &Path) -> DataDir {
        DataDir {
            path: path.to_path_buf(),
            db: path.join("ca.db"),
            token_access: None,
        }
    }

    /// The data directory at `path` with its SQLite database at `db` (`--store sqlite:PATH`).
    pub fn with_db(path: &Path, db: &Path) -> DataDir {
        DataDir {
            path: path.to_path_buf(),
            db: db.to_path_buf(),
            token_access: None,
        }
    }

    /// Refuses a data directory that already holds a CA (a database, a root or intermediate,
    /// a root key, or `token_ref`, the file recording a token key): `init` makes a CA in an
    /// empty data directory only, so no CA is ever overwritten.
    pub(crate) fn refuse_existing_ca(&self, token_ref: &Path) -> anyhow::Result<()> {
        if !matches!(self.contents()?, Contents::Empty)
            || exists(&self.intermediate_cert())?
            || exists(&self.root_key())?
            || exists(token_ref)?
        {
            bail!(
                "{} already holds a CA; init makes a new one in an empty data directory only",
                self.path.display()
            );
        }
        Ok(())
    }

    /// Where the CA key's token is reached, when it is in one (`--pkcs11-module`,
    /// `--pkcs11-pin-file`).
    pub fn with_token_access(mut self, access: Option<crate::pkcs11::TokenAccess>) -> DataDir {
        self.token_access = access;
        self
    }

    /// `root.crt`: the root certificate (public).
    pub fn root_cert(&self) -> PathBuf {
        self.path.join("root.crt")
    }

    /// `root.key`: the root private key (0600).
    pub fn root_key(&self) -> PathBuf {
        self.path.join("root.key")
    }

    /// `intermediate.crt`: the online intermediate of a two-tier CA (public).
    pub fn intermediate_cert(&self) -> PathBuf {
        self.path.join("intermediate.crt")
    }

    /// `intermediate.key`: the intermediate's private key (0600), the one key a two-tier CA
    /// signs with.
    pub fn intermediate_key(&self) -> PathBuf {
        self.path.join("intermediate.key")
    }

    /// `jwt.key`: the P-384 key that signs JWT-SVIDs (0600), created at start when missing,
    /// unless the CA key is in a token (then the JWT key is there too: `jwt.pkcs11`).
    pub fn jwt_key(&self) -> PathBuf {
        self.path.join("jwt.key")
    }

    /// `ca.db`: the store (0600, with its `-wal` and `-shm` files).
    pub fn db(&self) -> PathBuf {
        self.db.clone()
    }

    /// A new database is built here, then renamed to `ca.db` once the root is on disk, so
    /// `ca.db` exists only next to the root it belongs to.
    pub(crate) fn pending_db(&self) -> PathBuf {
        let mut name = self.db.as_os_str().to_owned();
        name.push(".new");
        PathBuf::from(name)
    }

    /// Creates the directory (0700) if missing.
    pub fn ensure(&self) -> anyhow::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.path)
            .with_context(|| format!("creating data directory {}", self.path.display()))
    }

    /// The files that must stay the owner's alone: the root key and the database with its
    /// WAL and shared-memory files (SQLite creates those with the database file's mode).
    fn private_files(&self) -> [PathBuf; 6] {
        let db = self.db();
        let with = |suffix: &str| {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        [
            self.root_key(),
            self.intermediate_key(),
            self.jwt_key(),
            db.clone(),
            with("-wal"),
            with("-shm"),
        ]
    }

    /// Takes group and other access away from the directory (0700) and from the root key and
    /// the database files (0600), logging each change; refuses when that is not possible (a
    /// directory or file owned by another user). The CA's files are made owner-only from
    /// creation; looser modes come from an operator's `chmod`, a copy or a restore, and
    /// tightening them before the database is opened also keeps SQLite's new `-wal` and `-shm`
    /// files private (docs/security.md).
    pub fn secure(&self) -> anyhow::Result<()> {
        if exists(&self.path)? {
            tighten(&self.path, DIR_MODE, "data directory")?;
        }
        for file in self.private_files() {
            if exists(&file)? {
                tighten(&file, FILE_MODE, "data file")?;
            }
        }
        Ok(())
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
        self.secure()?;
        self.finish_interrupted_init()?;
        match self.contents()? {
            Contents::Empty => self.init(external, trust_domain, now),
            Contents::Complete => {
                // The store first: which root a two-tier CA's intermediate is certified by
                // follows the store's root rotation state (`serving_intermediate`).
                let store = self.open_store_of(&self.stored_root_fingerprint()?)?;
                let ca = match external.is_none() && self.is_two_tier()? {
                    true => self.serving_intermediate(&store)?,
                    false => self.load_root(external)?,
                };
                pin_trust_domain(&store, trust_domain)?;
                Ok((ca, RootOrigin::Loaded, store))
            }
        }
    }

    /// Opens the store of an initialised data directory (for the admin subcommands), with
    /// the same checks as `open_or_init` and without creating anything.
    pub fn open_existing_store(&self) -> anyhow::Result<SqliteStore> {
        self.secure()?;
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
    pub(crate) fn contents(&self) -> anyhow::Result<Contents> {
        let (cert, db) = (exists(&self.root_cert())?, exists(&self.db())?);
        self.refuse_orphan_intermediate()?;
        for key in [self.root_key(), self.root_token_ref()] {
            if !cert && exists(&key)? {
                bail!(
                    "{} exists without {}; restore the certificate or move the key away",
                    key.display(),
                    self.root_cert().display()
                );
            }
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
    pub(crate) fn stored_root_fingerprint(&self) -> anyhow::Result<String> {
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
                (ROOT_FINGERPRINT, &ca.root_fingerprint()),
            ],
        )?;
        if external.is_none() {
            // Key first: a crash between the two writes leaves no certificate without key.
            files::write_atomic(&self.root_key(), ca.key_pem()?.as_bytes(), files::KEY_MODE)?;
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
    pub(crate) fn commit_pending(&self) -> anyhow::Result<()> {
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
            if exists(&self.intermediate_cert())? {
                bail!(
                    "{} is a two-tier CA (it holds {}): it signs with its intermediate, not                      with --root-cert/--root-key; start it without them",
                    self.path.display(),
                    self.intermediate_cert().display()
                );
            }
            let ca = load_external(cert, key)?;
            self.pin_root_of(&ca)?;
            return Ok(ca);
        }
        self.load_own_root()
    }

    /// The signing CA kept in the directory: the intermediate of a two-tier CA, else the root
    /// (certificate and key).
    pub(crate) fn load_own_root(&self) -> anyhow::Result<CaMaterial> {
        if exists(&self.intermediate_cert())? {
            return self.load_intermediate();
        }
        if exists(&self.root_token_ref())? {
            return self.load_token_root();
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
    pub(crate) fn pin_root_of(&self, ca: &CaMaterial) -> anyhow::Result<()> {
        let fp = self.stored_root_fingerprint()?;
        if fp != ca.root_fingerprint() {
            bail!(
                "this data directory belongs to root {fp}, not {}; use a new --data-dir for a different root",
                ca.root_fingerprint()
            );
        }
        Ok(())
    }
}

/// Sets `path` to `mode` when group or others have any access to it, logging the change.
fn tighten(path: &Path, mode: u32, what: &str) -> anyhow::Result<()> {
    let meta = fs::metadata(path).with_context(|| format!("checking {}", path.display()))?;
    let old = meta.permissions().mode() & 0o7777;
    if old & GROUP_OTHER == 0 {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).with_context(|| {
        format!(
            "{} is open to group or others (mode {old:o}) and cannot be made owner-only \
             ({mode:o}); is it owned by another user? Run the CA as its owner, or chown it and \
             chmod {mode:o}",
            path.display()
        )
    })?;
    tracing::warn!(
        event = "permissions_tightened",
        path = %path.display(),
        old_mode = %format!("{old:o}"),
        new_mode = %format!("{mode:o}"),
        "the {what} {} was open to group or others (mode {old:o}); it is now {mode:o}. If \
         other users could write here, check the data: mtls-ca audit verify --expect-head",
        path.display()
    );
    Ok(())
}

impl DataDir {
    /// The JWT-SVID signing key: `jwt.key` loaded (it must be a P-384 key) when it exists, so
    /// CAs made before keys moved into tokens keep their key and `kid`; else, when the CA key
    /// is in a PKCS#11 token, the JWT key in that token (`jwt.pkcs11`, made there when
    /// missing, `DataDir::token_jwt_key`); else `jwt.key` created (0600), so data directories
    /// made before JWT-SVIDs existed keep working. True when this call created the key. Call
    /// after `secure`, which tightens the file's mode.
    pub fn load_or_create_jwt_key(&self) -> anyhow::Result<(pki::jwt_svid::JwtSigner, bool)> {
        let path = self.jwt_key();
        let created = if exists(&path)? {
            if exists(&self.jwt_token_ref())? {
                bail!(
                    "{} holds both {} and {}: the JWT-SVID key is either in a token or in a \
                     file; move the one not in use away",
                    self.path.display(),
                    path.display(),
                    self.jwt_token_ref().display()
                );
            }
            false
        } else if let Some(ca) = self.ca_token_uri()? {
            return self.token_jwt_key(&ca, None);
        } else {
            let key = pki::keys::generate(pki::Curve::P384)?;
            files::write_atomic(&path, key.serialize_pem().as_bytes(), files::KEY_MODE)?;
            true
        };
        let (key, curve) = pki::keys::load_private_key(&path)?;
        if curve != pki::Curve::P384 {
            bail!(
                "{} holds a {curve} key; JWT-SVIDs are signed with ES384, so it must be a P-384 \
                 key. Move it away and restart: the CA creates a new one",
                path.display()
            );
        }
        let signer = pki::jwt_svid::JwtSigner::from_pkcs8(&key.serialize_der())
            .with_context(|| format!("loading {}", path.display()))?;
        Ok((signer, created))
    }
}

/// Refuses an external root key that group or others may access: it signs every certificate
/// the CA issues. (The CA tightens its own files; an operator's key file is the operator's to
/// fix.)
fn check_external_key(key: &Path) -> anyhow::Result<()> {
    let mode = fs::metadata(key)
        .with_context(|| format!("checking --root-key {}", key.display()))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & GROUP_OTHER != 0 {
        bail!(
            "--root-key {} is open to group or others (mode {mode:o}); the root key signs every \
             certificate this CA issues and must be readable by its owner only: chmod 600 {}",
            key.display(),
            key.display()
        );
    }
    Ok(())
}

/// Loads an external root (`--root-cert`, `--root-key`) with the checks `open_or_init` makes
/// (key mode, key matching the certificate), touching nothing: `serve` calls it before it
/// creates the data directory, so a wrong path or a bad file changes nothing.
pub fn load_external(cert: &Path, key: &Path) -> anyhow::Result<CaMaterial> {
    check_external_key(key)?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The JWT key is in a file or in a token, never both; a token CA needs the token options
    /// to reach it. Both refusals name the files or options and change nothing.
    #[test]
    fn a_jwt_key_in_a_file_and_in_a_token_at_once_or_without_token_access_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(&tmp.path().join("ca"));
        dir.ensure().unwrap();
        dir.load_or_create_jwt_key().unwrap();
        let key = fs::read(dir.jwt_key()).unwrap();
        fs::write(dir.jwt_token_ref(), "pkcs11:token=t;object=ca-key-jwt\n").unwrap();
        let err = format!("{:#}", dir.load_or_create_jwt_key().unwrap_err());
        assert!(
            err.contains("jwt.key") && err.contains("jwt.pkcs11") && err.contains("either"),
            "{err}"
        );
        assert_eq!(fs::read(dir.jwt_key()).unwrap(), key);

        fs::remove_file(dir.jwt_key()).unwrap();
        fs::write(dir.root_token_ref(), "pkcs11:token=t;object=ca-key\n").unwrap();
        let err = format!("{:#}", dir.load_or_create_jwt_key().unwrap_err());
        assert!(
            err.contains("pkcs11:token=t;object=ca-key-jwt") && err.contains("--pkcs11-module"),
            "{err}"
        );
        assert!(!dir.jwt_key().exists(), "no jwt.key made for a token CA");
    }

    #[test]
    fn a_new_data_directory_is_owner_only_down_to_the_wal() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(&tmp.path().join("ca"));
        dir.ensure().unwrap();
        let td = TrustDomain::parse("mesh.local").unwrap();
        let (_, _, store) = dir
            .open_or_init(None, &td, OffsetDateTime::now_utc())
            .unwrap();
        // A write in WAL mode: SQLite creates ca.db-wal and ca.db-shm now.
        store.init_meta("probe", "1").unwrap();
        // `serve` creates the JWT key next.
        let (_, created) = dir.load_or_create_jwt_key().unwrap();
        assert!(created);
        assert!(
            !dir.load_or_create_jwt_key().unwrap().1,
            "loaded, not created, again"
        );
        assert_eq!(mode(&dir.path), DIR_MODE);
        // A single-tier directory has no intermediate key.
        for file in dir
            .private_files()
            .into_iter()
            .filter(|f| *f != dir.intermediate_key())
        {
            assert!(file.exists(), "{}", file.display());
            assert_eq!(mode(&file), FILE_MODE, "{}", file.display());
        }
        assert_eq!(mode(&dir.root_cert()), pki::files::PUBLIC_MODE);
    }

    #[test]
    fn loosened_modes_are_tightened_before_the_database_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(&tmp.path().join("ca"));
        dir.ensure().unwrap();
        let td = TrustDomain::parse("mesh.local").unwrap();
        let (_, _, store) = dir
            .open_or_init(None, &td, OffsetDateTime::now_utc())
            .unwrap();
        store.init_meta("probe", "1").unwrap();
        drop(store);
        set_mode(&dir.path, 0o777);
        let files = dir.private_files();
        for (file, loose) in files.iter().zip([0o640, 0o666, 0o644, 0o604]) {
            if file.exists() {
                set_mode(file, loose);
            }
        }
        // The subcommands' path and the service's both tighten.
        dir.open_existing_store().unwrap();
        assert_eq!(mode(&dir.path), DIR_MODE);
        for file in files.iter().filter(|f| f.exists()) {
            assert_eq!(mode(file), FILE_MODE, "{}", file.display());
        }
        set_mode(&dir.path, 0o750);
        set_mode(&dir.db(), 0o660);
        dir.open_or_init(None, &td, OffsetDateTime::now_utc())
            .unwrap();
        assert_eq!(mode(&dir.path), DIR_MODE);
        assert_eq!(mode(&dir.db()), FILE_MODE);
        // The public certificate is left as it is.
        assert_eq!(mode(&dir.root_cert()), pki::files::PUBLIC_MODE);
    }

    #[test]
    fn an_external_root_key_open_to_others_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = CaMaterial::generate_root("External", OffsetDateTime::now_utc()).unwrap();
        let (cert, key) = (tmp.path().join("ext.crt"), tmp.path().join("ext.key"));
        fs::write(&cert, root.cert_pem()).unwrap();
        fs::write(&key, root.key_pem().unwrap()).unwrap();
        set_mode(&key, 0o640);
        let err = load_external(&cert, &key).unwrap_err().to_string();
        assert!(
            err.contains("mode 640") && err.contains("chmod 600"),
            "{err}"
        );
        assert_eq!(mode(&key), 0o640, "an operator's file is not changed");
        set_mode(&key, 0o600);
        assert_eq!(
            load_external(&cert, &key).unwrap().fingerprint(),
            root.fingerprint()
        );
    }
}
