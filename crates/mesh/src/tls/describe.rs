//! TLS facts and failures in words: a summary of a finished handshake (the names of version,
//! suite and group come from `wire::tls`, by code point), and the reason a handshake failed as a
//! server or a client sees it, from the typed errors of rustls and of our verifiers.

use rustls::{AlertDescription, CertificateError, Error, PeerIncompatible};
use rustls_pki_types::CertificateDer;
use wire::tls::{alert_name, Negotiated};

use crate::crl_freshness::CrlStaleError;
use crate::tls::identity_error::PeerIdentityError;
use pki::svid::SvidViolation;

/// What was negotiated, and who the peer is, after a successful handshake.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HandshakeSummary {
    /// `TLS 1.3`.
    pub version: String,
    /// `TLS_AES_256_GCM_SHA384`.
    pub suite: String,
    /// `secp384r1`.
    pub group: String,
    /// The ALPN protocol agreed, if any.
    pub alpn: Option<String>,
    /// The peer's certificate, if it sent one.
    pub peer: Option<PeerSummary>,
}

/// The verified peer certificate's facts.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PeerSummary {
    /// The SPIFFE ID, if the certificate carries one.
    pub spiffe_id: Option<String>,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial, lowercase hex.
    pub serial: String,
    /// The client key (docs/design.md §2).
    pub client_key: String,
    /// DNS SANs.
    pub dns: Vec<String>,
    /// IP SANs.
    pub ips: Vec<String>,
    /// NotAfter, RFC 3339.
    pub not_after: String,
    /// The certificate itself (DER), for a caller that keeps or re-checks it. The mesh's own
    /// watch of open connections works from the whole presented chain (`peer_anchor`).
    #[serde(skip)]
    pub der: CertificateDer<'static>,
}

impl PeerSummary {
    /// The facts of a certificate (None when it cannot be parsed).
    pub fn from_der(der: &CertificateDer<'_>) -> Option<PeerSummary> {
        let info = pki::CertInfo::from_der(der).ok()?;
        Some(PeerSummary {
            spiffe_id: info.spiffe_id().map(|i| i.to_string()),
            subject: info.subject,
            issuer: info.issuer,
            serial: info.serial_hex,
            client_key: info.client_key,
            dns: info.dns,
            ips: info.ips.iter().map(|i| i.to_string()).collect(),
            not_after: pki::timefmt::rfc3339(info.not_after),
            der: der.clone().into_owned(),
        })
    }
}

impl HandshakeSummary {
    /// Reads the summary off a connection whose handshake has finished.
    pub fn of(conn: &rustls::CommonState) -> HandshakeSummary {
        let negotiated = Negotiated::of(conn);
        HandshakeSummary {
            version: negotiated.version_name(),
            suite: negotiated.suite_name(),
            group: negotiated.group_name(),
            alpn: negotiated.alpn_name(),
            peer: conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(PeerSummary::from_der),
        }
    }
}

/// Finds the rustls error inside an I/O error from tokio-rustls, if there is one.
pub fn rustls_error(err: &std::io::Error) -> Option<&Error> {
    err.get_ref().and_then(|e| e.downcast_ref::<Error>())
}

fn certificate_problem(e: &CertificateError) -> String {
    match e {
        CertificateError::UnknownIssuer => {
            "unknown CA: the certificate is not signed by a trusted root".into()
        }
        CertificateError::Expired => "expired".into(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "expired: NotAfter {} is before now {}",
            unix_rfc3339(not_after.as_secs()),
            unix_rfc3339(time.as_secs())
        ),
        CertificateError::NotValidYet => "not yet valid".into(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "not yet valid: NotBefore {} is after now {}",
            unix_rfc3339(not_before.as_secs()),
            unix_rfc3339(time.as_secs())
        ),
        CertificateError::Revoked => "revoked".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "wrong EKU: the certificate's extended key usage does not allow this role \
             (clientAuth for clients, serverAuth for servers)"
                .into()
        }
        CertificateError::NotValidForName => "hostname mismatch".into(),
        // `presented` holds the names as our server verifier read them from the certificate
        // (`server_verifier::name_mismatch`), not webpki's debug renderings.
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => format!(
            "hostname mismatch: the certificate is valid for {}, not {}",
            if presented.is_empty() {
                "no name".to_string()
            } else {
                presented.join(", ")
            },
            server_name(expected)
        ),
        CertificateError::BadSignature => "bad signature".into(),
        CertificateError::BadEncoding => "malformed certificate".into(),
        #[allow(deprecated)]
        CertificateError::UnsupportedSignatureAlgorithm
        | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "unsupported signature algorithm (the mesh accepts ECDSA only)".into()
        }
        CertificateError::Other(other) => {
            if let Some(id) = other.0.downcast_ref::<PeerIdentityError>() {
                return id.to_string();
            }
            if let Some(v) = other.0.downcast_ref::<SvidViolation>() {
                // Read after "client certificate " / "server certificate ".
                let text = v.to_string();
                return match text.strip_prefix("certificate ") {
                    Some(rest) => rest.to_string(),
                    None => text,
                };
            }
            if let Some(stale) = other.0.downcast_ref::<CrlStaleError>() {
                return stale.to_string();
            }
            if let Some(w) = other.0.downcast_ref::<webpki::Error>() {
                return match w {
                    webpki::Error::CaUsedAsEndEntity => {
                        "CA certificate used as an end-entity (client or server) certificate".into()
                    }
                    other => format!("certificate rejected: {other:?}"),
                };
            }
            format!("certificate rejected: {other}")
        }
        other => format!("certificate rejected: {other:?}"),
    }
}

