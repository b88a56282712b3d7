//! `mtls-server` and `mtls-client` as processes: static files, pinned keys, rejections,
//! connection limits, idle connections parked without their HTTP state, drain, settings
//! refused at start and interoperability with OpenSSL tools.

mod common;

mod ca_impersonation;
mod connections;
mod crl_staleness;
mod drain;
mod idle_parking;
mod interop;
mod rejections;
mod settings;
mod static_mode;
