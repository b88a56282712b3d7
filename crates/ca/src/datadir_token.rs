//! CA keys in a PKCS#11 token (`mtls-ca init --key pkcs11:…`, docs/operations.md "Key in an
//! HSM (PKCS#11)"). The data directory holds no key file then: `root.pkcs11` (single tier) or
//! `intermediate.pkcs11` (two tiers) records the key's URI, `pkcs11:token=…;object=…` (no PIN,
//! no module path: those come from `--pkcs11-module` and `--pkcs11-pin-file` at every start).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use pki::jwt_svid::JwtSigner;
use pki::{files, CaKey, CaMaterial, TrustDomain};
use time::OffsetDateTime;

use crate::datadir::{exists, DataDir, ROOT_FINGERPRINT};
use crate::pkcs11::{self, KeyUri, TokenAccess, TokenKey};
use crate::store::SqliteStore;

/// What `init_token_root` made.
#[derive(Debug)]
pub struct TokenRoot {
    /// The new root's SHA-256 fingerprint.
    pub root_fingerprint: String,
    /// True when the key was generated in the token now (false: an existing object).
    pub generated: bool,
    /// The JWT-SVID signing key, in the same token (`jwt.pkcs11`).
    pub jwt_key: String,
}

impl DataDir {
    /// `root.pkcs11`: the URI of the root key in a token (single-tier CA).
    pub fn root_token_ref(&self) -> PathBuf {
        self.path.join("root.pkcs11")
    }

    /// `intermediate.pkcs11`: the URI of the intermediate's key in a token (two-tier CA).
    pub fn intermediate_token_ref(&self) -> PathBuf {
        self.path.join("intermediate.pkcs11")
    }

    /// `jwt.pkcs11`: the URI of the JWT-SVID signing key in a token (a CA whose key is in a
    /// token), instead of `jwt.key`.
    pub fn jwt_token_ref(&self) -> PathBuf {
        self.path.join("jwt.pkcs11")
    }

    /// The URI a `*.pkcs11` file records.
    fn read_token_ref(reference: &Path) -> anyhow::Result<KeyUri> {
        let text = files::read(reference)?;
        String::from_utf8_lossy(&text)
            .trim()
            .parse()
            .map_err(|e: String| anyhow::anyhow!("{}: {e}", reference.display()))
    }

    /// The token access a key named by `reference` needs.
    fn access_for(&self, reference: &Path, uri: &KeyUri) -> anyhow::Result<&TokenAccess> {
        // Every subcommand that opens a token key reaches this (serve, `intermediate csr`,
        // ...): the options are global, so the advice fits whichever ran.
        self.token_access.as_ref().with_context(|| {
            format!(
                "the key is in a PKCS#11 token ({} names {uri}): give this command \
                 --pkcs11-module and --pkcs11-pin-file (or MTLS_CA_PKCS11_MODULE and \
                 MTLS_CA_PKCS11_PIN_FILE), the same as the serving CA's",
                reference.display()
            )
        })
    }

    /// The key a `*.pkcs11` file names, opened in its token.
    pub(crate) fn open_token_key(&self, reference: &Path) -> anyhow::Result<CaKey> {
        let uri = Self::read_token_ref(reference)?;
        let key = TokenKey::open(self.access_for(reference, &uri)?, &uri).with_context(|| {
            format!("opening the CA key {uri} named by {}", reference.display())
        })?;
        Ok(pkcs11::ca_key(key)?)
    }

    /// The URI of the CA's signing key when the directory records one in a token
    /// (`root.pkcs11` or `intermediate.pkcs11`).
    pub(crate) fn ca_token_uri(&self) -> anyhow::Result<Option<KeyUri>> {
        for reference in [self.intermediate_token_ref(), self.root_token_ref()] {
            if exists(&reference)? {
                return Ok(Some(Self::read_token_ref(&reference)?));
            }
        }
        Ok(None)
    }

    /// The JWT-SVID signing key of a CA whose key is in a token, in that token: the key
    /// `jwt.pkcs11` names; without that file, the key labelled `object` (default: the CA key's
    /// label with `-jwt` appended, [`jwt_object_for`]) in the CA key's token, generated there
    /// (sensitive, not extractable) when missing, and then recorded in `jwt.pkcs11`. True when
    /// it was generated now. `jwt.key` is never written.
    pub fn token_jwt_key(
        &self,
        ca: &KeyUri,
        object: Option<&str>,
    ) -> anyhow::Result<(JwtSigner, bool)> {
        let reference = self.jwt_token_ref();
        if exists(&reference)? {
            let uri = Self::read_token_ref(&reference)?;
            let key =
                TokenKey::open(self.access_for(&reference, &uri)?, &uri).with_context(|| {
                    format!(
                        "opening the JWT-SVID signing key {uri} named by {}",
                        reference.display()
                    )
                })?;
            return Ok((jwt_signer(key)?, false));
        }
        let uri = KeyUri {
            token: ca.token.clone(),
            object: object.map_or_else(|| jwt_object_for(ca), str::to_string),
        };
        if uri.object == ca.object {
            bail!(
                "the JWT-SVID key must be another key than the CA key ({uri}): give it another \
                 label"
            );
        }
        let access = self
            .token_access
            .as_ref()
            .with_context(|| format!("{uri} needs --pkcs11-module and --pkcs11-pin-file"))?;
        let (key, generated) = TokenKey::open_or_generate(access, &uri)
            .with_context(|| format!("the JWT-SVID signing key {uri}"))?;
        let signer = jwt_signer(key)?;
        self.ensure()?;
        files::write_atomic(
            &reference,
            format!("{uri}\n").as_bytes(),
            files::PUBLIC_MODE,
        )?;
        Ok((signer, generated))
    }

