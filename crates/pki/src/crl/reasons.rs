//! The one table of CRL revocation reasons (RFC 5280 5.3.1), spelled as the RFC's ASN.1 spells
//! them. `mtls-inspect show`, `verify` and the CA all name reasons from here.

use rcgen::RevocationReason;

/// Every CRLReason code with its RFC 5280 name (code 7 is unused).
pub const REASON_CODES: &[(u8, &str)] = &[
    (0, "unspecified"),
    (1, "keyCompromise"),
    (2, "cACompromise"),
    (3, "affiliationChanged"),
    (4, "superseded"),
    (5, "cessationOfOperation"),
    (6, "certificateHold"),
    (8, "removeFromCRL"),
    (9, "privilegeWithdrawn"),
    (10, "aACompromise"),
];

/// The reasons a CA may give when it revokes a certificate (the command line and the API).
/// `removeFromCRL` belongs to delta CRLs and `aACompromise` to attribute certificates, so
/// neither is offered.
pub const REASONS: &[&str] = &[
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
];

/// The RFC 5280 name of a reason code; None for a code RFC 5280 does not define.
pub fn reason_name(code: u8) -> Option<&'static str> {
    REASON_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, name)| *name)
}

/// The code of a reason name, compared without regard to case (so OpenSSL's `CACompromise`
/// and the older `caCompromise` spelling are understood too).
pub fn reason_code(name: &str) -> Option<u8> {
    REASON_CODES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(c, _)| *c)
}

/// The RFC 5280 spelling of a reason a CA may give (see [`REASONS`]); None otherwise.
pub fn canonical_reason(name: &str) -> Option<&'static str> {
    REASONS
        .iter()
        .find(|n| n.eq_ignore_ascii_case(name))
        .copied()
}

/// Maps a reason a CA may give (any case) to its CRL code; None for anything else.
pub fn parse_reason(name: &str) -> Option<RevocationReason> {
    Some(match reason_code(canonical_reason(name)?)? {
        0 => RevocationReason::Unspecified,
        1 => RevocationReason::KeyCompromise,
        2 => RevocationReason::CaCompromise,
        3 => RevocationReason::AffiliationChanged,
        4 => RevocationReason::Superseded,
        5 => RevocationReason::CessationOfOperation,
        6 => RevocationReason::CertificateHold,
        9 => RevocationReason::PrivilegeWithdrawn,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_any_case_in() {
        assert_eq!(reason_name(2), Some("cACompromise"));
        assert_eq!(reason_name(8), Some("removeFromCRL"));
        assert_eq!(reason_name(7), None);
        for spelling in ["cACompromise", "caCompromise", "CACompromise"] {
            assert_eq!(reason_code(spelling), Some(2), "{spelling}");
            assert_eq!(canonical_reason(spelling), Some("cACompromise"));
            assert!(matches!(
                parse_reason(spelling),
                Some(RevocationReason::CaCompromise)
            ));
        }
        // Every reason a CA may give maps to the code with the same name, and back.
        for name in REASONS {
            let code = reason_code(name).unwrap_or(u8::MAX);
            assert_eq!(reason_name(code), Some(*name));
            assert!(parse_reason(name).is_some(), "{name}");
        }
        assert!(parse_reason("removeFromCRL").is_none());
        assert!(parse_reason("bogus").is_none());
    }
}
