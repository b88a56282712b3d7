//! Key exchange groups by name. The mesh offers secp384r1 and secp521r1 (docs/design.md §2);
//! X25519 and X25519MLKEM768 only when configured; secp256r1 only in clients that talk to
//! servers outside the mesh (the inspector's probe, the load generator).

use std::fmt;
use std::str::FromStr;

use rustls::crypto::{aws_lc_rs, SupportedKxGroup};
use rustls::NamedGroup;

use crate::tls::error::TlsConfigError;

/// A key exchange group this crate can offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KxGroup {
    /// secp384r1 (P-384): the mesh's first choice.
    Secp384r1,
    /// secp521r1 (P-521), from `pki::tls_p521` (rustls ships none).
    Secp521r1,
    /// X25519.
    X25519,
    /// The X25519MLKEM768 post-quantum hybrid.
    X25519MlKem768,
    /// secp256r1 (P-256); never offered by the mesh itself.
    Secp256r1,
}

impl KxGroup {
    /// Every group, in the order names are listed in errors and help texts.
    pub const ALL: [KxGroup; 5] = [
        KxGroup::Secp384r1,
        KxGroup::Secp521r1,
        KxGroup::X25519,
        KxGroup::X25519MlKem768,
        KxGroup::Secp256r1,
    ];

    /// The groups every mesh endpoint offers, in preference order.
    pub const MESH: [KxGroup; 2] = [KxGroup::Secp384r1, KxGroup::Secp521r1];

    /// The groups a mesh endpoint may add to [`KxGroup::MESH`] (`--groups`).
    pub const MESH_EXTRA: [KxGroup; 2] = [KxGroup::X25519, KxGroup::X25519MlKem768];

    /// The name used in logs, reports and on command lines (`secp384r1`, `X25519MLKEM768`).
    pub fn name(self) -> &'static str {
        match self {
            KxGroup::Secp384r1 => "secp384r1",
            KxGroup::Secp521r1 => "secp521r1",
            KxGroup::X25519 => "x25519",
            KxGroup::X25519MlKem768 => "X25519MLKEM768",
            KxGroup::Secp256r1 => "secp256r1",
        }
    }

    /// The TLS code point.
    pub fn named_group(self) -> NamedGroup {
        match self {
            KxGroup::Secp384r1 => NamedGroup::secp384r1,
            KxGroup::Secp521r1 => NamedGroup::secp521r1,
            KxGroup::X25519 => NamedGroup::X25519,
            KxGroup::X25519MlKem768 => NamedGroup::X25519MLKEM768,
            KxGroup::Secp256r1 => NamedGroup::secp256r1,
        }
    }

    /// The group for a TLS code point, if it is one of ours.
    pub fn from_named_group(group: NamedGroup) -> Option<KxGroup> {
        KxGroup::ALL.into_iter().find(|g| g.named_group() == group)
    }

    pub(crate) fn rustls(self) -> &'static dyn SupportedKxGroup {
        match self {
            KxGroup::Secp384r1 => aws_lc_rs::kx_group::SECP384R1,
            KxGroup::Secp521r1 => pki::tls_p521::SECP521R1,
            KxGroup::X25519 => aws_lc_rs::kx_group::X25519,
            KxGroup::X25519MlKem768 => aws_lc_rs::kx_group::X25519MLKEM768,
            KxGroup::Secp256r1 => aws_lc_rs::kx_group::SECP256R1,
        }
    }

    /// The names of `groups`, comma-separated (for messages).
    pub fn list(groups: &[KxGroup]) -> String {
        groups
            .iter()
            .map(|g| g.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for KxGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KxGroup {
    type Err = TlsConfigError;

    /// Case-insensitive; also accepts the curve names `P-384`, `P-521`, `P-256` and
    /// `X25519-MLKEM768`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        let found = match wanted.as_str() {
            "p-384" | "p384" => Some(KxGroup::Secp384r1),
            "p-521" | "p521" => Some(KxGroup::Secp521r1),
            "p-256" | "p256" | "prime256v1" => Some(KxGroup::Secp256r1),
            "x25519-mlkem768" => Some(KxGroup::X25519MlKem768),
            other => KxGroup::ALL
                .into_iter()
                .find(|g| g.name().to_ascii_lowercase() == other),
        };
        found.ok_or_else(|| TlsConfigError::UnknownGroup {
            name: s.trim().to_string(),
            known: KxGroup::list(&KxGroup::ALL),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    #[test]
    fn names_round_trip_and_aliases_parse() {
        for g in KxGroup::ALL {
            assert_eq!(g.name().parse::<KxGroup>().unwrap(), g);
            assert_eq!(KxGroup::from_named_group(g.named_group()), Some(g));
            assert_eq!(g.rustls().name(), g.named_group());
        }
        assert_eq!("P-384".parse::<KxGroup>().unwrap(), KxGroup::Secp384r1);
        assert_eq!(
            "x25519mlkem768".parse::<KxGroup>().unwrap(),
            KxGroup::X25519MlKem768
        );
        let err = "brainpool".parse::<KxGroup>().unwrap_err().to_string();
        assert!(
            err.contains("\"brainpool\"") && err.contains("secp384r1"),
            "{err}"
        );
    }
}