fn server_name(name: &rustls_pki_types::ServerName<'_>) -> String {
    match name {
        rustls_pki_types::ServerName::DnsName(d) => d.as_ref().to_string(),
        rustls_pki_types::ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// A Unix time as RFC 3339 (`pki::timefmt`).
fn unix_rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map(pki::timefmt::rfc3339)
        .unwrap_or_else(|| secs.to_string())
}

/// Why a client's handshake failed, as the server logs it.
pub fn server_side_reason(err: &Error) -> String {
    match err {
        Error::NoCertificatesPresented => "no client certificate presented".into(),
        Error::InvalidCertificate(e) => format!("client certificate {}", certificate_problem(e)),
        Error::PeerIncompatible(p) => match p {
            PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls12NotOfferedOrEnabled
            | PeerIncompatible::SupportedVersionsExtensionRequired => {
                "TLS version: the client does not offer TLS 1.3 (TLS 1.2 and older are refused)"
                    .into()
            }
            PeerIncompatible::NoKxGroupsInCommon => {
                "no key exchange group in common (the server allows secp384r1, secp521r1 and any \
                 --groups additions)"
                    .into()
            }
            PeerIncompatible::NoCipherSuitesInCommon => {
                "no cipher suite in common (the server allows TLS_AES_256_GCM_SHA384 and \
                 TLS_AES_128_GCM_SHA256)"
                    .into()
            }
            PeerIncompatible::NoSignatureSchemesInCommon => {
                "no signature scheme in common (the mesh uses ECDSA only)".into()
            }
            other => format!("incompatible client: {other:?}"),
        },
        Error::AlertReceived(alert) => format!(
            "the client aborted the handshake with alert {} (it rejected our certificate or settings)",
            alert_name(*alert)
        ),
        Error::InvalidMessage(m) => format!("not a TLS 1.3 client hello or corrupt message ({m:?})"),
        Error::PeerMisbehaved(m) => format!("client misbehaved: {m:?}"),
        other => other.to_string(),
    }
}

/// A short label for a failed client handshake, for metrics and JSON logs.
pub fn server_reason_code(err: &Error) -> &'static str {
    match err {
        Error::NoCertificatesPresented => "no_certificate",
        Error::InvalidCertificate(e) => match e {
            CertificateError::UnknownIssuer => "unknown_ca",
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not_yet_valid"
            }
            CertificateError::Revoked => "revoked",
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "wrong_eku"
            }
            CertificateError::Other(o) if o.0.downcast_ref::<PeerIdentityError>().is_some() => {
                match o.0.downcast_ref::<PeerIdentityError>() {
                    Some(PeerIdentityError::PinMismatch { .. }) => "pin_mismatch",
                    _ => "identity",
                }
            }
            CertificateError::Other(o) if o.0.downcast_ref::<SvidViolation>().is_some() => {
                match o.0.downcast_ref::<SvidViolation>().map(SvidViolation::code) {
                    Some("no_uri_san" | "multiple_uri_sans" | "invalid_spiffe_id") => {
                        "no_spiffe_id"
                    }
                    Some(
                        "svid_ca"
                        | "key_usage_missing"
                        | "key_usage_not_critical"
                        | "key_usage_no_digital_signature"
                        | "key_usage_ca_bits",
                    ) => "key_usage",
                    _ => "bad_certificate",
                }
            }
            CertificateError::Other(o) if o.0.downcast_ref::<CrlStaleError>().is_some() => {
                "crl_stale"
            }
            CertificateError::Other(o)
                if matches!(
                    o.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                "ca_as_leaf"
            }
            _ => "bad_certificate",
        },
        Error::PeerIncompatible(p) => match p {
            PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls12NotOfferedOrEnabled
            | PeerIncompatible::SupportedVersionsExtensionRequired => "tls_version",
            PeerIncompatible::NoKxGroupsInCommon => "no_common_group",
            PeerIncompatible::NoCipherSuitesInCommon => "no_common_suite",
            _ => "incompatible",
        },
        Error::AlertReceived(_) => "client_alert",
        _ => "other",
    }
}

