//! The one TLS policy layer of mtls-mesh: the crypto provider (suites, groups, ECDSA-only
//! signature verification), the server and client configuration builders, the hot-swapping
//! certificate resolver, and the names of versions, suites, groups and alerts. The CA's API,
//! the services (crates/mesh), the load generator and the inspector all build their rustls
//! configurations here, so their rules cannot drift apart.

mod error;
mod groups;
mod names;
mod policy;
mod resolver;

pub use error::TlsConfigError;
pub use groups::KxGroup;
pub use names::{alert_name, group_name, suite_name, version_name, Negotiated};
pub use policy::{TlsPolicy, ALPN_HTTP, ALPN_HTTP1, ALPN_NONE};
pub use resolver::CertResolver;
