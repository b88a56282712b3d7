//! The configuration file of `mtls-proxy run --config FILE` and `mtls-proxy check`: TOML,
//! unknown keys refused, every error naming the file, the line and the key.
//!
//! ```toml
//! admin_listen = "127.0.0.1:9090"        # optional
//! admin_allow_remote = false             # admin_listen on other addresses (probes, scrapes)
//! allow_non_loopback = false             # outbound listeners on other addresses
//!
//! [credentials]                          # the credential flags, without the dashes
//! ca_url = "https://ca.internal:8443"
//! ca_fingerprint = "…"
//! spiffe_id = "spiffe://mesh.local/service/api"
//! join_token_file = "api.token"
//!
//! [limits]                               # all optional
//! max_connections = 10000
//! max_connections_per_identity = 1000
//! idle_timeout = "5m"
//! connect_timeout = "10s"
//! handshake_timeout = "10s"
//! drain = "10s"
//!
//! [inbound]
//! listen = "0.0.0.0:9443"
//! to = "127.0.0.1:8080"
//! allow_ids = ["spiffe://mesh.local/service/web"]   # or: policy = "policy.toml"
//! http = false                                      # true: HTTP mode with caller headers
//!
//! [[route]]
//! listen = "127.0.0.1:15001"
//! to = "billing.internal:9443"
//! server_id = "spiffe://mesh.local/service/billing"
//! server_name = "billing.internal"                  # optional; default: the host of `to`
//! ```
//!
//! The `[credentials]` table is handed back raw ([`ConfigFile::credentials`]): the program
//! reads it with the same parsers as its credential flags. Relative paths (the policy file)
//! are relative to the configuration file's directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{
    parse_listen, route, Access, Destination, InboundConfig, LimitSettings, Located, Origin,
    ProxyConfig,
};
use crate::error::ConfigError;
use crate::policy::Policy;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    admin_listen: Option<Spanned<String>>,
    allow_non_loopback: Option<Spanned<bool>>,
    admin_allow_remote: Option<Spanned<bool>>,
    #[serde(default)]
    credentials: Option<Spanned<toml::Table>>,
    limits: Option<FileLimits>,
    inbound: Option<FileInbound>,
    #[serde(default)]
    route: Vec<FileRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_connections: Option<Spanned<i64>>,
    max_connections_per_identity: Option<Spanned<i64>>,
    idle_timeout: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    handshake_timeout: Option<Spanned<String>>,
    drain: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileInbound {
    listen: Spanned<String>,
    to: Spanned<String>,
    allow_ids: Option<Spanned<Vec<String>>>,
    policy: Option<Spanned<String>>,
    #[serde(default)]
    http: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    listen: Spanned<String>,
    to: Spanned<String>,
    server_id: Spanned<String>,
    server_name: Option<Spanned<String>>,
}

/// A configuration file, read and checked.
#[derive(Debug)]
pub struct ConfigFile {
    /// The file.
    pub path: PathBuf,
    /// What it configures.
    pub proxy: ProxyConfig,
    /// The `[credentials]` table as written (the program parses it like its flags).
    pub credentials: toml::Table,
    /// Where the `[credentials]` table starts, for errors about it.
    pub credentials_origin: Origin,
}

/// Locates spans in the file's text.
struct Lines<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Lines<'_> {
    fn origin(&self, span: std::ops::Range<usize>, key: &str) -> Origin {
        let line = self.text[..span.start.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1;
        Origin(format!("{} line {line}: {key}", self.path.display()))
    }

    fn at<T>(&self, v: &Spanned<T>, key: &str) -> Origin {
        self.origin(v.span(), key)
    }

    fn invalid<T>(&self, v: &Spanned<T>, key: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            origin: self.at(v, key),
            message,
        }
    }
}

