//! SPIFFE IDs as the SPIFFE ID specification defines them, strictly.
//!
//! `spiffe://<trust-domain>/<path>`: scheme exactly `spiffe`; trust domain of lowercase letters,
//! digits, `.`, `-` and `_` (no port, no userinfo); a non-empty path of segments made of
//! letters, digits, `.`, `-` and `_`, none empty, none `.` or `..`; no query or fragment;
//! at most 2048 bytes in all.

use std::fmt;
use std::str::FromStr;

use crate::error::PkiError;

/// Longest SPIFFE ID, in bytes (SPIFFE ID specification 2.3).
pub const MAX_ID_LEN: usize = 2048;
/// Longest trust domain name, in bytes (SPIFFE ID specification 2.1).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;
const SCHEME: &str = "spiffe://";

/// The path of the CA's own identity. It and everything below it (`/ca/...`) are reserved: no
/// token, registration entry or CSR may obtain them, so a certificate carrying `spiffe://<td>/ca`
/// can only be the CA's own API certificate, and every CA client requires exactly that identity
/// (docs/security.md, "The CA is a named identity").
pub const CA_PATH: &str = "/ca";

/// The tree of node agents' identities: an agent is `spiffe://<td>/agent/<name>` (docs/ca-api.md "Agent API").
/// Registration entries may not name an ID in it, so an agent can never mint another agent.
pub const AGENT_PATH: &str = "/agent";

/// A trust domain name such as `mesh.local`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

/// A workload SPIFFE ID: trust domain plus a non-empty path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    trust_domain: TrustDomain,
    path: String,
}

fn err(id: &str, reason: impl Into<String>) -> PkiError {
    PkiError::SpiffeId {
        id: id.chars().take(200).collect(),
        reason: reason.into(),
    }
}

impl TrustDomain {
    /// Parses a trust domain name (`mesh.local`): lowercase letters, digits, `.`, `-`, `_`; no
    /// port, no user info.
    pub fn parse(name: &str) -> Result<Self, PkiError> {
        let full = format!("{SCHEME}{name}");
        Self::check(name, &full)?;
        Ok(TrustDomain(name.to_string()))
    }

    fn check(name: &str, whole: &str) -> Result<(), PkiError> {
        if name.is_empty() {
            return Err(err(whole, "the trust domain is empty"));
        }
        if name.len() > MAX_TRUST_DOMAIN_LEN {
            return Err(err(
                whole,
                format!("the trust domain is longer than {MAX_TRUST_DOMAIN_LEN} bytes"),
            ));
        }
        if name.contains('@') {
            return Err(err(whole, "userinfo (user@) is not allowed in a SPIFFE ID"));
        }
        if name.contains(':') {
            return Err(err(whole, "a port is not allowed in the trust domain"));
        }
        if let Some(c) = name.chars().find(|c| c.is_ascii_uppercase()) {
            return Err(err(
                whole,
                format!("the trust domain must be lowercase (found {c:?})"),
            ));
        }
        if let Some(c) = name.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
        }) {
            return Err(err(
                whole,
                format!(
                    "character {c:?} is not allowed in a trust domain (allowed: a-z 0-9 . - _)"
                ),
            ));
        }
        Ok(())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trust domain's own ID, `spiffe://<td>` (used in bundles, never as a workload ID).
    pub fn id_string(&self) -> String {
        format!("{SCHEME}{}", self.0)
    }

    /// The identity of this trust domain's CA API, `spiffe://<td>/ca`.
    pub fn ca_id(&self) -> SpiffeId {
        SpiffeId {
            trust_domain: self.clone(),
            path: CA_PATH.to_string(),
        }
    }
}

