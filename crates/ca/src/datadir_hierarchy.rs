//! Two-tier CAs (docs/operations.md, "Offline root"): `mtls-ca init --offline-root DIR`
//! writes the root's key sealed with a passphrase to DIR only (`root.crt`, `root.key`), and
//! the data directory gets the root certificate, the online intermediate (`intermediate.crt`,
//! `intermediate.key` 0600) and the database. The CA never reads DIR again; the intermediate is
//! renewed by a ceremony where its key never moves: `intermediate csr` on the CA host,
//! `intermediate sign` where the root is, `intermediate install` on the CA host (or
//! `intermediate renew` when both are one machine).
//!
//! Replicas sharing one PostgreSQL database share one intermediate too (a copy of the data
//! directory, as with a single-tier root): the services check revocation with one CRL, and
//! webpki takes a CRL only from the issuer of the certificate it checks, so every replica must
//! sign leaves and the CRL with the same issuer (docs/operations.md).

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use pki::sealed_key::{self, Passphrase};
use pki::{files, intermediate, CaKey, CaMaterial, TrustDomain};
use time::{Duration, OffsetDateTime};

use rustls_pki_types::CertificateDer;

use crate::datadir::{exists, DataDir, DIR_MODE, ROOT_FINGERPRINT};
use crate::root_rotation::{der_of, load_state};
use crate::store::{SqliteStore, Store};

/// The directory holding an offline root: `root.crt` and `root.key` (sealed, 0600).
pub struct OfflineRoot {
    /// Where it is.
    pub path: PathBuf,
}

impl OfflineRoot {
    /// The offline root directory at `path`.
    pub fn new(path: &Path) -> OfflineRoot {
        OfflineRoot {
            path: path.to_path_buf(),
        }
    }

    /// `root.crt`: the root certificate (public; the services' trust anchor).
    pub fn cert(&self) -> PathBuf {
        self.path.join("root.crt")
    }

    /// `root.key`: the root's private key, encrypted PKCS#8 (`pki::sealed_key`).
    pub fn key(&self) -> PathBuf {
        self.path.join("root.key")
    }

    /// The root with its key, opened with `passphrase` (on the machine holding the root only).
    pub fn open(&self, passphrase: &Passphrase) -> anyhow::Result<CaMaterial> {
        let cert = pki::pem::parse_certificates(&files::read(&self.cert())?)
            .with_context(|| format!("reading {}", self.cert().display()))?
            .into_iter()
            .next()
            .with_context(|| format!("{} holds no certificate", self.cert().display()))?;
        let key = sealed_key::open(&files::read(&self.key())?, passphrase)
            .with_context(|| format!("opening {}", self.key().display()))?;
        CaMaterial::from_parts(cert, key)
            .with_context(|| format!("loading the root from {}", self.path.display()))
    }

    /// Writes `root`'s key sealed with `passphrase` (0600), then its certificate: the key
    /// first, since without it the root could never sign again.
    pub(crate) fn seal(&self, root: &CaMaterial, passphrase: &Passphrase) -> anyhow::Result<()> {
        let key = root
            .key()
            .key_pair()
            .context("an offline root's key is made in this process, never in a token")?;
        files::write_atomic(
            &self.key(),
            sealed_key::seal(key, passphrase)?.as_bytes(),
            files::KEY_MODE,
        )?;
        files::write_atomic(&self.cert(), root.cert_pem().as_bytes(), files::PUBLIC_MODE)?;
        Ok(())
    }

    /// Creates the directory (0700): it must not exist yet or be empty, so no root is ever
    /// overwritten.
    pub(crate) fn create(&self) -> anyhow::Result<()> {
        self.check_new()?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.path)
            .with_context(|| format!("creating --offline-root {}", self.path.display()))
    }

    /// Refuses a directory that exists and is not empty.
    pub(crate) fn check_new(&self) -> anyhow::Result<()> {
        if exists(&self.path)? {
            let mut entries = fs::read_dir(&self.path)
                .with_context(|| format!("reading --offline-root {}", self.path.display()))?;
            if entries.next().is_some() {
                bail!(
                    "--offline-root {} is not empty; give a new or empty directory (an existing \
                     root is never overwritten)",
                    self.path.display()
                );
            }
        }
        Ok(())
    }
}

/// What `init_two_tier` made.
#[derive(Debug)]
pub struct TwoTier {
    /// The root (its certificate; the key went to the offline directory only).
    pub root_fingerprint: String,
    /// The intermediate's NotAfter.
    pub intermediate_not_after: OffsetDateTime,
}

