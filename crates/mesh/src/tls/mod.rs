//! Who a peer is: the verifiers the services hand rustls (path validation against the trust
//! state's current roots, the revocation lookup, the CRL freshness rule, the X509-SVID rule set
//! and the expected SPIFFE ID; or pinned keys), the typed refusals they raise, and the words for
//! a failed handshake. The TLS policy itself (versions, suites, groups, signature algorithms,
//! resolver) is `wire::tls`, shared with the CA and the tools.

mod client_verifier;
pub(crate) mod describe;
mod federated;
mod identity_error;
mod live_pins;
mod pinned;
pub mod pins_file;
mod server_verifier;

pub use client_verifier::MeshClientVerifier;
#[cfg(test)]
pub(crate) use client_verifier::{post_path_checks, CrlFreshness};
pub use describe::{
    client_side_reason, io_reason, rustls_error, server_reason_code, server_side_reason,
    HandshakeSummary, PeerSummary,
};
pub use identity_error::PeerIdentityError;
pub use live_pins::LivePins;
pub use pinned::{spki_pin_of, Pin, PinSet, PinnedVerifier};
pub use server_verifier::MeshServerVerifier;
