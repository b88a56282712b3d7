//! Certificate revocation lists signed by the CA.

use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;

use crate::error::{PkiError, Result};
use crate::root::CaMaterial;

/// One revoked certificate as the store keeps it.
#[derive(Clone, Debug)]
pub struct RevokedEntry {
    pub serial_hex: String,
    pub revoked_at: OffsetDateTime,
    pub reason: Option<String>,
}

/// The RFC 5280 reason names accepted on the command line and the API.
pub const REASONS: &[&str] = &[
    "unspecified",
    "keyCompromise",
    "caCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
];

/// Maps a reason name to its CRL code; None for an unknown name.
pub fn parse_reason(name: &str) -> Option<RevocationReason> {
    Some(match name {
        "unspecified" => RevocationReason::Unspecified,
        "keyCompromise" => RevocationReason::KeyCompromise,
        "caCompromise" => RevocationReason::CaCompromise,
        "affiliationChanged" => RevocationReason::AffiliationChanged,
        "superseded" => RevocationReason::Superseded,
        "cessationOfOperation" => RevocationReason::CessationOfOperation,
        "certificateHold" => RevocationReason::CertificateHold,
        "privilegeWithdrawn" => RevocationReason::PrivilegeWithdrawn,
        _ => return None,
    })
}

/// Signs a v2 CRL listing `revoked` (the caller passes only unexpired certificates).
pub fn sign_crl(
    ca: &CaMaterial,
    revoked: &[RevokedEntry],
    crl_number: u64,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<Vec<u8>> {
    let mut revoked_certs = Vec::with_capacity(revoked.len());
    for entry in revoked {
        let bytes = hex::decode(&entry.serial_hex).map_err(|e| {
            PkiError::Policy(format!(
                "stored serial {:?} is not hex: {e}",
                entry.serial_hex
            ))
        })?;
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(&bytes),
            revocation_time: entry.revoked_at,
            reason_code: entry.reason.as_deref().and_then(parse_reason),
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from_slice(&crl_number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params
        .signed_by(ca.issuer())
        .map_err(|e| PkiError::Sign(format!("signing the CRL: {e}")))?;
    Ok(crl.der().to_vec())
}