impl DataDir {
    /// The intermediate of a two-tier directory, with the root above it. Refuses a directory
    /// that also holds `root.key`: the root's key belongs offline.
    pub(crate) fn load_intermediate(&self) -> anyhow::Result<CaMaterial> {
        self.refuse_online_root_key()?;
        let key = self.intermediate_signing_key()?;
        CaMaterial::intermediate_from_key(
            self.read_cert(&self.intermediate_cert())?,
            key,
            self.read_cert(&self.root_cert())?,
        )
        .with_context(|| format!("loading the intermediate from {}", self.path.display()))
    }

    /// Refuses a two-tier directory that holds `root.key`: the root's key belongs offline.
    /// Checked at start (`load_intermediate`) and, while the CA runs, at every poll of the
    /// intermediate follower (`intermediate_follow.rs`).
    pub(crate) fn refuse_online_root_key(&self) -> anyhow::Result<()> {
        if exists(&self.root_key())? {
            bail!(
                "{} holds both {} and {}: a two-tier CA keeps its root key offline; move \
                 root.key to the offline root directory (or delete this copy) and start again",
                self.path.display(),
                self.intermediate_cert().display(),
                self.root_key().display()
            );
        }
        Ok(())
    }

    /// The intermediate's key: `intermediate.key`, or the token key `intermediate.pkcs11`
    /// names (datadir_token.rs).
    fn intermediate_signing_key(&self) -> anyhow::Result<CaKey> {
        let (key_path, reference) = (self.intermediate_key(), self.intermediate_token_ref());
        match (exists(&key_path)?, exists(&reference)?) {
            (true, true) => bail!(
                "{} holds both {} and {}: the key is either in a token or in a file; move the \
                 one not in use away",
                self.path.display(),
                key_path.display(),
                reference.display()
            ),
            (false, true) => self.open_token_key(&reference),
            (true, false) => {
                let (key, _) = pki::keys::load_private_key(&key_path)?;
                Ok(CaKey::File(Arc::new(key)))
            }
            (false, false) => bail!(
                "{} exists but {} is missing; restore the key from a backup",
                self.intermediate_cert().display(),
                key_path.display()
            ),
        }
    }

    /// Refuses intermediate files without `root.crt`: a start there would otherwise see an
    /// empty directory and make a new single-tier root next to another CA's key.
    pub(crate) fn refuse_orphan_intermediate(&self) -> anyhow::Result<()> {
        if exists(&self.root_cert())? {
            return Ok(());
        }
        for file in [
            self.intermediate_cert(),
            self.intermediate_key(),
            self.intermediate_token_ref(),
        ] {
            if exists(&file)? {
                bail!(
                    "{} exists without {}: restore root.crt (a copy is in the offline root \
                     directory) or move the intermediate files away",
                    file.display(),
                    self.root_cert().display()
                );
            }
        }
        Ok(())
    }

    /// True when the directory holds a two-tier CA.
    pub fn is_two_tier(&self) -> anyhow::Result<bool> {
        exists(&self.intermediate_cert())
    }

    /// `mtls-ca init --offline-root`: a new root (key sealed into `offline`, which must be new
    /// or empty) and its intermediate (key 0600 here), in an empty data directory. With
    /// `sqlite` the database is created too; a PostgreSQL database records the root when the
    /// first replica starts.
    pub fn init_two_tier(
        &self,
        offline: &OfflineRoot,
        passphrase: &Passphrase,
        trust_domain: &TrustDomain,
        lifetime: Duration,
        sqlite: bool,
        now: OffsetDateTime,
    ) -> anyhow::Result<TwoTier> {
        self.init_two_tier_with(
            offline,
            passphrase,
            trust_domain,
            lifetime,
            sqlite,
            now,
            None,
        )
    }

