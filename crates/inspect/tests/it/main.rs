//! The in-process tests of the `mtls_inspect` library, in one test binary. (The tests that run
//! the `mtls-inspect` program are in crates/mtls/tests/it/inspect.)

mod common;

mod fuzz;
