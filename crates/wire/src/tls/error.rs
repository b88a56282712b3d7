//! Why a TLS configuration could not be built.

/// A TLS setting that cannot work, named with the value given and what would.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A group name that is not one of [`crate::tls::KxGroup`].
    #[error("unknown key exchange group {name:?} (known: {known})")]
    UnknownGroup {
        /// The name given.
        name: String,
        /// The names that would work.
        known: String,
    },
    /// A group the mesh policy does not allow as an extra.
    #[error(
        "key exchange group {group} cannot be added to the mesh policy: it accepts {allowed} \
         (secp384r1 and secp521r1 are always on)"
    )]
    GroupNotAllowed {
        /// The group asked for.
        group: &'static str,
        /// The groups that may be added.
        allowed: String,
    },
    /// An empty group list: no handshake could succeed.
    #[error("no key exchange group to offer")]
    NoGroups,
    /// rustls refused the configuration (a provider without TLS 1.3 suites, for instance).
    /// The message includes rustls' (so it is not also a `source()`).
    #[error("building the {side} TLS configuration: {error}")]
    Rustls {
        /// `server` or `client`.
        side: &'static str,
        /// What rustls said.
        error: rustls::Error,
    },
}
