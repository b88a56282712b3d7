//! Which trusted roots a peer's verified chain leads to, remembered for as long as the
//! connection lives, so the peer watch (`peer_watch`) can close the connection once none of
//! them is trusted any more: a federated trust domain was removed, or a root was dropped from
//! our own bundle (root retire). A new handshake with the same chain would fail then; an open
//! connection must not outlive that (docs/security.md "Federation").
//!
//! rustls does not say which path it validated, so the roots are found again here, from the
//! chain the peer presented and the roots trusted right after the handshake, and only the
//! roots' SPKI hashes are kept (32 bytes each, usually one), not the chain (docs/performance.md
//! "Memory per idle connection"). The walk follows every path the chain offers, so a chain that
//! also reaches the new root through a cross-certificate survives the old root's retirement.
//!
//! Soundness without re-verifying every signature: the leaf was verified by the handshake, so
//! its issuer Name and authorityKeyIdentifier are genuine; a root or chain certificate with that
//! subject and (when both carry one) that key identifier is its issuer. Every further step
//! starts from a certificate the peer merely sent, so its signature is checked. A signature
//! that verified is remembered ([`signature_checked`]): the handshake has already verified the
//! same intermediate, and checking it again on every new connection would add a P-384
//! verification to each handshake of a two-tier CA's peers.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::trust::TrustState;

/// What the anchor walk needs of a trusted root, computed once per bundle (`trust::Roots`).
#[derive(Clone, Debug)]
pub(crate) struct RootKey {
    subject_raw: Vec<u8>,
    key_id: Option<Vec<u8>>,
    spki_raw: Vec<u8>,
    pub(crate) spki_sha256: [u8; 32],
}

impl RootKey {
    /// None for a certificate x509-parser cannot read (it then vouches for no open connection).
    pub(crate) fn of(der: &[u8]) -> Option<RootKey> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let spki_raw = cert.tbs_certificate.subject_pki.raw.to_vec();
        Some(RootKey {
            subject_raw: cert.tbs_certificate.subject.as_raw().to_vec(),
            key_id: subject_key_id(&cert).map(<[u8]>::to_vec),
            spki_sha256: sha256(&spki_raw),
            spki_raw,
        })
    }
}

/// The roots an open connection's peer chains to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Anchors {
    /// The federated trust domain whose roots vouched for the peer; None: our own roots.
    domain: Option<pki::TrustDomain>,
    /// SHA-256 of the SubjectPublicKeyInfo of each root reached. Empty when none is trusted
    /// (the trust changed between the handshake and now).
    roots: Box<[[u8; 32]]>,
}

impl Anchors {
    /// The roots trusted now that `chain` (leaf first, as the peer sent it) reaches: our own,
    /// else those of the federated trust domain named in the leaf's SPIFFE ID, as the
    /// verifiers choose (`tls::federated`).
    pub(crate) fn of(chain: &[CertificateDer<'_>], trust: &TrustState) -> Anchors {
        // The leaf must parse (the handshake verified it); another certificate that does not
        // is one no path went through.
        let Some(leaf) = chain.first().and_then(Link::parse) else {
            return Anchors::none();
        };
        let links: Vec<Link<'_>> = std::iter::once(leaf)
            .chain(chain[1..].iter().filter_map(Link::parse))
            .collect();
        let own = reached(&links, trust.roots().keys());
        if !own.is_empty() {
            return Anchors {
                domain: None,
                roots: own.into(),
            };
        }
        let Some(id) = pki::CertInfo::from_der(&chain[0])
            .ok()
            .and_then(|i| i.spiffe_id())
        else {
            return Anchors::none();
        };
        let federated = trust.federated();
        let Some(roots) = federated.roots_for(id.trust_domain()) else {
            return Anchors::none();
        };
        Anchors {
            domain: Some(id.trust_domain().clone()),
            roots: reached(&links, roots.keys()).into(),
        }
    }

    fn none() -> Anchors {
        Anchors {
            domain: None,
            roots: Box::new([]),
        }
    }

    /// True while at least one of the roots is still trusted for the peer: among our roots,
    /// or among the roots of its federated trust domain (gone when the domain was removed).
    pub(crate) fn still_trusted(&self, trust: &TrustState) -> bool {
        let held = |keys: &[RootKey]| keys.iter().any(|k| self.roots.contains(&k.spki_sha256));
        match &self.domain {
            None => held(trust.roots().keys()),
            Some(td) => trust
                .federated()
                .roots_for(td)
                .is_some_and(|roots| held(roots.keys())),
        }
    }
}

/// One certificate of the presented chain, as the walk reads it.
struct Link<'a> {
    der: &'a [u8],
    subject_raw: &'a [u8],
    issuer_raw: &'a [u8],
    spki_raw: &'a [u8],
    authority_key_id: Option<&'a [u8]>,
    subject_key_id: Option<&'a [u8]>,
}

