//! The lint rules: stable ids, severities, what each checks and how to fix a violation.

use serde::Serialize;

/// How serious a finding is; only errors make `lint` exit 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A violation of the X509-SVID specification or of RFC 5280.
    Error,
    /// Allowed, but against the mtls-mesh issuance policy or good practice.
    Warning,
    /// Worth knowing; nothing to fix.
    Info,
}

impl Severity {
    /// The lowercase name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// A lint rule: stable id, severity, what it checks, how to fix a violation.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Rule {
    /// Stable identifier, e.g. `svid-uri-count`.
    pub id: &'static str,
    /// How serious a violation is.
    pub severity: Severity,
    /// What the rule checks, as a sentence.
    pub checks: &'static str,
    /// How to fix a violation.
    pub fix: &'static str,
}

macro_rules! rules {
    ($($name:ident = $id:literal, $sev:ident, $checks:literal, $fix:literal;)*) => {
        $(pub const $name: Rule = Rule { id: $id, severity: Severity::$sev, checks: $checks, fix: $fix };)*
        /// Every rule, in documentation order.
        pub const RULES: &[Rule] = &[$($name),*];
    };
}

rules! {
    URI_SAN_COUNT = "svid-uri-san-count", Error,
        "a leaf X509-SVID has exactly one URI SAN, and no certificate has more than one",
        "issue the certificate with exactly one URI SAN: the SPIFFE ID";
    SPIFFE_ID_SYNTAX = "svid-spiffe-id-syntax", Error,
        "the URI SAN is a valid SPIFFE ID",
        "use spiffe://<lowercase trust domain>/<path> with no query, fragment, port, dot or empty segments";
    TRUST_DOMAIN = "svid-trust-domain", Error,
        "the SPIFFE ID is in the trust domain given with --trust-domain",
        "issue the certificate from the CA of the expected trust domain";
    LEAF_CA_FALSE = "svid-leaf-ca-false", Error,
        "a leaf has basicConstraints CA:FALSE",
        "issue leaves with basicConstraints CA:FALSE";
    LEAF_BASIC_CONSTRAINTS = "svid-leaf-basic-constraints", Warning,
        "a leaf carries an explicit basicConstraints extension",
        "add basicConstraints CA:FALSE (the mtls-mesh CA always does)";
    KEY_USAGE_PRESENT = "svid-key-usage-present", Error,
        "the keyUsage extension is present",
        "add a critical keyUsage extension";
    KEY_USAGE_CRITICAL = "svid-key-usage-critical", Error,
        "the keyUsage extension is critical",
        "mark keyUsage critical";
    LEAF_DIGITAL_SIGNATURE = "svid-leaf-digital-signature", Error,
        "a leaf's keyUsage has digitalSignature",
        "set keyUsage digitalSignature";
    LEAF_NO_CERT_SIGN = "svid-leaf-no-cert-sign", Error,
        "a leaf's keyUsage has neither keyCertSign nor cRLSign",
        "remove keyCertSign and cRLSign from the leaf's keyUsage";
    LEAF_EKU_PRESENT = "svid-leaf-eku-present", Warning,
        "a leaf has an extendedKeyUsage extension",
        "add extendedKeyUsage serverAuth, clientAuth";
    LEAF_EKU_TLS = "svid-leaf-eku-tls", Error,
        "a leaf's extendedKeyUsage has serverAuth and clientAuth",
        "set extendedKeyUsage to serverAuth, clientAuth";
    LEAF_EKU_EXTRA = "mesh-leaf-eku-extra", Warning,
        "a leaf's extendedKeyUsage has nothing beyond serverAuth and clientAuth",
        "drop the other purposes; mtls-mesh leaves are for TLS only";
    SAN_CRITICAL_EMPTY_SUBJECT = "x509-san-critical-empty-subject", Error,
        "subjectAltName is critical when the subject is empty (RFC 5280 4.2.1.6)",
        "mark subjectAltName critical, or give the certificate a subject";
    CA_TRUE = "svid-ca-true", Error,
        "a signing certificate has basicConstraints CA:TRUE",
        "issue CA certificates with a critical basicConstraints CA:TRUE";
    CA_KEY_CERT_SIGN = "svid-ca-key-cert-sign", Error,
        "a signing certificate's keyUsage has keyCertSign",
        "set keyUsage keyCertSign (and cRLSign to sign CRLs)";
    CA_URI_SAN = "svid-ca-uri-san", Error,
        "a signing certificate's SPIFFE ID, if any, is the trust domain ID: it must not have a path",
        "use spiffe://<trust domain> or no URI SAN on CA certificates";
    ECDSA_KEY = "mesh-ecdsa-key", Error,
        "the key is ECDSA on P-256, P-384 or P-521",
        "generate an ECDSA key on P-384 (or P-256/P-521); RSA and other keys are refused";
    CA_KEY_P384 = "mesh-ca-key-p384", Error,
        "a CA key is ECDSA P-384",
        "create the CA with an ECDSA P-384 key";
    SIGNATURE_ALGORITHM = "mesh-signature-algorithm", Error,
        "a certificate issued by a P-384 CA is signed with ecdsa-with-SHA384, and every signature is ECDSA",
        "sign with the CA's P-384 key using ecdsa-with-SHA384";
    LIFETIME = "mesh-lifetime", Warning,
        "the lifetime is at most --max-lifetime (leaves) or --max-ca-lifetime (CAs)",
        "issue shorter-lived certificates (the CA default is 1h, its maximum 24h)";
    SERIAL_ENTROPY = "mesh-serial-entropy", Warning,
        "the serial has room for at least 128 random bits",
        "use a random serial of 16 to 20 octets (the mtls-mesh CA uses 159 random bits)";
    SERIAL_MINIMUM = "x509-serial-entropy-minimum", Error,
        "the serial has at least 64 bits (CA/Browser Forum minimum)",
        "use a random serial of 16 to 20 octets";
    SERIAL_FORMAT = "x509-serial-format", Error,
        "the serial is positive and at most 20 octets (RFC 5280 4.1.2.2)",
        "use a positive serial of at most 20 octets";
    VERSION = "x509-version", Error,
        "the certificate is X.509 version 3",
        "issue v3 certificates (extensions need v3)";
    VALIDITY_ORDER = "x509-validity-order", Error,
        "NotBefore is not after NotAfter",
        "fix the validity period";
    UNKNOWN_CRITICAL = "x509-unknown-critical-extension", Error,
        "no extension unknown to the verifier is marked critical",
        "drop the extension or mark it non-critical; verifiers reject unknown critical extensions";
    AUTHORITY_KEY_ID = "x509-authority-key-id", Warning,
        "a certificate that is not self-issued has an authorityKeyIdentifier (RFC 5280 4.2.1.1)",
        "add authorityKeyIdentifier (rcgen: use_authority_key_identifier_extension)";
    SUBJECT_KEY_ID = "x509-subject-key-id", Error,
        "a CA certificate has a subjectKeyIdentifier (RFC 5280 4.2.1.2)",
        "add subjectKeyIdentifier (OpenSSL: subjectKeyIdentifier=hash; rcgen adds it)";
    SAN_NONCRITICAL_WITH_SUBJECT = "x509-san-noncritical-with-subject", Warning,
        "subjectAltName is not critical when the subject is not empty (RFC 5280 4.2.1.6)",
        "mark subjectAltName non-critical";
    DNS_NAME_SYNTAX = "x509-dns-name-syntax", Error,
        "every DNS SAN is a host name: letters, digits and hyphens, a leading *. allowed (RFC 5280 4.2.1.6)",
        "use host names without underscores, spaces or empty labels";
    DUPLICATE_EXTENSION = "x509-duplicate-extension", Error,
        "no extension appears twice (RFC 5280 4.2)",
        "issue the certificate with each extension once";
    BUNDLE_KEY_SHAPE = "spiffe-bundle-key-shape", Error,
        "every element of a SPIFFE bundle's keys is a JWK: a JSON object with kty (bundle spec 4.2.1)",
        "write each key as a JWK object with kty, use and the key's parameters";
    BUNDLE_KEY_USE = "spiffe-bundle-key-use", Error,
        "every key of a SPIFFE bundle has a use (bundle spec 4.2.2)",
        "set use to x509-svid (X.509 authorities) or jwt-svid (JWT-SVID signing keys)";
    BUNDLE_KEY_USE_UNKNOWN = "spiffe-bundle-key-use-unknown", Warning,
        "every key's use is x509-svid or jwt-svid; readers ignore keys of other uses",
        "drop the key, or set its use to x509-svid or jwt-svid";
    BUNDLE_X5C = "spiffe-bundle-x5c", Error,
        "an x509-svid key carries exactly one base64 DER certificate in x5c (X509-SVID spec 6.1)",
        "put the authority's certificate, and only it, in x5c (mtls-ca's bundle does)";
    BUNDLE_X509_KEY = "spiffe-bundle-x509-key", Error,
        "an x509-svid key's crv, x and y are the EC public key of its x5c certificate",
        "derive the JWK from the certificate (pki::jwt_svid::x509_authority_jwk)";
    BUNDLE_X509_CA = "spiffe-bundle-x509-ca", Error,
        "an x509-svid key's certificate is a CA certificate (X509-SVID spec 6.1)",
        "publish the trust domain's root (CA:TRUE), not a leaf certificate";
    BUNDLE_X509_AUTHORITY = "spiffe-bundle-x509-authority", Warning,
        "the bundle holds at least one usable x509-svid key; mtls-ca federation and the services refuse a bundle without",
        "publish the trust domain's root certificates as x509-svid keys";
    BUNDLE_JWT_KID = "spiffe-bundle-jwt-kid", Error,
        "a jwt-svid key has a kid (JWT-SVID spec 6)",
        "set kid (mtls-ca uses the key's RFC 7638 thumbprint)";
    BUNDLE_KID_UNIQUE = "spiffe-bundle-kid-unique", Error,
        "no two keys of the bundle share a kid (a verifier picks the key by kid)",
        "give every key its own kid";
    BUNDLE_JWT_ES384 = "spiffe-bundle-jwt-es384", Warning,
        "a jwt-svid key is EC P-384 with 48-byte coordinates: mtls-mesh signs and verifies ES384 only",
        "use an EC P-384 key for JWT-SVIDs";
    BUNDLE_SEQUENCE = "spiffe-bundle-sequence", Warning,
        "the bundle has spiffe_sequence (bundle spec 4.1.1: SHOULD)",
        "set spiffe_sequence and increase it with every change of the bundle";
    BUNDLE_REFRESH_HINT = "spiffe-bundle-refresh-hint", Warning,
        "the bundle has spiffe_refresh_hint (bundle spec 4.1.2: SHOULD)",
        "set spiffe_refresh_hint to how often readers should fetch the bundle, in seconds";
    BUNDLE_NUMBER_SYNTAX = "spiffe-bundle-number-syntax", Error,
        "spiffe_sequence and spiffe_refresh_hint, when set, are unsigned integers (bundle spec 4.1)",
        "write them as JSON integers (seconds for the refresh hint)";
}

/// One violation of a rule by one certificate.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// The id of the rule broken.
    pub rule: &'static str,
    /// The rule's severity.
    pub severity: Severity,
    /// What is wrong with this certificate, with the values found.
    pub message: String,
    /// How to fix it.
    pub fix: &'static str,
}

impl Finding {
    pub(crate) fn new(rule: Rule, message: impl Into<String>) -> Finding {
        Finding {
            rule: rule.id,
            severity: rule.severity,
            message: message.into(),
            fix: rule.fix,
        }
    }
}
