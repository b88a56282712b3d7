//! Test PKIs made in-process with the pki crate (and rcgen directly for the deliberately bad
//! certificates the CA would never issue).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use pki::crl::{sign_crl, RevokedEntry};
use pki::{CaMaterial, Curve, IssuancePolicy, LeafRequest, SpiffeId};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// A certificate and its key, PEM.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
    pub serial_hex: String,
}

impl Leaf {
    fn from_parts(der: Vec<u8>, key: &KeyPair) -> Leaf {
        let info = pki::CertInfo::from_der(&der).expect("own certificate parses");
        Leaf {
            cert_pem: pki::pem::encode("CERTIFICATE", &der),
            key_pem: key.serialize_pem(),
            der,
            serial_hex: info.serial_hex,
        }
    }

    /// Writes NAME.crt and NAME.key (0600) into `dir`; returns (cert, key) paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        pki::files::write_atomic(&cert, self.cert_pem.as_bytes(), pki::files::PUBLIC_MODE)
            .expect("write cert");
        pki::files::write_atomic(&key, self.key_pem.as_bytes(), pki::files::KEY_MODE)
            .expect("write key");
        (cert, key)
    }

    /// `sha256:<hex>` of the SubjectPublicKeyInfo, as `--trust-pin` takes it.
    pub fn spki_pin(&self) -> String {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, cert) = X509Certificate::from_der(&self.der).expect("parse");
        format!(
            "sha256:{}",
            pki::sha256_hex(cert.tbs_certificate.subject_pki.raw)
        )
    }
}

/// What to put in a test leaf.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    pub spiffe_id: String,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub curve: Curve,
    /// The issuance moment (shift it to make expired or not-yet-valid certificates).
    pub now: OffsetDateTime,
    pub ttl: Duration,
}

impl LeafSpec {
    pub fn new(spiffe_id: &str) -> LeafSpec {
        LeafSpec {
            spiffe_id: spiffe_id.to_string(),
            dns: Vec::new(),
            ips: Vec::new(),
            curve: Curve::P384,
            now: OffsetDateTime::now_utc(),
            ttl: Duration::hours(1),
        }
    }

    /// DNS localhost and IP 127.0.0.1, for servers.
    pub fn localhost(mut self) -> LeafSpec {
        self.dns = vec!["localhost".into()];
        self.ips = vec!["127.0.0.1".parse().expect("ip")];
        self
    }
}

/// A root CA for one test.
pub struct TestCa {
    pub ca: CaMaterial,
}

impl TestCa {
    pub fn new(common_name: &str) -> TestCa {
        TestCa {
            ca: CaMaterial::generate_root(common_name, OffsetDateTime::now_utc()).expect("root"),
        }
    }

    /// A two-tier CA for trust domain `td`: an offline-style root (pathLen 1) and its
    /// intermediate (`pki::intermediate`), which issues the leaves.
    pub fn two_tier(td: &str) -> (TestCa, TestCa) {
        let now = OffsetDateTime::now_utc();
        let root = CaMaterial::generate_offline_root("Offline Root", now).expect("root");
        let td = pki::TrustDomain::parse(td).expect("trust domain");
        let inter = pki::intermediate::generate(&root, &td, Duration::days(365), now)
            .expect("intermediate");
        (TestCa { ca: root }, TestCa { ca: inter })
    }

    pub fn cert_pem(&self) -> String {
        self.ca.cert_pem()
    }

    pub fn fingerprint(&self) -> String {
        self.ca.fingerprint()
    }

