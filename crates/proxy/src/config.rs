//! What a proxy is told: an optional inbound side (mTLS in, plaintext to a local application),
//! outbound routes (plaintext from local applications, mTLS to remote services), who may call,
//! limits and the admin listener. The program fills it from its flags or from a TOML file
//! (`file.rs`); every value carries where it came from ([`Origin`]: a flag, or a key and line of
//! the file), so a refusal names exactly what to fix. [`ProxyConfig::validate`] checks what no
//! single value can (a non-loopback outbound listener without the explicit permission, two
//! listeners on one address, path rules without `--http`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mesh::server::admin;
use rustls_pki_types::ServerName;

use crate::error::ConfigError;
use crate::policy::Policy;

/// Where a setting came from: a command-line flag (`--listen`) or a key of the configuration
/// file (`proxy.toml line 12: route[0].listen`). Errors print it first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin(pub String);

impl Origin {
    /// A command-line flag.
    pub fn flag(name: &str) -> Origin {
        Origin(name.to_string())
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it was set.
    pub origin: Origin,
}

impl<T> Located<T> {
    /// `value` set at `origin`.
    pub fn new(value: T, origin: Origin) -> Located<T> {
        Located { value, origin }
    }
}

/// Everything a proxy runs.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// mTLS in, plaintext to the local application.
    pub inbound: Option<InboundConfig>,
    /// Plaintext in from local applications, mTLS out.
    pub routes: Vec<RouteConfig>,
    /// Outbound listeners may use non-loopback addresses (they take plaintext and act with
    /// this workload's identity, so anyone who can reach them speaks as it).
    pub allow_non_loopback: Located<bool>,
    /// The plain-HTTP admin listener: /healthz, /readyz, /metrics; loopback unless
    /// `admin_allow_remote`.
    pub admin_listen: Option<Located<SocketAddr>>,
    /// The admin listener may use a non-loopback address (Kubernetes probes, a Prometheus
    /// scrape): it serves health and metrics only, to whoever reaches it.
    pub admin_allow_remote: Located<bool>,
    /// Connection limits and timeouts.
    pub limits: LimitSettings,
}

/// The inbound side.
#[derive(Clone, Debug)]
pub struct InboundConfig {
    /// Where peers connect with mTLS.
    pub listen: Located<SocketAddr>,
    /// The local application (`host:port`), plaintext.
    pub to: Located<Destination>,
    /// HTTP mode: requests are forwarded with the caller in headers; otherwise bytes (L4).
    pub http: bool,
    /// Who may call.
    pub access: Access,
}

/// Who may call the inbound side.
#[derive(Clone, Debug)]
pub enum Access {
    /// Every caller with a verified certificate.
    Everyone,
    /// `--allow-id` patterns (exact SPIFFE IDs or `.../prefix/*`).
    AllowIds(Located<Policy>),
    /// A policy file, reloaded when it changes.
    PolicyFile(Located<PathBuf>),
}

/// An outbound route.
#[derive(Clone, Debug)]
pub struct RouteConfig {
    /// Where local applications connect (plaintext).
    pub listen: Located<SocketAddr>,
    /// The remote mTLS service.
    pub to: Located<Destination>,
    /// The SPIFFE ID the remote service must present.
    pub server_id: Located<pki::SpiffeId>,
    /// The DNS name or IP address its certificate must carry (default: the host of `to`).
    pub server_name: Located<ServerName<'static>>,
}

/// A `host:port` to connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Destination {
    /// Parses `host:port` or `[v6]:port`.
    pub fn parse(input: &str) -> Result<Destination, String> {
        let (host, port) = input
            .rsplit_once(':')
            .ok_or_else(|| format!("{input:?} is not host:port (e.g. 127.0.0.1:8080)"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{input:?}: {port:?} is not a port number (1-65535)"))?;
        if port == 0 {
            return Err(format!("{input:?}: port 0 cannot be connected to"));
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{input:?} has no host"));
        }
        Ok(Destination {
            host: host.to_string(),
            port,
        })
    }

    /// The name a server certificate must carry by default: the host.
    pub fn server_name(&self) -> Result<ServerName<'static>, String> {
        ServerName::try_from(self.host.clone())
            .map_err(|e| format!("{:?} is not a DNS name or IP address: {e}", self.host))
    }

    /// `host:port` for connecting (brackets around IPv6).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.authority())
    }
}

