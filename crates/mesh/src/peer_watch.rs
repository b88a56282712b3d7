//! TLS checks a certificate only during the handshake. Both ends of a connection therefore
//! watch the peer's certificate for as long as the connection lives: the server closes a client's
//! connection, and `MeshClient` closes its connection to a server, as soon as the peer's
//! certificate expires or its serial shows up on the revocation list (docs/security.md). In
//! pinned mode with a pins file, a connection whose peer key is dropped from the file is closed
//! the same way ("unpinned"): after a key rotation, no connection keeps the old key alive. By
//! the same rule a connection whose peer no longer chains to a trusted root is closed
//! ("untrusted", `peer_anchor`): its federated trust domain was removed, or its root was dropped
//! from our bundle.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::clock::Clock;
use crate::peer_anchor::Anchors;
use crate::tls::LivePins;
use crate::trust::TrustState;

/// What a peer's certificate is judged against after the handshake: the trust state (CRL) of
/// the CA modes, or the live pins of pinned mode.
#[derive(Clone, Default)]
pub(crate) struct PeerTrust {
    pub(crate) trust: Option<Arc<TrustState>>,
    pub(crate) pins: Option<Arc<LivePins>>,
}

/// What the watcher needs from the peer's verified certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WatchedCert {
    /// Raw issuer Name and serial octets, for revocation lookups.
    pub(crate) issuer_raw: Vec<u8>,
    pub(crate) serial_raw: Vec<u8>,
    pub(crate) not_after: OffsetDateTime,
    /// SHA-256 of the SubjectPublicKeyInfo (what a pin names), raw: 32 bytes per connection.
    pub(crate) spki_sha256: [u8; 32],
    /// The trusted roots the peer's chain reached right after the handshake; None without a
    /// trust state (pinned mode), where pins decide.
    anchors: Option<Anchors>,
}

impl WatchedCert {
    /// From the verified chain the peer presented (leaf first) and, where the service trusts
    /// roots, the trust state now (to remember which roots the chain reaches).
    pub(crate) fn from_chain(
        chain: &[CertificateDer<'_>],
        trust: Option<&TrustState>,
    ) -> Option<WatchedCert> {
        let cert = chain.first()?;
        let (_, parsed) = X509Certificate::from_der(cert).ok()?;
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            parsed.tbs_certificate.subject_pki.raw,
        );
        Some(WatchedCert {
            issuer_raw: parsed.tbs_certificate.issuer.as_raw().to_vec(),
            serial_raw: parsed.tbs_certificate.raw_serial().to_vec(),
            not_after: parsed.validity().not_after.to_datetime(),
            spki_sha256: digest.as_ref().try_into().ok()?,
            anchors: trust.map(|t| Anchors::of(chain, t)),
        })
    }

    fn unpinned(&self, pins: &LivePins) -> bool {
        !pins.current().contains_hex(&hex::encode(self.spki_sha256))
    }

    /// Whether the certificate was withdrawn, whatever the time: "revoked", "untrusted" or
    /// "unpinned".
    fn withdrawn(&self, judge: &PeerTrust) -> Option<&'static str> {
        let trust = judge.trust.as_deref();
        if trust.is_some_and(|t| t.revoked().is_revoked(&self.issuer_raw, &self.serial_raw)) {
            return Some("revoked");
        }
        if let (Some(trust), Some(anchors)) = (trust, &self.anchors) {
            if !anchors.still_trusted(trust) {
                return Some("untrusted");
            }
        }
        if judge.pins.as_deref().is_some_and(|p| self.unpinned(p)) {
            return Some("unpinned");
        }
        None
    }

    /// Why the certificate may no longer carry traffic at `now`, if it may not: "revoked",
    /// "untrusted", "unpinned" or "expired" (past NotAfter, as webpki judges it).
    pub(crate) fn invalid_at(
        &self,
        judge: &PeerTrust,
        now: OffsetDateTime,
    ) -> Option<&'static str> {
        if let Some(reason) = self.withdrawn(judge) {
            return Some(reason);
        }
        // Whole seconds, like webpki (valid through the second of NotAfter): a connection is
        // given up exactly when a new handshake with the same certificate would fail.
        if now.unix_timestamp() > self.not_after.unix_timestamp() {
            return Some("expired");
        }
        None
    }
}

