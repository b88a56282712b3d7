//! [`VerifyError`]: every way verification fails, worded with expected and presented values.

use time::OffsetDateTime;

use crate::crl::CrlError;
use crate::rfc5280::Rfc5280Violation;
use crate::sigalg::AlgorithmPolicy;
use crate::svid::SvidViolation;
use crate::timefmt::rfc3339_ref as rfc3339;

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
    #[error("{subject} is signed with {algorithm} by {key}, which the {policy} algorithm policy does not allow (it accepts {})", .policy.describe())]
    AlgorithmNotAllowed {
        subject: String,
        algorithm: String,
        key: String,
        policy: AlgorithmPolicy,
    },
    #[error("certificate has {key}; under the {policy} algorithm policy an end-entity key must be ECDSA on P-256, P-384 or P-521 (the services sign handshakes with ECDSA only)")]
    EndEntityKeyNotAllowed {
        key: String,
        policy: AlgorithmPolicy,
    },
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
    /// The X509-SVID rule set (`pki::svid`) refused the end-entity certificate.
    #[error(transparent)]
    Svid(#[from] SvidViolation),
    #[error("certificate is valid for {presented}, not {expected}")]
    SpiffeIdMismatch { presented: String, expected: String },
    #[error("certificate is valid for {presented}, which is not in trust domain {expected}")]
    TrustDomainMismatch { presented: String, expected: String },
    #[error("a name constraint of an issuing CA excludes the names of {subject}")]
    NameConstraint { subject: String },
    #[error("{who} has a critical extension the verifier does not understand{}", oid_suffix(.oids))]
    UnsupportedCriticalExtension { who: String, oids: Vec<String> },
    /// A CRL given to the trust store was refused by the rules of `pki::crl`.
    #[error("{crl} is refused: {error}")]
    Crl { crl: String, error: CrlError },
    /// A strict RFC 5280 check (`TrustStore::strict`) failed for a certificate of the path.
    #[error("{who} {violation}")]
    Strict {
        who: String,
        violation: Rfc5280Violation,
    },
    #[error("the verification time {} is outside the range the verifier can represent ({} to {})", rfc3339(.time), rfc3339(.earliest), rfc3339(.latest))]
    TimeOutOfRange {
        time: OffsetDateTime,
        earliest: OffsetDateTime,
        latest: OffsetDateTime,
    },
    #[error("path validation failed: {detail}")]
    Other { detail: String },
}

impl VerifyError {
    /// A stable, machine-readable name for the failure (for JSON output, logs and metrics).
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Malformed { .. } => "malformed",
            VerifyError::NoRoots => "no_roots",
            VerifyError::Expired { .. } => "expired",
            VerifyError::NotYetValid { .. } => "not_yet_valid",
            VerifyError::InvalidValidity { .. } => "invalid_validity",
            VerifyError::UnknownIssuer { .. } => "unknown_issuer",
            VerifyError::BadSignature { .. } => "bad_signature",
            VerifyError::UnsupportedSignature { .. } => "unsupported_signature",
            VerifyError::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
            VerifyError::EndEntityKeyNotAllowed { .. } => "key_algorithm_not_allowed",
            VerifyError::CaUsedAsLeaf { .. } => "ca_used_as_leaf",
            VerifyError::NotACa { .. } => "issuer_not_ca",
            VerifyError::PathLen { .. } => "path_len_exceeded",
            VerifyError::MissingEku { .. } => "missing_eku",
            VerifyError::IssuerEkuRestriction { .. } => "issuer_eku_restriction",
            VerifyError::EmptyEku { .. } => "empty_eku",
            VerifyError::Revoked { .. } => "revoked",
            VerifyError::RevocationUnknown { .. } => "revocation_unknown",
            VerifyError::CrlExpired { .. } => "crl_expired",
            VerifyError::CrlSignature { .. } => "crl_signature",
            VerifyError::CrlIssuerNotSigner { .. } => "crl_issuer_not_signer",
            VerifyError::InvalidHostname { .. } => "invalid_hostname",
            VerifyError::HostnameMismatch { .. } => "hostname_mismatch",
            VerifyError::NoUriSan { .. } => "no_uri_san",
            VerifyError::Svid(v) => v.code(),
            VerifyError::SpiffeIdMismatch { .. } => "spiffe_id_mismatch",
            VerifyError::TrustDomainMismatch { .. } => "trust_domain_mismatch",
            VerifyError::NameConstraint { .. } => "name_constraint",
            VerifyError::UnsupportedCriticalExtension { .. } => "unsupported_critical_extension",
            VerifyError::Crl { error, .. } => error.code(),
            VerifyError::Strict { violation, .. } => violation.code(),
            VerifyError::TimeOutOfRange { .. } => "time_out_of_range",
            VerifyError::Other { .. } => "other",
        }
    }
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