    /// [`DataDir::init_two_tier`], with the intermediate's key from `token_key` when given
    /// (`--key pkcs11:…`: opened or generated in the token after the directory checks and
    /// before anything is written; `intermediate.pkcs11` records it, no key file).
    #[allow(clippy::too_many_arguments)]
    pub fn init_two_tier_with(
        &self,
        offline: &OfflineRoot,
        passphrase: &Passphrase,
        trust_domain: &TrustDomain,
        lifetime: Duration,
        sqlite: bool,
        now: OffsetDateTime,
        token_key: Option<&dyn Fn() -> anyhow::Result<CaKey>>,
    ) -> anyhow::Result<TwoTier> {
        if offline.path == self.path {
            bail!(
                "--offline-root must not be the data directory {}: the root key would sit next \
                 to the online CA",
                self.path.display()
            );
        }
        self.secure()?;
        self.refuse_existing_ca(&self.intermediate_token_ref())?;
        offline.check_new()?;
        let token_key = token_key.map(|open| open()).transpose()?;
        offline.create()?;
        let root = CaMaterial::generate_offline_root("mtls-mesh Root CA", now)?;
        let ca = match token_key {
            Some(key) => intermediate::generate_with(&root, key, trust_domain, lifetime, now)?,
            None => intermediate::generate(&root, trust_domain, lifetime, now)?,
        };
        // The offline directory first: without it the new root could never sign again.
        offline.seal(&root, passphrase)?;

        if sqlite {
            SqliteStore::initialise(
                &self.pending_db(),
                &[
                    ("trust_domain", trust_domain.as_str()),
                    (ROOT_FINGERPRINT, &ca.root_fingerprint()),
                ],
            )?;
        }
        match ca.key().device_name() {
            Some(uri) => files::write_atomic(
                &self.intermediate_token_ref(),
                format!("{uri}\n").as_bytes(),
                files::PUBLIC_MODE,
            )?,
            None => files::write_atomic(
                &self.intermediate_key(),
                ca.key_pem()?.as_bytes(),
                files::KEY_MODE,
            )?,
        }
        files::write_atomic(
            &self.intermediate_cert(),
            ca.cert_pem().as_bytes(),
            files::PUBLIC_MODE,
        )?;
        // root.crt last: with it and the database the directory counts as a CA.
        files::write_atomic(
            &self.root_cert(),
            root.cert_pem().as_bytes(),
            files::PUBLIC_MODE,
        )?;
        if sqlite {
            self.commit_pending()?;
        }
        Ok(TwoTier {
            root_fingerprint: ca.root_fingerprint(),
            intermediate_not_after: ca.not_after(),
        })
    }

    /// The intermediate this two-tier CA signs with now: the intermediate key certified by
    /// the root the store's root rotation state makes active (`root.crt` when no rotation
    /// ran; the state, not `root.crt`, is the authority once one did). Candidates are
    /// `intermediate.crt` and the certificate the rotation state keeps for that root (the new
    /// intermediate from `root rotate --from`, which supersedes the file from `activate` on
    /// until a renewal under the new root is installed); of those certified by that root for
    /// this key, the one with the latest NotAfter.
    pub fn serving_intermediate(&self, store: &dyn Store) -> anyhow::Result<CaMaterial> {
        if exists(&self.root_key())? {
            // load_intermediate explains it.
            return self.load_intermediate();
        }
        let key = self.intermediate_signing_key()?;
        let state = load_state(store)?.map(|(_, s)| s);
        let root = match &state {
            Some(s) => der_of(s.active_root(), "active root")?,
            None => self.read_cert(&self.root_cert())?,
        };
        let mut candidates = vec![(
            self.intermediate_cert().display().to_string(),
            self.read_cert(&self.intermediate_cert()),
        )];
        if let Some(stored) = state.as_ref().and_then(|s| s.active_intermediate()) {
            candidates.push((
                "the intermediate of the store's root rotation state".to_string(),
                der_of(stored, "intermediate"),
            ));
        }
        let mut best: Option<CaMaterial> = None;
        let mut refused = Vec::new();
        for (from, cert) in candidates {
            let fits = cert.and_then(|cert| {
                CaMaterial::intermediate_from_key(cert, key.clone(), root.clone())
                    .map_err(anyhow::Error::from)
            });
            match fits {
                Ok(ca)
                    if best
                        .as_ref()
                        .is_some_and(|b| b.not_after() >= ca.not_after()) => {}
                Ok(ca) => best = Some(ca),
                Err(e) => refused.push(format!("{from}: {e:#}")),
            }
        }
        best.with_context(|| {
            format!(
                "{} holds no intermediate certificate for its key under the CA's current root \
                 {} ({}): {}",
                self.path.display(),
                pki::sha256_hex(&root),
                match &state {
                    Some(s) => format!("root rotation phase {:?}", s.phase),
                    None => "root.crt".to_string(),
                },
                refused.join("; ")
            )
        })
    }

    /// `mtls-ca intermediate csr`: a CSR for the intermediate's own key (it never leaves this
    /// directory) naming the trust domain of the current intermediate.
    pub fn intermediate_csr(&self, store: &dyn Store) -> anyhow::Result<String> {
        let ca = self.require_two_tier(store)?;
        let td = intermediate_trust_domain(&ca)?;
        Ok(intermediate::csr(ca.key(), &td)?)
    }

