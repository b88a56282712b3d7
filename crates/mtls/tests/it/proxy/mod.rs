//! `mtls-proxy` as a process: inbound (mTLS in, plaintext to an unmodified app), outbound
//! routes (and their server's certificate watched while connected), both chained, configuration refused before enrollment, policy reload, drain.

pub(crate) mod common;

mod admin_remote;
mod chain;
mod config;
mod drain;
mod http;
mod inbound;
mod l4;
mod outbound;
mod policy_reload;
mod run_config;
