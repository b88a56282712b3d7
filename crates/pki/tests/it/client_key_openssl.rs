//! The client key recomputed independently: element offsets from `openssl asn1parse`, hashing by
//! `openssl dgst`, compared with `pki::client_key`.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;

use pki::policy::{IssuancePolicy, LeafRequest};
use pki::{CaMaterial, Curve, SpiffeId};
use rcgen::PublicKeyData;
use time::{Duration, OffsetDateTime};

struct Element {
    offset: usize,
    header_len: usize,
    len: usize,
    depth: usize,
    kind: String,
}

fn asn1parse(der_path: &std::path::Path) -> Vec<Element> {
    let out = Command::new("openssl")
        .args(["asn1parse", "-inform", "DER", "-in"])
        .arg(der_path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            // "   13:d=2  hl=2 l=  20 prim: INTEGER           :4F1A..."
            let (offset, rest) = line.split_once(":d=").unwrap();
            let (depth, rest) = rest.split_once("hl=").unwrap();
            let (hl, rest) = rest.split_once("l=").unwrap();
            let (len, rest) = rest.trim_start().split_once(' ').unwrap();
            Element {
                offset: offset.trim().parse().unwrap(),
                depth: depth.trim().parse().unwrap(),
                header_len: hl.trim().parse().unwrap(),
                len: len.trim().parse().unwrap(),
                kind: rest.split(':').nth(1).unwrap_or("").trim().to_string(),
            }
        })
        .collect()
}

fn der_header(tag: u8, len: usize) -> Vec<u8> {
    let mut h = vec![tag];
    if len < 128 {
        h.push(len as u8);
    } else if len < 256 {
        h.extend_from_slice(&[0x81, len as u8]);
    } else {
        h.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    h
}

#[test]
fn client_key_matches_an_openssl_recomputation() {
    let now = OffsetDateTime::now_utc();
    let ca = CaMaterial::generate_root("Client Key Test Root", now).unwrap();
    let key = pki::keys::generate(Curve::P384).unwrap();
    let id = SpiffeId::parse("spiffe://mesh.local/service/ck").unwrap();
    let spki = key.subject_public_key_info();
    let issued = IssuancePolicy::default()
        .issue(
            &LeafRequest {
                spiffe_id: &id,
                dns: &[],
                ips: &[],
                spki_der: &spki,
                ttl: Duration::hours(1),
                now,
            },
            &ca,
        )
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let der_path = tmp.path().join("leaf.der");
    std::fs::write(&der_path, &issued.der).unwrap();

    // TBSCertificate children (depth 2): [0] version, serial INTEGER, signature AlgId, issuer Name.
    let elements = asn1parse(&der_path);
    let children: Vec<&Element> = elements.iter().filter(|e| e.depth == 2).collect();
    assert!(children[0].kind.starts_with("cont [ 0 ]"));
    let serial = children[1];
    assert_eq!(serial.kind, "INTEGER");
    let issuer = children[3];
    assert_eq!(issuer.kind, "SEQUENCE");
    let slice = |e: &Element| &issued.der[e.offset..e.offset + e.header_len + e.len];

    let mut content = slice(issuer).to_vec();
    content.extend_from_slice(slice(serial));
    let mut ias = der_header(0x30, content.len());
    ias.extend_from_slice(&content);
    let ias_path = tmp.path().join("ias.der");
    std::fs::write(&ias_path, &ias).unwrap();

    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .arg(&ias_path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let openssl_hex = String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    assert_eq!(pki::client_key(&issued.der).unwrap(), openssl_hex);
    // And the recomputed structure parses as IssuerAndSerialNumber for OpenSSL too.
    let check = Command::new("openssl")
        .args(["asn1parse", "-inform", "DER", "-in"])
        .arg(&ias_path)
        .output()
        .unwrap();
    assert!(check.status.success());
}
