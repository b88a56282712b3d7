//! `mtls-ca` as a process: the HTTPS API, the admin subcommands and the data directory.

pub(crate) mod common;

mod agent_api;
mod api_docs;
mod audit_state;
mod concurrency;
mod connections;
mod dashboard;
mod dashboard_browser;
mod data_dir_integrity;
mod drain;
mod durability;
mod file_modes;
mod group_commit_crash;
mod limits;
mod ocsp;
mod ocsp_responder_store;
mod openssl_interop;
mod rejections;
mod renewal_lineage;
mod reserved_identity;
mod revoke_authorisation;
mod root_rotation;
mod token_api;
mod token_list_revoke;