    /// Writes the root certificate PEM to DIR/NAME.
    pub fn write_root(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.cert_pem()).expect("write root");
        p
    }

    /// A leaf with the CA's real policy (both EKUs, one SPIFFE ID).
    pub fn issue_spec(&self, spec: &LeafSpec) -> Leaf {
        let key = pki::keys::generate(spec.curve).expect("key");
        let id = SpiffeId::parse(&spec.spiffe_id).expect("spiffe id");
        let spki = pki::keys::spki_der(&key);
        let issued = IssuancePolicy::default()
            .issue(
                &LeafRequest {
                    spiffe_id: &id,
                    dns: &spec.dns,
                    ips: &spec.ips,
                    spki_der: &spki,
                    ttl: spec.ttl,
                    now: spec.now,
                },
                &self.ca,
            )
            .expect("issue");
        Leaf::from_parts(issued.der, &key)
    }

    /// A one-hour client leaf for `spiffe_id`.
    pub fn client(&self, spiffe_id: &str) -> Leaf {
        self.issue_spec(&LeafSpec::new(spiffe_id))
    }

    /// A one-hour server leaf for `spiffe_id` valid for localhost and 127.0.0.1.
    pub fn server(&self, spiffe_id: &str) -> Leaf {
        self.issue_spec(&LeafSpec::new(spiffe_id).localhost())
    }

    /// Expired an hour ago.
    pub fn expired(&self, spiffe_id: &str) -> Leaf {
        let mut spec = LeafSpec::new(spiffe_id);
        spec.now = OffsetDateTime::now_utc() - Duration::hours(2);
        self.issue_spec(&spec)
    }

    /// Valid from an hour from now.
    pub fn not_yet_valid(&self, spiffe_id: &str) -> Leaf {
        let mut spec = LeafSpec::new(spiffe_id);
        spec.now = OffsetDateTime::now_utc() + Duration::hours(1);
        self.issue_spec(&spec)
    }

    fn params(&self, spiffe_id: &str, ttl: Duration) -> CertificateParams {
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, spiffe_id);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(spiffe_id.try_into().expect("URI SAN"))];
        params.serial_number = Some(SerialNumber::from_slice(
            &pki::serial::random_serial().expect("serial"),
        ));
        params.not_before = now - Duration::minutes(1);
        params.not_after = now + ttl;
        params.use_authority_key_identifier_extension = true;
        params
    }

    /// A leaf whose EKU is serverAuth only: must be refused as a client certificate.
    pub fn server_auth_only(&self, spiffe_id: &str) -> Leaf {
        let key = pki::keys::generate(Curve::P384).expect("key");
        let mut params = self.params(spiffe_id, Duration::hours(1));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, self.ca.issuer()).expect("sign");
        Leaf::from_parts(cert.der().to_vec(), &key)
    }

    /// A CA certificate (CA:TRUE, keyCertSign) carrying a SPIFFE ID and clientAuth: must be
    /// refused when presented as a client certificate.
    pub fn ca_as_client(&self, spiffe_id: &str) -> Leaf {
        let key = pki::keys::generate(Curve::P384).expect("key");
        let mut params = self.params(spiffe_id, Duration::hours(1));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, self.ca.issuer()).expect("sign");
        Leaf::from_parts(cert.der().to_vec(), &key)
    }

    /// A leaf like the CA's (both EKUs, SPIFFE ID, the SANs of `spec`) but with the KeyUsage
    /// bits given: keyEncipherment alone must be refused as a peer certificate (no
    /// digitalSignature), and so must keyCertSign/cRLSign on a leaf.
    pub fn with_key_usages(&self, spec: &LeafSpec, key_usages: Vec<KeyUsagePurpose>) -> Leaf {
        let key = pki::keys::generate(spec.curve).expect("key");
        let mut params = self.params(&spec.spiffe_id, spec.ttl);
        params.subject_alt_names.extend(
            spec.dns
                .iter()
                .map(|d| SanType::DnsName(d.as_str().try_into().expect("dns"))),
        );
        params
            .subject_alt_names
            .extend(spec.ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = key_usages;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, self.ca.issuer()).expect("sign");
        Leaf::from_parts(cert.der().to_vec(), &key)
    }

    /// A leaf whose KeyUsage is keyEncipherment only (no digitalSignature).
    pub fn key_encipherment_only(&self, spec: &LeafSpec) -> Leaf {
        self.with_key_usages(spec, vec![KeyUsagePurpose::KeyEncipherment])
    }

    /// A v2 CRL revoking `serials` (hex), valid for an hour.
    pub fn crl(&self, serials: &[&str]) -> Vec<u8> {
        let now = OffsetDateTime::now_utc();
        let entries: Vec<RevokedEntry> = serials
            .iter()
            .map(|s| RevokedEntry {
                serial_hex: s.to_string(),
                revoked_at: now,
                reason: Some("keyCompromise".into()),
            })
            .collect();
        sign_crl(&self.ca, &entries, 1, now, now + Duration::hours(1)).expect("crl")
    }
}

/// A self-signed ECDSA P-384 certificate for pinned mode: both EKUs, SPIFFE ID, localhost SANs.
pub fn self_signed(spiffe_id: &str) -> Leaf {
    let key = pki::keys::generate(Curve::P384).expect("key");
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    params.distinguished_name = dn;
    params.subject_alt_names = vec![
        SanType::URI(spiffe_id.try_into().expect("URI SAN")),
        SanType::DnsName("localhost".try_into().expect("dns")),
        SanType::IpAddress("127.0.0.1".parse().expect("ip")),
    ];
    params.serial_number = Some(SerialNumber::from_slice(
        &pki::serial::random_serial().expect("serial"),
    ));
    params.not_before = now - Duration::minutes(1);
    params.not_after = now + Duration::hours(1);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.self_signed(&key).expect("self-sign");
    Leaf::from_parts(cert.der().to_vec(), &key)
}
