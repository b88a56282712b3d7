//! [`CrlError`]: every reason a CRL is refused, with what was expected and what was found.

use crate::sigalg::AlgorithmPolicy;

/// Why a CRL was refused. Each message says what the CRL or its issuer presented and what the
/// rule requires; [`CrlError::code`] is a stable machine-readable name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    #[error("it does not parse as a CRL: {reason}")]
    Malformed { reason: String },
    #[error("{count} trailing bytes follow the CRL")]
    TrailingData { count: usize },
    #[error(
        "the CRL from {issuer} is not encoded as RFC 5280 requires ({reason}); rustls-webpki, \
         which verifies every TLS peer, refuses it, and so does this verifier: its CA must \
         re-issue it"
    )]
    NotStrictDer { issuer: String, reason: String },
    #[error(
        "its signatureAlgorithm ({outer}) differs from tbsCertList.signature ({inner}); RFC 5280 \
         5.1.1.2 requires the two to be identical"
    )]
    AlgorithmMismatch { outer: String, inner: String },
    #[error(
        "the CRL from {issuer} has no CRL Number extension, which RFC 5280 5.2.3 requires; with \
         `openssl ca -gencrl`, set `crlnumber = FILE` in the CA section and create the crlnumber \
         file (`echo 01 > crlnumber`)"
    )]
    NoCrlNumber { issuer: String },
    #[error(
        "the CRL from {issuer} marks its CRL Number extension critical; RFC 5280 5.2.3 requires \
         it to be non-critical"
    )]
    CrlNumberCritical { issuer: String },
    #[error("the CRL from {issuer} has an invalid CRL Number: {reason}")]
    InvalidCrlNumber { issuer: String, reason: String },
    #[error(
        "the CRL from {issuer} has critical extensions this verifier does not support: {}",
        .oids.join(", ")
    )]
    UnsupportedCriticalExtension { issuer: String, oids: Vec<String> },
    #[error(
        "the CRL from {issuer} covers only part of its issuer's certificates \
         (issuingDistributionPoint {scope}); a complete CRL is required"
    )]
    PartialScope { issuer: String, scope: String },
    #[error("the CRL is issued by {issuer}, which is none of the issuers given [{}]", .known.join(", "))]
    UnknownIssuer { issuer: String, known: Vec<String> },
    #[error(
        "the CRL from {issuer} is signed with {algorithm}, which this verifier does not implement"
    )]
    UnsupportedAlgorithm { issuer: String, algorithm: String },
    #[error(
        "the CRL from {issuer} is signed with {algorithm}, which does not fit the issuer's key \
         ({key})"
    )]
    AlgorithmKeyMismatch {
        issuer: String,
        algorithm: String,
        key: String,
    },
    #[error(
        "the CRL from {issuer} is signed with {algorithm} by {key}, which the {policy} algorithm \
         policy does not allow (it accepts {})",
        .policy.describe()
    )]
    AlgorithmNotAllowed {
        issuer: String,
        algorithm: String,
        key: String,
        policy: AlgorithmPolicy,
    },
    #[error(
        "the signature on the CRL from {issuer} does not verify with {key} of the issuer \
         certificate (SHA-256 {fingerprint}): same name, different key (was the CA re-created?), \
         or the CRL was altered"
    )]
    BadSignature {
        issuer: String,
        key: String,
        fingerprint: String,
    },
    #[error(
        "the CRL issuer {issuer} has no keyUsage extension; a certificate whose key signs CRLs \
         must carry keyUsage with cRLSign (RFC 5280 4.2.1.3), trust anchors included"
    )]
    IssuerWithoutKeyUsage { issuer: String },
    #[error(
        "the CRL issuer {issuer} lacks cRLSign in its keyUsage (it has [{}]); only a certificate \
         with cRLSign may sign CRLs (RFC 5280 4.2.1.3)",
        .present.join(", ")
    )]
    IssuerNotCrlSigner {
        issuer: String,
        present: Vec<String>,
    },
}

impl CrlError {
    /// A stable, machine-readable name for the refusal (JSON output, logs, metrics).
    pub fn code(&self) -> &'static str {
        match self {
            CrlError::Malformed { .. } => "crl_malformed",
            CrlError::TrailingData { .. } => "crl_trailing_data",
            CrlError::NotStrictDer { .. } => "crl_not_der",
            CrlError::AlgorithmMismatch { .. } => "crl_algorithm_mismatch",
            CrlError::NoCrlNumber { .. } => "crl_no_number",
            CrlError::CrlNumberCritical { .. } => "crl_number_critical",
            CrlError::InvalidCrlNumber { .. } => "crl_number_invalid",
            CrlError::UnsupportedCriticalExtension { .. } => "crl_unsupported_critical_extension",
            CrlError::PartialScope { .. } => "crl_partial_scope",
            CrlError::UnknownIssuer { .. } => "crl_unknown_issuer",
            CrlError::UnsupportedAlgorithm { .. } => "crl_unsupported_algorithm",
            CrlError::AlgorithmKeyMismatch { .. } => "crl_algorithm_key_mismatch",
            CrlError::AlgorithmNotAllowed { .. } => "crl_algorithm_not_allowed",
            CrlError::BadSignature { .. } => "crl_signature",
            CrlError::IssuerWithoutKeyUsage { .. } => "crl_issuer_no_key_usage",
            CrlError::IssuerNotCrlSigner { .. } => "crl_issuer_not_signer",
        }
    }

    /// True when the bytes are not a usable CRL at all (as opposed to a CRL refused by a rule).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            CrlError::Malformed { .. }
                | CrlError::TrailingData { .. }
                | CrlError::NotStrictDer { .. }
        )
    }

    /// How far verification got against one candidate issuer, to report the most telling
    /// failure when several certificates share the issuer's name.
    pub(super) fn stage(&self) -> u8 {
        match self {
            CrlError::IssuerWithoutKeyUsage { .. } | CrlError::IssuerNotCrlSigner { .. } => 3,
            CrlError::BadSignature { .. } => 2,
            _ => 1,
        }
    }
}
