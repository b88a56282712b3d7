//! Certificate path validation: the one verifier the services and `mtls-inspect verify` share.
//!
//! rustls-webpki (with the aws-lc-rs signature algorithms) builds and checks the path: signatures,
//! validity at the given time, basicConstraints, pathLen, name constraints, EKU and, when CRLs are
//! given, revocation. On top of that this module checks the hostname and the SPIFFE ID rule of an
//! X509-SVID (exactly one URI SAN, a valid SPIFFE ID, the expected ID or trust domain), and turns
//! every failure into a [`VerifyError`] whose message gives the expected and the presented values,
//! read from the certificates themselves.
//!
//! Build a [`TrustStore`] once per root bundle / CRL refresh and call [`TrustStore::verify`] per
//! handshake, or use [`verify_chain`] for a one-off check.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, ExtendedKeyUsageValidator,
    KeyPurposeIdIter, KeyUsage, OwnedCertRevocationList, RevocationCheckDepth,
    RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::certinfo::{colon_hex, CertInfo};
use crate::curve::Curve;
use crate::spiffe::{SpiffeId, TrustDomain};

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
    pub subject: String,
    /// Hex SHA-256 of the DER.
    pub fingerprint: String,
}

/// What a successful verification established.
#[derive(Clone, Debug)]
pub struct Verified {
    /// Facts about the end-entity certificate.
    pub leaf: CertInfo,
    /// The SPIFFE ID, when the certificate has exactly one URI SAN and it is a valid SPIFFE ID.
    pub spiffe_id: Option<SpiffeId>,
    /// The path: end entity, the intermediates used, and the root last.
    pub chain: Vec<ChainEntry>,
    pub purpose: Purpose,
    pub hostname: Option<String>,
    /// True when a CRL from the end entity's issuer was consulted.
    pub revocation_checked: bool,
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

/// Why a certificate is not valid, worded with expected and presented values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("cannot parse the {what}: {reason}")]
    Malformed { what: String, reason: String },
    #[error("no trusted roots were given")]
    NoRoots,
    #[error("{who} expired at {}, checked at {}", rfc3339(.not_after), rfc3339(.checked_at))]
    Expired {
        who: String,
        not_after: OffsetDateTime,
        checked_at: OffsetDateTime,
    },
    #[error("{who} is not yet valid until {}, checked at {}", rfc3339(.not_before), rfc3339(.checked_at))]
    NotYetValid {
        who: String,
        not_before: OffsetDateTime,
        checked_at: OffsetDateTime,
    },
    #[error("{who} has NotBefore after NotAfter")]
    InvalidValidity { who: String },
    #[error("issuer {issuer} is not in the roots {}", list(.roots))]
    UnknownIssuer { issuer: String, roots: Vec<String> },
    #[error("the signature on {subject} does not verify with the public key of {issuer} (same name, different key: was the CA re-created?)")]
    BadSignature { subject: String, issuer: String },
    #[error("{subject} is signed with {algorithm}, which the verifier does not accept for its issuer's key")]
    UnsupportedSignature { subject: String, algorithm: String },
    #[error("certificate is a CA (CA:TRUE) and cannot be used as a leaf")]
    CaUsedAsLeaf { subject: String },
    #[error("{subject} issues another certificate of the chain but is not a CA (basicConstraints CA:TRUE is missing)")]
    NotACa { subject: String },
    #[error("the chain {} is longer than a pathLenConstraint of its CAs allows", chain_list(.chain))]
    PathLen { chain: Vec<String> },
    #[error("certificate lacks {required} EKU (it has {})", list(.present))]
    MissingEku {
        required: &'static str,
        present: Vec<String>,
    },
    #[error("intermediate {issuer} limits EKU to {}, which excludes {required}", list(.present))]
    IssuerEkuRestriction {
        issuer: String,
        required: &'static str,
        present: Vec<String>,
    },
    #[error("{who} has an empty extendedKeyUsage extension")]
    EmptyEku { who: String },
    #[error("{who} is revoked (serial {serial}{})", revocation_details(.revoked_at, .reason))]
    Revoked {
        who: String,
        serial: String,
        revoked_at: Option<OffsetDateTime>,
        reason: Option<String>,
    },
    #[error("revocation status of {who} is unknown: no CRL from its issuer {issuer} was given (CRLs from {})", list(.crl_issuers))]
    RevocationUnknown {
        who: String,
        issuer: String,
        crl_issuers: Vec<String>,
    },
    #[error("the CRL from {issuer} is out of date: nextUpdate was {}, checked at {}", rfc3339(.next_update), rfc3339(.checked_at))]
    CrlExpired {
        issuer: String,
        next_update: OffsetDateTime,
        checked_at: OffsetDateTime,
    },
    #[error("the signature on the CRL from {issuer} does not verify with that issuer's key")]
    CrlSignature { issuer: String },
    #[error("the CRL issuer {issuer} lacks the cRLSign KeyUsage")]
    CrlIssuerNotSigner { issuer: String },
    #[error("hostname {name:?} is neither a DNS name nor an IP address")]
    InvalidHostname { name: String },
    #[error("hostname {expected} is not in the certificate's SANs {}", list(.presented))]
    HostnameMismatch {
        expected: String,
        presented: Vec<String>,
    },
    #[error("certificate has no URI SAN, so no SPIFFE ID; expected {expected}")]
    NoUriSan { expected: String },
    #[error("certificate has {} URI SANs {}; an X509-SVID carries exactly one", .uris.len(), list(.uris))]
    MultipleUriSans { uris: Vec<String> },
    #[error("URI SAN {uri} is not a valid SPIFFE ID: {reason}")]
    InvalidSpiffeId { uri: String, reason: String },
    #[error("certificate is valid for {presented}, not {expected}")]
    SpiffeIdMismatch { presented: String, expected: String },
    #[error("certificate is valid for {presented}, which is not in trust domain {expected}")]
    TrustDomainMismatch { presented: String, expected: String },
    #[error("a name constraint of an issuing CA excludes the names of {subject}")]
    NameConstraint { subject: String },
    #[error("{who} has a critical extension the verifier does not understand{}", oid_suffix(.oids))]
    UnsupportedCriticalExtension { who: String, oids: Vec<String> },
    #[error("path validation failed: {detail}")]
    Other { detail: String },
}

