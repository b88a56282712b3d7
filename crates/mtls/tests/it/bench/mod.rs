//! `mtls-bench` against a real `mtls-server`, and against a plaintext HTTP server.

mod plain;
mod smoke;
