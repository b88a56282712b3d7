//! The agent API's decisions (docs/ca-api.md "Agent API"): a node agent, known by
//! its certificate `spiffe://<td>/agent/<name>`, lists its registration entries and obtains
//! X.509- and JWT-SVIDs for them, and for nothing else.
//!
//! Each issuance is signed first and handed out only when the store has recorded it in a
//! transaction that checked, again, that the entry exists, that its parent is the caller and that
//! the caller's certificate still stands: a deletion or revocation committed before that wins.

use std::sync::atomic::Ordering;

use pki::jwt_svid::Claims;
use pki::SpiffeId;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::{
    check_issuable, check_requested_names, parse_id, parse_ttl, presented_error, record_of,
    verify_csr, Authority, Issued, Res,
};
use crate::error::{AuthorityError, Kind};
use crate::store::details;
use crate::store::{AgentIssue, AgentIssued, AgentOutcome, CertRecord, EntryRecord, IssueKind};

/// Lifetime of a JWT-SVID when the request names none.
pub const JWT_DEFAULT_TTL: Duration = Duration::minutes(5);
/// Longest JWT-SVID lifetime; longer requests are clamped to it.
pub const JWT_MAX_TTL: Duration = Duration::hours(1);
/// Most audiences one JWT-SVID may carry, and the longest audience, in bytes.
pub const MAX_AUDIENCES: usize = 16;
const MAX_AUDIENCE_LEN: usize = 512;

/// `GET /api/v1/agent/entries`: the caller's entries and the revision they were read at.
#[derive(Debug, Serialize)]
pub struct AgentEntries {
    /// Moves whenever any entry is created or deleted.
    pub revision: u64,
    /// The entries whose parent is the caller, oldest first.
    pub entries: Vec<AgentEntry>,
}

/// One entry as the agent API shows it.
#[derive(Debug, Serialize)]
pub struct AgentEntry {
    /// The entry's ID.
    pub id: String,
    /// The SPIFFE ID a matching workload receives.
    pub spiffe_id: String,
    /// The agent (the caller).
    pub parent_id: String,
    /// The selectors a workload must all show.
    pub selectors: Vec<String>,
    /// Lifetime of its X.509-SVIDs, already clamped to this CA's `--max-duration`.
    pub ttl_seconds: i64,
    /// DNS SANs of its X.509-SVIDs.
    pub dns: Vec<String>,
}

/// `POST /api/v1/agent/jwt`'s answer.
#[derive(Debug, Serialize)]
pub struct IssuedJwt {
    /// The JWT-SVID, JWS compact form.
    pub token: String,
    /// Its `exp`.
    #[serde(serialize_with = "pki::timefmt::serialize")]
    pub expires_at: OffsetDateTime,
}

/// The caller of an agent endpoint, established from its certificate.
struct Agent {
    id: SpiffeId,
    record: CertRecord,
    fingerprint: String,
}

/// Which agent endpoint was refused, for the `agent_refused` audit entry.
#[derive(Clone, Copy)]
enum Asked {
    Svid,
    Jwt,
}

impl Asked {
    fn as_str(self) -> &'static str {
        match self {
            Asked::Svid => "svid",
            Asked::Jwt => "jwt",
        }
    }
}

impl Authority {
    /// The caller's registration entries (only those whose parent is the caller).
    pub fn agent_entries(&self, peer: Option<&[u8]>) -> Res<AgentEntries> {
        let now = self.clock.now();
        self.counted(|| {
            let agent = self.agent(peer, now)?;
            // Read the revision first: an entry created between the two reads shows up with
            // an older revision, so the agent's next poll sees a change and lists again.
            let revision = self.store.entry_revision()?;
            let max = self.cfg.max_ttl.whole_seconds();
            let entries = self
                .store
                .list_entries(Some(&agent.id.to_string()))?
                .into_iter()
                .map(|e| AgentEntry {
                    ttl_seconds: e.ttl_seconds.min(max),
                    id: e.id,
                    spiffe_id: e.spiffe_id,
                    parent_id: e.parent_id,
                    selectors: e.selectors,
                    dns: e.dns,
                })
                .collect();
            Ok(AgentEntries { revision, entries })
        })
    }

