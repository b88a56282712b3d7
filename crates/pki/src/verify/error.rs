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
    /// An input does not parse.
    #[error("cannot parse the {what}: {reason}")]
    Malformed {
        /// What could not be parsed.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No trusted root was given.
    #[error("no trusted roots were given")]
    NoRoots,
    /// A certificate past its NotAfter.
    #[error("{who} expired at {}, checked at {}", rfc3339(.not_after), rfc3339(.checked_at))]
    Expired {
        /// The certificate, by role and subject.
        who: String,
        /// Its NotAfter.
        not_after: OffsetDateTime,
        /// The time checked at.
        checked_at: OffsetDateTime,
    },
    /// A certificate before its NotBefore.
    #[error("{who} is not yet valid until {}, checked at {}", rfc3339(.not_before), rfc3339(.checked_at))]
    NotYetValid {
        /// The certificate, by role and subject.
        who: String,
        /// Its NotBefore.
        not_before: OffsetDateTime,
        /// The time checked at.
        checked_at: OffsetDateTime,
    },
    /// A certificate whose NotBefore is after its NotAfter.
    #[error("{who} has NotBefore after NotAfter")]
    InvalidValidity {
        /// The certificate, by role and subject.
        who: String,
    },
    /// The path does not reach a trusted root.
    #[error("issuer {issuer} is not in the roots {}", list(.roots))]
    UnknownIssuer {
        /// The issuer, readable.
        issuer: String,
        /// The trusted roots.
        roots: Vec<String>,
    },
    /// A signature that does not verify with its issuer's key.
    #[error("the signature on {subject} does not verify with the public key of {issuer} (same name, different key: was the CA re-created?)")]
    BadSignature {
        /// The certificate, by subject.
        subject: String,
        /// The issuer, readable.
        issuer: String,
    },
    /// A signature algorithm the verifier does not accept for the issuer's key.
    #[error("{subject} is signed with {algorithm}, which the verifier does not accept for its issuer's key")]
    UnsupportedSignature {
        /// The certificate, by subject.
        subject: String,
        /// The signature algorithm, by name.
        algorithm: String,
    },
    /// A signature algorithm the policy does not allow.
    #[error("{subject} is signed with {algorithm} by {key}, which the {policy} algorithm policy does not allow (it accepts {})", .policy.describe())]
    AlgorithmNotAllowed {
        /// The certificate, by subject.
        subject: String,
        /// The signature algorithm, by name.
        algorithm: String,
        /// The key, by kind.
        key: String,
        /// The algorithm policy in force.
        policy: AlgorithmPolicy,
    },
    /// An end-entity key the policy does not allow.
    #[error("certificate has {key}; under the {policy} algorithm policy an end-entity key must be ECDSA on P-256, P-384 or P-521 (the services sign handshakes with ECDSA only)")]
    EndEntityKeyNotAllowed {
        /// The key, by kind.
        key: String,
        /// The algorithm policy in force.
        policy: AlgorithmPolicy,
    },
    /// A CA certificate presented as the end entity.
    #[error("certificate is a CA (CA:TRUE) and cannot be used as a leaf")]
    CaUsedAsLeaf {
        /// The certificate, by subject.
        subject: String,
    },
    /// An issuer without CA:TRUE.
    #[error("{subject} issues another certificate of the chain but is not a CA (basicConstraints CA:TRUE is missing)")]
    NotACa {
        /// The certificate, by subject.
        subject: String,
    },
    /// A path longer than a pathLenConstraint allows.
    #[error("the chain {} is longer than a pathLenConstraint of its CAs allows", chain_list(.chain))]
    PathLen {
        /// The path, end entity first.
        chain: Vec<String>,
    },
    /// The EKU lacks the purpose.
    #[error("certificate lacks {required} EKU (it has {})", list(.present))]
    MissingEku {
        /// The EKU the purpose needs.
        required: &'static str,
        /// What the certificate has.
        present: Vec<String>,
    },
    /// An intermediate's EKU excludes the purpose.
    #[error("intermediate {issuer} limits EKU to {}, which excludes {required}", list(.present))]
    IssuerEkuRestriction {
        /// The issuer, readable.
        issuer: String,
        /// The EKU the purpose needs.
        required: &'static str,
        /// What the certificate has.
        present: Vec<String>,
    },
    /// An empty extendedKeyUsage extension.
    #[error("{who} has an empty extendedKeyUsage extension")]
    EmptyEku {
        /// The certificate, by role and subject.
        who: String,
    },
    /// A revoked certificate.
    #[error("{who} is revoked (serial {serial}{})", revocation_details(.revoked_at, .reason))]
    Revoked {
        /// The certificate, by role and subject.
        who: String,
        /// Its serial, hex.
        serial: String,
        /// When it was revoked, per the CRL.
        revoked_at: Option<OffsetDateTime>,
        /// The revocation reason, per the CRL.
        reason: Option<String>,
    },
    /// No CRL covers the certificate's issuer.
    #[error("revocation status of {who} is unknown: no CRL from its issuer {issuer} was given (CRLs from {})", list(.crl_issuers))]
    RevocationUnknown {
        /// The certificate, by role and subject.
        who: String,
        /// The issuer, readable.
        issuer: String,
        /// The issuers of the CRLs given.
        crl_issuers: Vec<String>,
    },
    /// A CRL past its nextUpdate.
    #[error("the CRL from {issuer} is out of date: nextUpdate was {}, checked at {}", rfc3339(.next_update), rfc3339(.checked_at))]
    CrlExpired {
        /// The issuer, readable.
        issuer: String,
        /// The CRL's nextUpdate.
        next_update: OffsetDateTime,
        /// The time checked at.
        checked_at: OffsetDateTime,
    },
    /// A CRL whose signature does not verify with its issuer's key.
    #[error("the signature on the CRL from {issuer} does not verify with that issuer's key")]
    CrlSignature {
        /// The issuer, readable.
        issuer: String,
    },
    /// A CRL issuer without cRLSign.
    #[error("the CRL issuer {issuer} lacks the cRLSign KeyUsage")]
    CrlIssuerNotSigner {
        /// The issuer, readable.
        issuer: String,
    },
    /// The hostname to check is neither a DNS name nor an IP address.
    #[error("hostname {name:?} is neither a DNS name nor an IP address")]
    InvalidHostname {
        /// The hostname given.
        name: String,
    },
    /// The hostname is not among the certificate's SANs.
    #[error("hostname {expected} is not in the certificate's SANs {}", list(.presented))]
    HostnameMismatch {
        /// What was expected.
        expected: String,
        /// What the certificate presents.
        presented: Vec<String>,
    },
    /// No URI SAN where a SPIFFE ID was expected.
    #[error("certificate has no URI SAN, so no SPIFFE ID; expected {expected}")]
    NoUriSan {
        /// What was expected.
        expected: String,
    },
    /// The X509-SVID rule set (`pki::svid`) refused the end-entity certificate.
    #[error(transparent)]
    Svid(#[from] SvidViolation),
    /// Another SPIFFE ID than the one expected.
    #[error("certificate is valid for {presented}, not {expected}")]
    SpiffeIdMismatch {
        /// What the certificate presents.
        presented: String,
        /// What was expected.
        expected: String,
    },
    /// A SPIFFE ID outside the expected trust domain.
    #[error("certificate is valid for {presented}, which is not in trust domain {expected}")]
    TrustDomainMismatch {
        /// What the certificate presents.
        presented: String,
        /// What was expected.
        expected: String,
    },
    /// An issuing CA's name constraint excludes the certificate's names.
    #[error("a name constraint of an issuing CA excludes the names of {subject}")]
    NameConstraint {
        /// The certificate, by subject.
        subject: String,
    },
    /// A critical extension the verifier does not understand.
    #[error("{who} has a critical extension the verifier does not understand{}", oid_suffix(.oids))]
    UnsupportedCriticalExtension {
        /// The certificate, by role and subject.
        who: String,
        /// The OIDs of those extensions.
        oids: Vec<String>,
    },
    /// A CRL given to the trust store was refused by the rules of `pki::crl`.
    #[error("{crl} is refused: {error}")]
    Crl {
        /// The CRL, as errors name it.
        crl: String,
        /// The rule it breaks.
        error: CrlError,
    },
    /// A strict RFC 5280 check (`TrustStore::strict`) failed for a certificate of the path.
    #[error("{who} {violation}")]
    Strict {
        /// The certificate, by role and subject.
        who: String,
        /// The rule it breaks.
        violation: Rfc5280Violation,
    },
    /// A verification time the verifier cannot represent.
    #[error("the verification time {} is outside the range the verifier can represent ({} to {})", rfc3339(.time), rfc3339(.earliest), rfc3339(.latest))]
    TimeOutOfRange {
        /// The time given.
        time: OffsetDateTime,
        /// The earliest time the verifier represents.
        earliest: OffsetDateTime,
        /// The latest time the verifier represents.
        latest: OffsetDateTime,
    },
    /// Any other failure of the path validation.
    #[error("path validation failed: {detail}")]
    Other {
        /// The verifier's words.
        detail: String,
    },
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
