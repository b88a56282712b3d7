//! Operator actions that work directly on the data directory's store, while the CA runs or not.

use std::net::IpAddr;

use pki::clock::Clock;
use pki::{SpiffeId, TrustDomain};
use time::Duration;

use crate::store::{Store, TokenRecord};
use crate::tokens;

/// Longest a join token may live: it is a bearer secret.
pub const MAX_TOKEN_TTL: Duration = Duration::days(7);

/// The lifetime of a join token as `mtls-ca token --ttl` and `POST /api/v1/tokens` take it:
/// `90s`, `10m`, `1h`, `7d`; 1s to [`MAX_TOKEN_TTL`].
pub fn parse_token_ttl(s: &str) -> Result<Duration, String> {
    let max = std::time::Duration::try_from(MAX_TOKEN_TTL).unwrap_or(std::time::Duration::MAX);
    pki::duration::parse_time_between(s, pki::duration::ONE_SECOND, max)
}

/// Creates a one-time join token bound to `spiffe_id` and exactly the given SANs.
/// Returns the token, which exists nowhere else: only its hash is stored.
pub fn create_token(
    store: &dyn Store,
    trust_domain: &TrustDomain,
    spiffe_id: &SpiffeId,
    dns: &[String],
    ips: &[IpAddr],
    ttl: Duration,
    clock: &dyn Clock,
) -> anyhow::Result<String> {
    check_token_request(trust_domain, spiffe_id, dns, ttl)?;
    let token = tokens::generate().map_err(anyhow::Error::msg)?;
    let now = clock.now();
    store.insert_token(&TokenRecord {
        hash: tokens::hash(&token),
        spiffe_id: spiffe_id.to_string(),
        dns: dns.to_vec(),
        ips: ips.to_vec(),
        created_at: now,
        expires_at: now + ttl,
        used_at: None,
        used_serial: None,
        revoked_at: None,
    })?;
    Ok(token)
}

/// The rules of a join token, the one validator of `mtls-ca token` and `POST /api/v1/tokens`:
/// an identity of this trust domain that is not the CA's own, a lifetime of 1s to 7d, DNS
/// names in the preferred syntax (IP addresses are typed, so already valid).
pub fn check_token_request(
    trust_domain: &TrustDomain,
    spiffe_id: &SpiffeId,
    dns: &[String],
    ttl: Duration,
) -> anyhow::Result<()> {
    if spiffe_id.trust_domain() != trust_domain {
        anyhow::bail!(
            "{spiffe_id} is not in this CA's trust domain {trust_domain}; use spiffe://{trust_domain}/..."
        );
    }
    if spiffe_id.is_reserved_for_ca() {
        anyhow::bail!(
            "{spiffe_id} is reserved for the CA's own API identity ({} and every ID under it); \
             choose another path, e.g. spiffe://{trust_domain}/service/NAME",
            trust_domain.ca_id()
        );
    }
    if ttl < Duration::seconds(1) || ttl > MAX_TOKEN_TTL {
        anyhow::bail!("token lifetime must be between 1s and 7d (got {ttl})");
    }
    for d in dns {
        validate_dns_name(d)?;
    }
    Ok(())
}

/// Parses `--admin-id`, refusing the CA's reserved identity: no certificate can ever carry it
/// for a client, so such an admin could never act, and accepting it would suggest otherwise.
pub fn parse_admin_id(id: &str, trust_domain: &TrustDomain) -> anyhow::Result<SpiffeId> {
    let parsed = SpiffeId::parse(id).map_err(|e| anyhow::anyhow!("--admin-id: {e}"))?;
    if parsed.is_reserved_for_ca() {
        anyhow::bail!(
            "--admin-id {parsed} is reserved for the CA's own API identity ({} and every ID \
             under it); name the operator's identity instead, e.g. spiffe://{trust_domain}/admin",
            parsed.trust_domain().ca_id()
        );
    }
    Ok(parsed)
}

/// DNS SANs must be host names in the preferred name syntax (a leftmost `*` label allowed):
/// the one DNS rule of the project, `pki::rfc5280::dns_name_problem`.
pub fn validate_dns_name(name: &str) -> anyhow::Result<()> {
    match pki::rfc5280::dns_name_problem(name) {
        None => Ok(()),
        Some(reason) => anyhow::bail!("{name:?} is not a valid DNS name: {reason}"),
    }
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
        assert!(validate_dns_name("*").is_err());
        assert!(validate_dns_name("a.").is_err());
    }
}
