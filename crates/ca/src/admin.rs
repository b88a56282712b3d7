//! Operator actions that work directly on the data directory's store, while the CA runs or not.

use std::net::IpAddr;

use pki::{SpiffeId, TrustDomain};
use time::{Duration, OffsetDateTime};

use crate::store::{Store, TokenRecord};
use crate::tokens;

/// Longest a join token may live: it is a bearer secret.
pub const MAX_TOKEN_TTL: Duration = Duration::days(7);

/// Creates a one-time join token bound to `spiffe_id` and exactly the given SANs.
/// Returns the token, which exists nowhere else: only its hash is stored.
pub fn create_token(
    store: &dyn Store,
    trust_domain: &TrustDomain,
    spiffe_id: &SpiffeId,
    dns: &[String],
    ips: &[IpAddr],
    ttl: Duration,
    now: OffsetDateTime,
) -> anyhow::Result<String> {
    if spiffe_id.trust_domain() != trust_domain {
        anyhow::bail!(
            "{spiffe_id} is not in this CA's trust domain {trust_domain}; use spiffe://{trust_domain}/..."
        );
    }
    if ttl <= Duration::ZERO || ttl > MAX_TOKEN_TTL {
        anyhow::bail!("token lifetime must be between 1s and 7d (got {ttl})");
    }
    for d in dns {
        validate_dns_name(d)?;
    }
    let token = tokens::generate().map_err(anyhow::Error::msg)?;
    store.insert_token(&TokenRecord {
        hash: tokens::hash(&token),
        spiffe_id: spiffe_id.to_string(),
        dns: dns.to_vec(),
        ips: ips.to_vec(),
        created_at: now,
        expires_at: now + ttl,
        used_at: None,
    })?;
    Ok(token)
}

/// DNS SANs must be plain host names (a leading `*.` wildcard label allowed).
pub fn validate_dns_name(name: &str) -> anyhow::Result<()> {
    let host = name.strip_prefix("*.").unwrap_or(name);
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !ok {
        anyhow::bail!("{name:?} is not a valid DNS name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(validate_dns_name("localhost").is_ok());
        assert!(validate_dns_name("*.svc.local").is_ok());
        assert!(validate_dns_name("a..b").is_err());
        assert!(validate_dns_name("-a").is_err());
        assert!(validate_dns_name("a b").is_err());
        assert!(validate_dns_name("").is_err());
    }
}
