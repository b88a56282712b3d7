//! Names of TLS versions, cipher suites, key exchange groups and alerts, from their code points
//! (IANA's names; alerts as RFC 8446 spells them), and what a finished handshake negotiated.
//! Nothing here reads rustls' `Debug` output: an unknown code point is shown as a number.

use std::borrow::Cow;

use rustls::{AlertDescription, CipherSuite, CommonState, NamedGroup, ProtocolVersion};

use crate::tls::groups::KxGroup;

/// `TLS 1.3`, `TLS 1.2`, ... or `version 0x0304`-style hex for anything else.
pub fn version_name(version: ProtocolVersion) -> Cow<'static, str> {
    let code = u16::from(version);
    Cow::Borrowed(match code {
        0x0304 => "TLS 1.3",
        0x0303 => "TLS 1.2",
        0x0302 => "TLS 1.1",
        0x0301 => "TLS 1.0",
        0x0300 => "SSL 3.0",
        0x0200 => "SSL 2.0",
        0xfefd => "DTLS 1.2",
        0xfeff => "DTLS 1.0",
        0xfefc => "DTLS 1.3",
        _ => return Cow::Owned(format!("version 0x{code:04x}")),
    })
}

/// The IANA name of a TLS 1.3 cipher suite (`TLS_AES_256_GCM_SHA384`), else `suite 0x....`.
pub fn suite_name(suite: CipherSuite) -> Cow<'static, str> {
    let code = u16::from(suite);
    Cow::Borrowed(match code {
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0x1304 => "TLS_AES_128_CCM_SHA256",
        0x1305 => "TLS_AES_128_CCM_8_SHA256",
        _ => return Cow::Owned(format!("suite 0x{code:04x}")),
    })
}

/// The name of a key exchange group (`secp384r1`, `x25519`, `X25519MLKEM768`), else
/// `group 0x....`.
pub fn group_name(group: NamedGroup) -> Cow<'static, str> {
    if let Some(ours) = KxGroup::from_named_group(group) {
        return Cow::Borrowed(ours.name());
    }
    let code = u16::from(group);
    Cow::Borrowed(match code {
        0x001e => "x448",
        0x0100 => "ffdhe2048",
        0x0101 => "ffdhe3072",
        0x0102 => "ffdhe4096",
        0x0103 => "ffdhe6144",
        0x0104 => "ffdhe8192",
        0x0200 => "MLKEM512",
        0x0201 => "MLKEM768",
        0x0202 => "MLKEM1024",
        0x11eb => "SecP256r1MLKEM768",
        0x11ed => "SecP384r1MLKEM1024",
        _ => return Cow::Owned(format!("group 0x{code:04x}")),
    })
}

/// The RFC 8446 name of an alert (`certificate_required`, `unknown_ca`), else its number.
pub fn alert_name(alert: AlertDescription) -> Cow<'static, str> {
    let code = u8::from(alert);
    Cow::Borrowed(match code {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        121 => "ech_required",
        _ => return Cow::Owned(code.to_string()),
    })
}

/// What a finished handshake negotiated, as typed values (names via the functions above).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// The protocol version (always TLS 1.3 with the configurations of this crate).
    pub version: Option<ProtocolVersion>,
    /// The cipher suite.
    pub suite: Option<CipherSuite>,
    /// The key exchange group.
    pub group: Option<NamedGroup>,
    /// The ALPN protocol, if one was agreed.
    pub alpn: Option<Vec<u8>>,
}

impl Negotiated {
    /// Reads the negotiated values off a connection (server or client side).
    pub fn of(conn: &CommonState) -> Negotiated {
        Negotiated {
            version: conn.protocol_version(),
            suite: conn.negotiated_cipher_suite().map(|s| s.suite()),
            group: conn.negotiated_key_exchange_group().map(|g| g.name()),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        }
    }

    /// `TLS 1.3`, or empty before a handshake.
    pub fn version_name(&self) -> String {
        self.version
            .map(version_name)
            .unwrap_or_default()
            .into_owned()
    }

    /// `TLS_AES_256_GCM_SHA384`, or empty before a handshake.
    pub fn suite_name(&self) -> String {
        self.suite.map(suite_name).unwrap_or_default().into_owned()
    }

    /// `secp384r1`, or empty before a handshake.
    pub fn group_name(&self) -> String {
        self.group.map(group_name).unwrap_or_default().into_owned()
    }

    /// The ALPN protocol as text (`h2`, `http/1.1`).
    pub fn alpn_name(&self) -> Option<String> {
        self.alpn
            .as_deref()
            .map(|a| String::from_utf8_lossy(a).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_code_points() {
        assert_eq!(version_name(ProtocolVersion::TLSv1_3), "TLS 1.3");
        assert_eq!(
            version_name(ProtocolVersion::Unknown(0x7f1c)),
            "version 0x7f1c"
        );
        assert_eq!(
            suite_name(CipherSuite::TLS13_AES_256_GCM_SHA384),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(suite_name(CipherSuite::Unknown(0xc0de)), "suite 0xc0de");
        assert_eq!(group_name(NamedGroup::secp521r1), "secp521r1");
        assert_eq!(group_name(NamedGroup::X25519), "x25519");
        assert_eq!(group_name(NamedGroup::X25519MLKEM768), "X25519MLKEM768");
        assert_eq!(group_name(NamedGroup::Unknown(0x1234)), "group 0x1234");
        assert_eq!(alert_name(AlertDescription::UnknownCA), "unknown_ca");
        assert_eq!(
            alert_name(AlertDescription::CertificateRequired),
            "certificate_required"
        );
        assert_eq!(alert_name(AlertDescription::Unknown(200)), "200");
    }

    #[test]
    fn every_named_alert_has_a_snake_case_name() {
        for code in 0..=255u8 {
            let alert = AlertDescription::from(code);
            let name = alert_name(alert);
            if matches!(alert, AlertDescription::Unknown(_)) {
                assert_eq!(name, code.to_string());
            } else {
                assert!(
                    name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "{code}: {name}"
                );
            }
        }
    }
}
