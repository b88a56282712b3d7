//! Who may reach the service behind the inbound side: SPIFFE ID patterns (exact, or
//! `spiffe://td/prefix/*` for everything strictly below), for the whole service and, in HTTP
//! mode, per path prefix (the longest matching prefix decides). From `--allow-id` flags or a
//! TOML policy file that is reloaded when it changes (a file that does not parse or does not fit
//! the mode is refused and the previous policy stays).
//!
//! ```toml
//! allow = ["spiffe://mesh.local/service/web", "spiffe://mesh.local/batch/*"]
//!
//! [[path]]             # HTTP mode only
//! prefix = "/admin/"
//! allow = ["spiffe://mesh.local/ops/*"]
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use std::future::Future;

use arc_swap::ArcSwap;
use mesh::AllowList;
use serde::Deserialize;
use tokio::sync::watch;
use wire::CloseReason;

/// The rules in force.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    allow: AllowList,
    /// Everyone verified may call (no rule at all).
    everyone: bool,
    paths: Vec<PathRule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PathRule {
    prefix: String,
    allow: AllowList,
}

/// The policy file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    allow: Vec<String>,
    #[serde(default)]
    path: Vec<PathFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathFile {
    prefix: String,
    allow: Vec<String>,
}

/// The verdict on one caller (and path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// May proceed.
    Allowed,
    /// Refused; the reason names the caller and the rule.
    Refused(String),
}

impl Policy {
    /// Every verified caller may call.
    pub fn everyone() -> Policy {
        Policy {
            everyone: true,
            ..Policy::default()
        }
    }

    /// From `--allow-id` patterns; an empty list allows every verified caller.
    pub fn from_patterns(patterns: &[String]) -> Result<Policy, String> {
        if patterns.is_empty() {
            return Ok(Policy::everyone());
        }
        let allow = AllowList::parse(patterns).map_err(|e| e.to_string())?;
        Ok(Policy {
            allow,
            everyone: false,
            paths: Vec::new(),
        })
    }

    /// Parses a policy file's text. Errors carry the TOML parser's line and column.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let allow = AllowList::parse(&file.allow).map_err(|e| format!("allow: {e}"))?;
        let mut paths = Vec::new();
        for (i, p) in file.path.into_iter().enumerate() {
            if !p.prefix.starts_with('/') {
                return Err(format!(
                    "path[{i}].prefix {:?} must start with / (e.g. \"/admin/\")",
                    p.prefix
                ));
            }
            let allow = AllowList::parse(&p.allow).map_err(|e| format!("path[{i}].allow: {e}"))?;
            paths.push(PathRule {
                prefix: p.prefix,
                allow,
            });
        }
        // Longest prefix first: the most specific rule decides.
        paths.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(Policy {
            allow,
            everyone: false,
            paths,
        })
    }

    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Policy::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every ID pattern some rule of this policy names (the service-wide list and each path's);
    /// empty when everyone may call. The mesh admits a caller of a federated trust domain only
    /// when one of these names it (docs/proxy.md, "Federated callers"); the rules then decide
    /// as for any caller.
    pub fn named_ids(&self) -> AllowList {
        if self.everyone {
            return AllowList::default();
        }
        let patterns: Vec<String> = self
            .paths
            .iter()
            .flat_map(|r| r.allow.patterns())
            .chain(self.allow.patterns())
            .cloned()
            .collect();
        // Each pattern was checked when its rule was parsed, so this cannot fail; an empty
        // list (no federated caller) would be the safe answer if it did.
        AllowList::parse(&patterns).unwrap_or_default()
    }

    /// True when some rule is per path (HTTP mode only).
    pub fn has_path_rules(&self) -> bool {
        !self.paths.is_empty()
    }

    /// The verdict for `caller` (None: a pinned peer without a SPIFFE ID) on `path` (None in
    /// L4 mode).
    pub fn check(&self, caller: Option<&pki::SpiffeId>, path: Option<&str>) -> Decision {
        if self.everyone {
            return Decision::Allowed;
        }
        let (list, rule) =
            match path.and_then(|p| self.paths.iter().find(|r| p.starts_with(&r.prefix))) {
                Some(r) => (&r.allow, format!("the rule for {}", r.prefix)),
                None => (&self.allow, "the policy".to_string()),
            };
        if list.permits(caller) && !list.is_empty() {
            return Decision::Allowed;
        }
        let who = caller
            .map(|c| c.to_string())
            .unwrap_or_else(|| "a caller without a SPIFFE ID".into());
        let allowed = if list.is_empty() {
            "nobody".to_string()
        } else {
            list.patterns().join(", ")
        };
        Decision::Refused(format!(
            "{who} is not allowed by {rule} (allowed: {allowed})"
        ))
    }
}

