//! TLS building blocks: the policy, the P-521 group, verifiers, resolvers and error wording.

pub mod client_verifier;
pub mod describe;
pub mod identity_error;
/// The secp521r1 group lives in pki so the CA, the services and the tools share one copy.
pub use pki::tls_p521 as p521;
pub mod pinned;
pub mod policy;
pub mod resolver;
pub mod server_verifier;

pub use client_verifier::MeshClientVerifier;
pub use describe::HandshakeSummary;
pub use pinned::{PinSet, PinnedVerifier};
pub use policy::{ExtraGroup, TlsPolicy};
pub use resolver::CertResolver;
pub use server_verifier::MeshServerVerifier;
