//! Workload selectors of registration entries (docs/ca-api.md "Agent API"):
//! what an agent observes about a process that calls its Workload API, and what an entry
//! requires of it.
//!
//! | form | meaning |
//! |---|---|
//! | `unix:uid:<u32>` | the caller's user ID |
//! | `unix:gid:<u32>` | the caller's group ID |
//! | `unix:user:<name>` | the caller's user name |
//! | `unix:group:<name>` | the caller's group name |
//! | `unix:path:<absolute path>` | the caller's executable |
//! | `unix:sha256:<64 lowercase hex>` | SHA-256 of the caller's executable |
//!
//! The text form is canonical: `parse(s).to_string() == s` for every accepted `s`, so selectors
//! compare as strings in the CA's store and on the wire.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The forms accepted, for error messages.
pub const ACCEPTED_FORMS: &str = "unix:uid:<u32>, unix:gid:<u32>, unix:user:<name>, \
     unix:group:<name>, unix:path:<absolute path>, unix:sha256:<64 lowercase hex>";

/// Longest selector accepted, in bytes (a path of PATH_MAX plus the prefix).
pub const MAX_SELECTOR_LEN: usize = 4096 + 16;

/// One selector (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// `unix:uid:<u32>`.
    Uid(u32),
    /// `unix:gid:<u32>`.
    Gid(u32),
    /// `unix:user:<name>`.
    User(String),
    /// `unix:group:<name>`.
    Group(String),
    /// `unix:path:<absolute path>`.
    Path(String),
    /// `unix:sha256:<64 lowercase hex>`.
    Sha256(String),
}

/// Why a selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid selector {selector:?}: {reason}; accepted forms: {ACCEPTED_FORMS}")]
pub struct SelectorError {
    /// The selector as given (at most 200 characters of it).
    pub selector: String,
    /// What is wrong with it.
    pub reason: String,
}

fn err(selector: &str, reason: impl Into<String>) -> SelectorError {
    SelectorError {
        selector: selector.chars().take(200).collect(),
        reason: reason.into(),
    }
}

/// A user or group name: non-empty, at most 256 bytes, no whitespace, no control characters
/// and no `:` (the names `getpwuid`/`getgrgid` return on every Unix we support fit).
fn check_name(selector: &str, what: &str, name: &str) -> Result<(), SelectorError> {
    if name.is_empty() {
        return Err(err(selector, format!("the {what} name is empty")));
    }
    if name.len() > 256 {
        return Err(err(
            selector,
            format!("the {what} name is longer than 256 bytes"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == ':')
    {
        return Err(err(
            selector,
            format!("character {c:?} is not allowed in a {what} name"),
        ));
    }
    Ok(())
}

fn parse_id(selector: &str, what: &str, value: &str) -> Result<u32, SelectorError> {
    // u32::from_str accepts a leading '+'; the canonical form is plain digits.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(
            selector,
            format!("the {what} must be a decimal number, not {value:?}"),
        ));
    }
    if value.len() > 1 && value.starts_with('0') {
        return Err(err(
            selector,
            format!("the {what} must be written without leading zeros"),
        ));
    }
    value.parse().map_err(|_| {
        err(
            selector,
            format!("the {what} {value} does not fit in 32 bits"),
        )
    })
}

impl Selector {
    /// Parses one selector strictly (see the module documentation).
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        if s.len() > MAX_SELECTOR_LEN {
            return Err(err(
                s,
                format!("it is longer than {MAX_SELECTOR_LEN} bytes"),
            ));
        }
        let Some(rest) = s.strip_prefix("unix:") else {
            return Err(err(s, "only the unix: selector type is supported"));
        };
        let Some((kind, value)) = rest.split_once(':') else {
            return Err(err(s, "expected unix:<kind>:<value>"));
        };
        match kind {
            "uid" => Ok(Selector::Uid(parse_id(s, "uid", value)?)),
            "gid" => Ok(Selector::Gid(parse_id(s, "gid", value)?)),
            "user" => check_name(s, "user", value).map(|()| Selector::User(value.into())),
            "group" => check_name(s, "group", value).map(|()| Selector::Group(value.into())),
            "path" => {
                if !value.starts_with('/') {
                    return Err(err(s, "the path must be absolute (start with /)"));
                }
                if value.contains('\0') || value.chars().any(char::is_control) {
                    return Err(err(s, "the path holds a control character"));
                }
                if value
                    .split('/')
                    .any(|segment| segment == "." || segment == "..")
                {
                    return Err(err(
                        s,
                        "the path has a . or .. segment; give the resolved path",
                    ));
                }
                Ok(Selector::Path(value.into()))
            }
            "sha256" => {
                if value.len() != 64
                    || !value
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(err(
                        s,
                        "the digest must be 64 lowercase hexadecimal characters",
                    ));
                }
                Ok(Selector::Sha256(value.into()))
            }
            other => Err(err(s, format!("unknown selector kind {other:?}"))),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Uid(v) => write!(f, "unix:uid:{v}"),
            Selector::Gid(v) => write!(f, "unix:gid:{v}"),
            Selector::User(v) => write!(f, "unix:user:{v}"),
            Selector::Group(v) => write!(f, "unix:group:{v}"),
            Selector::Path(v) => write!(f, "unix:path:{v}"),
            Selector::Sha256(v) => write!(f, "unix:sha256:{v}"),
        }
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

