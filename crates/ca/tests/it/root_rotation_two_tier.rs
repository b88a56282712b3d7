//! Root rotation of a two-tier CA (`mtls_ca::root_rotation_two_tier`) on a real data
//! directory and SQLite store: the offline ceremony's file is refused for every flaw with the
//! store unchanged; rotate → activate → retire move what a (re)started CA serves, and
//! `intermediate install` follows the rotation state; one CRL signed by the intermediate key
//! covers the leaves of both chains in webpki.

use std::path::Path;

use mtls_ca::datadir::DataDir;
use mtls_ca::datadir_hierarchy::{sign_intermediate, OfflineRoot};
use mtls_ca::root_rotation::{self, Phase, STATE_KEY};
use mtls_ca::root_rotation_two_tier::{ceremony, rotate_from};
use mtls_ca::store::{AuditCheck, SqliteStore, Store};
use pki::crl::{sign_crl, RevokedEntry};
use pki::sealed_key::Passphrase;
use pki::verify::{Purpose, TrustStore, VerifyOptions};
use pki::{CaMaterial, TrustDomain};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

fn pass() -> Passphrase {
    Passphrase::new(b"a long enough passphrase".to_vec()).unwrap()
}

fn td() -> TrustDomain {
    TrustDomain::parse("mesh.local").unwrap()
}

/// A two-tier CA in `base/name` with its offline root in `base/name-root`.
struct TwoTier {
    dir: DataDir,
    offline: OfflineRoot,
    store: SqliteStore,
}

impl TwoTier {
    fn new(base: &Path, name: &str, now: OffsetDateTime) -> TwoTier {
        let dir = DataDir::new(&base.join(name));
        dir.ensure().unwrap();
        let offline = OfflineRoot::new(&base.join(format!("{name}-root")));
        dir.init_two_tier(&offline, &pass(), &td(), Duration::days(30), true, now)
            .unwrap();
        let (_, _, store) = dir.open_or_init(None, &td(), now).unwrap();
        TwoTier {
            dir,
            offline,
            store,
        }
    }

    /// What a (re)start serves: the signing intermediate, as `serve` loads it.
    fn restart(&self, now: OffsetDateTime) -> CaMaterial {
        self.dir.open_or_init(None, &td(), now).unwrap().0
    }

    fn csr(&self) -> String {
        self.dir.intermediate_csr(&self.store).unwrap()
    }

    fn audit_entries(&self) -> u64 {
        match self.store.verify_audit().unwrap() {
            AuditCheck::Intact { entries, .. } => entries,
            other => panic!("{other:?}"),
        }
    }
}

/// The ceremony with `old_root_of`'s offline root for `csr`, its new root in `base/new_dir`.
fn run_ceremony(
    old_root_of: &TwoTier,
    csr: &str,
    base: &Path,
    new_dir: &str,
    now: OffsetDateTime,
) -> (String, OfflineRoot) {
    let old = old_root_of.offline.open(&pass()).unwrap();
    let new = OfflineRoot::new(&base.join(new_dir));
    let made = ceremony(&old, &new, &pass(), csr.as_bytes(), Duration::days(60), now).unwrap();
    (made.file, new)
}

fn certs(file: &str) -> Vec<CertificateDer<'static>> {
    pki::pem::parse_only_certificates(file.as_bytes()).unwrap()
}

