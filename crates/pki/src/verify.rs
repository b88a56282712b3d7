//! Certificate path validation: the one verifier the services and `mtls-inspect verify` share.
//!
//! rustls-webpki (with the aws-lc-rs signature algorithms the [`AlgorithmPolicy`] allows) builds
//! and checks the path: signatures, validity at the given time, basicConstraints, pathLen, name
//! constraints, EKU and, when CRLs are given, revocation. On top of that this module checks the
//! hostname, the X509-SVID rule set of `pki::svid` on the end entity (every certificate carrying a
//! `spiffe://` URI SAN is held to the SVID MUSTs), the expected SPIFFE ID or trust domain, and
//! that the end-entity key fits the algorithm policy; with [`TrustOptions::strict`], the RFC 5280
//! checks of `pki::rfc5280` on every certificate of the path. CRLs go through the strict rules of
//! `pki::crl` when the store is built. Every failure is a [`VerifyError`] whose message gives the
//! expected and the presented values, read from the certificates themselves.
//!
//! The defaults are what the services enforce (ECDSA only, SVID rules, not strict), so
//! `mtls-inspect verify` without options gives the services' verdict.
//!
//! Build a [`TrustStore`] once per root bundle / CRL refresh and call [`TrustStore::verify`] per
//! handshake, or use [`verify_chain`] for a one-off check.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use time::OffsetDateTime;
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, ExtendedKeyUsageValidator,
    KeyPurposeIdIter, KeyUsage, RevocationCheckDepth, RevocationOptionsBuilder,
    UnknownStatusPolicy,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::certinfo::CertInfo;
use crate::crl::CrlError;
use crate::rfc5280::{self, PathRole};
use crate::sigalg::KeyKind;
use crate::spiffe::{SpiffeId, TrustDomain};
use crate::svid::{SvidRules, SvidViolation};

pub use crate::sigalg::AlgorithmPolicy;

mod error;
mod explain;
mod signature;

pub use error::VerifyError;

pub use explain::eku_names;
use explain::Context;
pub use signature::{signature_algorithm_name, signature_verifies, verify_signed};

/// What the certificate is being verified for; selects the required EKU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// TLS server: EKU serverAuth (when the certificate has an EKU extension).
    Server,
    /// TLS client: EKU clientAuth (when the certificate has an EKU extension).
    Client,
    /// Any purpose: the EKU extension is not checked (it must still be well formed).
    Any,
}

impl Purpose {
    /// The EKU name this purpose needs ("serverAuth", "clientAuth"), or "any".
    pub fn eku_name(self) -> &'static str {
        match self {
            Purpose::Server => "serverAuth",
            Purpose::Client => "clientAuth",
            Purpose::Any => "any",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Purpose::Server => "server",
            Purpose::Client => "client",
            Purpose::Any => "any",
        })
    }
}

impl FromStr for Purpose {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "server" | "serverauth" => Ok(Purpose::Server),
            "client" | "clientauth" => Ok(Purpose::Client),
            "any" => Ok(Purpose::Any),
            _ => Err(format!(
                "unknown purpose {s:?} (expected server, client or any)"
            )),
        }
    }
}

/// The identity the certificate must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectedIdentity {
    /// Exactly this SPIFFE ID.
    SpiffeId(SpiffeId),
    /// Any workload SPIFFE ID in this trust domain.
    TrustDomain(TrustDomain),
}

impl fmt::Display for ExpectedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedIdentity::SpiffeId(id) => write!(f, "{id}"),
            ExpectedIdentity::TrustDomain(td) => write!(f, "trust domain {td}"),
        }
    }
}

/// How CRLs are applied when some are given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevocationPolicy {
    /// Check the intermediates too, not only the end-entity certificate.
    pub check_chain: bool,
    /// Accept a certificate when no given CRL covers its issuer (default: reject).
    pub allow_unknown_status: bool,
    /// Reject a CRL whose nextUpdate has passed (default: yes).
    pub enforce_next_update: bool,
}

impl Default for RevocationPolicy {
    fn default() -> Self {
        RevocationPolicy {
            check_chain: false,
            allow_unknown_status: false,
            enforce_next_update: true,
        }
    }
}

/// The per-verification inputs.
#[derive(Clone, Debug)]
pub struct VerifyOptions<'a> {
    /// The time at which the certificates must be valid (usually now).
    pub time: OffsetDateTime,
    /// Server or client (selects the EKU required).
    pub purpose: Purpose,
    /// A DNS name or an IP address that must be in the certificate's SANs.
    pub hostname: Option<&'a str>,
    /// The SPIFFE ID or trust domain the certificate must carry.
    pub identity: Option<&'a ExpectedIdentity>,
}

