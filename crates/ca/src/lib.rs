//! The mtls-mesh certificate authority: issuance policy enforcement, storage, the HTTPS API
//! and the admin operations behind the `mtls-ca` program (crates/mtls, which holds its command
//! line).

#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod api_verifier;
pub mod audit;
pub mod authority;
pub mod dashboard;
pub mod datadir;
pub mod datadir_hierarchy;
mod datadir_postgres;
pub mod datadir_token;
pub mod error;
pub mod federation;
pub mod federation_metrics;
pub mod intermediate_follow;
pub mod metrics;
pub mod pkcs11;
pub mod refusals;
pub mod registration;
pub mod root_follow;
pub mod root_rotation;
pub mod root_rotation_two_tier;
pub mod root_serving;
pub mod server;
pub mod store;
pub mod tls;
pub mod tokens;
