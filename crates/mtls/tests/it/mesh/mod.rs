//! `mtls-server` and `mtls-client` as processes: static files, pinned keys, rejections,
//! connection limits, idle connections parked without their HTTP state, drain and
//! interoperability with OpenSSL tools. (Settings refused at start: the one table in
//! `crate::settings`.)

mod common;

mod ca_impersonation;
mod connections;
mod crl_staleness;
mod drain;
mod idle_parking;
mod interop;
mod pinned_rotation;
mod rejections;
mod static_mode;