fn pem_of(certs: &[CertificateDer<'static>]) -> String {
    certs
        .iter()
        .map(|c| pki::pem::encode("CERTIFICATE", c))
        .collect()
}

#[test]
fn rotate_from_refuses_each_flawed_file_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let ca = TwoTier::new(tmp.path(), "ca", now);
    let original = ca.restart(now);
    let other = TwoTier::new(tmp.path(), "other", now);
    let (good, _) = run_ceremony(&ca, &ca.csr(), tmp.path(), "new", now);
    let parts = certs(&good);
    assert_eq!(parts.len(), 5);

    // Another CA's ceremony (its own root, its own intermediate key).
    let (foreign, _) = run_ceremony(&other, &other.csr(), tmp.path(), "new-other", now);
    // Our root, but the intermediate key of another CA.
    let (wrong_key, _) = run_ceremony(&ca, &other.csr(), tmp.path(), "new-wrong-key", now);
    // The cross-certificates in each other's place.
    let mut swapped = parts.clone();
    swapped.swap(2, 3);
    // The cross-certificate for the new root with its signature changed.
    let mut tampered = parts.clone();
    let mut bytes = tampered[2].to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    tampered[2] = CertificateDer::from(bytes);
    // The intermediate certified by the old root instead of the new one.
    let old_root = ca.offline.open(&pass()).unwrap();
    let (by_old, _) =
        sign_intermediate(&old_root, ca.csr().as_bytes(), Duration::days(60), now).unwrap();
    let mut by_old_root = parts.clone();
    by_old_root[4] = certs(&by_old).remove(0);
    // A new root that may sign leaves only (pathLenConstraint 0), vouched for both ways.
    let leaf_only = CaMaterial::generate_root("Leaf-only Root", now).unwrap();
    let mut leaf_only_root = parts.clone();
    leaf_only_root[1] = leaf_only.cert_der().clone();
    leaf_only_root[2] = old_root.cross_sign(leaf_only.cert_der(), now).unwrap();
    leaf_only_root[3] = leaf_only.cross_sign(old_root.cert_der(), now).unwrap();
    // A key in the file.
    let key = pki::keys::generate(pki::Curve::P384)
        .unwrap()
        .serialize_pem();

    let cases = [
        (
            "another CA's file",
            foreign,
            "is not this CA's current root",
        ),
        (
            "another intermediate key",
            wrong_key,
            "does not fit this CA",
        ),
        (
            "swapped cross-certificates",
            pem_of(&swapped),
            "cross-certificate for the new root",
        ),
        (
            "a tampered cross-certificate",
            pem_of(&tampered),
            "cross-certificate for the new root",
        ),
        (
            "the intermediate signed by the old root",
            pem_of(&by_old_root),
            "the file's intermediate",
        ),
        (
            "a new root that cannot sign an intermediate",
            pem_of(&leaf_only_root),
            "pathLenConstraint 0",
        ),
        ("a key in the file", format!("{good}{key}"), "PRIVATE KEY"),
        (
            "four certificates",
            pem_of(&parts[..4]),
            "five certificates",
        ),
    ];
    let entries = ca.audit_entries();
    for (what, file, expected) in cases {
        let err = rotate_from(&ca.dir, &ca.store, file.as_bytes(), now).unwrap_err();
        assert!(
            format!("{err:#}").contains(expected),
            "{what}: {err:#} should say {expected:?}"
        );
        assert_eq!(
            ca.store.get_meta(STATE_KEY).unwrap(),
            None,
            "{what}: nothing stored"
        );
        assert_eq!(ca.audit_entries(), entries, "{what}: nothing audited");
    }
    assert_eq!(
        ca.restart(now).cert_der(),
        original.cert_der(),
        "a restart serves the intermediate it served before"
    );

    // The good file is accepted; the single-tier `rotate` is still refused with a pointer.
    let state = rotate_from(&ca.dir, &ca.store, good.as_bytes(), now).unwrap();
    assert_eq!(state.phase, Phase::Rotated);
    assert!(state.is_two_tier());
    assert_eq!(ca.audit_entries(), entries + 1);
    let err = root_rotation::rotate(&ca.dir, &ca.store, now).unwrap_err();
    assert!(err.to_string().contains("root rotate --from"), "{err}");
    // A second rotation while this one is pending is refused.
    let err = rotate_from(&ca.dir, &ca.store, good.as_bytes(), now).unwrap_err();
    assert!(err.to_string().contains("pending"), "{err}");
}