/// A path in normal form: starts with `/`, no `.` or `..` segment, no empty segment, no
/// backslash and no percent-encoded `.`, `/` or `\`. Per-path rules compare prefixes, and an
/// application may normalise `/x/../admin` or `/%61dmin` into a path the rule did not see;
/// such requests are refused instead of guessed at.
pub fn is_normal_path(path: &str) -> bool {
    if !path.starts_with('/') || path.contains('\\') || path.contains("//") {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e)) {
        return false;
    }
    !path[1..].split('/').any(|seg| seg == "." || seg == "..")
}

/// The policy in force, swapped whole when the file changes (readers never wait).
pub struct PolicyHandle {
    current: ArcSwap<Policy>,
    /// Ticks at each published change, for open connections that must be re-checked.
    changed: watch::Sender<()>,
    /// The file it is reloaded from, if any.
    file: Option<PathBuf>,
    /// HTTP mode (path rules allowed).
    http: bool,
    /// What runs on each new policy ([`PolicyHandle::on_change`]).
    on_change: OnceLock<OnChange>,
}

type OnChange = Box<dyn Fn(&Policy) + Send + Sync>;

impl PolicyHandle {
    /// A fixed policy.
    pub fn fixed(policy: Policy, http: bool) -> Arc<PolicyHandle> {
        Arc::new(PolicyHandle {
            current: ArcSwap::from_pointee(policy),
            changed: watch::Sender::new(()),
            file: None,
            http,
            on_change: OnceLock::new(),
        })
    }

    /// The policy of `file`, checked against the mode.
    pub fn from_file(file: &Path, http: bool) -> Result<Arc<PolicyHandle>, String> {
        let policy = Policy::load(file)?;
        check_mode(&policy, http, file)?;
        Ok(Arc::new(PolicyHandle {
            current: ArcSwap::from_pointee(policy),
            changed: watch::Sender::new(()),
            file: Some(file.to_path_buf()),
            http,
            on_change: OnceLock::new(),
        }))
    }