/// RFC 3339 in UTC, e.g. `2026-01-01T00:00:00Z`.
pub fn rfc3339(t: &OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

fn chain_list(items: &[String]) -> String {
    items.join(" <- ")
}

fn oid_suffix(oids: &[String]) -> String {
    if oids.is_empty() {
        String::new()
    } else {
        format!(" ({})", oids.join(", "))
    }
}

fn revocation_details(at: &Option<OffsetDateTime>, reason: &Option<String>) -> String {
    let mut s = String::new();
    if let Some(at) = at {
        s.push_str(&format!(", revoked at {}", rfc3339(at)));
    }
    if let Some(r) = reason {
        s.push_str(&format!(", reason {r}"));
    }
    s
}

/// A parsed trusted root.
#[derive(Debug)]
struct Root {
    subject: String,
    fingerprint: String,
    spki: Vec<u8>,
    raw_subject: Vec<u8>,
    not_after: OffsetDateTime,
}

/// A parsed CRL.
#[derive(Debug)]
struct Crl {
    list: CertRevocationList<'static>,
    issuer: String,
    raw_issuer: Vec<u8>,
}

/// Trusted roots and CRLs, parsed once and reused for many verifications.
#[derive(Debug)]
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    roots: Vec<Root>,
    crls: Vec<Crl>,
    revocation: RevocationPolicy,
}

