//! Where a service's certificate comes from and how it is published.

pub mod credential;
pub mod identity;
pub mod static_files;

pub use credential::{Credential, Role};
pub use identity::Identity;
pub use static_files::StaticFiles;