impl serde::Serialize for Selector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Selector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Selector::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether a workload with the `observed` selectors matches an entry requiring `entry`: every
/// selector of the entry must be among the observed ones. An entry with no selectors never
/// matches (it would otherwise match every caller).
pub fn entry_matches(entry: &[Selector], observed: &[Selector]) -> bool {
    !entry.is_empty() && entry.iter().all(|s| observed.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms_round_trip() {
        let hash = "a".repeat(64);
        for s in [
            "unix:uid:0".to_string(),
            "unix:uid:4294967295".to_string(),
            "unix:gid:1000".to_string(),
            "unix:user:www-data".to_string(),
            "unix:group:wheel".to_string(),
            "unix:path:/usr/bin/python3".to_string(),
            "unix:path:/opt/my app/bin".to_string(),
            format!("unix:sha256:{hash}"),
        ] {
            let parsed = Selector::parse(&s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(parsed.to_string(), s);
            let json = serde_json::to_string(&parsed).unwrap();
            assert_eq!(serde_json::from_str::<Selector>(&json).unwrap(), parsed);
        }
        assert_eq!(
            Selector::parse("unix:uid:1000").unwrap(),
            Selector::Uid(1000)
        );
    }

    #[test]
    fn refusals_name_the_selector_and_the_rule() {
        let cases = [
            ("", "only the unix:"),
            ("k8s:ns:default", "only the unix:"),
            ("unix:uid", "expected unix:<kind>:<value>"),
            ("unix:pid:12", "unknown selector kind \"pid\""),
            ("unix:UID:12", "unknown selector kind"),
            ("unix:uid:", "decimal number"),
            ("unix:uid:-1", "decimal number"),
            ("unix:uid:+1", "decimal number"),
            ("unix:uid:1e3", "decimal number"),
            ("unix:uid:007", "leading zeros"),
            ("unix:uid:4294967296", "32 bits"),
            ("unix:gid:abc", "decimal number"),
            ("unix:user:", "user name is empty"),
            ("unix:user:a b", "not allowed in a user name"),
            ("unix:group:a:b", "not allowed in a group name"),
            ("unix:path:usr/bin/x", "absolute"),
            ("unix:path:", "absolute"),
            ("unix:path:/usr/../bin/sh", ". or .."),
            ("unix:path:/usr/bin/\nx", "control character"),
            ("unix:sha256:abc", "64 lowercase"),
        ];
        for (input, reason) in cases {
            let e = Selector::parse(input).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(reason), "{input:?}: {text}");
            assert!(text.contains(&format!("{input:?}")), "{input:?}: {text}");
            assert!(text.contains("accepted forms: unix:uid:<u32>"), "{text}");
        }
        let upper = format!("unix:sha256:{}", "A".repeat(64));
        assert!(Selector::parse(&upper)
            .unwrap_err()
            .reason
            .contains("lowercase"));
        let long = format!("unix:path:/{}", "a".repeat(MAX_SELECTOR_LEN));
        assert!(Selector::parse(&long)
            .unwrap_err()
            .reason
            .contains("longer"));
        assert!(serde_json::from_str::<Selector>("\"unix:uid:x\"").is_err());
    }

    #[test]
    fn an_entry_matches_only_when_all_its_selectors_are_observed() {
        let s = |v: &str| Selector::parse(v).unwrap();
        let observed = [
            s("unix:uid:1000"),
            s("unix:gid:100"),
            s("unix:path:/bin/app"),
        ];
        assert!(entry_matches(&[s("unix:uid:1000")], &observed));
        assert!(entry_matches(
            &[s("unix:uid:1000"), s("unix:path:/bin/app")],
            &observed
        ));
        assert!(!entry_matches(
            &[s("unix:uid:1000"), s("unix:path:/bin/other")],
            &observed
        ));
        assert!(!entry_matches(&[s("unix:uid:0")], &observed));
        assert!(!entry_matches(&[], &observed), "no selectors never match");
        assert!(!entry_matches(&[s("unix:uid:1000")], &[]));
    }
}