impl ConfigFile {
    /// Reads and checks `path` (syntax, keys, every value, [`ProxyConfig::validate`], the
    /// policy file). Binding the listeners is left to [`crate::Proxy::bind`].
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Unreadable {
            origin: Origin::flag("--config"),
            path: path.to_path_buf(),
            error,
        })?;
        ConfigFile::parse(path, &text)
    }

    /// Checks the text of a configuration file read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let lines = Lines { path, text };
        let base = path.parent().unwrap_or(Path::new("."));
        let admin_listen = match &file.admin_listen {
            Some(a) => Some(Located::new(
                parse_listen(a.get_ref()).map_err(|m| lines.invalid(a, "admin_listen", m))?,
                lines.at(a, "admin_listen"),
            )),
            None => None,
        };
        let allow_non_loopback = match &file.allow_non_loopback {
            Some(v) => Located::new(*v.get_ref(), lines.at(v, "allow_non_loopback")),
            None => Located::new(
                false,
                Origin(format!("{}: allow_non_loopback = true", path.display())),
            ),
        };
        let admin_allow_remote = match &file.admin_allow_remote {
            Some(v) => Located::new(*v.get_ref(), lines.at(v, "admin_allow_remote")),
            None => Located::new(
                false,
                Origin(format!("{}: admin_allow_remote = true", path.display())),
            ),
        };
        let limits = match &file.limits {
            Some(l) => limits(&lines, l)?,
            None => LimitSettings::default(),
        };
        let inbound = match &file.inbound {
            Some(i) => Some(inbound(&lines, base, i)?),
            None => None,
        };
        let mut routes = Vec::new();
        for (n, r) in file.route.iter().enumerate() {
            let key = format!("route[{n}]");
            let origin = lines.at(&r.listen, &format!("{key}.listen"));
            let made = route(
                r.listen.get_ref(),
                r.to.get_ref(),
                r.server_id.get_ref(),
                r.server_name.as_ref().map(|s| s.get_ref().as_str()),
                origin,
            )
            .map_err(|message| ConfigError::Invalid {
                origin: lines.at(&r.listen, &key),
                message,
            })?;
            routes.push(made);
        }
        let (credentials, credentials_origin) = match file.credentials {
            Some(c) => {
                let origin = lines.at(&c, "[credentials]");
                (c.into_inner(), origin)
            }
            None => (
                toml::Table::new(),
                Origin(format!("{}: [credentials]", path.display())),
            ),
        };
        let proxy = ProxyConfig {
            inbound,
            routes,
            allow_non_loopback,
            admin_listen,
            admin_allow_remote,
            limits,
        };
        proxy.validate()?;
        if let Some(i) = &proxy.inbound {
            crate::run::policy_handle(i)?;
        }
        Ok(ConfigFile {
            path: path.to_path_buf(),
            proxy,
            credentials,
            credentials_origin,
        })
    }
}

fn count(lines: &Lines<'_>, v: &Spanned<i64>, key: &str) -> Result<usize, ConfigError> {
    match usize::try_from(*v.get_ref()) {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(lines.invalid(
            v,
            key,
            format!(
                "{} is out of range: give a whole number of 1 or more",
                v.get_ref()
            ),
        )),
    }
}

fn duration(lines: &Lines<'_>, v: &Spanned<String>, key: &str) -> Result<Duration, ConfigError> {
    pki::duration::parse(v.get_ref()).map_err(|m| lines.invalid(v, key, m))
}

fn limits(lines: &Lines<'_>, l: &FileLimits) -> Result<LimitSettings, ConfigError> {
    let mut s = LimitSettings::default();
    if let Some(v) = &l.max_connections {
        s.max_connections = count(lines, v, "limits.max_connections")?;
    }
    if let Some(v) = &l.max_connections_per_identity {
        s.max_connections_per_identity = count(lines, v, "limits.max_connections_per_identity")?;
    }
    if let Some(v) = &l.idle_timeout {
        s.idle_timeout = duration(lines, v, "limits.idle_timeout")?;
    }
    if let Some(v) = &l.connect_timeout {
        s.connect_timeout = duration(lines, v, "limits.connect_timeout")?;
    }
    if let Some(v) = &l.handshake_timeout {
        s.handshake_timeout = duration(lines, v, "limits.handshake_timeout")?;
    }
    if let Some(v) = &l.drain {
        s.drain = duration(lines, v, "limits.drain")?;
    }
    Ok(s)
}