impl TrustStore {
    /// Parses the roots (DER certificates) and the CRLs (DER). At least one root is needed.
    pub fn new<C: AsRef<[u8]>>(
        roots: &[CertificateDer<'_>],
        crls: &[C],
    ) -> Result<TrustStore, VerifyError> {
        if roots.is_empty() {
            return Err(VerifyError::NoRoots);
        }
        let mut store = TrustStore {
            anchors: Vec::with_capacity(roots.len()),
            roots: Vec::with_capacity(roots.len()),
            crls: Vec::with_capacity(crls.len()),
            revocation: RevocationPolicy::default(),
        };
        for (i, der) in roots.iter().enumerate() {
            let what = format!("root certificate #{}", i + 1);
            let anchor = webpki::anchor_from_trusted_cert(der)
                .map_err(|e| malformed(&what, webpki_reason(&e)))?
                .to_owned();
            let (_, cert) =
                X509Certificate::from_der(der).map_err(|e| malformed(&what, e.to_string()))?;
            store.roots.push(Root {
                subject: cert.subject().to_string(),
                fingerprint: crate::sha256_hex(der),
                spki: cert.tbs_certificate.subject_pki.raw.to_vec(),
                raw_subject: cert.subject().as_raw().to_vec(),
                not_after: cert.validity().not_after.to_datetime(),
            });
            store.anchors.push(anchor);
        }
        for (i, der) in crls.iter().enumerate() {
            let der = der.as_ref();
            let what = format!("CRL #{}", i + 1);
            let (_, parsed) = CertificateRevocationList::from_der(der)
                .map_err(|e| malformed(&what, e.to_string()))?;
            let owned = OwnedCertRevocationList::from_der(der)
                .map_err(|e| malformed(&what, webpki_reason(&e)))?;
            store.crls.push(Crl {
                list: CertRevocationList::from(owned),
                issuer: parsed.issuer().to_string(),
                raw_issuer: parsed.issuer().as_raw().to_vec(),
            });
        }
        Ok(store)
    }

    /// Replaces the revocation policy (the default checks the end entity only, rejects an
    /// unknown status and enforces nextUpdate).
    pub fn with_revocation_policy(mut self, policy: RevocationPolicy) -> TrustStore {
        self.revocation = policy;
        self
    }

    /// The subjects of the trusted roots, in the order given.
    pub fn root_subjects(&self) -> Vec<String> {
        self.roots.iter().map(|r| r.subject.clone()).collect()
    }

    /// Verifies `end_entity` (DER) with the `intermediates` the peer sent.
    pub fn verify(
        &self,
        end_entity: &[u8],
        intermediates: &[CertificateDer<'_>],
        opts: &VerifyOptions<'_>,
    ) -> Result<Verified, VerifyError> {
        let ctx = Context::new(self, end_entity, intermediates, opts.time)?;
        let ee_der = CertificateDer::from(end_entity);
        let ee = EndEntityCert::try_from(&ee_der)
            .map_err(|e| malformed("end-entity certificate", webpki_reason(&e)))?;
        let time = unix_time(opts.time)?;
        let crl_refs: Vec<&CertRevocationList<'static>> =
            self.crls.iter().map(|c| &c.list).collect();
        let revocation = match RevocationOptionsBuilder::new(&crl_refs) {
            Ok(builder) => Some(
                builder
                    .with_depth(if self.revocation.check_chain {
                        RevocationCheckDepth::Chain
                    } else {
                        RevocationCheckDepth::EndEntity
                    })
                    .with_status_policy(if self.revocation.allow_unknown_status {
                        UnknownStatusPolicy::Allow
                    } else {
                        UnknownStatusPolicy::Deny
                    })
                    .with_expiration_policy(if self.revocation.enforce_next_update {
                        ExpirationPolicy::Enforce
                    } else {
                        ExpirationPolicy::Ignore
                    })
                    .build(),
            ),
            // No CRLs given: no revocation checking.
            Err(_) => None,
        };
        let algs = webpki::ALL_VERIFICATION_ALGS;
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
        let spiffe_id = match opts.identity {
            Some(expected) => Some(check_identity(&ctx.leaf, expected)?),
            None => ctx.leaf.spiffe_id(),
        };

        let mut chain = vec![ChainEntry {
            subject: ctx.leaf.subject.clone(),
            fingerprint: ctx.leaf.fingerprint.clone(),
        }];
        let mut warnings = Vec::new();
        let (intermediate_ders, anchor) = path_subjects;
        for der in &intermediate_ders {
            let subject = X509Certificate::from_der(der)
                .map(|(_, c)| c.subject().to_string())
                .unwrap_or_else(|_| "(unparsable intermediate)".into());
            chain.push(ChainEntry {
                subject,
                fingerprint: crate::sha256_hex(der),
            });
        }
        if let Some(root) = self
            .roots
            .iter()
            .find(|r| r.raw_subject_matches(&anchor.0) && r.spki_matches(&anchor.1))
        {
            chain.push(ChainEntry {
                subject: root.subject.clone(),
                fingerprint: root.fingerprint.clone(),
            });
            if root.not_after < opts.time {
                warnings.push(format!(
                    "root {} expired at {} (webpki and rustls do not check root validity)",
                    root.subject,
                    rfc3339(&root.not_after)
                ));
            }
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

fn webpki_reason(e: &webpki::Error) -> String {
    match e {
        webpki::Error::BadDer => "invalid DER encoding".into(),
        webpki::Error::BadDerTime => "invalid DER time".into(),
        webpki::Error::UnsupportedCertVersion => "not an X.509 v3 certificate".into(),
        webpki::Error::TrailingData(t) => format!("trailing data after {t:?}"),
        other => format!("{other:?}"),
    }
}

fn unix_time(t: OffsetDateTime) -> Result<UnixTime, VerifyError> {
    let secs = u64::try_from(t.unix_timestamp())
        .map_err(|_| malformed("verification time", "it is before 1970"))?;
    Ok(UnixTime::since_unix_epoch(StdDuration::from_secs(secs)))
}

fn from_unix(t: UnixTime) -> OffsetDateTime {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A certificate of the presented chain, parsed for explanations.
struct Parsed {
    der: Vec<u8>,
    subject: String,
    issuer: String,
    raw_subject: Vec<u8>,
    raw_issuer: Vec<u8>,
    serial: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    is_ca: bool,
    /// None when there is no EKU extension.
    eku: Option<Vec<String>>,
    critical_oids: Vec<String>,
}

impl Parsed {
    fn parse(der: &[u8], what: &str) -> Result<Parsed, VerifyError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| malformed(what, e.to_string()))?;
        let mut is_ca = false;
        let mut eku = None;
        let mut critical_oids = Vec::new();
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
                ParsedExtension::ExtendedKeyUsage(e) => eku = Some(eku_names(e)),
                _ => {}
            }
            if ext.critical && !WEBPKI_KNOWN_EXTENSIONS.contains(&ext.oid.to_id_string().as_str()) {
                critical_oids.push(ext.oid.to_id_string());
            }
        }
        Ok(Parsed {
            der: der.to_vec(),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            raw_subject: cert.subject().as_raw().to_vec(),
            raw_issuer: cert.issuer().as_raw().to_vec(),
            serial: crate::serial::strip_leading_zeros(cert.tbs_certificate.raw_serial()).to_vec(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            is_ca,
            eku,
            critical_oids,
        })
    }
}

/// Extensions webpki processes (others, when critical, make it fail).
const WEBPKI_KNOWN_EXTENSIONS: &[&str] = &[
    "2.5.29.15", // keyUsage
    "2.5.29.17", // subjectAltName
    "2.5.29.19", // basicConstraints
    "2.5.29.30", // nameConstraints
    "2.5.29.31", // cRLDistributionPoints
    "2.5.29.37", // extKeyUsage
    "1.3.6.1.5.5.7.1.1",
];

/// The EKU purposes of an extension, by their usual names.
pub fn eku_names(e: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let mut names = Vec::new();
    let flags = [
        (e.any, "anyExtendedKeyUsage"),
        (e.server_auth, "serverAuth"),
        (e.client_auth, "clientAuth"),
        (e.code_signing, "codeSigning"),
        (e.email_protection, "emailProtection"),
        (e.time_stamping, "timeStamping"),
        (e.ocsp_signing, "OCSPSigning"),
    ];
    for (set, name) in flags {
        if set {
            names.push(name.to_string());
        }
    }
    names.extend(e.other.iter().map(|o| o.to_id_string()));
    names
}

/// Everything needed to explain a webpki error in terms of the actual certificates.
struct Context<'s> {
    store: &'s TrustStore,
    leaf: CertInfo,
    leaf_parsed: Parsed,
    leaf_issuer_raw: Vec<u8>,
    intermediates: Vec<Parsed>,
    time: OffsetDateTime,
}

impl<'s> Context<'s> {
    fn new(
        store: &'s TrustStore,
        end_entity: &[u8],
        intermediates: &[CertificateDer<'_>],
        time: OffsetDateTime,
    ) -> Result<Context<'s>, VerifyError> {
        let leaf = CertInfo::from_der(end_entity).map_err(|e| {
            malformed(
                "end-entity certificate",
                e.to_string().trim_start_matches("invalid certificate: "),
            )
        })?;
        let leaf_parsed = Parsed::parse(end_entity, "end-entity certificate")?;
        let mut parsed = Vec::with_capacity(intermediates.len());
        for (i, der) in intermediates.iter().enumerate() {
            parsed.push(Parsed::parse(
                der,
                &format!("intermediate certificate #{}", i + 1),
            )?);
        }
        Ok(Context {
            store,
            leaf_issuer_raw: leaf_parsed.raw_issuer.clone(),
            leaf,
            leaf_parsed,
            intermediates: parsed,
            time,
        })
    }

    /// The chain as built by names from the leaf through the given intermediates.
    fn name_chain(&self) -> Vec<&Parsed> {
        let mut chain = vec![&self.leaf_parsed];
        loop {
            let Some(head) = chain.last() else { break };
            if head.raw_issuer == head.raw_subject {
                break;
            }
            let next = self.intermediates.iter().find(|c| {
                c.raw_subject == head.raw_issuer && !chain.iter().any(|p| p.der == c.der)
            });
            match next {
                Some(c) if chain.len() < 8 => chain.push(c),
                _ => break,
            }
        }
        chain
    }

    fn who(&self, cert: &Parsed) -> String {
        if std::ptr::eq(cert, &self.leaf_parsed) {
            "certificate".to_string()
        } else {
            format!("intermediate certificate {}", cert.subject)
        }
    }

    fn all(&self) -> impl Iterator<Item = &Parsed> {
        std::iter::once(&self.leaf_parsed).chain(self.intermediates.iter())
    }

    fn crl_for(&self, raw_issuer: &[u8]) -> Option<&Crl> {
        self.store.crls.iter().find(|c| c.raw_issuer == raw_issuer)
    }

    fn explain(&self, err: webpki::Error, purpose: Purpose) -> VerifyError {
        use webpki::Error as E;
        match err {
            E::CertExpired { time, not_after } => {
                let t = from_unix(time);
                let na = from_unix(not_after);
                let cert = self
                    .all()
                    .find(|c| c.not_after.unix_timestamp() == na.unix_timestamp())
                    .unwrap_or(&self.leaf_parsed);
                VerifyError::Expired {
                    who: self.who(cert),
                    not_after: cert.not_after,
                    checked_at: t,
                }
            }
            E::CertNotValidYet { time, not_before } => {
                let t = from_unix(time);
                let nb = from_unix(not_before);
                let cert = self
                    .all()
                    .find(|c| c.not_before.unix_timestamp() == nb.unix_timestamp())
                    .unwrap_or(&self.leaf_parsed);
                VerifyError::NotYetValid {
                    who: self.who(cert),
                    not_before: cert.not_before,
                    checked_at: t,
                }
            }
            E::InvalidCertValidity => {
                let cert = self
                    .all()
                    .find(|c| c.not_before > c.not_after)
                    .unwrap_or(&self.leaf_parsed);
                VerifyError::InvalidValidity {
                    who: self.who(cert),
                }
            }
            E::UnknownIssuer => self.unknown_issuer(),
            E::InvalidSignatureForPublicKey => self.bad_signature(),
            E::SignatureAlgorithmMismatch => VerifyError::Other {
                detail: "a certificate's inner and outer signature algorithms differ".into(),
            },
            E::UnsupportedSignatureAlgorithmContext(_)
            | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
                self.unsupported_signature()
            }
            E::CaUsedAsEndEntity => VerifyError::CaUsedAsLeaf {
                subject: self.leaf.subject.clone(),
            },
            E::EndEntityUsedAsCa => {
                let subject = self
                    .name_chain()
                    .into_iter()
                    .skip(1)
                    .find(|c| !c.is_ca)
                    .or_else(|| self.intermediates.iter().find(|c| !c.is_ca))
                    .map(|c| c.subject.clone())
                    .unwrap_or_else(|| self.leaf.issuer.clone());
                VerifyError::NotACa { subject }
            }
            E::PathLenConstraintViolated => VerifyError::PathLen {
                chain: self
                    .name_chain()
                    .iter()
                    .map(|c| c.subject.clone())
                    .collect(),
            },
            E::RequiredEkuNotFoundContext(_) => self.missing_eku(purpose),
            E::EmptyEkuExtension => {
                let cert = self
                    .all()
                    .find(|c| c.eku.as_ref().is_some_and(Vec::is_empty))
                    .unwrap_or(&self.leaf_parsed);
                VerifyError::EmptyEku {
                    who: self.who(cert),
                }
            }
            E::CertRevoked => self.revoked(),
            E::UnknownRevocationStatus => self.unknown_revocation(),
            E::CrlExpired { time, next_update } => {
                let issuer = self
                    .crl_for(&self.leaf_issuer_raw)
                    .map(|c| c.issuer.clone())
                    .unwrap_or_else(|| self.leaf.issuer.clone());
                VerifyError::CrlExpired {
                    issuer,
                    next_update: from_unix(next_update),
                    checked_at: from_unix(time),
                }
            }
            E::InvalidCrlSignatureForPublicKey
            | E::UnsupportedCrlSignatureAlgorithmContext(_)
            | E::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_) => {
                VerifyError::CrlSignature {
                    issuer: self.leaf.issuer.clone(),
                }
            }
            E::IssuerNotCrlSigner => VerifyError::CrlIssuerNotSigner {
                issuer: self.leaf.issuer.clone(),
            },
            E::NameConstraintViolation => VerifyError::NameConstraint {
                subject: self.leaf.subject.clone(),
            },
            E::UnsupportedCriticalExtension => {
                let cert = self
                    .all()
                    .find(|c| !c.critical_oids.is_empty())
                    .unwrap_or(&self.leaf_parsed);
                VerifyError::UnsupportedCriticalExtension {
                    who: self.who(cert),
                    oids: cert.critical_oids.clone(),
                }
            }
            E::BadDer | E::BadDerTime | E::TrailingData(_) | E::MalformedExtensions => {
                malformed("certificate chain", webpki_reason(&err))
            }
            other => VerifyError::Other {
                detail: format!("{other:?}"),
            },
        }
    }

