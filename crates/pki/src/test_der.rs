//! Test-only DER builders for CRLs that no well-behaved library would produce (no CRL Number,
//! a critical one, disagreeing algorithm identifiers, a mislabelled signature), signed with a
//! real key so that only the property under test is wrong.

#![allow(clippy::unwrap_used)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, EcdsaSigningAlgorithm, ECDSA_P384_SHA384_ASN1_SIGNING};
use rcgen::KeyPair;

/// DER TLV with a definite length.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// AlgorithmIdentifier DER of ecdsa-with-SHA384.
pub const ALG_ECDSA_SHA384: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];
/// AlgorithmIdentifier DER of ecdsa-with-SHA256.
pub const ALG_ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
/// AlgorithmIdentifier DER of ecdsa-with-SHA512.
pub const ALG_ECDSA_SHA512: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04,
];
/// AlgorithmIdentifier DER of sha256WithRSAEncryption (NULL parameters).
pub const ALG_RSA_SHA256: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];
/// AlgorithmIdentifier DER of Ed25519.
pub const ALG_ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

/// OID DER of cRLNumber (2.5.29.20) and deltaCRLIndicator (2.5.29.27).
pub const OID_CRL_NUMBER: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x14];
pub const OID_DELTA_CRL: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x1b];
/// OID DER of certificateIssuer (2.5.29.29), an entry extension of indirect CRLs.
pub const OID_CERTIFICATE_ISSUER: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x1d];
/// OID DER of issuingDistributionPoint (2.5.29.28).
pub const OID_ISSUING_DISTRIBUTION_POINT: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x1c];

/// One extension: OID DER, criticality, the value's DER (wrapped in the OCTET STRING here).
pub fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let crit: &[u8] = if critical { &[0x01, 0x01, 0xff] } else { &[] };
    seq(&[oid, crit, &tlv(0x04, value)])
}

/// What to put in a hand-made CRL.
pub struct CrlSpec {
    pub inner_alg: &'static [u8],
    pub outer_alg: &'static [u8],
    pub extensions: Vec<Vec<u8>>,
    /// Revoked serials (INTEGER content octets).
    pub serials: Vec<Vec<u8>>,
    /// Extensions of every entry (crlEntryExtensions).
    pub entry_extensions: Vec<Vec<u8>>,
}

impl CrlSpec {
    /// A CRL like ours: ecdsa-with-SHA384 both places, CRL Number 1, nothing revoked.
    pub fn ours() -> CrlSpec {
        CrlSpec {
            inner_alg: ALG_ECDSA_SHA384,
            outer_alg: ALG_ECDSA_SHA384,
            extensions: vec![extension(OID_CRL_NUMBER, false, &tlv(0x02, &[1]))],
            serials: Vec::new(),
            entry_extensions: Vec::new(),
        }
    }

    pub fn without_extensions(mut self) -> CrlSpec {
        self.extensions.clear();
        self
    }
}

/// Builds and signs a CRL for `issuer_name` (raw DER Name) with `key` (ECDSA, P-384 SHA-384
/// unless `alg` says otherwise). The label in `spec` need not match what actually signs.
pub fn crl(spec: &CrlSpec, issuer_name: &[u8], key: &KeyPair) -> Vec<u8> {
    crl_signed_with(spec, issuer_name, key, &ECDSA_P384_SHA384_ASN1_SIGNING)
}

pub fn crl_signed_with(
    spec: &CrlSpec,
    issuer_name: &[u8],
    key: &KeyPair,
    alg: &'static EcdsaSigningAlgorithm,
) -> Vec<u8> {
    let this_update = tlv(0x17, b"260301110000Z");
    let next_update = tlv(0x17, b"260301130000Z");
    let mut tbs_parts: Vec<Vec<u8>> = vec![
        tlv(0x02, &[1]),
        spec.inner_alg.to_vec(),
        issuer_name.to_vec(),
        this_update.clone(),
        next_update,
    ];
    if !spec.serials.is_empty() {
        let entries: Vec<Vec<u8>> = spec
            .serials
            .iter()
            .map(|s| {
                if spec.entry_extensions.is_empty() {
                    seq(&[&tlv(0x02, s), &this_update])
                } else {
                    let refs: Vec<&[u8]> =
                        spec.entry_extensions.iter().map(Vec::as_slice).collect();
                    seq(&[&tlv(0x02, s), &this_update, &seq(&refs)])
                }
            })
            .collect();
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        tbs_parts.push(seq(&refs));
    }
    if !spec.extensions.is_empty() {
        let refs: Vec<&[u8]> = spec.extensions.iter().map(Vec::as_slice).collect();
        tbs_parts.push(tlv(0xa0, &seq(&refs)));
    }
    let tbs_refs: Vec<&[u8]> = tbs_parts.iter().map(Vec::as_slice).collect();
    let tbs = seq(&tbs_refs);
    let signer = EcdsaKeyPair::from_pkcs8(alg, &key.serialize_der()).unwrap();
    let signature = signer.sign(&SystemRandom::new(), &tbs).unwrap();
    let mut bits = vec![0u8];
    bits.extend_from_slice(signature.as_ref());
    seq(&[&tbs, spec.outer_alg, &tlv(0x03, &bits)])
}
