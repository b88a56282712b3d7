//! `mtls-bench` against a real `mtls-server`, and against a plaintext HTTP server; the
//! benchmark scripts' smoke runs.

mod agent_script;
mod ca_script;
mod plain;
mod smoke;