    fn unknown_issuer(&self) -> VerifyError {
        let chain = self.name_chain();
        let head = chain.last().copied().unwrap_or(&self.leaf_parsed);
        VerifyError::UnknownIssuer {
            issuer: head.issuer.clone(),
            roots: self.store.root_subjects(),
        }
    }

    /// Finds the first link whose signature does not verify and names both ends.
    fn bad_signature(&self) -> VerifyError {
        let chain = self.name_chain();
        for (i, child) in chain.iter().enumerate() {
            let issuer_spki: Option<(String, Vec<u8>)> = match chain.get(i + 1) {
                Some(parent) => X509Certificate::from_der(&parent.der)
                    .ok()
                    .map(|(_, c)| (parent.subject.clone(), c.public_key().raw.to_vec())),
                None => self
                    .store
                    .roots
                    .iter()
                    .find(|r| r.raw_subject == child.raw_issuer)
                    .map(|r| (r.subject.clone(), r.spki.clone())),
            };
            let Some((issuer, spki)) = issuer_spki else {
                continue;
            };
            if signature_verifies(&child.der, &spki) == Some(false) {
                return VerifyError::BadSignature {
                    subject: child.subject.clone(),
                    issuer,
                };
            }
        }
        VerifyError::BadSignature {
            subject: self.leaf.subject.clone(),
            issuer: self.leaf.issuer.clone(),
        }
    }

