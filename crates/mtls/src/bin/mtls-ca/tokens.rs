//! `mtls-ca token list` and `mtls-ca token revoke ID`: the CLI side of `GET /api/v1/tokens` and
//! `DELETE /api/v1/tokens/ID`, with the same views and the same outcomes.

use mtls_ca::authority::revoke_outcome;
use mtls_ca::store::Store;
use pki::timefmt::rfc3339;
use time::OffsetDateTime;

use crate::cli::{ListFormat, TokenAction};

pub fn run(store: &dyn Store, action: TokenAction, now: OffsetDateTime) -> anyhow::Result<()> {
    match action {
        TokenAction::List { format } => {
            let tokens = store.list_tokens()?;
            match format {
                ListFormat::Json => {
                    let list: Vec<serde_json::Value> = tokens.iter().map(|t| t.view(now)).collect();
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({ "tokens": list }))?
                    );
                }
                ListFormat::Text => {
                    println!(
                        "{:<12}  {:<7}  {:<20}  {:<40}  SANS",
                        "ID", "STATUS", "EXPIRES", "SPIFFE ID"
                    );
                    for t in &tokens {
                        let sans: Vec<String> = t
                            .dns
                            .iter()
                            .cloned()
                            .chain(t.ips.iter().map(|i| i.to_string()))
                            .collect();
                        println!(
                            "{:<12}  {:<7}  {:<20}  {:<40}  {}",
                            mtls_ca::tokens::id(&t.hash),
                            t.status(now),
                            rfc3339(t.expires_at),
                            t.spiffe_id,
                            sans.join(",")
                        );
                    }
                    eprintln!("{} token(s)", tokens.len());
                }
            }
        }
        TokenAction::Revoke { id } => {
            let outcome = store.revoke_token(&id, "cli", now)?;
            let token = revoke_outcome(outcome, &id).map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", mtls_ca::tokens::id(&token.hash));
            eprintln!(
                "revoked join token {} for {}: it can no longer be redeemed",
                mtls_ca::tokens::id(&token.hash),
                token.spiffe_id
            );
        }
    }
    Ok(())
}