    /// The root of a single-tier directory whose key is in a token.
    pub(crate) fn load_token_root(&self) -> anyhow::Result<CaMaterial> {
        if exists(&self.root_key())? {
            bail!(
                "{} holds both {} and {}: the key is either in a token or in a file; move the \
                 one not in use away",
                self.path.display(),
                self.root_key().display(),
                self.root_token_ref().display()
            );
        }
        let key = self.open_token_key(&self.root_token_ref())?;
        let cert = self.read_cert(&self.root_cert())?;
        CaMaterial::from_key(cert, key)
            .with_context(|| format!("loading the root from {}", self.path.display()))
    }

    /// The first certificate of a PEM file.
    pub(crate) fn read_cert(
        &self,
        path: &Path,
    ) -> anyhow::Result<rustls_pki_types::CertificateDer<'static>> {
        pki::pem::parse_certificates(&files::read(path)?)
            .with_context(|| format!("reading {}", path.display()))?
            .into_iter()
            .next()
            .with_context(|| format!("{} holds no certificate", path.display()))
    }

    /// `mtls-ca init --key pkcs11:…` without `--offline-root`: a single-tier root whose key is
    /// generated in the token (or is the existing object `uri` names), in an empty data
    /// directory. The token is opened (module, token, PIN) before anything is created here.
    /// With `sqlite` the database is created too.
    pub fn init_token_root(
        &self,
        uri: &KeyUri,
        jwt_object: Option<&str>,
        trust_domain: &TrustDomain,
        sqlite: bool,
        now: OffsetDateTime,
    ) -> anyhow::Result<TokenRoot> {
        let Some(access) = self.token_access.clone() else {
            bail!("--key {uri} needs --pkcs11-module and --pkcs11-pin-file");
        };
        self.secure()?;
        self.refuse_existing_ca(&self.root_token_ref())?;
        let (key, generated) = TokenKey::open_or_generate(&access, uri)?;
        // Only now, with the key in hand, does anything appear on disk: first the JWT-SVID
        // key's reference (made in the token too), then the root's.
        let (jwt, _) = self.token_jwt_key(uri, jwt_object)?;
        let ca = CaMaterial::generate_root_with("mtls-mesh Root CA", pkcs11::ca_key(key)?, now)?;
        if sqlite {
            SqliteStore::initialise(
                &self.pending_db(),
                &[
                    ("trust_domain", trust_domain.as_str()),
                    (ROOT_FINGERPRINT, &ca.root_fingerprint()),
                ],
            )?;
        }
        // The reference before the certificate: root.crt without a way to its key would be
        // a CA that cannot sign.
        files::write_atomic(
            &self.root_token_ref(),
            format!("{uri}\n").as_bytes(),
            files::PUBLIC_MODE,
        )?;
        files::write_atomic(
            &self.root_cert(),
            ca.cert_pem().as_bytes(),
            files::PUBLIC_MODE,
        )?;
        if sqlite {
            self.commit_pending()?;
        }
        Ok(TokenRoot {
            root_fingerprint: ca.root_fingerprint(),
            generated,
            jwt_key: jwt.device_name().unwrap_or_default(),
        })
    }
}

/// Opens (or generates) the token key `uri` for a new intermediate (`mtls-ca init
/// --offline-root DIR --key pkcs11:…`).
pub fn intermediate_token_key(access: &TokenAccess, uri: &KeyUri) -> anyhow::Result<CaKey> {
    let (key, generated) = TokenKey::open_or_generate(access, uri)?;
    if !generated {
        tracing::info!(key = %uri, "using the existing key in the token for the intermediate");
    }
    Ok(pkcs11::ca_key(key)?)
}

/// The label of the JWT-SVID key next to the CA key `ca` in its token: the CA key's label
/// with `-jwt` appended (`ca-key` → `ca-key-jwt`).
pub fn jwt_object_for(ca: &KeyUri) -> String {
    format!("{}-jwt", ca.object)
}

/// A JWT-SVID signer over a token key.
fn jwt_signer(key: TokenKey) -> anyhow::Result<JwtSigner> {
    let uri = key.uri().clone();
    JwtSigner::device(std::sync::Arc::new(key))
        .with_context(|| format!("the JWT-SVID signing key {uri}"))
}
