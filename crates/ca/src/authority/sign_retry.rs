//! A join-token sign repeated after the CA redeemed the token (the answer was lost: a replica
//! killed after its commit, a connection cut, a client timeout): answered with the certificate
//! the token was redeemed for when the retry carries the same public key, for the same SPIFFE
//! ID, and that certificate still stands. The same rule as a renewal retried with the same key
//! (`RenewOutcome::Existing`); docs/security.md says why it grants nothing new.

use pki::timefmt::rfc3339;
use pki::SpiffeId;
use time::OffsetDateTime;

use super::{Authority, Issued, Res};
use crate::error::AuthorityError;
use crate::store::{CertRecord, IssueKind, TokenRecord};

/// Why a used token's certificate is not returned to a CSR for another key.
const ANOTHER_KEY: &str = "it enrolled a certificate for another key (a retried sign gets that \
     certificate only with a CSR for the same key)";

/// The refusal of a used token, with why a retry does not get its certificate (None: no
/// certificate to compare with, the message of every single-use refusal).
pub(super) fn token_used(why: Option<String>) -> AuthorityError {
    let base =
        "the join token has already been used; ask the operator for a new one (mtls-ca token)";
    AuthorityError::unauthenticated(
        "token_used",
        match why {
            None => base.to_string(),
            Some(why) => format!("{base}; {why}"),
        },
    )
}

impl Authority {
    /// The answer to a sign with the used `token` for `requested` whose (signature-verified)
    /// CSR carries the key with SubjectPublicKeyInfo `spki_der`: the certificate the token
    /// was redeemed for, or `token_used` saying why not. Stores nothing, audits nothing: the
    /// certificate and its `issue` entry were recorded by the redemption.
    pub(super) fn sign_retried(
        &self,
        token: &TokenRecord,
        requested: &SpiffeId,
        spki_der: &[u8],
        now: OffsetDateTime,
    ) -> Res<Issued> {
        let earlier = self.redeemed_for(token)?;
        let Some(earlier) = earlier else {
            return Err(token_used(None));
        };
        // The key first: a caller without it learns nothing about that certificate's state.
        if earlier.spki_sha256()? != pki::sha256_hex(spki_der) {
            // No serial: the caller does not hold that certificate's key.
            return Err(token_used(Some(ANOTHER_KEY.to_string())));
        }
        if earlier.spiffe_id != requested.to_string() {
            return Err(token_used(Some(format!(
                "it enrolled {}, not {requested}",
                earlier.spiffe_id
            ))));
        }
        if earlier.revoked_at.is_some() {
            return Err(token_used(Some(format!(
                "it enrolled certificate {}, which has been revoked",
                earlier.serial
            ))));
        }
        if earlier.not_after <= now {
            return Err(token_used(Some(format!(
                "it enrolled certificate {}, which expired at {}",
                earlier.serial,
                rfc3339(earlier.not_after)
            ))));
        }
        tracing::info!(
            event = "sign_retried",
            serial = %earlier.serial,
            spiffe_id = %earlier.spiffe_id,
            "sign repeated with the same key: returning the certificate issued then"
        );
        self.stored_response(earlier)
    }

    /// The certificate `token` was redeemed for, None when it has no link (never redeemed, or
    /// a row edited by hand) or the link names no join-token certificate (`audit verify`
    /// reports such a store).
    fn redeemed_for(&self, token: &TokenRecord) -> Res<Option<CertRecord>> {
        let Some(serial) = token
            .used_serial
            .as_deref()
            .filter(|_| token.used_at.is_some())
        else {
            return Ok(None);
        };
        let record = self.store.find_cert(serial)?;
        if record.as_ref().is_none_or(|c| c.kind != IssueKind::Sign) {
            tracing::warn!(
                serial = %serial,
                "a used join token links to no certificate issued against a token; run mtls-ca audit verify"
            );
            return Ok(None);
        }
        Ok(record)
    }

    /// The answer that returns a stored certificate again (a retried sign or renewal): its PEM
    /// and serial, with the chain of its issuer.
    pub(super) fn stored_response(&self, record: CertRecord) -> Res<Issued> {
        let der = pki::pem::parse_certificates(record.pem.as_bytes())
            .ok()
            .and_then(|mut c| (c.len() == 1).then(|| c.remove(0)))
            .ok_or_else(|| {
                crate::store::StoreError::Corrupt(format!("certs.pem of {}", record.serial))
            })?;
        Ok(Issued {
            chain: self.chain_of(&der),
            certificate: record.pem,
            expires_at: record.not_after,
            serial: record.serial,
            spiffe_id: record.spiffe_id,
        })
    }
}
