//! `--allow-id`: which verified callers may use the API. Exact SPIFFE IDs or `.../prefix/*`.

use crate::error::{MeshError, Result};

#[derive(Clone, Debug, Default)]
pub struct AllowList {
    patterns: Vec<String>,
}

impl AllowList {
    /// Validates every pattern; an empty list allows every verified caller.
    pub fn parse(patterns: &[String]) -> Result<AllowList> {
        for p in patterns {
            let id_part = p.strip_suffix("/*").unwrap_or(p);
            pki::SpiffeId::parse(id_part).map_err(|e| {
                MeshError::Config(format!(
                    "--allow-id {p:?}: {e} (expected a SPIFFE ID or a prefix such as \
                     spiffe://mesh.local/service/*)"
                ))
            })?;
        }
        Ok(AllowList {
            patterns: patterns.to_vec(),
        })
    }

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