    fn unsupported_signature(&self) -> VerifyError {
        let chain = self.name_chain();
        for child in &chain {
            if let Ok((_, c)) = X509Certificate::from_der(&child.der) {
                let oid = c.signature_algorithm.algorithm.to_id_string();
                if !ACCEPTED_SIGNATURE_OIDS.contains(&oid.as_str()) {
                    return VerifyError::UnsupportedSignature {
                        subject: child.subject.clone(),
                        algorithm: signature_algorithm_name(&oid),
                    };
                }
            }
        }
        let algorithm = X509Certificate::from_der(&self.leaf_parsed.der)
            .map(|(_, c)| signature_algorithm_name(&c.signature_algorithm.algorithm.to_id_string()))
            .unwrap_or_else(|_| "an unknown algorithm".into());
        VerifyError::UnsupportedSignature {
            subject: self.leaf.subject.clone(),
            algorithm,
        }
    }

    fn missing_eku(&self, purpose: Purpose) -> VerifyError {
        let required = purpose.eku_name();
        let has = |ekus: &Vec<String>| {
            ekus.iter()
                .any(|e| e == required || e == "anyExtendedKeyUsage")
        };
        match &self.leaf_parsed.eku {
            Some(ekus) if !has(ekus) => VerifyError::MissingEku {
                required,
                present: ekus.clone(),
            },
            _ => {
                let restricting = self
                    .intermediates
                    .iter()
                    .find(|c| c.eku.as_ref().is_some_and(|e| !has(e)));
                match restricting {
                    Some(c) => VerifyError::IssuerEkuRestriction {
                        issuer: c.subject.clone(),
                        required,
                        present: c.eku.clone().unwrap_or_default(),
                    },
                    None => VerifyError::MissingEku {
                        required,
                        present: self.leaf_parsed.eku.clone().unwrap_or_default(),
                    },
                }
            }
        }
    }

