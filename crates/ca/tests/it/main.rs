//! The in-process tests of the `mtls_ca` library, in one test binary: the authority driven with
//! explicit times and instants. (The tests that run the `mtls-ca` program are in
//! crates/mtls/tests/it/ca.)

mod crl_expiry;
mod health_cache;