/// Why our handshake or first read as a client failed, in words. In TLS 1.3 the server judges
/// our certificate after we have finished, so its verdict arrives as an alert on the first read.
pub fn client_side_reason(err: &Error) -> String {
    match err {
        Error::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRevoked => {
                "server rejected our certificate: revoked".into()
            }
            AlertDescription::CertificateExpired => {
                "server rejected our certificate: expired or not yet valid".into()
            }
            AlertDescription::UnknownCA => {
                "server rejected our certificate: unknown CA (the server does not trust our issuer)"
                    .into()
            }
            AlertDescription::CertificateRequired => {
                "server rejected the connection: a client certificate is required".into()
            }
            AlertDescription::BadCertificate => {
                "server rejected our certificate: bad certificate".into()
            }
            AlertDescription::UnsupportedCertificate => {
                "server rejected our certificate: unsupported certificate (wrong key usage or EKU)"
                    .into()
            }
            AlertDescription::CertificateUnknown => {
                "server rejected our certificate: certificate unknown (for example no SPIFFE ID, \
                 a key usage without digitalSignature, a CA certificate used as a client \
                 certificate, or a revocation list on the server too stale to answer)"
                    .into()
            }
            AlertDescription::ProtocolVersion => "server refused our TLS version".into(),
            AlertDescription::HandshakeFailure => {
                "handshake failure: no cipher suite or key exchange group in common".into()
            }
            AlertDescription::AccessDenied => "server denied access".into(),
            other => format!("server sent alert {}", alert_name(*other)),
        },
        Error::InvalidCertificate(CertificateError::Other(o))
            if o.0.downcast_ref::<PeerIdentityError>().is_some() =>
        {
            format!(
                "server identity mismatch: {}",
                certificate_problem(&CertificateError::Other(o.clone()))
            )
        }
        Error::InvalidCertificate(e) => format!("server certificate {}", certificate_problem(e)),
        Error::PeerIncompatible(p) => format!("server incompatible with our TLS policy: {p:?}"),
        other => other.to_string(),
    }
}

/// Words for an I/O error that may wrap a TLS error; `as_server` picks the point of view.
pub fn io_reason(err: &std::io::Error, as_server: bool) -> String {
    match rustls_error(err) {
        Some(e) if as_server => server_side_reason(e),
        Some(e) => client_side_reason(e),
        None if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            "connection closed by the peer during the handshake".into()
        }
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_for_common_failures() {
        assert_eq!(
            client_side_reason(&Error::AlertReceived(AlertDescription::CertificateRevoked)),
            "server rejected our certificate: revoked"
        );
        assert_eq!(
            server_side_reason(&Error::NoCertificatesPresented),
            "no client certificate presented"
        );
        assert!(
            server_side_reason(&Error::InvalidCertificate(CertificateError::Revoked))
                .ends_with("revoked")
        );
        assert!(server_side_reason(&Error::PeerIncompatible(
            PeerIncompatible::Tls12NotOfferedOrEnabled
        ))
        .contains("TLS 1.3"));
        let localhost = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let names = Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: localhost.clone(),
            presented: vec!["api.mesh.local".into(), "127.0.0.1".into()],
        });
        assert_eq!(
            client_side_reason(&names),
            "server certificate hostname mismatch: the certificate is valid for api.mesh.local, \
             127.0.0.1, not localhost"
        );
        let nameless = Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: localhost,
            presented: vec![],
        });
        assert!(client_side_reason(&nameless).contains("valid for no name, not localhost"));
        assert_eq!(
            client_side_reason(&Error::AlertReceived(AlertDescription::Unknown(200))),
            "server sent alert 200"
        );
        let other = crate::tls::identity_error::svid_violation(SvidViolation::NoUriSan);
        assert!(server_side_reason(&other).starts_with("client certificate has no URI SAN"));
        assert_eq!(server_reason_code(&other), "no_spiffe_id");
        let ku = crate::tls::identity_error::svid_violation(SvidViolation::NoDigitalSignature {
            present: vec!["keyEncipherment".into()],
        });
        assert!(
            server_side_reason(&ku)
                .starts_with("client certificate key usage lacks digitalSignature"),
            "{}",
            server_side_reason(&ku)
        );
        assert!(client_side_reason(&ku)
            .starts_with("server certificate key usage lacks digitalSignature"));
        assert_eq!(server_reason_code(&ku), "key_usage");
        let stale = CrlStaleError {
            next_update: "2026-11-23T14:00:00Z".into(),
            max_staleness: "30m".into(),
        }
        .into_rustls();
        assert_eq!(server_reason_code(&stale), "crl_stale");
        assert!(server_side_reason(&stale)
            .starts_with("client certificate revocation status unknown: the revocation list"));
        assert!(client_side_reason(&stale).starts_with("server certificate revocation status"));
        let not_ca = PeerIdentityError::NotTheCa {
            expected: "spiffe://mesh.local/ca".into(),
            presented: "spiffe://mesh.local/service/evil".into(),
        }
        .into_rustls();
        let said = client_side_reason(&not_ca);
        assert!(
            said.contains(
                "presented spiffe://mesh.local/service/evil, not the CA's identity \
                 spiffe://mesh.local/ca"
            ),
            "{said}"
        );
    }
}
