//! A store wrapper that lets a test commit a rival change at the worst moment of a request
//! (the agent and join-token race tests).

use std::sync::{Arc, Mutex};

use mtls_ca::store::*;
use time::OffsetDateTime;

type Hook = Box<dyn FnOnce(&dyn Store) + Send>;

/// A store that runs a one-shot hook (a rival change, on the inner store) right before it
/// records an agent issuance or redeems a join token: after the authority's own checks and
/// signature, before the transaction that must see the rival's commit.
pub struct RacingStore {
    inner: Arc<dyn Store>,
    hook: Mutex<Option<Hook>>,
    redeem_hook: Mutex<Option<Hook>>,
}

impl RacingStore {
    pub fn new(inner: Arc<dyn Store>) -> RacingStore {
        RacingStore {
            inner,
            hook: Mutex::new(None),
            redeem_hook: Mutex::new(None),
        }
    }

    /// Runs `hook` before the next agent issuance is recorded.
    pub fn arm(&self, hook: impl FnOnce(&dyn Store) + Send + 'static) {
        *self.hook.lock().unwrap() = Some(Box::new(hook));
    }

    /// Runs `hook` before the next join-token redemption.
    pub fn arm_redeem(&self, hook: impl FnOnce(&dyn Store) + Send + 'static) {
        *self.redeem_hook.lock().unwrap() = Some(Box::new(hook));
    }
}

impl Store for RacingStore {
    fn record_agent_issue(&self, issue: &AgentIssue<'_>) -> Result<AgentOutcome> {
        if let Some(hook) = self.hook.lock().unwrap().take() {
            hook(self.inner.as_ref());
        }
        self.inner.record_agent_issue(issue)
    }
    fn init_meta(&self, key: &str, value: &str) -> Result<String> {
        self.inner.init_meta(key, value)
    }
    fn get_meta(&self, key: &str) -> Result<Option<String>> {
        self.inner.get_meta(key)
    }
    fn swap_meta(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
        event: &str,
        detail: &serde_json::Value,
    ) -> Result<bool> {
        self.inner.swap_meta(key, expected, new, event, detail)
    }
    fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        self.inner.insert_token(token)
    }
    fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        self.inner.find_token(hash)
    }
    fn redeem_token(&self, hash: &str, now: OffsetDateTime, cert: &CertRecord) -> Result<Redeem> {
        if let Some(hook) = self.redeem_hook.lock().unwrap().take() {
            hook(self.inner.as_ref());
        }
        self.inner.redeem_token(hash, now, cert)
    }
    fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.inner.list_tokens()
    }
    fn revoke_token(&self, id: &str, actor: &str, now: OffsetDateTime) -> Result<RevokeToken> {
        self.inner.revoke_token(id, actor, now)
    }
    fn record_renewal(&self, renewal: &RenewalRequest<'_>) -> Result<RenewOutcome> {
        self.inner.record_renewal(renewal)
    }
    fn find_cert(&self, serial: &str) -> Result<Option<CertRecord>> {
        self.inner.find_cert(serial)
    }
    fn list_certs(&self) -> Result<Vec<CertRecord>> {
        self.inner.list_certs()
    }
    fn revoke(
        &self,
        serial: &str,
        reason: Option<&str>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Revoke> {
        self.inner.revoke(serial, reason, actor, now)
    }
    fn revoke_identity(
        &self,
        spiffe_id: &str,
        reason: Option<&str>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<String>> {
        self.inner.revoke_identity(spiffe_id, reason, actor, now)
    }
    fn revoked_unexpired(&self, now: OffsetDateTime) -> Result<Vec<CertRecord>> {
        self.inner.revoked_unexpired(now)
    }
    fn revocation_epoch(&self) -> Result<u64> {
        self.inner.revocation_epoch()
    }
    fn next_crl_number(&self, at_least: u64) -> Result<u64> {
        self.inner.next_crl_number(at_least)
    }
    fn verify_audit(&self) -> Result<AuditCheck> {
        self.inner.verify_audit()
    }
    fn audit_head(&self) -> Result<Option<AuditHead>> {
        self.inner.audit_head()
    }
    fn audit_hash_at(&self, seq: i64) -> Result<Option<String>> {
        self.inner.audit_hash_at(seq)
    }
    fn record_event(&self, event: &str, detail: &serde_json::Value) -> Result<()> {
        self.inner.record_event(event, detail)
    }
    fn record_ocsp_responder(&self, cert: &CertRecord) -> Result<()> {
        self.inner.record_ocsp_responder(cert)
    }
    fn create_entry(&self, entry: &EntryRecord) -> Result<CreateEntry> {
        self.inner.create_entry(entry)
    }
    fn delete_entry(&self, id: &str, actor: &str, now: OffsetDateTime) -> Result<bool> {
        self.inner.delete_entry(id, actor, now)
    }
    fn find_entry(&self, id: &str) -> Result<Option<EntryRecord>> {
        self.inner.find_entry(id)
    }
    fn list_entries(&self, parent_id: Option<&str>) -> Result<Vec<EntryRecord>> {
        self.inner.list_entries(parent_id)
    }
    fn entry_revision(&self) -> Result<u64> {
        self.inner.entry_revision()
    }
    fn add_federation(&self, federation: &FederationRecord, actor: &str) -> Result<bool> {
        self.inner.add_federation(federation, actor)
    }
    fn remove_federation(&self, td: &str, actor: &str, now: OffsetDateTime) -> Result<bool> {
        self.inner.remove_federation(td, actor, now)
    }
    fn list_federations(&self) -> Result<Vec<FederationRecord>> {
        self.inner.list_federations()
    }
    fn store_federated_bundle(
        &self,
        td: &str,
        bundle: &str,
        roots: &[String],
        sequence: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<StoredBundle> {
        self.inner
            .store_federated_bundle(td, bundle, roots, sequence, now)
    }
    fn health_probe(&self, now: OffsetDateTime) -> std::result::Result<(), String> {
        self.inner.health_probe(now)
    }
}
