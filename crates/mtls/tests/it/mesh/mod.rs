//! `mtls-server` and `mtls-client` as processes: static files, pinned keys, rejections,
//! connection limits, drain, settings refused at start and interoperability with OpenSSL
//! tools.

mod common;

mod ca_impersonation;
mod connections;
mod crl_staleness;
mod drain;
mod interop;
mod rejections;
mod settings;
mod static_mode;