    fn revoked(&self) -> VerifyError {
        for cert in self.name_chain() {
            let Some(crl) = self.crl_for(&cert.raw_issuer) else {
                continue;
            };
            if let Ok(Some(entry)) = crl.list.find_serial(&cert.serial) {
                return VerifyError::Revoked {
                    who: self.who(cert),
                    serial: colon_hex(&hex::encode(&cert.serial)).to_ascii_lowercase(),
                    revoked_at: Some(from_unix(entry.revocation_date)),
                    reason: entry.reason_code.map(reason_name),
                };
            }
        }
        VerifyError::Revoked {
            who: "certificate".into(),
            serial: colon_hex(&self.leaf.serial_hex).to_ascii_lowercase(),
            revoked_at: None,
            reason: None,
        }
    }

    fn unknown_revocation(&self) -> VerifyError {
        let crl_issuers: Vec<String> = self.store.crls.iter().map(|c| c.issuer.clone()).collect();
        let chain = self.name_chain();
        let cert = chain
            .iter()
            .find(|c| self.crl_for(&c.raw_issuer).is_none())
            .copied()
            .unwrap_or(&self.leaf_parsed);
        VerifyError::RevocationUnknown {
            who: self.who(cert),
            issuer: cert.issuer.clone(),
            crl_issuers,
        }
    }
}

