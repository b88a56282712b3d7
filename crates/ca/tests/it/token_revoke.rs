//! Join tokens listed and revoked before use (`GET /api/v1/tokens`, `DELETE /api/v1/tokens/ID`)
//! through the authority, on every store: only the admin may; a revoked token is refused at
//! /sign; a used one cannot be revoked; every refusal leaves the store and its audit chain as
//! they were; and `audit verify` replays the `token_revoke` entry.

use time::Duration;

use crate::harness::{new_key, on_each_store, ADMIN, START};
use mtls_ca::store::AuditCheck;

fn head(h: &crate::harness::Harness) -> Option<mtls_ca::store::AuditHead> {
    h.store.audit_head().unwrap()
}

fn id_of(token: &str) -> String {
    mtls_ca::tokens::id(&mtls_ca::tokens::hash(token)).to_string()
}

#[test]
fn the_admin_revokes_an_unused_token_and_sign_refuses_it() {
    on_each_store(|h| {
        let admin = h.enroll(ADMIN, None);
        let admin_der = admin.der();
        let peer = Some(admin_der.as_ref());
        let token = h.token("web", Duration::minutes(10));
        let id = id_of(&token);

        let listed = h.authority.list_join_tokens(peer).unwrap();
        assert_eq!(
            listed.len(),
            2,
            "{}: the admin's own token and web's",
            h.name
        );
        let web = listed.iter().find(|t| t.hash.starts_with(&id)).unwrap();
        assert_eq!(web.status(h.now()), "unused", "{}", h.name);
        let view = web.view(h.now()).to_string();
        assert!(
            !view.contains(&token) && !view.contains(&web.hash),
            "{}: the view shows neither the token nor its whole hash: {view}",
            h.name
        );

        h.advance(Duration::seconds(5));
        let revoked = h.authority.revoke_join_token(peer, &id).unwrap();
        assert_eq!(
            revoked.revoked_at,
            Some(START + Duration::seconds(5)),
            "{}",
            h.name
        );
        assert_eq!(revoked.status(h.now()), "revoked");
        let stored = h
            .store
            .find_token(&mtls_ca::tokens::hash(&token))
            .unwrap()
            .unwrap();
        assert_eq!(stored.revoked_at, revoked.revoked_at, "{}", h.name);

        // Refused at /sign with its own code; nothing issued, nothing audited.
        let certs = h.cert_count();
        let before = head(h);
        let e = h.sign_with(&token, "web", &new_key(), None).unwrap_err();
        assert_eq!(e.code, "token_revoked", "{}: {e}", h.name);
        assert!(e.message.contains("revoked by the operator"), "{e}");
        assert_eq!(h.cert_count(), certs, "{}", h.name);
        assert_eq!(head(h), before, "{}", h.name);
        assert!(matches!(
            h.store.verify_audit().unwrap(),
            AuditCheck::Intact { .. }
        ));
    });
}

#[test]
fn refusals_change_nothing() {
    on_each_store(|h| {
        let admin = h.enroll(ADMIN, None);
        let web = h.enroll("web", None);
        let admin_der = admin.der();
        let web_der = web.der();
        let unused = h.token("api", Duration::minutes(10));
        let unused_id = id_of(&unused);
        let before = head(h);

        // Not the admin: 401 without a certificate, 403 with another identity.
        let e = h.authority.list_join_tokens(None).unwrap_err();
        assert_eq!(e.code, "client_certificate_required", "{}: {e}", h.name);
        let e = h
            .authority
            .list_join_tokens(Some(web_der.as_ref()))
            .unwrap_err();
        assert_eq!(e.code, "not_admin", "{}: {e}", h.name);
        let e = h
            .authority
            .revoke_join_token(Some(web_der.as_ref()), &unused_id)
            .unwrap_err();
        assert_eq!(e.code, "not_admin", "{}: {e}", h.name);
        let e = h.authority.revoke_join_token(None, &unused_id).unwrap_err();
        assert_eq!(e.code, "client_certificate_required", "{}: {e}", h.name);

        let peer = Some(admin_der.as_ref());
        // Not an ID, an unknown one, a used one (the admin's own enrollment token).
        for (id, code) in [
            ("xyz", "bad_token_id"),
            ("0123456789a", "bad_token_id"),
            ("000000000000", "token_not_found"),
        ] {
            let e = h.authority.revoke_join_token(peer, id).unwrap_err();
            assert_eq!(e.code, code, "{}: {id}: {e}", h.name);
        }
        let used = h
            .store
            .list_tokens()
            .unwrap()
            .into_iter()
            .find(|t| t.used_at.is_some())
            .unwrap();
        let e = h
            .authority
            .revoke_join_token(peer, mtls_ca::tokens::id(&used.hash))
            .unwrap_err();
        assert_eq!(
            (e.kind, e.code),
            (mtls_ca::error::Kind::Conflict, "token_used"),
            "{}: {e}",
            h.name
        );
        assert!(
            e.message.contains("revoke the certificate it enrolled"),
            "{e}"
        );
        assert_eq!(
            head(h),
            before,
            "{}: a refusal wrote to the audit chain",
            h.name
        );
        assert!(h
            .store
            .find_token(&used.hash)
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none());

        // Revoked once; the second time is a conflict that changes nothing.
        h.authority.revoke_join_token(peer, &unused_id).unwrap();
        let after = head(h);
        assert_ne!(after, before, "{}: the revocation is audited", h.name);
        let e = h.authority.revoke_join_token(peer, &unused_id).unwrap_err();
        assert_eq!(e.code, "token_revoked", "{}: {e}", h.name);
        assert_eq!(head(h), after, "{}", h.name);
    });
}

