//! `mtls-bench` against a real `mtls-server`, and against a plaintext HTTP server.

mod ca_script;
mod plain;
mod smoke;
