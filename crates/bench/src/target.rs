//! The target URL, restricted to this machine.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};

#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let rest = url
            .strip_prefix("https://")
            .with_context(|| format!("{url:?}: only https:// targets are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']'),
                p.parse::<u16>().context("bad port")?,
            ),
            _ => (authority, 443),
        };
        let addr = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} resolves to nothing"))?;
        if !is_loopback(addr.ip()) {
            bail!("{host} resolves to {}, which is not a loopback address; mtls-bench only loads this machine", addr.ip());
        }
        Ok(Target {
            addr,
            host: host.to_string(),
            path: path.to_string(),
        })
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v| v.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        let t = Target::parse("https://127.0.0.1:9443/api/status").unwrap();
        assert_eq!(t.addr.port(), 9443);
        assert_eq!(t.path, "/api/status");
        assert!(Target::parse("https://localhost:1/").is_ok());
        assert!(Target::parse("https://[::1]:1/").is_ok());
        assert!(Target::parse("https://10.0.0.1:9443/").is_err());
        assert!(Target::parse("http://127.0.0.1:9443/").is_err());
    }
}