    /// An X.509-SVID for one of the caller's entries: the entry's SPIFFE ID and DNS names, its
    /// ttl clamped to `--max-duration`.
    pub fn agent_svid(&self, peer: Option<&[u8]>, entry_id: &str, csr_pem: &str) -> Res<Issued> {
        let now = self.clock.now();
        self.counted(|| {
            let agent = self.agent(peer, now)?;
            let entry = self.caller_entry(&agent, entry_id, Asked::Svid)?;
            let id = entry_identity(&entry, &self.cfg.trust_domain)?;
            let csr = verify_csr(csr_pem)?;
            check_requested_names(&csr, &entry.spiffe_id, &entry.dns, &[])?;
            let ttl = Duration::seconds(entry.ttl_seconds).min(self.cfg.max_ttl);
            let issued = self.issue(&id, &entry.dns, &[], &csr.spki_der, ttl, now)?;
            let record = record_of(&issued, &id, &entry.dns, &[], now, IssueKind::Agent, None)?;
            self.record_issue(
                &agent,
                &entry.id,
                AgentIssued::Svid(&record),
                Asked::Svid,
                now,
            )?;
            self.metrics.agent_svids.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                event = "agent_svid",
                serial = %issued.serial_hex,
                spiffe_id = %id,
                entry_id = %entry.id,
                agent = %agent.id,
                not_after = %pki::timefmt::rfc3339(issued.not_after),
                "X.509-SVID issued to an agent"
            );
            Ok(self.response(issued, &id))
        })
    }

    /// A JWT-SVID for one of the caller's entries, for `audience`, living `ttl` (default 5m,
    /// clamped to 1h), signed by the CA's JWT key.
    pub fn agent_jwt(
        &self,
        peer: Option<&[u8]>,
        entry_id: &str,
        audience: &[String],
        ttl: Option<&str>,
    ) -> Res<IssuedJwt> {
        let now = self.clock.now();
        self.counted(|| {
            let agent = self.agent(peer, now)?;
            let signer = self.jwt.as_ref().ok_or_else(|| {
                AuthorityError::new(
                    Kind::Unavailable,
                    "jwt_unavailable",
                    "this CA has no JWT signing key, so it issues no JWT-SVIDs",
                )
            })?;
            check_audience(audience)?;
            let ttl = parse_ttl(ttl, JWT_DEFAULT_TTL, JWT_MAX_TTL)?;
            let entry = self.caller_entry(&agent, entry_id, Asked::Jwt)?;
            let id = entry_identity(&entry, &self.cfg.trust_domain)?;
            let iat = now.unix_timestamp();
            let claims = Claims {
                sub: id.clone(),
                aud: audience.to_vec(),
                exp: iat + ttl.whole_seconds().max(1),
                iat,
            };
            let token = signer.sign(&claims).map_err(AuthorityError::internal)?;
            let issued = AgentIssued::Jwt {
                aud: audience,
                iat,
                exp: claims.exp,
            };
            self.record_issue(&agent, &entry.id, issued, Asked::Jwt, now)?;
            self.metrics.agent_jwts.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                event = "agent_jwt",
                spiffe_id = %id,
                entry_id = %entry.id,
                agent = %agent.id,
                audience = %audience.join(","),
                "JWT-SVID issued to an agent"
            );
            let expires_at = OffsetDateTime::from_unix_timestamp(claims.exp)
                .map_err(AuthorityError::internal)?;
            Ok(IssuedJwt { token, expires_at })
        })
    }

    /// The caller, when it is an agent of this trust domain with a standing certificate.
    fn agent(&self, peer: Option<&[u8]>, now: OffsetDateTime) -> Res<Agent> {
        let (record, info) = self.current_record(peer, now, "the agent API")?;
        let id = parse_id(&record.spiffe_id)?;
        if !id.is_agent() || id.trust_domain() != &self.cfg.trust_domain {
            return Err(AuthorityError::forbidden(
                "not_agent",
                format!(
                    "the agent API serves node agents (spiffe://{}/agent/<name>), not {id}; \
                     enroll the agent with a join token for its agent identity",
                    self.cfg.trust_domain
                ),
            ));
        }
        Ok(Agent {
            id,
            record,
            fingerprint: info.fingerprint,
        })
    }

    /// The entry `entry_id` when its parent is the caller; refusals are audited.
    fn caller_entry(&self, agent: &Agent, entry_id: &str, asked: Asked) -> Res<EntryRecord> {
        let found = if crate::registration::is_entry_id(entry_id) {
            self.store.find_entry(entry_id)?
        } else {
            None
        };
        match found {
            None => Err(self.refuse(agent, entry_id, asked, unknown_entry(entry_id))),
            Some(e) if e.parent_id != agent.id.to_string() => {
                Err(self.refuse(agent, entry_id, asked, not_entry_parent(&e.id, &agent.id)))
            }
            Some(e) => Ok(e),
        }
    }

    /// Records the issuance, re-checking entry, parent and the agent's certificate in the
    /// same transaction; anything but Recorded drops what was signed.
    fn record_issue(
        &self,
        agent: &Agent,
        entry_id: &str,
        issued: AgentIssued<'_>,
        asked: Asked,
        now: OffsetDateTime,
    ) -> Res<()> {
        let outcome = self.store.record_agent_issue(&AgentIssue {
            entry_id,
            agent_id: &agent.id.to_string(),
            agent_serial: &agent.record.serial,
            agent_fingerprint: &agent.fingerprint,
            issued,
            now,
        })?;
        match outcome {
            AgentOutcome::Recorded => Ok(()),
            AgentOutcome::UnknownEntry => {
                Err(self.refuse(agent, entry_id, asked, unknown_entry(entry_id)))
            }
            AgentOutcome::NotParent { .. } => Err(self.refuse(
                agent,
                entry_id,
                asked,
                not_entry_parent(entry_id, &agent.id),
            )),
            AgentOutcome::Refused(state) => Err(presented_error(&state, &agent.record.serial)),
        }
    }

    /// Audits a refused entry request (`agent_refused`) and returns the refusal. An audit
    /// failure is logged and the refusal still returned: nothing was issued either way.
    fn refuse(
        &self,
        agent: &Agent,
        entry_id: &str,
        asked: Asked,
        refusal: AuthorityError,
    ) -> AuthorityError {
        // At most 64 characters of what the caller sent go into the log.
        let shown: String = entry_id.chars().take(64).collect();
        let detail = details::agent_refused(
            asked.as_str(),
            refusal.code,
            &shown,
            &agent.id.to_string(),
            &agent.record.serial,
        );
        if let Err(e) = self.store.record_event("agent_refused", &detail) {
            tracing::error!(error = %e, "auditing a refused agent request failed");
        }
        refusal
    }

    /// The SPIFFE bundle (`GET /api/v1/bundle/spiffe`): an `x509-svid` key per trusted root
    /// (ours and each self-signed `--bundle-extra` root) and the `jwt-svid` key.
    pub fn spiffe_bundle(&self) -> Res<serde_json::Value> {
        let mut keys = Vec::new();
        let roots = self.roots();
        for der in std::iter::once(roots.active.root_der()).chain(roots.bundle_extra.iter()) {
            let info = pki::CertInfo::from_der(der).map_err(AuthorityError::internal)?;
            // Cross-certificates vouch for a root; they are not trust anchors themselves.
            if info.subject != info.issuer {
                continue;
            }
            let jwk = pki::jwt_svid::x509_authority_jwk(der).map_err(AuthorityError::internal)?;
            keys.push(serde_json::to_value(jwk).map_err(AuthorityError::internal)?);
        }
        if let Some(signer) = &self.jwt {
            keys.push(serde_json::to_value(signer.public_jwk()).map_err(AuthorityError::internal)?);
        }
        Ok(serde_json::json!({
            "keys": keys,
            "spiffe_sequence": self.bundle_sequence.load(std::sync::atomic::Ordering::Acquire),
            "spiffe_refresh_hint": BUNDLE_REFRESH_HINT.whole_seconds(),
        }))
    }
}

