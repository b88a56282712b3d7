//! [`CrlError`]: every reason a CRL is refused, with what was expected and what was found.

use crate::sigalg::AlgorithmPolicy;

/// Why a CRL was refused. Each message says what the CRL or its issuer presented and what the
/// rule requires; [`CrlError::code`] is a stable machine-readable name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    /// The bytes are not a CRL.
    #[error("it does not parse as a CRL: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// Bytes follow the CRL.
    #[error("{count} trailing bytes follow the CRL")]
    TrailingData {
        /// How many bytes.
        count: usize,
    },
    /// The CRL does not parse as strict DER (rustls-webpki's reading), though it parsed here.
    #[error(
        "the CRL from {issuer} is not encoded as RFC 5280 requires ({reason}); rustls-webpki, \
         which verifies every TLS peer, refuses it, and so does this verifier: its CA must \
         re-issue it"
    )]
    NotStrictDer {
        /// The CRL issuer's name.
        issuer: String,
        /// What the strict DER parser refused.
        reason: String,
    },
    /// The outer and inner signature algorithms differ.
    #[error(
        "its signatureAlgorithm ({outer}) differs from tbsCertList.signature ({inner}); RFC 5280 \
         5.1.1.2 requires the two to be identical"
    )]
    AlgorithmMismatch {
        /// The outer signatureAlgorithm.
        outer: String,
        /// The algorithm inside tbsCertList.
        inner: String,
    },
    /// No CRL Number extension.
    #[error(
        "the CRL from {issuer} has no CRL Number extension, which RFC 5280 5.2.3 requires; with \
         `openssl ca -gencrl`, set `crlnumber = FILE` in the CA section and create the crlnumber \
         file (`echo 01 > crlnumber`)"
    )]
    NoCrlNumber {
        /// The CRL issuer, readable.
        issuer: String,
    },
    /// The CRL Number extension is critical.
    #[error(
        "the CRL from {issuer} marks its CRL Number extension critical; RFC 5280 5.2.3 requires \
         it to be non-critical"
    )]
    CrlNumberCritical {
        /// The CRL issuer, readable.
        issuer: String,
    },
    /// The CRL Number does not parse or is negative.
    #[error("the CRL from {issuer} has an invalid CRL Number: {reason}")]
    InvalidCrlNumber {
        /// The CRL issuer, readable.
        issuer: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A critical extension the verifier does not support.
    #[error(
        "the CRL from {issuer} has critical extensions this verifier does not support: {}",
        .oids.join(", ")
    )]
    UnsupportedCriticalExtension {
        /// The CRL issuer, readable.
        issuer: String,
        /// The OIDs of those extensions.
        oids: Vec<String>,
    },
    /// A CRL covering only part of its issuer's certificates.
    #[error(
        "the CRL from {issuer} covers only part of its issuer's certificates \
         (issuingDistributionPoint {scope}); a complete CRL is required"
    )]
    PartialScope {
        /// The CRL issuer, readable.
        issuer: String,
        /// The scope the issuingDistributionPoint limits it to.
        scope: String,
    },
    /// Issued by none of the issuers given.
    #[error("the CRL is issued by {issuer}, which is none of the issuers given [{}]", .known.join(", "))]
    UnknownIssuer {
        /// The CRL issuer, readable.
        issuer: String,
        /// The issuers given.
        known: Vec<String>,
    },
    /// A signature algorithm the verifier does not implement.
    #[error(
        "the CRL from {issuer} is signed with {algorithm}, which this verifier does not implement"
    )]
    UnsupportedAlgorithm {
        /// The CRL issuer, readable.
        issuer: String,
        /// The signature algorithm, by name.
        algorithm: String,
    },
    /// A signature algorithm that does not fit the issuer's key.
    #[error(
        "the CRL from {issuer} is signed with {algorithm}, which does not fit the issuer's key \
         ({key})"
    )]
    AlgorithmKeyMismatch {
        /// The CRL issuer, readable.
        issuer: String,
        /// The signature algorithm, by name.
        algorithm: String,
        /// The issuer's key.
        key: String,
    },
    /// A signature algorithm the policy does not allow.
    #[error(
        "the CRL from {issuer} is signed with {algorithm} by {key}, which the {policy} algorithm \
         policy does not allow (it accepts {})",
        .policy.describe()
    )]
    AlgorithmNotAllowed {
        /// The CRL issuer, readable.
        issuer: String,
        /// The signature algorithm, by name.
        algorithm: String,
        /// The issuer's key.
        key: String,
        /// The algorithm policy in force.
        policy: AlgorithmPolicy,
    },
    /// The signature does not verify with the issuer's key.
    #[error(
        "the signature on the CRL from {issuer} does not verify with {key} of the issuer \
         certificate (SHA-256 {fingerprint}): same name, different key (was the CA re-created?), \
         or the CRL was altered"
    )]
    BadSignature {
        /// The CRL issuer, readable.
        issuer: String,
        /// The issuer's key.
        key: String,
        /// SHA-256 of the issuer certificate tried.
        fingerprint: String,
    },
    /// The issuer has no keyUsage extension.
    #[error(
        "the CRL issuer {issuer} has no keyUsage extension; a certificate whose key signs CRLs \
         must carry keyUsage with cRLSign (RFC 5280 4.2.1.3), trust anchors included"
    )]
    IssuerWithoutKeyUsage {
        /// The CRL issuer, readable.
        issuer: String,
    },
    /// The issuer's keyUsage lacks cRLSign.
    #[error(
        "the CRL issuer {issuer} lacks cRLSign in its keyUsage (it has [{}]); only a certificate \
         with cRLSign may sign CRLs (RFC 5280 4.2.1.3)",
        .present.join(", ")
    )]
    IssuerNotCrlSigner {
        /// The CRL issuer, readable.
        issuer: String,
        /// The key usages present.
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
    pub(crate) fn is_malformed(&self) -> bool {
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
