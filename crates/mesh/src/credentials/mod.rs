//! Where a service's certificate comes from and how it is published: the credential (chain and
//! key), the identity holding the current one for the TLS resolver, and the loading of the
//! files of static and pinned mode and of the Workload API's messages.

mod credential;
pub(crate) mod files;
mod identity;
pub(crate) mod workload_api;

pub use credential::Credential;
pub(crate) use identity::Identity;
