//! `mtls-ca federation add|list|show|remove`: the federated trust domains in the data
//! directory's store (docs/cli.md, docs/operations.md "Federation"). The running CA picks
//! the changes up within a second (`federation_refresh`).

use anyhow::Context;
use mtls_ca::datadir::stored_trust_domain;
use mtls_ca::federation::{self, NewFederation};
use mtls_ca::store::{FederationRecord, Store};
use pki::clock::Clock;

use crate::cli::{FederationAction, ListFormat};

pub fn run(store: &dyn Store, action: FederationAction, clock: &dyn Clock) -> anyhow::Result<()> {
    match action {
        FederationAction::Add {
            trust_domain,
            endpoint,
            endpoint_spiffe_id,
            fingerprint,
        } => {
            let own = stored_trust_domain(store)?;
            let new = NewFederation {
                trust_domain,
                endpoint,
                endpoint_spiffe_id,
                fingerprint,
            };
            // The endpoint must be a URL the refresher can use (mesh's parser, the same
            // rules as --ca-url).
            mesh::HttpsUrl::parse(&new.endpoint)
                .with_context(|| format!("--endpoint {}", new.endpoint))?;
            let added = federation::add(store, &own, &new, "cli", clock.now())?;
            eprintln!(
                "federated {}: the running CA fetches its bundle from {} (as {}, first fetch \
                 checked against sha256:{}); services accept its peers only where --allow-id \
                 (servers) or --server-id (clients) names them",
                added.trust_domain, added.endpoint, added.endpoint_spiffe_id, added.fingerprint
            );
        }
        FederationAction::List { format } => {
            let all = store.list_federations()?;
            match format {
                ListFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "federations": all.iter().map(summary).collect::<Vec<_>>(),
                    }))?
                ),
                ListFormat::Text => {
                    println!(
                        "{:<30}  {:<8}  {:<20}  ENDPOINT",
                        "TRUST DOMAIN", "ROOTS", "REFRESHED"
                    );
                    for f in &all {
                        let roots = federation::stored_roots(f)
                            .map(|r| r.len().to_string())
                            .unwrap_or_else(|| "-".into());
                        println!(
                            "{:<30}  {:<8}  {:<20}  {}",
                            f.trust_domain,
                            roots,
                            refreshed(f),
                            f.endpoint
                        );
                    }
                    eprintln!("{} federated trust domain(s)", all.len());
                }
            }
        }
        FederationAction::Show { trust_domain } => {
            let f = store
                .list_federations()?
                .into_iter()
                .find(|f| f.trust_domain == trust_domain)
                .ok_or_else(|| federation::FederationError::Unknown(trust_domain.clone()))?;
            let mut v = summary(&f);
            v["bundle"] = f
                .bundle
                .as_deref()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or(serde_json::Value::Null);
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        FederationAction::Remove { trust_domain } => {
            federation::remove(store, &trust_domain, "cli", clock.now())?;
            eprintln!(
                "removed {trust_domain}: services drop its roots at their next trust refresh, \
                 refuse new connections from its peers and close those still open"
            );
        }
    }
    Ok(())
}

fn refreshed(f: &FederationRecord) -> String {
    f.refreshed_at
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map(pki::timefmt::rfc3339)
        .unwrap_or_else(|| "never".into())
}

fn summary(f: &FederationRecord) -> serde_json::Value {
    let roots: Vec<String> = federation::stored_roots(f)
        .unwrap_or_default()
        .iter()
        .map(|d| format!("sha256:{}", pki::sha256_hex(d)))
        .collect();
    serde_json::json!({
        "trust_domain": f.trust_domain,
        "endpoint": f.endpoint,
        "endpoint_spiffe_id": f.endpoint_spiffe_id,
        "fingerprint": format!("sha256:{}", f.fingerprint),
        "created_at": time::OffsetDateTime::from_unix_timestamp(f.created_at).ok().map(pki::timefmt::rfc3339),
        "refreshed_at": refreshed(f),
        "roots": roots,
    })
}