impl<'a> Link<'a> {
    fn parse(der: &'a CertificateDer<'_>) -> Option<Link<'a>> {
        let der: &'a [u8] = der.as_ref();
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let authority_key_id = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    aki.key_identifier.as_ref().map(|k| k.0)
                }
                _ => None,
            });
        Some(Link {
            der,
            subject_raw: cert.tbs_certificate.subject.as_raw(),
            issuer_raw: cert.tbs_certificate.issuer.as_raw(),
            spki_raw: cert.tbs_certificate.subject_pki.raw,
            authority_key_id,
            subject_key_id: subject_key_id(&cert),
        })
    }

    /// Whether `subject_raw`/`key_id`/`spki_raw` names this certificate's issuer: by name and key
    /// identifier from the verified leaf (index 0), by signature from any other certificate.
    fn issued_by(
        &self,
        index: usize,
        subject_raw: &[u8],
        key_id: Option<&[u8]>,
        spki_raw: &[u8],
    ) -> bool {
        if self.issuer_raw != subject_raw {
            return false;
        }
        if index == 0 {
            return match (self.authority_key_id, key_id) {
                (Some(a), Some(s)) => a == s,
                // Without key identifiers the name alone could be another key's: check.
                _ => signature_checked(self.der, spki_raw),
            };
        }
        signature_checked(self.der, spki_raw)
    }
}

fn subject_key_id<'a>(cert: &X509Certificate<'a>) -> Option<&'a [u8]> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
            _ => None,
        })
}

/// How many verified (certificate, issuer key) pairs are remembered: a process sees a handful
/// of intermediates and cross-certificates; when more come, the set starts again.
const CHECKED_CAPACITY: usize = 256;

/// (SHA-256 of a certificate, SHA-256 of an issuer's SubjectPublicKeyInfo) pairs whose
/// signature verified. Only successes are kept, and a signature over exact bytes with an exact
/// key stays valid whatever the trust does later, so nothing here needs invalidating: whether
/// that issuer is still trusted is decided by the roots, every time.
static CHECKED: LazyLock<Mutex<HashSet<CheckedPair>>> =
    LazyLock::new(|| Mutex::new(HashSet::new()));

/// SHA-256 of a certificate and of the issuer key its signature verified with.
type CheckedPair = ([u8; 32], [u8; 32]);

/// Whether `der`'s signature verifies with the key `spki_raw`, from [`CHECKED`] when it did
/// before.
fn signature_checked(der: &[u8], spki_raw: &[u8]) -> bool {
    let pair = (sha256(der), sha256(spki_raw));
    // A poisoned lock only means another thread panicked mid-insert; the set is still sound.
    let known = |set: &HashSet<_>| set.contains(&pair);
    if known(&CHECKED.lock().unwrap_or_else(|e| e.into_inner())) {
        return true;
    }
    let verified = pki::verify::signature_verifies(der, spki_raw) == Some(true);
    if verified {
        let mut set = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
        if set.len() >= CHECKED_CAPACITY {
            set.clear();
        }
        set.insert(pair);
    }
    verified
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref());
    out
}

/// The SPKI hashes of the `roots` reachable from the leaf through `links`, each path at most
/// once per certificate (a chain is a handful of certificates; a loop in it ends here).
fn reached(links: &[Link<'_>], roots: &[RootKey]) -> Vec<[u8; 32]> {
    let mut found: Vec<[u8; 32]> = Vec::new();
    let mut visited = vec![false; links.len()];
    visited[0] = true;
    let mut todo = vec![0usize];
    while let Some(i) = todo.pop() {
        let link = &links[i];
        for root in roots {
            if !found.contains(&root.spki_sha256)
                && link.issued_by(i, &root.subject_raw, root.key_id.as_deref(), &root.spki_raw)
            {
                found.push(root.spki_sha256);
            }
        }
        for (j, issuer) in links.iter().enumerate() {
            if visited[j] {
                continue;
            }
            if link.issued_by(
                i,
                issuer.subject_raw,
                issuer.subject_key_id,
                issuer.spki_raw,
            ) {
                visited[j] = true;
                todo.push(j);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests;