fn reason_name(r: webpki::RevocationReason) -> String {
    use webpki::RevocationReason as R;
    match r {
        R::Unspecified => "unspecified",
        R::KeyCompromise => "keyCompromise",
        R::CaCompromise => "cACompromise",
        R::AffiliationChanged => "affiliationChanged",
        R::Superseded => "superseded",
        R::CessationOfOperation => "cessationOfOperation",
        R::CertificateHold => "certificateHold",
        R::RemoveFromCrl => "removeFromCRL",
        R::PrivilegeWithdrawn => "privilegeWithdrawn",
        R::AaCompromise => "aACompromise",
    }
    .to_string()
}

const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";
const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const OID_RSA_SHA384: &str = "1.2.840.113549.1.1.12";
const OID_RSA_SHA512: &str = "1.2.840.113549.1.1.13";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_ED25519: &str = "1.3.101.112";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_RSA_KEY: &str = "1.2.840.113549.1.1.1";

const ACCEPTED_SIGNATURE_OIDS: &[&str] = &[
    OID_ECDSA_SHA256,
    OID_ECDSA_SHA384,
    OID_ECDSA_SHA512,
    OID_RSA_SHA256,
    OID_RSA_SHA384,
    OID_RSA_SHA512,
    OID_RSA_PSS,
    OID_ED25519,
];

