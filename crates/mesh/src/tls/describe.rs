//! TLS facts and failures in words: names of versions, suites and groups, a summary of a
//! finished handshake, and the reason a handshake failed as a server or a client sees it.

use rustls::{
    AlertDescription, CertificateError, CipherSuite, Error, NamedGroup, PeerIncompatible,
    ProtocolVersion,
};
use rustls_pki_types::CertificateDer;

use crate::crl_freshness::CrlStaleError;
use crate::tls::identity_error::PeerIdentityError;
use pki::svid::SvidViolation;

pub fn group_name(group: NamedGroup) -> String {
    match group {
        NamedGroup::secp256r1 => "secp256r1".into(),
        NamedGroup::secp384r1 => "secp384r1".into(),
        NamedGroup::secp521r1 => "secp521r1".into(),
        NamedGroup::X25519 => "x25519".into(),
        NamedGroup::X25519MLKEM768 => "X25519MLKEM768".into(),
        other => format!("{other:?}"),
    }
}

pub fn suite_name(suite: CipherSuite) -> String {
    match suite {
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384".into(),
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256".into(),
        other => format!("{other:?}"),
    }
}

pub fn version_name(version: ProtocolVersion) -> String {
    match version {
        ProtocolVersion::TLSv1_3 => "TLS 1.3".into(),
        ProtocolVersion::TLSv1_2 => "TLS 1.2".into(),
        other => format!("{other:?}"),
    }
}

/// What was negotiated, and who the peer is, after a successful handshake.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HandshakeSummary {
    pub version: String,
    pub suite: String,
    pub group: String,
    pub alpn: Option<String>,
    pub peer: Option<PeerSummary>,
}

/// The verified peer certificate's facts.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PeerSummary {
    pub spiffe_id: Option<String>,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub client_key: String,
    pub dns: Vec<String>,
    pub ips: Vec<String>,
    /// RFC 3339.
    pub not_after: String,
    /// The certificate itself, so the connection's owner can keep watching it
    /// (`peer_watch`).
    #[serde(skip)]
    pub der: CertificateDer<'static>,
}

impl PeerSummary {
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
            not_after: crate::timefmt::rfc3339(info.not_after),
            der: der.clone().into_owned(),
        })
    }
}

impl HandshakeSummary {
    pub fn of(conn: &rustls::CommonState) -> HandshakeSummary {
        HandshakeSummary {
            version: conn
                .protocol_version()
                .map(version_name)
                .unwrap_or_default(),
            suite: conn
                .negotiated_cipher_suite()
                .map(|s| suite_name(s.suite()))
                .unwrap_or_default(),
            group: conn
                .negotiated_key_exchange_group()
                .map(|g| group_name(g.name()))
                .unwrap_or_default(),
            alpn: conn
                .alpn_protocol()
                .map(|a| String::from_utf8_lossy(a).into_owned()),
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
            fmt_unix(not_after.as_secs()),
            fmt_unix(time.as_secs())
        ),
        CertificateError::NotValidYet => "not yet valid".into(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "not yet valid: NotBefore {} is after now {}",
            fmt_unix(not_before.as_secs()),
            fmt_unix(time.as_secs())
        ),
        CertificateError::Revoked => "revoked".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "wrong EKU: the certificate's extended key usage does not allow this role \
             (clientAuth for clients, serverAuth for servers)"
                .into()
        }
        CertificateError::NotValidForName => "hostname mismatch".into(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names: Vec<String> = presented.iter().map(|p| clean_name(p)).collect();
            format!(
                "hostname mismatch: the certificate is valid for {}, not {}",
                if names.is_empty() {
                    "no name".to_string()
                } else {
                    names.join(", ")
                },
                server_name(expected)
            )
        }
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

/// webpki reports the names a certificate holds in Debug form (`DnsName("x")`,
/// `IpAddress(V4(Ipv4Addr([127, 0, 0, 1])))`); turn them back into plain names.
fn clean_name(raw: &str) -> String {
    let quoted = |prefix: &str| {
        raw.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("\")"))
            .map(str::to_string)
    };
    if let Some(n) = quoted("DnsName(\"") {
        return n;
    }
    if let Some(n) = quoted("UniformResourceIdentifier(\"") {
        return n;
    }
    if raw.starts_with("IpAddress(") {
        let digits: Vec<u16> = raw
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.parse().ok())
            .collect();
        // "V4"/"Ipv4Addr" contribute numbers too; the octets are the last ones.
        if raw.contains("V4") && digits.len() >= 4 {
            return digits[digits.len() - 4..]
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(".");
        }
        if raw.contains("V6") && digits.len() >= 16 {
            let mut octets = [0u8; 16];
            for (o, d) in octets.iter_mut().zip(&digits[digits.len() - 16..]) {
                *o = *d as u8;
            }
            return std::net::Ipv6Addr::from(octets).to_string();
        }
    }
    raw.to_string()
}

fn fmt_unix(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

fn alert_name(alert: &AlertDescription) -> String {
    match alert {
        AlertDescription::CertificateRevoked => "certificate_revoked".into(),
        AlertDescription::CertificateExpired => "certificate_expired".into(),
        AlertDescription::UnknownCA => "unknown_ca".into(),
        AlertDescription::BadCertificate => "bad_certificate".into(),
        AlertDescription::CertificateRequired => "certificate_required".into(),
        AlertDescription::UnsupportedCertificate => "unsupported_certificate".into(),
        AlertDescription::CertificateUnknown => "certificate_unknown".into(),
        AlertDescription::HandshakeFailure => "handshake_failure".into(),
        AlertDescription::ProtocolVersion => "protocol_version".into(),
        AlertDescription::DecryptError => "decrypt_error".into(),
        AlertDescription::AccessDenied => "access_denied".into(),
        other => format!("{other:?}"),
    }
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
            alert_name(alert)
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
            other => format!("server sent alert {}", alert_name(other)),
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
        assert_eq!(clean_name("DnsName(\"localhost\")"), "localhost");
        assert_eq!(
            clean_name("IpAddress(V4(Ipv4Addr([127, 0, 0, 1])))"),
            "127.0.0.1"
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