    /// The policy now.
    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// Resolves once a reloaded policy refuses `caller` (L4 mode: no path), with the reason
    /// (`forbidden`); never for a fixed policy. An open connection is closed then, as a new one
    /// would be refused (docs/proxy.md "Policy file").
    pub fn close_when_refused(
        self: &Arc<Self>,
        caller: Option<pki::SpiffeId>,
    ) -> impl Future<Output = CloseReason> + Send + 'static {
        let handle = self.clone();
        async move {
            if handle.file.is_none() {
                return std::future::pending().await;
            }
            // Subscribed before the first check: a change between the two is not missed.
            let mut changes = handle.changed.subscribe();
            loop {
                if let Decision::Refused(why) = handle.current().check(caller.as_ref(), None) {
                    return CloseReason::new(
                        "forbidden",
                        format!("the reloaded policy refuses it: {why}"),
                    );
                }
                if changes.changed().await.is_err() {
                    // The handle is gone (shutdown): nothing can change any more.
                    return std::future::pending().await;
                }
            }
        }
    }

    /// Runs `f` on the policy now and on every policy published after it, before the new policy
    /// is in force (so that what `f` sets up, the mesh's federated callers, is never behind the
    /// policy that checks them). Set once; a second call is ignored.
    pub fn on_change(&self, f: impl Fn(&Policy) + Send + Sync + 'static) {
        f(&self.current());
        let _ = self.on_change.set(Box::new(f));
    }

    /// The file, if the policy comes from one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Re-reads the file; a changed, valid policy replaces the current one. Returns
    /// Some(Ok(())) when a new policy was published, Some(Err) when the file changed but was
    /// refused (the current policy stays), None when nothing changed.
    pub fn reload(&self) -> Option<Result<(), String>> {
        let file = self.file.as_ref()?;
        let loaded = Policy::load(file).and_then(|p| check_mode(&p, self.http, file).map(|()| p));
        match loaded {
            Ok(p) if p == **self.current.load() => None,
            Ok(p) => {
                if let Some(f) = self.on_change.get() {
                    f(&p);
                }
                self.current.store(Arc::new(p));
                self.changed.send_replace(());
                Some(Ok(()))
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// Reloads the file every `interval` until dropped (spawn it), logging each change:
    /// `policy_reloaded`, or `policy_reload_failed` with the reason (once per bad version).
    pub async fn watch(
        self: Arc<Self>,
        interval: Duration,
        metrics: Arc<crate::metrics::ProxyMetrics>,
    ) {
        let Some(file) = self.file.clone() else {
            return;
        };
        let mut last_error: Option<String> = None;
        loop {
            tokio::time::sleep(interval).await;
            match self.reload() {
                // Unchanged, or the same bad version as last time (logged once).
                None => {}
                Some(Err(e)) if last_error.as_deref() == Some(e.as_str()) => {}
                Some(Ok(())) => {
                    last_error = None;
                    metrics.policy_reload(true);
                    tracing::info!(event = "policy_reloaded", file = %file.display(),
                        "policy reloaded from {}", file.display());
                }
                Some(Err(e)) => {
                    metrics.policy_reload(false);
                    tracing::warn!(event = "policy_reload_failed", file = %file.display(), error = %e,
                        "policy file changed but cannot be used; keeping the current policy: {e}");
                    last_error = Some(e);
                }
            }
        }
    }
}

fn check_mode(policy: &Policy, http: bool, file: &Path) -> Result<(), String> {
    if policy.has_path_rules() && !http {
        return Err(format!(
            "{}: per-path rules ([[path]]) need HTTP mode (--http): in L4 mode the proxy sees \
             bytes, not paths",
            file.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    fn id(s: &str) -> pki::SpiffeId {
        pki::SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn the_longest_path_prefix_decides_and_the_top_list_covers_the_rest() {
        let p = Policy::parse(
            r#"
            allow = ["spiffe://mesh.local/service/web"]
            [[path]]
            prefix = "/admin/"
            allow = ["spiffe://mesh.local/ops/*"]
            [[path]]
            prefix = "/admin/public/"
            allow = ["spiffe://mesh.local/service/web", "spiffe://mesh.local/ops/*"]
            "#,
        )
        .unwrap();
        let web = id("spiffe://mesh.local/service/web");
        let ops = id("spiffe://mesh.local/ops/alice");
        assert_eq!(p.check(Some(&web), Some("/index.html")), Decision::Allowed);
        assert_eq!(p.check(Some(&ops), Some("/admin/users")), Decision::Allowed);
        assert_eq!(
            p.check(Some(&web), Some("/admin/public/x")),
            Decision::Allowed
        );
        let Decision::Refused(why) = p.check(Some(&web), Some("/admin/users")) else {
            panic!("web reached /admin/")
        };
        assert_eq!(
            why,
            "spiffe://mesh.local/service/web is not allowed by the rule for /admin/ \
             (allowed: spiffe://mesh.local/ops/*)"
        );
        assert!(matches!(
            p.check(Some(&ops), Some("/")),
            Decision::Refused(_)
        ));
        assert!(matches!(p.check(None, Some("/")), Decision::Refused(_)));
    }

    #[test]
    fn named_ids_are_every_rules_patterns_and_none_for_everyone() {
        let p = Policy::parse(
            "allow = [\"spiffe://b.example/service/x\"]\n\
             [[path]]\nprefix = \"/admin/\"\nallow = [\"spiffe://c.example/ops/*\"]\n",
        )
        .unwrap();
        let mut named = p.named_ids().patterns().to_vec();
        named.sort();
        assert_eq!(
            named,
            ["spiffe://b.example/service/x", "spiffe://c.example/ops/*"]
        );
        assert!(Policy::everyone().named_ids().is_empty());
        assert!(Policy::from_patterns(&[]).unwrap().named_ids().is_empty());
    }

    #[test]
    fn an_empty_list_allows_nobody_and_no_list_everybody() {
        let p = Policy::parse("allow = []").unwrap();
        let Decision::Refused(why) = p.check(Some(&id("spiffe://mesh.local/a")), None) else {
            panic!("allowed")
        };
        assert!(why.ends_with("(allowed: nobody)"), "{why}");
        assert_eq!(
            Policy::from_patterns(&[]).unwrap().check(None, None),
            Decision::Allowed
        );
    }

    #[test]
    fn bad_files_are_refused_with_the_key_and_line() {
        let e = Policy::parse("allow = []\ndeny = [\"x\"]\n").unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("unknown field `deny`"),
            "{e}"
        );
        let e = Policy::parse("allow = [\"web\"]").unwrap_err();
        assert!(e.starts_with("allow: "), "{e}");
        let e = Policy::parse("allow = []\n[[path]]\nprefix = \"admin\"\nallow = []").unwrap_err();
        assert!(e.contains("must start with /"), "{e}");
        assert!(Policy::parse("")
            .unwrap_err()
            .contains("missing field `allow`"));
    }

    #[test]
    fn only_normal_paths_pass() {
        assert!(is_normal_path("/admin/users?x=1"));
        assert!(is_normal_path("/"));
        for bad in [
            "/x/../admin",
            "/./admin",
            "//admin",
            "/%2e%2e/admin",
            "/a%2Fb",
            "/a\\b",
            "admin",
        ] {
            assert!(!is_normal_path(bad), "{bad}");
        }
    }

    #[test]
    fn a_reload_publishes_a_valid_change_and_keeps_the_policy_on_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.toml");
        std::fs::write(&file, "allow = [\"spiffe://mesh.local/a\"]").unwrap();
        let h = PolicyHandle::from_file(&file, false).unwrap();
        let a = id("spiffe://mesh.local/a");
        assert_eq!(h.current().check(Some(&a), None), Decision::Allowed);
        assert_eq!(h.reload(), None);
        std::fs::write(&file, "allow = [\"spiffe://mesh.local/b\"]").unwrap();
        assert_eq!(h.reload(), Some(Ok(())));
        assert!(matches!(
            h.current().check(Some(&a), None),
            Decision::Refused(_)
        ));
        std::fs::write(&file, "allow = []\n[[path]]\nprefix = \"/\"\nallow = []").unwrap();
        assert!(h.reload().unwrap().unwrap_err().contains("need HTTP mode"));
        std::fs::write(&file, "allow = [").unwrap();
        assert!(h.reload().unwrap().is_err());
        let b = id("spiffe://mesh.local/b");
        assert_eq!(h.current().check(Some(&b), None), Decision::Allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_connection_is_told_when_a_reload_refuses_its_caller() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.toml");
        std::fs::write(
            &file,
            "allow = [\"spiffe://mesh.local/a\", \"spiffe://mesh.local/b\"]",
        )
        .unwrap();
        let h = PolicyHandle::from_file(&file, false).unwrap();
        let a = tokio::spawn(h.close_when_refused(Some(id("spiffe://mesh.local/a"))));
        let b = tokio::spawn(h.close_when_refused(Some(id("spiffe://mesh.local/b"))));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!a.is_finished() && !b.is_finished());

        // A change that keeps b and drops a: only a's connection is told, with the reason.
        std::fs::write(&file, "allow = [\"spiffe://mesh.local/b\"]").unwrap();
        assert_eq!(h.reload(), Some(Ok(())));
        let reason = a.await.unwrap();
        assert_eq!(reason.code, "forbidden");
        assert_eq!(
            reason.detail,
            "the reloaded policy refuses it: spiffe://mesh.local/a is not allowed by the policy \
             (allowed: spiffe://mesh.local/b)"
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!b.is_finished(), "an allowed caller was told to close");

        // A refused edit changes nothing; a fixed policy never tells anyone.
        std::fs::write(&file, "allow = [").unwrap();
        assert!(h.reload().unwrap().is_err());
        let fixed = PolicyHandle::fixed(Policy::parse("allow = []").unwrap(), false);
        let never = tokio::spawn(fixed.close_when_refused(None));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!b.is_finished() && !never.is_finished());
        b.abort();
        never.abort();
    }
}