/// Resolves once the peer's certificate expires (by `clock`), shows up on the revocation list,
/// no longer chains to a trusted root or its key is no longer pinned: "expired", "revoked",
/// "untrusted" or "unpinned". Without a trust state or
/// live pins (pinned mode with `--trust-pin`) only expiry can end it.
///
/// A server holds one of these per open connection for as long as it lives, so its deadline is
/// computed here and the future keeps the certificate, the trust state, the timer and the
/// revocation subscription only (docs/performance.md "Memory per idle connection").
pub(crate) fn close_when_invalid<'a>(
    cert: &'a WatchedCert,
    judge: PeerTrust,
    clock: &dyn Clock,
) -> impl Future<Output = &'static str> + Send + 'a {
    let left = pki::timefmt::until(cert.not_after, clock.now());
    // One second past NotAfter, so the certificate is expired by any clock reading.
    let deadline = tokio::time::Instant::now() + left + Duration::from_secs(1);
    async move {
        let expiry = tokio::time::sleep_until(deadline);
        tokio::pin!(expiry);
        let mut changes = match (&judge.trust, &judge.pins) {
            (Some(trust), _) => trust.subscribe(),
            (None, Some(pins)) => pins.subscribe(),
            (None, None) => {
                expiry.await;
                return "expired";
            }
        };
        loop {
            // Expiry is the timer's business.
            if let Some(reason) = cert.withdrawn(&judge) {
                return reason;
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

    fn with_crl(trust: Arc<TrustState>) -> PeerTrust {
        PeerTrust {
            trust: Some(trust),
            pins: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_connection_ends_when_the_peer_is_revoked() {
        let w = World::new(time::Duration::hours(1));
        let peer = w.credential();
        let cert = WatchedCert::from_chain(peer.chain(), Some(&w.trust)).unwrap();
        let watch = tokio::spawn({
            let (cert, trust, clock) = (cert.clone(), w.trust.clone(), w.clock.clone());
            async move { close_when_invalid(&cert, with_crl(trust), &*clock).await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!watch.is_finished());
        assert_eq!(
            cert.invalid_at(&with_crl(w.trust.clone()), w.clock.now()),
            None
        );
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
            cert.invalid_at(&with_crl(w.trust.clone()), w.clock.now()),
            Some("revoked")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_connection_ends_when_the_peer_certificate_expires() {
        let w = World::new(time::Duration::hours(1));
        let peer = w.credential();
        let cert = WatchedCert::from_chain(peer.chain(), None).unwrap();
        let started = tokio::time::Instant::now();
        let reason = close_when_invalid(&cert, PeerTrust::default(), &*w.clock).await;
        assert_eq!(reason, "expired");
        let waited = started.elapsed();
        // Whole seconds, like webpki: one second past NotAfter.
        assert!(
            waited >= Duration::from_secs(3600) && waited <= Duration::from_secs(3602),
            "{waited:?}"
        );
        assert_eq!(
            cert.invalid_at(&PeerTrust::default(), w.clock.now()),
            Some("expired")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_connection_ends_when_the_peer_key_is_unpinned() {
        use crate::tls::{spki_pin_of, Pin, PinSet};
        let w = World::new(time::Duration::hours(1));
        let peer = w.credential();
        let other = w.credential();
        let pin = |c: &crate::Credential| {
            Pin::parse(&format!("sha256:{}", spki_pin_of(&c.chain()[0]).unwrap())).unwrap()
        };
        let pins = LivePins::new(PinSet::new(vec![pin(&peer), pin(&other)]).unwrap());
        let judge = PeerTrust {
            trust: None,
            pins: Some(pins.clone()),
        };
        let cert = WatchedCert::from_chain(peer.chain(), None).unwrap();
        let watch = tokio::spawn({
            let (cert, judge, clock) = (cert.clone(), judge.clone(), w.clock.clone());
            async move { close_when_invalid(&cert, judge, &*clock).await }
        });
        // Another key dropped: this connection stays.
        pins.set(PinSet::new(vec![pin(&peer)]).unwrap());
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!watch.is_finished());
        assert_eq!(cert.invalid_at(&judge, w.clock.now()), None);
        // Its own key dropped: closed at once, long before expiry.
        pins.set(PinSet::new(vec![pin(&other)]).unwrap());
        assert_eq!(watch.await.unwrap(), "unpinned");
        assert_eq!(cert.invalid_at(&judge, w.clock.now()), Some("unpinned"));
    }
}
