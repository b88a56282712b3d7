//! The target URL, restricted to this machine: `https://` (the mTLS server under test) or
//! `http://` (a plaintext server, e.g. the app behind a proxy, for the direct baseline in
//! scripts/bench-proxies.sh).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};

#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
    /// `https://` (mTLS) rather than `http://` (plaintext).
    pub tls: bool,
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Target> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            bail!("{url:?}: only https:// and http:// targets are supported");
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']'),
                p.parse::<u16>().context("bad port")?,
            ),
            _ => (authority, if tls { 443 } else { 80 }),
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
            tls,
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
        assert!(Target::parse("ftp://127.0.0.1:9443/").is_err());
        assert!(Target::parse("http://10.0.0.1:8080/").is_err());
        let plain = Target::parse("http://127.0.0.1:8080/x").unwrap();
        assert!(!plain.tls && t.tls);
        assert_eq!(plain.addr.port(), 8080);
        assert_eq!(Target::parse("http://localhost/").unwrap().addr.port(), 80);
    }
}