#[test]
fn each_phase_is_served_after_a_restart_and_install_follows_the_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let ca = TwoTier::new(tmp.path(), "ca", now);
    let before = ca.restart(now);
    let before_csr = ca.csr();
    let old_fp = before.root_fingerprint();
    let (file, new_offline) = run_ceremony(&ca, &ca.csr(), tmp.path(), "new", now);
    let state = rotate_from(&ca.dir, &ca.store, file.as_bytes(), now).unwrap();
    let new_fp = state.new_fingerprint().unwrap();
    let new_intermediate = certs(&file).remove(4);

    // Rotated: still the old chain.
    let rotated = ca.restart(now);
    assert_eq!(rotated.cert_der(), before.cert_der());
    let serving = mtls_ca::root_serving::serving_roots(&ca.dir, &ca.store, rotated, now).unwrap();
    assert_eq!(serving.active.root_fingerprint(), old_fp);
    assert_eq!(serving.bundle_extra.len(), 3, "new root and both crosses");

    // Activated: a restart serves the intermediate the new root certified, and its chain.
    root_rotation::activate(&ca.dir, &ca.store, now, Duration::minutes(5), true).unwrap();
    let activated = ca.restart(now);
    assert_eq!(activated.root_fingerprint(), new_fp);
    assert_eq!(activated.cert_der(), &new_intermediate);
    assert_eq!(
        activated.chain_pem(),
        vec![activated.cert_pem(), state.new_root.clone()]
    );
    let serving = mtls_ca::root_serving::serving_roots(&ca.dir, &ca.store, activated, now).unwrap();
    assert!(
        serving.previous.is_none(),
        "one CRL signer: the same key and name"
    );
    let csr_key = |csr: String| pki::intermediate::read_csr(csr.as_bytes()).unwrap().0;
    assert_eq!(
        csr_key(ca.dir.intermediate_csr(&ca.store).unwrap()),
        csr_key(before_csr.clone()),
        "the CSR works in every phase, for the same key"
    );

    // Install follows the rotation state: an intermediate of the old root is refused, one of
    // the new root accepted (and the file then served on restart).
    let old_root = ca.offline.open(&pass()).unwrap();
    let (renewed_old, _) =
        sign_intermediate(&old_root, ca.csr().as_bytes(), Duration::days(90), now).unwrap();
    let err = ca
        .dir
        .install_intermediate(&ca.store, renewed_old.as_bytes(), now)
        .unwrap_err();
    assert!(format!("{err:#}").contains(&new_fp), "{err:#}");

    // Retired: the new chain still; then a renewal under the new root is installed and served.
    root_rotation::retire(&ca.dir, &ca.store, now).unwrap();
    assert_eq!(ca.restart(now).cert_der(), &new_intermediate);
    let new_root = new_offline.open(&pass()).unwrap();
    let later = now + Duration::days(1);
    let (renewed, _) =
        sign_intermediate(&new_root, ca.csr().as_bytes(), Duration::days(90), later).unwrap();
    assert!(ca
        .dir
        .install_intermediate(&ca.store, renewed_old.as_bytes(), later)
        .is_err());
    ca.dir
        .install_intermediate(&ca.store, renewed.as_bytes(), later)
        .unwrap();
    let after = ca.restart(later);
    assert_eq!(after.cert_pem(), renewed);
    assert_eq!(after.root_fingerprint(), new_fp);
    // The directory's identity (its database's recorded root) stays root.crt.
    assert_eq!(
        pki::sha256_hex(&certs(&std::fs::read_to_string(ca.dir.root_cert()).unwrap())[0]),
        old_fp
    );
}

/// webpki (through `pki::verify`, the services' verifier) takes the CRL signed by the new
/// intermediate for leaves delivered with either chain: the same issuer name and key.
#[test]
fn one_crl_of_the_intermediate_key_covers_leaves_of_both_chains() {
    let tmp = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let ca = TwoTier::new(tmp.path(), "ca", now);
    let old_inter = ca.restart(now);
    let (file, _) = run_ceremony(&ca, &ca.csr(), tmp.path(), "new", now);
    rotate_from(&ca.dir, &ca.store, file.as_bytes(), now).unwrap();
    root_rotation::activate(&ca.dir, &ca.store, now, Duration::minutes(5), true).unwrap();
    let new_inter = ca.restart(now);
    let roots = [old_inter.root_der().clone(), new_inter.root_der().clone()];

    let leaf = |signer: &CaMaterial, name: &str| {
        let key = pki::keys::generate(pki::Curve::P256).unwrap();
        let id = pki::SpiffeId::parse(&format!("spiffe://mesh.local/{name}")).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let req = pki::LeafRequest {
            spiffe_id: &id,
            dns: &[],
            ips: &[],
            spki_der: &spki,
            ttl: Duration::hours(1),
            now,
        };
        pki::IssuancePolicy::default().issue(&req, signer).unwrap()
    };
    let before = leaf(&old_inter, "before");
    let after = leaf(&new_inter, "after");
    let crl_revoking = |serial: &str| {
        sign_crl(
            &new_inter,
            &[RevokedEntry {
                serial_hex: serial.to_string(),
                revoked_at: now,
                reason: None,
            }],
            1,
            now - Duration::minutes(1),
            now + Duration::hours(1),
        )
        .unwrap()
    };
    let verify = |crl: &[u8], leaf: &pki::policy::IssuedCert, chain: &CaMaterial| {
        TrustStore::new(&roots, &[crl]).unwrap().verify(
            &leaf.der,
            &[chain.cert_der().clone()],
            &VerifyOptions::new(now, Purpose::Client),
        )
    };
    let crl = crl_revoking(&before.serial_hex);
    let err = verify(&crl, &before, &old_inter).unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    let ok = verify(&crl, &after, &new_inter).unwrap();
    assert!(ok.revocation_checked);
    let crl = crl_revoking(&after.serial_hex);
    let ok = verify(&crl, &before, &old_inter).unwrap();
    assert!(
        ok.revocation_checked,
        "the new intermediate's CRL speaks for the old chain"
    );
    assert!(verify(&crl, &after, &new_inter).is_err());
}