/// Parses a `--route LISTEN=HOST:PORT,SPIFFE-ID[,SERVER-NAME]` value.
pub fn parse_route(input: &str, origin: Origin) -> Result<RouteConfig, String> {
    let (listen, rest) = input.split_once('=').ok_or_else(|| {
        format!(
            "{input:?} is not LISTEN=HOST:PORT,SPIFFE-ID[,SERVER-NAME] \
             (e.g. 127.0.0.1:15001=api.internal:9443,spiffe://mesh.local/service/api)"
        )
    })?;
    let mut parts = rest.split(',');
    let to = parts.next().unwrap_or_default();
    let id = parts.next().ok_or_else(|| {
        format!("{input:?} names no SPIFFE ID: LISTEN=HOST:PORT,SPIFFE-ID[,SERVER-NAME]")
    })?;
    let name = parts.next();
    if parts.next().is_some() {
        return Err(format!(
            "{input:?} has more than LISTEN=HOST:PORT,SPIFFE-ID[,SERVER-NAME]"
        ));
    }
    route(listen, to, id, name, origin)
}

/// A route from its parts, each checked.
pub fn route(
    listen: &str,
    to: &str,
    server_id: &str,
    server_name: Option<&str>,
    origin: Origin,
) -> Result<RouteConfig, String> {
    let listen_addr = parse_listen(listen)?;
    let to = Destination::parse(to)?;
    let id = pki::SpiffeId::parse(server_id).map_err(|e| e.to_string())?;
    let name = match server_name {
        Some(n) => ServerName::try_from(n.to_string())
            .map_err(|e| format!("{n:?} is not a DNS name or IP address: {e}"))?,
        None => to.server_name()?,
    };
    Ok(RouteConfig {
        listen: Located::new(listen_addr, origin.clone()),
        to: Located::new(to, origin.clone()),
        server_id: Located::new(id, origin.clone()),
        server_name: Located::new(name, origin),
    })
}

/// A listen address: `IP:PORT` (port 0 picks a free port).
pub fn parse_listen(input: &str) -> Result<SocketAddr, String> {
    input.parse().map_err(|_| {
        format!("{input:?} is not an address to listen on like 127.0.0.1:15001 (IP:PORT)")
    })
}

/// Limits and timeouts of the listeners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitSettings {
    /// Connections open at once per listener.
    pub max_connections: usize,
    /// Inbound connections one caller identity may hold.
    pub max_connections_per_identity: usize,
    /// A connection without traffic (L4: no byte either way; HTTP: no request in flight) for
    /// this long is closed.
    pub idle_timeout: Duration,
    /// HTTP mode: a request header must be complete within this time of its first byte.
    pub header_timeout: Duration,
    /// HTTP mode: body and upstream answer (headers) within this time, else 408.
    pub request_timeout: Duration,
    /// Connecting to the application or to a remote service must finish within this time.
    pub connect_timeout: Duration,
    /// A TLS handshake with a caller must finish within this time.
    pub handshake_timeout: Duration,
    /// On shutdown, open connections get this long to finish.
    pub drain: Duration,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_connections: 10_000,
            max_connections_per_identity: 1_000,
            idle_timeout: Duration::from_secs(60 * 5),
            header_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(10),
        }
    }
}

impl LimitSettings {
    /// The wire layer's limits of the inbound listener: mtls-server's profile (every peer has
    /// a verified certificate: no per-source limit, no reserve) with these values.
    pub fn inbound(&self) -> wire::Limits {
        wire::Limits {
            idle_timeout: self.idle_timeout,
            header_timeout: self.header_timeout,
            request_timeout: self.request_timeout,
            handshake_timeout: self.handshake_timeout,
            drain: self.drain,
            ..mesh::server::server_limits(self.max_connections, self.max_connections_per_identity)
        }
    }

    /// The limits of an outbound (plaintext, loopback) listener: the connection cap and the
    /// drain; local applications are not counted per source.
    pub fn outbound(&self) -> wire::Limits {
        wire::Limits {
            max_per_source: None,
            max_per_identity: None,
            authenticated_reserve: 0,
            ..self.inbound()
        }
    }
}