/// OpenSSL's short name of a signature algorithm OID, or the dotted OID.
pub fn signature_algorithm_name(oid: &str) -> String {
    match oid {
        OID_ECDSA_SHA256 => "ecdsa-with-SHA256",
        OID_ECDSA_SHA384 => "ecdsa-with-SHA384",
        OID_ECDSA_SHA512 => "ecdsa-with-SHA512",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        OID_RSA_SHA256 => "sha256WithRSAEncryption",
        OID_RSA_SHA384 => "sha384WithRSAEncryption",
        OID_RSA_SHA512 => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        OID_RSA_PSS => "rsassaPss",
        OID_ED25519 => "ED25519",
        "1.3.101.113" => "ED448",
        other => return other.to_string(),
    }
    .to_string()
}

/// Checks one signature: `child_der` signed by the key in `issuer_spki_der`. None when the
/// algorithm pair is not one this function knows (then nothing can be said).
pub fn signature_verifies(child_der: &[u8], issuer_spki_der: &[u8]) -> Option<bool> {
    let (_, child) = X509Certificate::from_der(child_der).ok()?;
    let (_, spki) = SubjectPublicKeyInfo::from_der(issuer_spki_der).ok()?;
    let sig_oid = child.signature_algorithm.algorithm.to_id_string();
    let key_oid = spki.algorithm.algorithm.to_id_string();
    let alg: &'static dyn VerificationAlgorithm = match key_oid.as_str() {
        OID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .and_then(|o| Curve::from_oid(&o.to_id_string()))?;
            match (curve, sig_oid.as_str()) {
                (Curve::P256, OID_ECDSA_SHA256) => &sig::ECDSA_P256_SHA256_ASN1,
                (Curve::P256, OID_ECDSA_SHA384) => &sig::ECDSA_P256_SHA384_ASN1,
                (Curve::P256, OID_ECDSA_SHA512) => &sig::ECDSA_P256_SHA512_ASN1,
                (Curve::P384, OID_ECDSA_SHA256) => &sig::ECDSA_P384_SHA256_ASN1,
                (Curve::P384, OID_ECDSA_SHA384) => &sig::ECDSA_P384_SHA384_ASN1,
                (Curve::P384, OID_ECDSA_SHA512) => &sig::ECDSA_P384_SHA512_ASN1,
                (Curve::P521, OID_ECDSA_SHA256) => &sig::ECDSA_P521_SHA256_ASN1,
                (Curve::P521, OID_ECDSA_SHA384) => &sig::ECDSA_P521_SHA384_ASN1,
                (Curve::P521, OID_ECDSA_SHA512) => &sig::ECDSA_P521_SHA512_ASN1,
                _ => return None,
            }
        }
        OID_RSA_KEY => match sig_oid.as_str() {
            OID_RSA_SHA256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            OID_RSA_SHA384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            OID_RSA_SHA512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            _ => return None,
        },
        OID_ED25519 if sig_oid == OID_ED25519 => &sig::ED25519,
        _ => return None,
    };
    let key = spki.subject_public_key.data.as_ref();
    Some(
        UnparsedPublicKey::new(alg, key)
            .verify(
                child.tbs_certificate.as_ref(),
                child.signature_value.data.as_ref(),
            )
            .is_ok(),
    )
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

/// The X509-SVID identity rule: exactly one URI SAN, a valid SPIFFE ID, the expected one.
fn check_identity(leaf: &CertInfo, expected: &ExpectedIdentity) -> Result<SpiffeId, VerifyError> {
    let uri = match leaf.uris.as_slice() {
        [] => {
            return Err(VerifyError::NoUriSan {
                expected: expected.to_string(),
            })
        }
        [one] => one,
        many => {
            return Err(VerifyError::MultipleUriSans {
                uris: many.to_vec(),
            })
        }
    };
    let id = SpiffeId::parse(uri).map_err(|e| VerifyError::InvalidSpiffeId {
        uri: uri.clone(),
        reason: match e {
            crate::PkiError::SpiffeId { reason, .. } => reason,
            other => other.to_string(),
        },
    })?;
    match expected {
        ExpectedIdentity::SpiffeId(want) if &id != want => Err(VerifyError::SpiffeIdMismatch {
            presented: id.to_string(),
            expected: want.to_string(),
        }),
        ExpectedIdentity::TrustDomain(td) if id.trust_domain() != td => {
            Err(VerifyError::TrustDomainMismatch {
                presented: id.to_string(),
                expected: td.to_string(),
            })
        }
        _ => Ok(id),
    }
}