#[test]
fn a_whole_hash_names_a_token_and_a_shared_prefix_is_ambiguous() {
    on_each_store(|h| {
        let admin = h.enroll(ADMIN, None);
        let admin_der = admin.der();
        let peer = Some(admin_der.as_ref());
        // Tokens until two share a first hex digit of their ID... is too slow for 12 digits, so
        // the store is asked directly with a one-digit prefix (the API requires 12): two
        // tokens share some first digit after at most 17 tokens.
        let mut by_digit = std::collections::HashMap::new();
        let shared = loop {
            let t = h.token("api", Duration::minutes(10));
            let digit = mtls_ca::tokens::hash(&t)[..1].to_string();
            if by_digit.insert(digit.clone(), t).is_some() {
                break digit;
            }
        };
        let before = head(h);
        let outcome = h.store.revoke_token(&shared, "test", h.now()).unwrap();
        assert!(
            matches!(outcome, mtls_ca::store::RevokeToken::Ambiguous(n) if n >= 2),
            "{}: {outcome:?}",
            h.name
        );
        assert_eq!(head(h), before, "{}", h.name);
        let t = by_digit.values().next().unwrap();
        let whole = mtls_ca::tokens::hash(t);
        let revoked = h
            .authority
            .revoke_join_token(peer, &whole.to_uppercase())
            .unwrap();
        assert_eq!(revoked.hash, whole, "{}", h.name);
    });
}

/// `audit verify` replays `token_revoke`: a revocation cleared (or made up) by editing the
/// database directly is named, so an unrevoked token cannot be slipped back in unnoticed.
#[test]
fn audit_verify_catches_a_revocation_cleared_or_forged_in_the_database() {
    let h = crate::harness::Harness::sqlite();
    let admin = h.enroll(ADMIN, None);
    let admin_der = admin.der();
    let revoked = h.token("web", Duration::minutes(10));
    let untouched = h.token("api", Duration::minutes(10));
    h.authority
        .revoke_join_token(Some(admin_der.as_ref()), &id_of(&revoked))
        .unwrap();
    assert!(matches!(
        h.store.verify_audit().unwrap(),
        AuditCheck::Intact { .. }
    ));

    let conn = rusqlite::Connection::open(h.store_dir().join("ca.db")).unwrap();
    let set = |hash: &str, value: Option<i64>| {
        conn.execute(
            "UPDATE tokens SET revoked_at = ?1 WHERE hash = ?2",
            rusqlite::params![value, hash],
        )
        .unwrap();
    };
    let (revoked_hash, untouched_hash) = (
        mtls_ca::tokens::hash(&revoked),
        mtls_ca::tokens::hash(&untouched),
    );
    set(&revoked_hash, None);
    set(&untouched_hash, Some(START.unix_timestamp()));
    let AuditCheck::Mismatch { problems, .. } = h.store.verify_audit().unwrap() else {
        panic!("the edited tables verified");
    };
    let all = problems.join("\n");
    assert!(
        all.contains(&format!(
            "tokens row {}: revoked_at is NULL, but entry",
            id_of(&revoked)
        )),
        "{all}"
    );
    assert!(
        all.contains(&format!(
            "tokens row {}: revoked_at is 2026-03-01T12:00:00Z, but no audit entry revoked it",
            id_of(&untouched)
        )),
        "{all}"
    );
    // Put back, it verifies again.
    set(&untouched_hash, None);
    set(&revoked_hash, Some(START.unix_timestamp()));
    assert!(matches!(
        h.store.verify_audit().unwrap(),
        AuditCheck::Intact { .. }
    ));
}