    /// `mtls-ca intermediate install`: replaces `intermediate.crt` with `cert_pem` after
    /// checking that it is an intermediate of the CA's current root (per the store's root
    /// rotation state, [`DataDir::serving_intermediate`]), for its key and trust domain, valid
    /// now. Returns the old and new NotAfter. Nothing changes on a refusal.
    pub fn install_intermediate(
        &self,
        store: &dyn Store,
        cert_pem: &[u8],
        now: OffsetDateTime,
    ) -> anyhow::Result<(OffsetDateTime, OffsetDateTime)> {
        let current = self.require_two_tier(store)?;
        let new = fitting_intermediate(&current, cert_pem, now)?;
        files::write_atomic(
            &self.intermediate_cert(),
            new.cert_pem().as_bytes(),
            files::PUBLIC_MODE,
        )?;
        Ok((current.not_after(), new.not_after()))
    }

    /// A running CA's check of `intermediate.crt` (`root_follow.rs`): the certificate now in
    /// the file, refused unless it fits `current` exactly as `intermediate install` demands
    /// (the same key, issued by the same root, for the same trust domain, valid now).
    pub(crate) fn reread_intermediate(
        &self,
        current: &CaMaterial,
        now: OffsetDateTime,
    ) -> anyhow::Result<CaMaterial> {
        let path = self.intermediate_cert();
        let pem = files::read(&path)?;
        fitting_intermediate(current, &pem, now).with_context(|| format!("{}", path.display()))
    }

    fn require_two_tier(&self, store: &dyn Store) -> anyhow::Result<CaMaterial> {
        if !self.is_two_tier()? {
            bail!(
                "{} is a single-tier CA (no intermediate.crt): its root signs directly and has \
                 no intermediate to renew",
                self.path.display()
            );
        }
        self.serving_intermediate(store)
    }
}

/// The first certificate of `cert_pem` as the intermediate succeeding `current`: its key must
/// be `current`'s (the file's or the token's), its issuer `current`'s root, its trust domain
/// `current`'s, and it must be valid at `now`.
fn fitting_intermediate(
    current: &CaMaterial,
    cert_pem: &[u8],
    now: OffsetDateTime,
) -> anyhow::Result<CaMaterial> {
    let cert = pki::pem::parse_certificates(cert_pem)?
        .into_iter()
        .next()
        .context("the new intermediate holds no certificate")?;
    fitting_under(current, current.root_der(), cert, now)
}

/// `cert` as an intermediate of `root` for `current`'s key and trust domain, valid at `now`
/// and of the intermediate profile (also `root rotate --from`, for the new root).
pub(crate) fn fitting_under(
    current: &CaMaterial,
    root: &CertificateDer<'static>,
    cert: CertificateDer<'static>,
    now: OffsetDateTime,
) -> anyhow::Result<CaMaterial> {
    let td = intermediate_trust_domain(current)?;
    let new = CaMaterial::intermediate_from_key(cert, current.key().clone(), root.clone())
        .with_context(|| {
            format!(
                "the new certificate does not fit this CA (its key must be intermediate.key's \
                 or the token's, its issuer the CA's current root {})",
                pki::sha256_hex(root)
            )
        })?;
    intermediate::check_profile(new.cert_der(), root, &td, now)?;
    Ok(new)
}

/// The trust domain an intermediate names (`spiffe://<td>`).
pub(crate) fn intermediate_trust_domain(ca: &CaMaterial) -> anyhow::Result<TrustDomain> {
    let info = pki::CertInfo::from_der(ca.cert_der())?;
    let uri = info
        .uris
        .first()
        .context("the intermediate names no trust domain (URI SAN spiffe://<td>)")?;
    let td = uri
        .strip_prefix("spiffe://")
        .with_context(|| format!("the intermediate's URI {uri} is not spiffe://<td>"))?;
    Ok(TrustDomain::parse(td)?)
}

