//! TLS checks a certificate only during the handshake. Both ends of a connection therefore
//! watch the peer's certificate for as long as the connection lives: the server closes a client's
//! connection, and `MeshClient` closes its connection to a server, as soon as the peer's
//! certificate expires or its serial shows up on the revocation list (docs/security.md).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::clock::Clock;
use crate::trust::TrustState;

/// What the watcher needs from the peer's verified certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WatchedCert {
    /// Raw issuer Name and serial octets, for revocation lookups.
    pub(crate) issuer_raw: Vec<u8>,
    pub(crate) serial_raw: Vec<u8>,
    pub(crate) not_after: OffsetDateTime,
}

impl WatchedCert {
    pub(crate) fn from_der(cert: &CertificateDer<'_>) -> Option<WatchedCert> {
        let (_, parsed) = X509Certificate::from_der(cert).ok()?;
        Some(WatchedCert {
            issuer_raw: parsed.tbs_certificate.issuer.as_raw().to_vec(),
            serial_raw: parsed.tbs_certificate.raw_serial().to_vec(),
            not_after: parsed.validity().not_after.to_datetime(),
        })
    }

    /// Why the certificate may no longer carry traffic at `now`, if it may not: "revoked" or
    /// "expired" (past NotAfter, as webpki judges it).
    pub(crate) fn invalid_at(
        &self,
        trust: Option<&TrustState>,
        now: OffsetDateTime,
    ) -> Option<&'static str> {
        if trust.is_some_and(|t| t.revoked().is_revoked(&self.issuer_raw, &self.serial_raw)) {
            return Some("revoked");
        }
        // Whole seconds, like webpki (valid through the second of NotAfter): a connection is
        // given up exactly when a new handshake with the same certificate would fail.
        if now.unix_timestamp() > self.not_after.unix_timestamp() {
            return Some("expired");
        }
        None
    }
}

/// Resolves once the peer's certificate expires (by `clock`) or shows up on the revocation
/// list: "expired" or "revoked". Without a trust state (pinned mode) only expiry can end it.
///
/// A server holds one of these per open connection for as long as it lives, so its deadline is
/// computed here and the future keeps the certificate, the trust state, the timer and the
/// revocation subscription only (docs/performance.md "Memory per idle connection").
pub(crate) fn close_when_invalid<'a>(
    cert: &'a WatchedCert,
    trust: Option<Arc<TrustState>>,
    clock: &dyn Clock,
) -> impl Future<Output = &'static str> + Send + 'a {
    let left = pki::timefmt::until(cert.not_after, clock.now());
    // One second past NotAfter, so the certificate is expired by any clock reading.
    let deadline = tokio::time::Instant::now() + left + Duration::from_secs(1);
    async move {
        let expiry = tokio::time::sleep_until(deadline);
        tokio::pin!(expiry);
        let Some(trust) = trust else {
            expiry.await;
            return "expired";
        };
        let mut changes = trust.subscribe();
        loop {
            if trust
                .revoked()
                .is_revoked(&cert.issuer_raw, &cert.serial_raw)
            {
                return "revoked";
            }
            tokio::select! {
                _ = &mut expiry => return "expired",
                changed = changes.changed() => {
                    if changed.is_err() {
                        // The trust state is gone (shutdown); only expiry can still close us.
                        (&mut expiry).await;
                        return "expired";
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::World;
    use pki::crl::{verify_crl, RevokedEntry, RevokedSet};

    #[tokio::test(start_paused = true)]
    async fn an_open_connection_ends_when_the_peer_is_revoked() {
        let w = World::new(time::Duration::hours(1));
        let peer = w.credential();
        let cert = WatchedCert::from_der(&peer.chain()[0]).unwrap();
        let watch = tokio::spawn({
            let (cert, trust, clock) = (cert.clone(), w.trust.clone(), w.clock.clone());
            async move { close_when_invalid(&cert, Some(trust), &*clock).await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!watch.is_finished());
        assert_eq!(cert.invalid_at(Some(&w.trust), w.clock.now()), None);
        let now = w.clock.now();
        let der = pki::crl::sign_crl(
            &w.ca.root,
            &[RevokedEntry {
                serial_hex: peer.serial().to_string(),
                revoked_at: now,
                reason: None,
            }],
            1,
            now,
            now + time::Duration::minutes(10),
        )
        .unwrap();
        let crl = verify_crl(&der, w.trust.roots().certs()).unwrap();
        w.trust.set_revoked(RevokedSet::from_crls(vec![crl]), true);
        assert_eq!(watch.await.unwrap(), "revoked");
        assert_eq!(
            cert.invalid_at(Some(&w.trust), w.clock.now()),
            Some("revoked")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_connection_ends_when_the_peer_certificate_expires() {
        let w = World::new(time::Duration::hours(1));
        let peer = w.credential();
        let cert = WatchedCert::from_der(&peer.chain()[0]).unwrap();
        let started = tokio::time::Instant::now();
        let reason = close_when_invalid(&cert, None, &*w.clock).await;
        assert_eq!(reason, "expired");
        let waited = started.elapsed();
        // Whole seconds, like webpki: one second past NotAfter.
        assert!(
            waited >= Duration::from_secs(3600) && waited <= Duration::from_secs(3602),
            "{waited:?}"
        );
        assert_eq!(cert.invalid_at(None, w.clock.now()), Some("expired"));
    }
}