impl ProxyConfig {
    /// Role of the certificate: serves (inbound), calls (routes) or both.
    pub fn role(&self) -> mesh::Role {
        match (self.inbound.is_some(), self.routes.is_empty()) {
            (true, true) => mesh::Role::Server,
            (false, _) => mesh::Role::Client,
            (true, false) => mesh::Role::Both,
        }
    }

    /// Who may reach the admin listener (`validate` has refused a non-loopback address
    /// without `admin_allow_remote`).
    pub fn admin_exposure(&self) -> admin::Exposure {
        if self.admin_allow_remote.value {
            admin::Exposure::Remote
        } else {
            admin::Exposure::LoopbackOnly
        }
    }

    /// Checks what the values alone cannot: something to do, loopback outbound listeners
    /// unless allowed, distinct listen addresses, the access rule against the mode.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.inbound.is_none() && self.routes.is_empty() {
            return Err(ConfigError::NothingToDo);
        }
        for r in &self.routes {
            if !r.listen.value.ip().is_loopback() && !self.allow_non_loopback.value {
                return Err(ConfigError::NotLoopback {
                    origin: r.listen.origin.clone(),
                    addr: r.listen.value,
                    permission: self.allow_non_loopback.origin.clone(),
                });
            }
        }
        let mut seen: Vec<&Located<SocketAddr>> = Vec::new();
        let listens = self
            .inbound
            .iter()
            .map(|i| &i.listen)
            .chain(self.routes.iter().map(|r| &r.listen))
            .chain(self.admin_listen.iter());
        for l in listens {
            if l.value.port() != 0 {
                if let Some(first) = seen.iter().find(|s| s.value == l.value) {
                    return Err(ConfigError::SameAddress {
                        addr: l.value,
                        first: first.origin.clone(),
                        second: l.origin.clone(),
                    });
                }
            }
            seen.push(l);
        }
        if let Some(admin) = &self.admin_listen {
            admin::Exposure::check(
                admin.value,
                self.admin_allow_remote.value,
                &self.admin_allow_remote.origin.to_string(),
            )
            .map_err(|reason| ConfigError::AdminNotLoopback {
                origin: admin.origin.clone(),
                addr: admin.value,
                reason,
            })?;
        }
        if let Some(inbound) = &self.inbound {
            if let Access::AllowIds(p) = &inbound.access {
                if p.value.has_path_rules() && !inbound.http {
                    return Err(ConfigError::PathRulesNeedHttp {
                        origin: p.origin.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    #[test]
    fn routes_parse_with_and_without_a_server_name() {
        let r = parse_route(
            "127.0.0.1:15001=api.internal:9443,spiffe://mesh.local/service/api",
            Origin::flag("--route"),
        )
        .unwrap();
        assert_eq!(r.listen.value.to_string(), "127.0.0.1:15001");
        assert_eq!(r.to.value.authority(), "api.internal:9443");
        assert_eq!(r.server_name.value.to_str(), "api.internal");
        let r = parse_route(
            "127.0.0.1:0=127.0.0.1:9443,spiffe://mesh.local/service/api,localhost",
            Origin::flag("--route"),
        )
        .unwrap();
        assert_eq!(r.server_name.value.to_str(), "localhost");
        for bad in [
            "127.0.0.1:15001",
            "127.0.0.1:15001=api:9443",
            "127.0.0.1:15001=api:9443,billing",
            "localhost:1=api:9443,spiffe://mesh.local/a",
            "127.0.0.1:1=api,spiffe://mesh.local/a",
            "127.0.0.1:1=api:9443,spiffe://mesh.local/a,n,extra",
        ] {
            assert!(parse_route(bad, Origin::flag("--route")).is_err(), "{bad}");
        }
    }

    #[test]
    fn destinations_take_names_v4_and_v6() {
        assert_eq!(
            Destination::parse("[::1]:5432").unwrap().authority(),
            "[::1]:5432"
        );
        assert!(Destination::parse("db:0").is_err());
        assert!(Destination::parse(":80").is_err());
    }
}