impl VerifyOptions<'_> {
    /// Options for `purpose` at `time`, with no hostname and no identity requirement.
    pub fn new(time: OffsetDateTime, purpose: Purpose) -> VerifyOptions<'static> {
        VerifyOptions {
            time,
            purpose,
            hostname: None,
            identity: None,
        }
    }
}

/// One certificate of a verified path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainEntry {
    /// Subject distinguished name.
    pub subject: String,
    /// Hex SHA-256 of the DER.
    pub fingerprint: String,
}

/// What a successful verification established.
#[derive(Clone, Debug)]
pub struct Verified {
    /// Facts about the end-entity certificate.
    pub leaf: CertInfo,
    /// The SPIFFE ID: the certificate is an X509-SVID (exactly one URI SAN, a valid SPIFFE ID,
    /// and the other SVID rules hold).
    pub spiffe_id: Option<SpiffeId>,
    /// The path: end entity, the intermediates used, and the root last.
    pub chain: Vec<ChainEntry>,
    /// The purpose verified for.
    pub purpose: Purpose,
    /// The hostname verified, if one was required.
    pub hostname: Option<String>,
    /// True when a CRL from the end entity's issuer was consulted.
    pub revocation_checked: bool,
    /// The verification time.
    pub checked_at: OffsetDateTime,
    /// Things that do not make the path invalid for webpki but that a human should know
    /// (for example an expired root: webpki, like rustls, does not check root validity).
    pub warnings: Vec<String>,
}

impl Verified {
    /// The root the path ends at.
    pub fn root(&self) -> Option<&ChainEntry> {
        self.chain.last()
    }
}

/// Extensions the verifier processes (dotted OIDs). Any other extension marked critical makes
/// validation fail, as RFC 5280 requires.
pub const SUPPORTED_EXTENSIONS: &[&str] = &[
    "2.5.29.15",         // keyUsage
    "2.5.29.17",         // subjectAltName
    "2.5.29.19",         // basicConstraints
    "2.5.29.30",         // nameConstraints
    "2.5.29.31",         // cRLDistributionPoints
    "2.5.29.37",         // extKeyUsage
    "1.3.6.1.5.5.7.1.1", // authorityInfoAccess
];

/// A parsed trusted root.
#[derive(Debug)]
struct Root {
    der: Vec<u8>,
    subject: String,
    fingerprint: String,
    spki: Vec<u8>,
    raw_subject: Vec<u8>,
    not_after: OffsetDateTime,
}

/// A CRL that passed the issuer-independent rules of `pki::crl`.
#[derive(Debug)]
struct Crl {
    /// "CRL #n", as errors name it.
    what: String,
    der: Vec<u8>,
    list: CertRevocationList<'static>,
    issuer: String,
    raw_issuer: Vec<u8>,
    /// False while its issuer is not a root: checked against the presented intermediates
    /// at each verification (see [`TrustStore::check_intermediate_crls`]).
    issuer_checked: bool,
}

/// How a [`TrustStore`] judges; the default is what the services enforce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrustOptions {
    /// Signature algorithms for certificates and CRLs, and the end-entity key types.
    pub algorithms: AlgorithmPolicy,
    /// What happens when a CRL does not cover a certificate.
    pub revocation: RevocationPolicy,
    /// Adds the RFC 5280 checks of `pki::rfc5280` (key identifiers, SAN criticality, DNS name
    /// syntax, root sanity) to every certificate of the path.
    pub strict: bool,
}

/// The earliest verification time: rustls-webpki counts seconds from the Unix epoch.
pub const EARLIEST_TIME: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;
/// The latest verification time: the last second of year 9999, the largest time an X.509
/// GeneralizedTime (and the `time` crate) can represent.
pub const LATEST_TIME: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59 UTC);

/// Checks that `time` can be a verification time ([`EARLIEST_TIME`] to [`LATEST_TIME`]).
pub fn check_time(time: OffsetDateTime) -> Result<(), VerifyError> {
    if time < EARLIEST_TIME || time > LATEST_TIME {
        return Err(VerifyError::TimeOutOfRange {
            time,
            earliest: EARLIEST_TIME,
            latest: LATEST_TIME,
        });
    }
    Ok(())
}

