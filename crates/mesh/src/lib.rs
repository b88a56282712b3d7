//! mtls-mesh services: the TLS policy, credentials (static files, CA enrollment, pinned keys),
//! rotation, revocation, the mTLS HTTP server and the client. The programs `mtls-server` and
//! `mtls-client` (crates/mtls) are thin layers over this library; it takes plain options
//! (`setup::CredentialOptions`), has no command line and never prints (it logs with `tracing`).

pub mod ca_client;
pub mod client;
pub mod credentials;
pub mod crl_freshness;
pub mod enroll;
pub mod error;
pub mod events;
pub mod health;
pub mod https;
pub mod metrics;
pub mod peer_watch;
pub mod refresh;
pub mod rotation;
pub mod server;
pub mod setup;
pub mod stop;
pub mod timefmt;
pub mod tls;
pub mod trust;
pub mod trust_bundle;

pub use error::{MeshError, Result};