fn inbound(lines: &Lines<'_>, base: &Path, i: &FileInbound) -> Result<InboundConfig, ConfigError> {
    let listen: SocketAddr = parse_listen(i.listen.get_ref())
        .map_err(|m| lines.invalid(&i.listen, "inbound.listen", m))?;
    let to =
        Destination::parse(i.to.get_ref()).map_err(|m| lines.invalid(&i.to, "inbound.to", m))?;
    let access = match (&i.allow_ids, &i.policy) {
        (Some(_), Some(p)) => {
            return Err(lines.invalid(
                p,
                "inbound.policy",
                "give allow_ids or policy, not both (a policy file has its own allow list)".into(),
            ))
        }
        (Some(ids), None) => {
            let policy = Policy::from_patterns(ids.get_ref())
                .map_err(|m| lines.invalid(ids, "inbound.allow_ids", m))?;
            Access::AllowIds(Located::new(policy, lines.at(ids, "inbound.allow_ids")))
        }
        (None, Some(p)) => Access::PolicyFile(Located::new(
            base.join(p.get_ref()),
            lines.at(p, "inbound.policy"),
        )),
        (None, None) => Access::Everyone,
    };
    Ok(InboundConfig {
        listen: Located::new(listen, lines.at(&i.listen, "inbound.listen")),
        to: Located::new(to, lines.at(&i.to, "inbound.to")),
        http: i.http,
        access,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse(Path::new("/etc/proxy.toml"), text)
    }

    #[test]
    fn a_whole_file_reads() {
        let f = parse(
            r#"
admin_listen = "127.0.0.1:9090"
[credentials]
cert = "a.crt"
[limits]
max_connections = 50
drain = "3s"
[inbound]
listen = "0.0.0.0:9443"
to = "127.0.0.1:8080"
allow_ids = ["spiffe://mesh.local/service/web"]
[[route]]
listen = "127.0.0.1:15001"
to = "billing.internal:9443"
server_id = "spiffe://mesh.local/service/billing"
"#,
        )
        .unwrap();
        assert_eq!(f.proxy.limits.max_connections, 50);
        assert_eq!(f.proxy.limits.drain, Duration::from_secs(3));
        assert_eq!(
            f.proxy.routes[0].server_name.value.to_str(),
            "billing.internal"
        );
        assert_eq!(f.credentials["cert"].as_str(), Some("a.crt"));
        assert_eq!(f.proxy.role(), mesh::Role::Both);
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let e =
            parse("[inbound]\nlisten = \"0.0.0.0:9443\"\nto = \"127.0.0.1:8080\"\ncolour = 1\n")
                .unwrap_err()
                .to_string();
        assert!(e.starts_with("/etc/proxy.toml: "), "{e}");
        assert!(
            e.contains("line 4") && e.contains("unknown field `colour`"),
            "{e}"
        );

        let e = parse("[inbound]\nlisten = \"0.0.0.0:9443\"\nto = \"127.0.0.1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/proxy.toml line 3: inbound.to: "), "{e}");

        let e = parse(
            "[[route]]\nlisten = \"0.0.0.0:15001\"\nto = \"a:1\"\nserver_id = \"spiffe://td/a\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "/etc/proxy.toml line 2: route[0].listen: 0.0.0.0:15001 is not a loopback"
            ),
            "{e}"
        );
        assert!(e.contains("allow_non_loopback = true"), "{e}");

        let e =
            parse("[inbound]\nlisten = \"0.0.0.0:9443\"\nto = \"a:1\"\nallow_ids = [\"web\"]\n")
                .unwrap_err()
                .to_string();
        assert!(
            e.starts_with("/etc/proxy.toml line 4: inbound.allow_ids: "),
            "{e}"
        );

        let e =
            parse("[limits]\ndrain = \"0s\"\n[inbound]\nlisten = \"0.0.0.0:9443\"\nto = \"a:1\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            e.starts_with("/etc/proxy.toml line 2: limits.drain: "),
            "{e}"
        );

        let e = parse(
            "[inbound]\nlisten = \"0.0.0.0:9443\"\nto = \"a:1\"\npolicy = \"missing.toml\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("/etc/proxy.toml line 4: inbound.policy: cannot read /etc/missing.toml"),
            "{e}"
        );

        assert!(matches!(parse(""), Err(ConfigError::NothingToDo)));
    }

    /// The admin listener beyond loopback takes `admin_allow_remote = true`; the refusal names
    /// the line of `admin_listen` and the key that would allow it.
    #[test]
    fn a_remote_admin_listener_needs_admin_allow_remote() {
        let inbound = "[inbound]\nlisten = \"0.0.0.0:9443\"\nto = \"a:1\"\n";
        let e = parse(&format!("admin_listen = \"0.0.0.0:9090\"\n{inbound}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/proxy.toml line 1: admin_listen: 0.0.0.0:9090: the admin endpoint"),
            "{e}"
        );
        assert!(
            e.contains("unless /etc/proxy.toml: admin_allow_remote = true is given"),
            "{e}"
        );
        let ok = parse(&format!(
            "admin_listen = \"0.0.0.0:9090\"\nadmin_allow_remote = true\n{inbound}"
        ))
        .unwrap();
        assert_eq!(
            ok.proxy.admin_exposure(),
            mesh::server::admin::Exposure::Remote
        );
        let loopback = parse(&format!("admin_listen = \"127.0.0.1:9090\"\n{inbound}")).unwrap();
        assert_eq!(
            loopback.proxy.admin_exposure(),
            mesh::server::admin::Exposure::LoopbackOnly
        );
    }
}
