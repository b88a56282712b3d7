//! Several programs at once: `mtls-ca` + `mtls-server` + `mtls-client` (enrollment, rotation,
//! revocation, CA outage, stale CRLs), `scripts/demo.sh`, docs/troubleshooting.md against live
//! output, the README's curl enrollment recipe, `mtls-inspect verify` against a running
//! `mtls-server`, and the example of crates/mesh that embeds the library.

pub(crate) mod common;

mod ca_stopped;
mod client_exit;
mod client_watch;
mod crl_stale;
mod demo;
mod embedded;
mod enrollment;
mod fail_fast;
mod federation;
mod hierarchy;
mod hsm;
mod readme_recipe;
mod revocation;
mod root_rotation;
mod rotation;
mod runbooks;
mod troubleshooting_doc;
mod verdict_parity;