/// Trusted roots and CRLs, parsed once and reused for many verifications.
#[derive(Debug)]
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    roots: Vec<Root>,
    crls: Vec<Crl>,
    options: TrustOptions,
}

impl TrustStore {
    /// Parses the roots (DER certificates) and the CRLs (DER) with the default options. At
    /// least one root is needed. See [`TrustStore::with_options`].
    pub fn new<C: AsRef<[u8]>>(
        roots: &[CertificateDer<'_>],
        crls: &[C],
    ) -> Result<TrustStore, VerifyError> {
        TrustStore::with_options(roots, crls, TrustOptions::default())
    }

    /// Parses the roots and the CRLs. Every CRL must pass the rules of `pki::crl` that need no
    /// issuer (CRL Number, algorithm identifiers, critical extensions); one issued by a root
    /// must also pass the issuer rules (signature, algorithm fits the key and `options`,
    /// cRLSign, also on the trust anchor) now. One issued by someone else is checked against
    /// the intermediates presented with each certificate (an intermediate is only known then).
    pub fn with_options<C: AsRef<[u8]>>(
        roots: &[CertificateDer<'_>],
        crls: &[C],
        options: TrustOptions,
    ) -> Result<TrustStore, VerifyError> {
        if roots.is_empty() {
            return Err(VerifyError::NoRoots);
        }
        let mut store = TrustStore {
            anchors: Vec::with_capacity(roots.len()),
            roots: Vec::with_capacity(roots.len()),
            crls: Vec::with_capacity(crls.len()),
            options,
        };
        for (i, der) in roots.iter().enumerate() {
            let what = format!("root certificate #{}", i + 1);
            let anchor = webpki::anchor_from_trusted_cert(der)
                .map_err(|e| malformed(&what, webpki_reason(&e)))?
                .to_owned();
            let (_, cert) =
                X509Certificate::from_der(der).map_err(|e| malformed(&what, e.to_string()))?;
            store.roots.push(Root {
                der: der.to_vec(),
                subject: cert.subject().to_string(),
                fingerprint: crate::sha256_hex(der),
                spki: cert.tbs_certificate.subject_pki.raw.to_vec(),
                raw_subject: cert.subject().as_raw().to_vec(),
                not_after: cert.validity().not_after.to_datetime(),
            });
            store.anchors.push(anchor);
        }
        let root_ders: Vec<&[u8]> = store.roots.iter().map(|r| r.der.as_slice()).collect();
        for (i, der) in crls.iter().enumerate() {
            let der = der.as_ref();
            let what = format!("CRL #{}", i + 1);
            let refused = |error: CrlError| crl_error(&what, error);
            let parsed = crate::crl::parse_strict(der).map_err(refused)?;
            crate::crl::check_structure(&parsed).map_err(refused)?;
            let raw_issuer = parsed.issuer().as_raw().to_vec();
            let issued_by_root = store.roots.iter().any(|r| r.raw_subject == raw_issuer);
            if issued_by_root {
                crate::crl::find_issuer(&parsed, &root_ders, options.algorithms)
                    .map_err(refused)?;
            }
            let owned = crate::crl::parse_webpki(&parsed, der).map_err(refused)?;
            store.crls.push(Crl {
                what,
                der: der.to_vec(),
                list: CertRevocationList::from(owned),
                issuer: parsed.issuer().to_string(),
                raw_issuer,
                issuer_checked: issued_by_root,
            });
        }
        Ok(store)
    }

    /// The options the store judges by.
    pub fn options(&self) -> TrustOptions {
        self.options
    }

    /// Replaces the revocation policy (the default checks the end entity only, rejects an
    /// unknown status and enforces nextUpdate).
    pub fn with_revocation_policy(mut self, policy: RevocationPolicy) -> TrustStore {
        self.options.revocation = policy;
        self
    }

    /// Applies the issuer rules of `pki::crl` to the CRLs whose issuer is not a root, against
    /// the presented intermediates with that name. A CRL that names none of them plays no part
    /// in this verification (webpki cannot use it either).
    fn check_intermediate_crls(
        &self,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), VerifyError> {
        for crl in self.crls.iter().filter(|c| !c.issuer_checked) {
            let candidates: Vec<&[u8]> = intermediates
                .iter()
                .map(|c| c.as_ref())
                .filter(|der| {
                    X509Certificate::from_der(der)
                        .is_ok_and(|(_, c)| c.subject().as_raw() == crl.raw_issuer.as_slice())
                })
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let parsed = crate::crl::parse_strict(&crl.der).map_err(|e| crl_error(&crl.what, e))?;
            crate::crl::find_issuer(&parsed, &candidates, self.options.algorithms)
                .map_err(|e| crl_error(&crl.what, e))?;
        }
        Ok(())
    }

    /// The subjects of the trusted roots, in the order given.
    pub fn root_subjects(&self) -> Vec<String> {
        self.roots.iter().map(|r| r.subject.clone()).collect()
    }

    /// The DER-encoded subject Names of the roots (for a TLS server's CertificateRequest
    /// `certificate_authorities`, i.e. rustls' `root_hint_subjects`).
    pub fn root_subjects_der(&self) -> Vec<Vec<u8>> {
        self.roots.iter().map(|r| r.raw_subject.clone()).collect()
    }

    /// Number of trusted roots and of CRLs.
    pub fn counts(&self) -> (usize, usize) {
        (self.roots.len(), self.crls.len())
    }

    /// Verifies `end_entity` (DER) with the `intermediates` the peer sent.
    pub fn verify(
        &self,
        end_entity: &[u8],
        intermediates: &[CertificateDer<'_>],
        opts: &VerifyOptions<'_>,
    ) -> Result<Verified, VerifyError> {
        check_time(opts.time)?;
        let ctx = Context::new(self, end_entity, intermediates)?;
        self.check_intermediate_crls(intermediates)?;
        let ee_der = CertificateDer::from(end_entity);
        let ee = EndEntityCert::try_from(&ee_der).map_err(|e| match e {
            webpki::Error::UnsupportedCriticalExtension => ctx.explain(e, opts.purpose),
            other => malformed("end-entity certificate", webpki_reason(&other)),
        })?;
        let time = unix_time(opts.time)?;
        let crl_refs: Vec<&CertRevocationList<'static>> =
            self.crls.iter().map(|c| &c.list).collect();
        let revocation = match RevocationOptionsBuilder::new(&crl_refs) {
            Ok(builder) => Some(
                builder
                    .with_depth(if self.options.revocation.check_chain {
                        RevocationCheckDepth::Chain
                    } else {
                        RevocationCheckDepth::EndEntity
                    })
                    .with_status_policy(if self.options.revocation.allow_unknown_status {
                        UnknownStatusPolicy::Allow
                    } else {
                        UnknownStatusPolicy::Deny
                    })
                    .with_expiration_policy(if self.options.revocation.enforce_next_update {
                        ExpirationPolicy::Enforce
                    } else {
                        ExpirationPolicy::Ignore
                    })
                    .build(),
            ),
            // No CRLs given: no revocation checking.
            Err(_) => None,
        };
        let algs = self.options.algorithms.webpki_algorithms();
        let path_subjects = match opts.purpose {
            Purpose::Server => {
                let usage = KeyUsage::server_auth();
                let path = ee
                    .verify_for_usage(
                        algs,
                        &self.anchors,
                        intermediates,
                        time,
                        usage,
                        revocation,
                        None,
                    )
                    .map_err(|e| ctx.explain(e, opts.purpose))?;
                path_entries(&path)
            }
            Purpose::Client => {
                let usage = KeyUsage::client_auth();
                let path = ee
                    .verify_for_usage(
                        algs,
                        &self.anchors,
                        intermediates,
                        time,
                        usage,
                        revocation,
                        None,
                    )
                    .map_err(|e| ctx.explain(e, opts.purpose))?;
                path_entries(&path)
            }
            Purpose::Any => {
                let path = ee
                    .verify_for_usage(
                        algs,
                        &self.anchors,
                        intermediates,
                        time,
                        AnyPurpose,
                        revocation,
                        None,
                    )
                    .map_err(|e| ctx.explain(e, opts.purpose))?;
                path_entries(&path)
            }
        };

        if let Some(name) = opts.hostname {
            check_hostname(&ee, name, &ctx.leaf)?;
        }
        let (_, leaf_cert) = X509Certificate::from_der(end_entity)
            .map_err(|e| malformed("end-entity certificate", e.to_string()))?;
        let spiffe_id = check_leaf(&leaf_cert, opts.identity)?;
        let key = KeyKind::of(leaf_cert.public_key());
        if !self.options.algorithms.allows_end_entity_key(&key) {
            return Err(VerifyError::EndEntityKeyNotAllowed {
                key: key.to_string(),
                policy: self.options.algorithms,
            });
        }

        let mut chain = vec![ChainEntry {
            subject: ctx.leaf.subject.clone(),
            fingerprint: ctx.leaf.fingerprint.clone(),
        }];
        let mut warnings = Vec::new();
        let (intermediate_ders, anchor) = path_subjects;
        let mut parsed_intermediates = Vec::with_capacity(intermediate_ders.len());
        for der in &intermediate_ders {
            let (_, cert) = X509Certificate::from_der(der)
                .map_err(|e| malformed("intermediate certificate", e.to_string()))?;
            chain.push(ChainEntry {
                subject: cert.subject().to_string(),
                fingerprint: crate::sha256_hex(der),
            });
            parsed_intermediates.push(cert);
        }
        let root = self
            .roots
            .iter()
            .find(|r| r.raw_subject_matches(&anchor.0) && r.spki_matches(&anchor.1));
        if let Some(root) = root {
            chain.push(ChainEntry {
                subject: root.subject.clone(),
                fingerprint: root.fingerprint.clone(),
            });
            if root.not_after < opts.time && !self.options.strict {
                warnings.push(format!(
                    "root {} expired at {} (webpki and rustls do not check root validity)",
                    root.subject,
                    crate::timefmt::rfc3339(root.not_after)
                ));
            }
        }
        if self.options.strict {
            self.strict_checks(&leaf_cert, &parsed_intermediates, root, opts.time)?;
        }
        let leaf_issuer_raw = ctx.leaf_issuer_raw.clone();
        let revocation_checked = self.crls.iter().any(|c| c.raw_issuer == leaf_issuer_raw);
        Ok(Verified {
            leaf: ctx.leaf,
            spiffe_id,
            chain,
            purpose: opts.purpose,
            hostname: opts.hostname.map(str::to_string),
            revocation_checked,
            checked_at: opts.time,
            warnings,
        })
    }
}

impl TrustStore {
    /// The RFC 5280 checks of `pki::rfc5280` on every certificate of the validated path; the
    /// first violation is the error.
    fn strict_checks(
        &self,
        leaf: &X509Certificate<'_>,
        intermediates: &[X509Certificate<'_>],
        root: Option<&Root>,
        at: OffsetDateTime,
    ) -> Result<(), VerifyError> {
        let policy = self.options.algorithms;
        let first = |who: String, violations: Vec<rfc5280::Rfc5280Violation>| match violations
            .into_iter()
            .next()
        {
            Some(violation) => Err(VerifyError::Strict { who, violation }),
            None => Ok(()),
        };
        first(
            "certificate".into(),
            rfc5280::path_violations(leaf, PathRole::EndEntity, at, policy),
        )?;
        for cert in intermediates {
            first(
                format!("intermediate certificate {}", cert.subject()),
                rfc5280::path_violations(cert, PathRole::Intermediate, at, policy),
            )?;
        }
        if let Some(root) = root {
            let (_, cert) = X509Certificate::from_der(&root.der)
                .map_err(|e| malformed("root certificate", e.to_string()))?;
            first(
                format!("root {}", root.subject),
                rfc5280::path_violations(&cert, PathRole::Root, at, policy),
            )?;
        }
        Ok(())
    }
}

impl Root {
    /// `content` is the Name without its SEQUENCE header, as webpki keeps it.
    fn raw_subject_matches(&self, content: &[u8]) -> bool {
        name_content(&self.raw_subject) == content
    }

    fn spki_matches(&self, anchor_spki_content: &[u8]) -> bool {
        name_content(&self.spki) == anchor_spki_content
    }
}

/// Strips the outer tag and length of a DER element (webpki keeps only the contents).
fn name_content(der: &[u8]) -> &[u8] {
    if der.len() < 2 {
        return der;
    }
    let len_byte = der[1];
    let header = if len_byte < 0x80 {
        2
    } else {
        2 + usize::from(len_byte & 0x7f)
    };
    der.get(header..).unwrap_or(der)
}

/// (DER of the intermediates used, (anchor subject content, anchor SPKI content)).
type PathParts = (Vec<Vec<u8>>, (Vec<u8>, Vec<u8>));

fn path_entries(path: &webpki::VerifiedPath<'_>) -> PathParts {
    let intermediates = path
        .intermediate_certificates()
        .map(|c| c.der().as_ref().to_vec())
        .collect();
    let anchor = path.anchor();
    (
        intermediates,
        (
            anchor.subject.as_ref().to_vec(),
            anchor.subject_public_key_info.as_ref().to_vec(),
        ),
    )
}

/// Verifies once: parses `roots` and `crls`, then checks `end_entity` with `intermediates`.
pub fn verify_chain<C: AsRef<[u8]>>(
    end_entity: &[u8],
    intermediates: &[CertificateDer<'_>],
    roots: &[CertificateDer<'_>],
    crls: &[C],
    opts: &VerifyOptions<'_>,
) -> Result<Verified, VerifyError> {
    TrustStore::new(roots, crls)?.verify(end_entity, intermediates, opts)
}

/// EKU validator for [`Purpose::Any`]: accepts any (well-formed) EKU extension.
struct AnyPurpose;

impl ExtendedKeyUsageValidator for AnyPurpose {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for id in iter {
            id?;
        }
        Ok(())
    }
}

fn malformed(what: &str, reason: impl Into<String>) -> VerifyError {
    VerifyError::Malformed {
        what: what.to_string(),
        reason: reason.into(),
    }
}

pub(crate) fn webpki_reason(e: &webpki::Error) -> String {
    match e {
        webpki::Error::BadDer => "invalid DER encoding".into(),
        webpki::Error::BadDerTime => "invalid DER time".into(),
        webpki::Error::UnsupportedCertVersion => "not an X.509 v3 certificate".into(),
        webpki::Error::TrailingData(t) => format!("trailing data after {t:?}"),
        other => format!("{other:?}"),
    }
}

fn unix_time(t: OffsetDateTime) -> Result<UnixTime, VerifyError> {
    check_time(t)?;
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| VerifyError::TimeOutOfRange {
        time: t,
        earliest: EARLIEST_TIME,
        latest: LATEST_TIME,
    })?;
    Ok(UnixTime::since_unix_epoch(StdDuration::from_secs(secs)))
}

fn crl_error(what: &str, error: CrlError) -> VerifyError {
    if error.is_malformed() {
        malformed(what, error.to_string())
    } else {
        VerifyError::Crl {
            crl: what.to_string(),
            error,
        }
    }
}

fn from_unix(t: UnixTime) -> OffsetDateTime {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn check_hostname(ee: &EndEntityCert<'_>, name: &str, leaf: &CertInfo) -> Result<(), VerifyError> {
    let server_name = ServerName::try_from(name).map_err(|_| VerifyError::InvalidHostname {
        name: name.to_string(),
    })?;
    ee.verify_is_valid_for_subject_name(&server_name)
        .map_err(|_| {
            let mut presented: Vec<String> = leaf.dns.clone();
            presented.extend(leaf.ips.iter().map(IpAddr::to_string));
            VerifyError::HostnameMismatch {
                expected: name.to_string(),
                presented,
            }
        })
}

/// The SPIFFE ID of an X509-SVID: its only URI SAN, if that is a valid SPIFFE ID (the URI rule
/// of `pki::svid`; [`CertInfo::spiffe_id`] gives the same answer).
pub fn svid_id(leaf: &CertInfo) -> Option<SpiffeId> {
    leaf.spiffe_id()
}

/// The end-entity rules: `pki::svid` (every certificate judged as an X509-SVID when an
/// identity is expected), then the expected ID or trust domain.
fn check_leaf(
    leaf: &X509Certificate<'_>,
    expected: Option<&ExpectedIdentity>,
) -> Result<Option<SpiffeId>, VerifyError> {
    let rules = if expected.is_some() {
        SvidRules::requiring_spiffe_id()
    } else {
        SvidRules::new()
    };
    let id = rules.check(leaf).map_err(|v| match (v, expected) {
        (SvidViolation::NoUriSan, Some(e)) => VerifyError::NoUriSan {
            expected: e.to_string(),
        },
        (v, _) => VerifyError::Svid(v),
    })?;
    match (expected, id) {
        (Some(ExpectedIdentity::SpiffeId(want)), Some(id)) if &id != want => {
            Err(VerifyError::SpiffeIdMismatch {
                presented: id.to_string(),
                expected: want.to_string(),
            })
        }
        (Some(ExpectedIdentity::TrustDomain(td)), Some(id)) if id.trust_domain() != td => {
            Err(VerifyError::TrustDomainMismatch {
                presented: id.to_string(),
                expected: td.to_string(),
            })
        }
        (_, id) => Ok(id),
    }
}

#[cfg(test)]
mod tests;
