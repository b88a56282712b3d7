//! CSR checking behind the signature. Mutated CSRs almost never keep a valid signature, so the
//! `csr` target rarely gets past `parse_and_verify`'s signature check; here the input is the
//! content of the CSR's attributes (`[0] SET OF Attribute`, where the extensionRequest lives)
//! and the harness wraps it into a CertificationRequestInfo with a fixed subject and a P-256
//! key, signs it, and hands the CSR to `pki::csr::parse_and_verify`. An independent walk over
//! the same bytes says what the CSR asks for: when pki accepts it, it must have seen every
//! requested name and any CA:TRUE request, wherever in the attributes they are, and refused any
//! name type the CA does not issue.

#![no_main]

use std::sync::LazyLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use libfuzzer_sys::fuzz_target;
use pki::PkiError;

static KEY: LazyLock<EcdsaKeyPair> = LazyLock::new(|| {
    EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
        .unwrap_or_else(|e| panic!("P-256 key generation failed: {e}"))
});

/// DER tag-length-value with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A CSR signed by [`KEY`] whose attributes field holds `attributes`.
fn signed_csr(attributes: &[u8]) -> Vec<u8> {
    const P256_SPKI_PREFIX: &[u8] = &[
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    const ECDSA_WITH_SHA256: &[u8] = &[
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
    ];
    let cn = tlv(
        0x30,
        &[&[0x06, 0x03, 0x55, 0x04, 0x03][..], &tlv(0x0c, b"fuzz")].concat(),
    );
    let subject = tlv(0x30, &tlv(0x31, &cn));
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(KEY.public_key().as_ref());
    let info = tlv(
        0x30,
        &[
            &[0x02, 0x01, 0x00][..],
            &subject,
            &spki,
            &tlv(0xa0, attributes),
        ]
        .concat(),
    );
    let signature = KEY
        .sign(&SystemRandom::new(), &info)
        .unwrap_or_else(|e| panic!("signing failed: {e}"));
    let mut bits = vec![0u8];
    bits.extend_from_slice(signature.as_ref());
    tlv(
        0x30,
        &[&info[..], ECDSA_WITH_SHA256, &tlv(0x03, &bits)].concat(),
    )
}

/// The elements of a DER sequence body (one-byte tags, definite lengths); None if malformed.
fn elements(mut body: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    while let [tag, first, rest @ ..] = body {
        let (len, rest) = if *first < 0x80 {
            (usize::from(*first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |a, b| (a << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        if tag & 0x1f == 0x1f || rest.len() < len {
            return None;
        }
        out.push((*tag, &rest[..len]));
        body = &rest[len..];
    }
    body.is_empty().then_some(out)
}

const OID_EXTENSION_REQUEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// What the attributes ask for, read independently of x509-parser: (CA:TRUE anywhere, the
/// number of DNS, IP and URI names, whether another kind of name is asked for). None when the
/// bytes are not plain DER of the expected shape (then there is nothing to compare).
fn asked_for(attributes: &[u8]) -> Option<(bool, usize, bool)> {
    let (mut ca, mut names, mut other) = (false, 0, false);
    for (tag, attribute) in elements(attributes)? {
        if tag != 0x30 {
            return None;
        }
        let parts = elements(attribute)?;
        let [(0x06, oid), (0x31, values)] = parts.as_slice() else {
            return None;
        };
        if *oid != OID_EXTENSION_REQUEST {
            continue;
        }
        for (tag, extensions) in elements(values)? {
            if tag != 0x30 {
                return None;
            }
            for (tag, extension) in elements(extensions)? {
                let fields = elements(extension)?;
                let (0x30, Some((0x06, oid)), Some((0x04, value))) =
                    (tag, fields.first().copied(), fields.last().copied())
                else {
                    return None;
                };
                let wrapped = elements(value)?;
                let [(0x30, inner)] = wrapped.as_slice() else {
                    return None;
                };
                if oid == OID_BASIC_CONSTRAINTS {
                    // cA is a BOOLEAN; like x509-parser, ignore the constructed bit, which DER
                    // forbids here but which does not change what is asked for.
                    let constraints = elements(inner)?;
                    if let Some((tag, [flag])) = constraints.first().copied() {
                        ca |= tag & 0xdf == 0x01 && *flag != 0;
                    }
                } else if oid == OID_SUBJECT_ALT_NAME {
                    for (tag, _) in elements(inner)? {
                        // By class and number: x509-parser, like BER, also takes a constructed
                        // [2] as a dNSName, so pki sees (and the CA checks) that name too.
                        match (tag & 0xc0, tag & 0x1f) {
                            (0x80, 2 | 6 | 7) => names += 1,
                            _ => other = true,
                        }
                    }
                }
            }
        }
    }
    Some((ca, names, other))
}

fuzz_target!(|attributes: &[u8]| {
    let csr = signed_csr(attributes);
    match pki::csr::parse_and_verify(&csr) {
        Ok(verified) => {
            let Some((ca, names, other)) = asked_for(attributes) else {
                return;
            };
            assert!(
                !other,
                "accepted a CSR asking for a name type the CA does not issue"
            );
            // Seeing more than the walk (a flag in an encoding it skips) is safe; less is not.
            assert!(verified.requests_ca || !ca, "pki missed a CA:TRUE request");
            let seen = verified.requested_dns.len()
                + verified.requested_ips.len()
                + verified.requested_uris.len();
            assert_eq!(seen, names, "names seen by pki vs asked for");
        }
        Err(PkiError::CsrSignature) => panic!("a correctly signed CSR failed its signature check"),
        Err(_) => {}
    }
});
