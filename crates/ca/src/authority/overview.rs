//! What the dashboard shows (docs/dashboard.md), gathered for the admin identity only: the
//! issued certificates, the audit chain verified now, the CRL being served and the last
//! refusals. Read-only: nothing here writes to the store or signs anything.

use std::collections::BTreeSet;

use time::OffsetDateTime;

use super::{Authority, Res};
use crate::error::AuthorityError;
use crate::refusals::Refusal;
use crate::store::{AuditCheck, AuditHead, CertRecord};

/// The most certificates one page lists (the newest); the rest are counted, not shown.
pub const MAX_LISTED: usize = 500;

/// Everything one dashboard page shows, as of `now`.
pub struct Overview {
    /// The authority's time when this was gathered.
    pub now: OffsetDateTime,
    /// The trust domain the CA issues for.
    pub trust_domain: String,
    /// Every identity that holds or held a certificate, sorted (the filter's choices).
    pub identities: Vec<String>,
    /// The identity asked for, when the page is filtered.
    pub filter: Option<String>,
    /// The certificates shown (of `filter` when set), newest first, at most [`MAX_LISTED`].
    pub certs: Vec<CertRecord>,
    /// How many more matched but are not listed.
    pub not_listed: usize,
    /// The audit chain, verified while gathering.
    pub audit: AuditStatus,
    /// The CRL this CA serves, None when it has signed none since it started.
    pub crl: Option<CrlStatus>,
    /// Refusals counted since start, by reason.
    pub refusal_counts: Vec<(&'static str, u64)>,
    /// The last refusals, newest first.
    pub recent_refusals: Vec<Refusal>,
}

/// The audit chain as verified for this page.
pub struct AuditStatus {
    /// The verdict of verifying the chain and replaying it against the tables.
    pub check: AuditCheck,
    /// The last entry (what `mtls-ca audit head` prints).
    pub head: Option<AuditHead>,
}

/// The CRL last signed by this process (the one `GET /api/v1/crl` serves until it is
/// re-signed).
pub struct CrlStatus {
    /// Its thisUpdate.
    pub this_update: OffsetDateTime,
    /// Its nextUpdate: services treat it as stale after this.
    pub next_update: Option<OffsetDateTime>,
    /// Its CRL Number, hex.
    pub number: String,
    /// How many certificates it lists.
    pub entries: usize,
    /// A revocation was committed after it was signed: the next fetch gets a new one.
    pub outdated: bool,
}

impl Authority {
    /// The dashboard's content for the admin identity (401 without a certificate, 403
    /// `not_admin` for any other identity), of one identity when `filter` is set.
    pub fn overview(&self, peer: Option<&[u8]>, filter: Option<&str>) -> Res<Overview> {
        let now = self.clock.now();
        self.counted(|| {
            self.require_admin(peer, now, "the dashboard")?;
            let all = self.store.list_certs()?;
            // The OCSP responder's row has no SPIFFE ID ("").
            let identities: BTreeSet<&str> = all
                .iter()
                .map(|c| c.spiffe_id.as_str())
                .filter(|id| !id.is_empty())
                .collect();
            let identities: Vec<String> = identities.into_iter().map(str::to_string).collect();
            let mut certs: Vec<CertRecord> = all
                .into_iter()
                .rev()
                .filter(|c| filter.is_none_or(|id| c.spiffe_id == id))
                .collect();
            let not_listed = certs.len().saturating_sub(MAX_LISTED);
            certs.truncate(MAX_LISTED);
            let audit = AuditStatus {
                check: self.store.verify_audit()?,
                head: self.store.audit_head()?,
            };
            Ok(Overview {
                now,
                trust_domain: self.cfg.trust_domain.to_string(),
                identities,
                filter: filter.map(str::to_string),
                certs,
                not_listed,
                audit,
                crl: self.crl_status()?,
                refusal_counts: self.metrics.rejections(),
                recent_refusals: self.metrics.recent_refusals.newest_first(),
            })
        })
    }

    /// The cached CRL, read back through the same verifier the services use.
    fn crl_status(&self) -> Res<Option<CrlStatus>> {
        let cached = {
            let cache = self.crl.lock().unwrap_or_else(|p| p.into_inner());
            cache.as_ref().map(|c| (c.der.clone(), c.epoch))
        };
        let Some((der, epoch)) = cached else {
            return Ok(None);
        };
        let crl = pki::crl::verify_crl(&der, std::slice::from_ref(self.ca().cert_der()))
            .map_err(AuthorityError::internal)?;
        Ok(Some(CrlStatus {
            this_update: crl.this_update,
            next_update: crl.next_update,
            number: hex::encode(&crl.crl_number),
            entries: crl.serials.len(),
            outdated: self.store.revocation_epoch()? != epoch,
        }))
    }
}