/// `mtls-ca intermediate sign` (on the machine holding the root): the intermediate for the CSR
/// `csr_pem`, signed by the offline root, valid for `lifetime`; with the trust domain it names.
pub fn sign_intermediate(
    root: &CaMaterial,
    csr_pem: &[u8],
    lifetime: Duration,
    now: OffsetDateTime,
) -> anyhow::Result<(String, TrustDomain)> {
    let (spki, td) = intermediate::read_csr(csr_pem).context("reading the intermediate CSR")?;
    let cert = intermediate::issue(root, &spki, &td, lifetime, now)?;
    Ok((pki::pem::encode("CERTIFICATE", &cert), td))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn pass() -> Passphrase {
        Passphrase::new(b"a long enough passphrase".to_vec()).unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn init_keeps_the_root_key_offline_and_the_ceremony_renews_the_intermediate() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(&tmp.path().join("ca"));
        dir.ensure().unwrap();
        let offline = OfflineRoot::new(&tmp.path().join("offline"));
        let td = TrustDomain::parse("mesh.local").unwrap();
        let now = OffsetDateTime::now_utc();
        let made = dir
            .init_two_tier(&offline, &pass(), &td, Duration::days(30), true, now)
            .unwrap();
        assert!(!dir.root_key().exists(), "no root key online");
        assert_eq!(mode(&dir.intermediate_key()), files::KEY_MODE);
        assert_eq!(mode(&offline.key()), files::KEY_MODE);
        assert_eq!(mode(&offline.path), DIR_MODE);
        let sealed = fs::read_to_string(offline.key()).unwrap();
        assert!(sealed.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));

        let (ca, _, store) = dir.open_or_init(None, &td, now).unwrap();
        assert!(ca.is_intermediate());
        assert_eq!(ca.root_fingerprint(), made.root_fingerprint);

        // Renewal: same key, new certificate, later NotAfter.
        let csr = dir.intermediate_csr(&store).unwrap();
        let root = offline.open(&pass()).unwrap();
        let later = now + Duration::days(1);
        let (cert, got_td) =
            sign_intermediate(&root, csr.as_bytes(), Duration::days(60), later).unwrap();
        assert_eq!(got_td, td);
        let (old, new) = dir
            .install_intermediate(&store, cert.as_bytes(), later)
            .unwrap();
        assert!(new > old, "{new} > {old}");
        let (again, _, _) = dir.open_or_init(None, &td, later).unwrap();
        assert_eq!(again.not_after(), new);

        // A certificate for another key, or from another root, is refused and changes nothing.
        let stranger = pki::keys::generate(pki::Curve::P384).unwrap();
        let foreign = intermediate::csr(&stranger, &td).unwrap();
        let (wrong_key, _) =
            sign_intermediate(&root, foreign.as_bytes(), Duration::days(60), later).unwrap();
        assert!(dir
            .install_intermediate(&store, wrong_key.as_bytes(), later)
            .is_err());
        let other_root = CaMaterial::generate_offline_root("mtls-mesh Root CA", now).unwrap();
        let (wrong_root, _) =
            sign_intermediate(&other_root, csr.as_bytes(), Duration::days(60), later).unwrap();
        let err = dir
            .install_intermediate(&store, wrong_root.as_bytes(), later)
            .unwrap_err();
        assert!(format!("{err:#}").contains("does not verify"), "{err:#}");
        assert_eq!(
            fs::read_to_string(dir.intermediate_cert()).unwrap(),
            cert,
            "a refused install changes nothing"
        );

        // The wrong passphrase opens nothing; a second init over either directory is refused.
        let wrong = Passphrase::new(b"not the passphrase at all".to_vec()).unwrap();
        assert!(offline.open(&wrong).is_err());
        let again = DataDir::new(&tmp.path().join("ca2"));
        again.ensure().unwrap();
        let err = again
            .init_two_tier(&offline, &pass(), &td, Duration::days(30), true, now)
            .unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        let err = dir
            .init_two_tier(
                &OfflineRoot::new(&tmp.path().join("offline2")),
                &pass(),
                &td,
                Duration::days(30),
                true,
                now,
            )
            .unwrap_err();
        assert!(err.to_string().contains("already holds a CA"), "{err}");
    }

    #[test]
    fn a_root_key_next_to_the_intermediate_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(&tmp.path().join("ca"));
        dir.ensure().unwrap();
        let offline = OfflineRoot::new(&tmp.path().join("offline"));
        let td = TrustDomain::parse("mesh.local").unwrap();
        let now = OffsetDateTime::now_utc();
        dir.init_two_tier(&offline, &pass(), &td, Duration::days(30), true, now)
            .unwrap();
        fs::copy(offline.key(), dir.root_key()).unwrap();
        let err = dir.open_or_init(None, &td, now).err().unwrap();
        assert!(
            err.to_string().contains("keeps its root key offline"),
            "{err}"
        );
        // Without root.crt the directory is not taken for an empty one.
        fs::remove_file(dir.root_key()).unwrap();
        fs::remove_file(dir.root_cert()).unwrap();
        let err = dir.open_or_init(None, &td, now).err().unwrap();
        assert!(err.to_string().contains("exists without"), "{err}");
        assert!(!dir.root_key().exists(), "no new root was made");
    }
}
