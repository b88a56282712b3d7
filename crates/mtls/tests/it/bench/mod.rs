//! `mtls-bench` against a real `mtls-server`.

mod smoke;