/// A CA running in phase `activated` (after a restart, or after following the step) signs with
/// the rotation's intermediate while `intermediate.crt` still holds the old root's: the live
/// reload takes the file for superseded, not for a failed renewal (no failure counted), and
/// still takes up a renewal from the new root.
#[test]
fn the_live_reload_takes_the_old_roots_file_for_superseded_and_a_new_roots_renewal_up() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use mtls_ca::authority::Authority;
    use mtls_ca::intermediate_follow::{IntermediateFollower, Reloaded};
    use mtls_ca::store::MemoryStore;
    use mtls_ca::tls::ApiIdentity;

    let tmp = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let ca = TwoTier::new(tmp.path(), "ca", now);
    let (file, new_offline) = run_ceremony(&ca, &ca.csr(), tmp.path(), "new", now);
    let state = rotate_from(&ca.dir, &ca.store, file.as_bytes(), now).unwrap();
    root_rotation::activate(&ca.dir, &ca.store, now, Duration::minutes(5), true).unwrap();
    let signing = Arc::new(ca.restart(now));
    let from_rotation = certs(state.new_intermediate.as_deref().unwrap()).remove(0);
    assert_eq!(signing.cert_der(), &from_rotation);

    let clock = Arc::new(pki::clock::ManualClock::new(now));
    let authority = Arc::new(Authority::new(
        signing.clone(),
        vec![],
        Arc::new(MemoryStore::new(
            &[("trust_domain", "mesh.local")],
            clock.clone(),
        )),
        crate::harness::config(),
        clock,
    ));
    let (api, _) = ApiIdentity::issue_first(
        &signing,
        td().ca_id(),
        vec!["localhost".into()],
        vec![],
        now,
    )
    .unwrap();
    let failures = || {
        authority
            .metrics
            .intermediate_reload_failures
            .load(Ordering::Relaxed)
    };
    let dir = Arc::new(DataDir::new(&ca.dir.path));
    let mut follower = IntermediateFollower::new(dir.clone(), authority.clone(), api.clone());
    // Without the rotation's word the old root's file is a bad renewal...
    assert!(matches!(follower.check(None), Reloaded::Refused(_)));
    assert_eq!(failures(), 1);
    // ...with it, superseded: nothing counted, nothing switched, not looked at again.
    let mut follower = IntermediateFollower::new(dir, authority.clone(), api);
    for _ in 0..2 {
        assert_eq!(follower.check(Some(&from_rotation)), Reloaded::Unchanged);
    }
    assert_eq!(failures(), 1);
    assert_eq!(authority.ca().cert_der(), &from_rotation);

    // A renewal from the new root, installed, is taken up.
    let new_root = new_offline.open(&pass()).unwrap();
    let (renewed, _) =
        sign_intermediate(&new_root, ca.csr().as_bytes(), Duration::days(90), now).unwrap();
    ca.dir
        .install_intermediate(&ca.store, renewed.as_bytes(), now)
        .unwrap();
    assert!(matches!(
        follower.check(Some(&from_rotation)),
        Reloaded::Switched(_)
    ));
    assert_eq!(authority.ca().cert_pem(), renewed);
}
