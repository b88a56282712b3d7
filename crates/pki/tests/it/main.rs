//! The integration tests of `pki`, in one test binary: the verdict table and agreement with the
//! `openssl` command line.

mod client_key_openssl;
mod crl_openssl;
mod cross_sign_openssl;
mod script_validators;
mod verdicts;
