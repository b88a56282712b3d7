//! Tests that need no mtls-mesh program, only bash, OpenSSL and PostgreSQL: the scripts in
//! `scripts/` and the throwaway PostgreSQL cluster.

mod openssl_scripts;
mod postgres_cluster;
