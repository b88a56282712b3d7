//! The mtls-mesh programs: `mtls-ca`, `mtls-server`, `mtls-client`, `mtls-inspect` and
//! `mtls-bench` (`src/bin/`), each a thin command line over the libraries (`mtls_ca`, `mesh`,
//! `mtls_inspect`, `mtls_bench`). This library holds what the programs share: the credential
//! flags of the services, the log setup, the human report lines, the shutdown signal and the
//! value parsers that refuse impossible settings at start. The libraries never print; the
//! programs do.

pub mod credentials;
pub mod logging;
pub mod manual;
pub mod report;
pub mod shutdown;
pub mod values;