/// How often relying parties should fetch the SPIFFE bundle again.
pub const BUNDLE_REFRESH_HINT: Duration = Duration::minutes(5);

/// The entry's SPIFFE ID, if this CA may still issue it (the rules of `mtls-ca entry create`,
/// again, for an entry written by hand or by another version).
fn entry_identity(entry: &EntryRecord, td: &pki::TrustDomain) -> Res<SpiffeId> {
    let id = parse_id(&entry.spiffe_id)?;
    check_issuable(&id, td)?;
    if id.is_in_agent_tree() {
        return Err(AuthorityError::forbidden(
            "reserved_identity",
            format!(
                "entry {} names {id}, an agent identity; agents enroll with a join token",
                entry.id
            ),
        ));
    }
    Ok(id)
}

fn check_audience(audience: &[String]) -> Res<()> {
    if audience.is_empty() || audience.len() > MAX_AUDIENCES {
        return Err(AuthorityError::bad_request(
            "bad_audience",
            format!(
                "audience must list 1 to {MAX_AUDIENCES} audiences, not {}",
                audience.len()
            ),
        ));
    }
    if let Some(bad) = audience
        .iter()
        .find(|a| a.is_empty() || a.len() > MAX_AUDIENCE_LEN || a.chars().any(char::is_control))
    {
        return Err(AuthorityError::bad_request(
            "bad_audience",
            format!(
                "audience {:?} is empty, longer than {MAX_AUDIENCE_LEN} bytes or holds a control character",
                bad.chars().take(64).collect::<String>()
            ),
        ));
    }
    Ok(())
}

fn unknown_entry(entry_id: &str) -> AuthorityError {
    AuthorityError::new(
        Kind::NotFound,
        "unknown_entry",
        format!(
            "no registration entry {:?} (deleted, or never created); list yours with GET /api/v1/agent/entries",
            entry_id.chars().take(64).collect::<String>()
        ),
    )
}

fn not_entry_parent(entry_id: &str, agent: &SpiffeId) -> AuthorityError {
    AuthorityError::forbidden(
        "not_entry_parent",
        format!("entry {entry_id} belongs to another agent, not {agent}; an agent obtains SVIDs only for its own entries"),
    )
}
