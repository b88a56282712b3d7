//! Which verified callers may use a service (`--allow-id`): exact SPIFFE IDs or `.../prefix/*`.

use crate::error::ConfigError;

/// The callers a service serves; empty: every verified caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<String>,
}

impl AllowList {
    /// Checks one pattern: a SPIFFE ID, or one followed by `/*` for everything below it.
    pub fn check_pattern(pattern: &str) -> Result<String, ConfigError> {
        let id_part = pattern.strip_suffix("/*").unwrap_or(pattern);
        pki::SpiffeId::parse(id_part).map_err(|e| ConfigError::AllowPattern {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })?;
        Ok(pattern.to_string())
    }

    /// Validates every pattern; an empty list allows every verified caller.
    pub fn parse(patterns: &[String]) -> Result<AllowList, ConfigError> {
        let patterns = patterns
            .iter()
            .map(|p| AllowList::check_pattern(p))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { patterns })
    }

    /// True when every verified caller is allowed.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when the caller may proceed.
    pub fn permits(&self, caller: Option<&pki::SpiffeId>) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        caller.is_some_and(|id| self.patterns.iter().any(|p| id.matches_pattern(p)))
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_prefix() {
        let list = AllowList::parse(&[
            "spiffe://mesh.local/service/web".into(),
            "spiffe://mesh.local/batch/*".into(),
        ])
        .unwrap();
        let id = |s: &str| pki::SpiffeId::parse(s).unwrap();
        assert!(list.permits(Some(&id("spiffe://mesh.local/service/web"))));
        assert!(!list.permits(Some(&id("spiffe://mesh.local/service/web2"))));
        assert!(list.permits(Some(&id("spiffe://mesh.local/batch/nightly"))));
        assert!(!list.permits(Some(&id("spiffe://mesh.local/batch"))));
        assert!(!list.permits(None));
        assert!(AllowList::default().permits(None));
        assert!(AllowList::parse(&["not-an-id".into()]).is_err());
    }
}