impl SpiffeId {
    /// Parses a SPIFFE ID strictly (the rules of the SPIFFE ID specification; see the module
    /// documentation), naming the rule broken.
    pub fn parse(id: &str) -> Result<Self, PkiError> {
        if id.is_empty() {
            return Err(err(id, "it is empty"));
        }
        if id.len() > MAX_ID_LEN {
            return Err(err(
                id,
                format!("it is {} bytes long; the limit is {MAX_ID_LEN}", id.len()),
            ));
        }
        let rest = match id.get(..SCHEME.len()) {
            Some(prefix) if prefix == SCHEME => &id[SCHEME.len()..],
            Some(prefix) if prefix.eq_ignore_ascii_case(SCHEME) => {
                return Err(err(id, "the scheme must be lowercase \"spiffe://\""))
            }
            _ => return Err(err(id, "it must start with \"spiffe://\"")),
        };
        if id.contains('?') {
            return Err(err(id, "a query (?...) is not allowed"));
        }
        if id.contains('#') {
            return Err(err(id, "a fragment (#...) is not allowed"));
        }
        if id.contains('%') {
            return Err(err(id, "percent-encoding is not allowed"));
        }
        let (td, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        TrustDomain::check(td, id)?;
        if path.is_empty() || path == "/" {
            return Err(err(
                id,
                "the path is empty; a workload ID needs one, e.g. spiffe://mesh.local/service/api",
            ));
        }
        for segment in path[1..].split('/') {
            match segment {
                "" => {
                    return Err(err(
                        id,
                        "the path has an empty segment (// or a trailing /)",
                    ))
                }
                "." | ".." => return Err(err(id, "the path has a dot segment (. or ..)")),
                s => {
                    if let Some(c) = s
                        .chars()
                        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
                    {
                        return Err(err(
                            id,
                            format!("character {c:?} is not allowed in the path (allowed: a-z A-Z 0-9 . - _)"),
                        ));
                    }
                }
            }
        }
        Ok(SpiffeId {
            trust_domain: TrustDomain(td.to_string()),
            path: path.to_string(),
        })
    }

    /// Its trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path, starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// True for `spiffe://<td>/ca` and every ID below it: identities only the CA itself holds.
    pub fn is_reserved_for_ca(&self) -> bool {
        self.path == CA_PATH
            || self
                .path
                .strip_prefix(CA_PATH)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// True for `spiffe://<td>/agent/<name>` (one segment below `/agent`): a node agent's
    /// identity, the only kind of caller the CA's agent API serves.
    pub fn is_agent(&self) -> bool {
        self.path
            .strip_prefix(AGENT_PATH)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
    }

    /// True for `spiffe://<td>/agent` and every ID below it.
    pub fn is_in_agent_tree(&self) -> bool {
        self.path == AGENT_PATH
            || self
                .path
                .strip_prefix(AGENT_PATH)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// True when this ID matches `pattern`: exact, or `spiffe://td/prefix/*` for every ID
    /// strictly below that prefix.
    pub fn matches_pattern(&self, pattern: &str) -> bool {
        match pattern.strip_suffix("/*") {
            Some(prefix) => self.to_string().starts_with(&format!("{prefix}/")),
            None => self.to_string() == pattern,
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}{}", self.trust_domain.0, self.path)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SpiffeId {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpiffeId::parse(s)
    }
}

impl FromStr for TrustDomain {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TrustDomain::parse(s)
    }
}

impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SpiffeId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(id: &str) -> String {
        SpiffeId::parse(id).unwrap_err().to_string()
    }

    #[test]
    fn accepts_valid_ids() {
        let id = SpiffeId::parse("spiffe://mesh.local/service/api-v1_x.y").unwrap();
        assert_eq!(id.trust_domain().as_str(), "mesh.local");
        assert_eq!(id.path(), "/service/api-v1_x.y");
        assert_eq!(id.to_string(), "spiffe://mesh.local/service/api-v1_x.y");
        SpiffeId::parse("spiffe://a/B").unwrap();
    }

    #[test]
    fn scheme_rules() {
        assert!(reason("https://mesh.local/x").contains("must start with"));
        assert!(reason("SPIFFE://mesh.local/x").contains("lowercase"));
        assert!(reason("spiffe:/mesh.local/x").contains("must start with"));
        assert!(reason("").contains("empty"));
    }

    #[test]
    fn trust_domain_rules() {
        assert!(reason("spiffe://Mesh.local/x").contains("lowercase"));
        assert!(reason("spiffe:///x").contains("trust domain is empty"));
        assert!(reason("spiffe://mesh.local:8443/x").contains("port"));
        assert!(reason("spiffe://user@mesh.local/x").contains("userinfo"));
        assert!(reason("spiffe://me sh/x").contains("not allowed in a trust domain"));
        assert!(reason(&format!("spiffe://{}/x", "a".repeat(256))).contains("255"));
        assert!(TrustDomain::parse("mesh.local").is_ok());
        assert!(TrustDomain::parse("Mesh").is_err());
    }

    #[test]
    fn path_rules() {
        assert!(reason("spiffe://mesh.local").contains("path is empty"));
        assert!(reason("spiffe://mesh.local/").contains("path is empty"));
        assert!(reason("spiffe://mesh.local/a//b").contains("empty segment"));
        assert!(reason("spiffe://mesh.local/a/").contains("empty segment"));
        assert!(reason("spiffe://mesh.local/a/./b").contains("dot segment"));
        assert!(reason("spiffe://mesh.local/a/../b").contains("dot segment"));
        assert!(reason("spiffe://mesh.local/a b").contains("not allowed in the path"));
        assert!(reason("spiffe://mesh.local/a%20b").contains("percent"));
    }

    #[test]
    fn query_fragment_and_length() {
        assert!(reason("spiffe://mesh.local/a?x=1").contains("query"));
        assert!(reason("spiffe://mesh.local/a#f").contains("fragment"));
        let long = format!("spiffe://mesh.local/{}", "a".repeat(2040));
        assert!(reason(&long).contains("2048"));
        let max = format!("spiffe://mesh.local/{}", "a".repeat(2048 - 20));
        assert_eq!(max.len(), 2048);
        assert!(SpiffeId::parse(&max).is_ok());
    }

    #[test]
    fn patterns() {
        let id = SpiffeId::parse("spiffe://mesh.local/service/api").unwrap();
        assert!(id.matches_pattern("spiffe://mesh.local/service/api"));
        assert!(id.matches_pattern("spiffe://mesh.local/service/*"));
        assert!(!id.matches_pattern("spiffe://mesh.local/serv/*"));
        assert!(!id.matches_pattern("spiffe://mesh.local/service/api/*"));
    }

    #[test]
    fn agent_identities() {
        let id = |s: &str| SpiffeId::parse(s).unwrap();
        assert!(id("spiffe://mesh.local/agent/node1").is_agent());
        for not_agent in [
            "spiffe://mesh.local/agent",
            "spiffe://mesh.local/agent/node1/x",
            "spiffe://mesh.local/agents/node1",
            "spiffe://mesh.local/service/agent/node1",
        ] {
            assert!(!id(not_agent).is_agent(), "{not_agent}");
        }
        assert!(id("spiffe://mesh.local/agent").is_in_agent_tree());
        assert!(id("spiffe://mesh.local/agent/a/b").is_in_agent_tree());
        assert!(!id("spiffe://mesh.local/agents/a").is_in_agent_tree());
        assert!(!id("spiffe://mesh.local/service/agent").is_in_agent_tree());
    }

    #[test]
    fn the_ca_identity_and_everything_below_it_are_reserved() {
        let td = TrustDomain::parse("mesh.local").unwrap();
        assert_eq!(td.ca_id().to_string(), "spiffe://mesh.local/ca");
        assert!(td.ca_id().is_reserved_for_ca());
        for reserved in ["spiffe://mesh.local/ca", "spiffe://mesh.local/ca/replica-1"] {
            assert!(
                SpiffeId::parse(reserved).unwrap().is_reserved_for_ca(),
                "{reserved}"
            );
        }
        for free in [
            "spiffe://mesh.local/cart",
            "spiffe://mesh.local/ca-proxy",
            "spiffe://mesh.local/service/ca",
            "spiffe://mesh.local/CA",
        ] {
            assert!(
                !SpiffeId::parse(free).unwrap().is_reserved_for_ca(),
                "{free}"
            );
        }
    }
}
