#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use super::*;
use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_ASN1};
use der07::asn1::Null;
use x509_ocsp::{OcspResponseStatus, Request, TbsRequest};

pub(super) fn ca() -> CaMaterial {
    CaMaterial::generate_root("ocsp test CA", OffsetDateTime::now_utc()).unwrap()
}

pub(super) fn cert_id(ca: &CaMaterial, alg: ObjectIdentifier, serial: &[u8]) -> CertId {
    let issuer = IssuerHashes::of(ca.cert_der()).unwrap();
    let (name, key) = if alg == SHA1 {
        (issuer.sha1_name, issuer.sha1_key)
    } else {
        (issuer.sha256_name, issuer.sha256_key)
    };
    CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: alg,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(name).unwrap(),
        issuer_key_hash: OctetString::new(key).unwrap(),
        serial_number: SerialNumber::new(serial).unwrap(),
    }
}

pub(super) fn request(ids: Vec<CertId>, nonce: Option<&[u8]>) -> Vec<u8> {
    let request_extensions = nonce.map(|n| {
        vec![Extension {
            extn_id: NONCE,
            critical: false,
            extn_value: OctetString::new(OctetString::new(n).unwrap().to_der().unwrap()).unwrap(),
        }]
    });
    OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: ids
                .into_iter()
                .map(|req_cert| Request {
                    req_cert,
                    single_request_extensions: None,
                })
                .collect(),
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

/// The BasicOCSPResponse inside a successful answer, after checking its signature with the
/// CA's public key.
fn verified(ca: &CaMaterial, der: &[u8]) -> BasicOcspResponse {
    let response = OcspResponse::from_der(der).unwrap();
    assert_eq!(response.response_status, OcspResponseStatus::Successful);
    let bytes = response.response_bytes.unwrap();
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
    assert_eq!(basic.signature_algorithm.oid, ECDSA_SHA384);
    let (_, cert) = X509Certificate::from_der(ca.cert_der()).unwrap();
    let key = UnparsedPublicKey::new(
        &ECDSA_P384_SHA384_ASN1,
        cert.tbs_certificate
            .subject_pki
            .subject_public_key
            .data
            .to_vec(),
    );
    key.verify(
        &basic.tbs_response_data.to_der().unwrap(),
        basic.signature.raw_bytes(),
    )
    .expect("the answer is signed by the CA key");
    basic
}

#[test]
fn each_certificate_gets_its_status_in_order_signed_by_the_ca() {
    let ca = ca();
    let der = request(
        vec![
            cert_id(&ca, SHA1, &[0x01, 0x02]),
            cert_id(&ca, SHA256, &[0x00, 0x9a]),
            cert_id(&ca, SHA1, &[0x7f]),
        ],
        None,
    );
    let query = read_request(&ca, &der).unwrap();
    // The sign octet of 0x9a is not part of the stored serial.
    assert_eq!(query.serials(), ["0102", "9a", "7f"]);
    assert!(query.cache_key().is_some());
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let revoked_at = now - time::Duration::hours(1);
    let states = [
        CertState::Good,
        CertState::Revoked {
            at: revoked_at,
            reason: Some("keyCompromise".into()),
        },
        CertState::Unknown,
    ];
    let answer = sign_response(
        Signer::Ca(&ca),
        &query,
        &states,
        now,
        now + time::Duration::hours(1),
    )
    .unwrap();
    let basic = verified(&ca, &answer);
    let singles = &basic.tbs_response_data.responses;
    assert_eq!(singles.len(), 3);
    assert_eq!(singles[0].cert_status, CertStatus::good());
    match singles[1].cert_status {
        CertStatus::Revoked(info) => {
            assert_eq!(
                info.revocation_time.0.to_unix_duration().as_secs() as i64,
                revoked_at.unix_timestamp()
            );
            assert_eq!(info.revocation_reason, Some(CrlReason::KeyCompromise));
        }
        other => panic!("expected revoked, got {other:?}"),
    }
    assert_eq!(singles[2].cert_status, CertStatus::unknown());
    // What the inspector reads back.
    let summary = read_response(&answer).unwrap();
    assert_eq!(summary.status, "successful");
    let read = summary.answer.unwrap();
    assert_eq!(read.produced_at, now);
    assert_eq!(read.signature_algorithm, "1.2.840.10045.4.3.3");
    assert_eq!(read.certificates, 0);
    assert!(read.signers.is_empty());
    assert!(
        read.responder.starts_with("by key hash "),
        "{}",
        read.responder
    );
    let got: Vec<_> = read
        .answers
        .iter()
        .map(|a| {
            (
                a.serial_hex.as_str(),
                a.hash_algorithm.as_str(),
                a.state.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("0102", "SHA-1", CertState::Good),
            (
                "9a",
                "SHA-256",
                CertState::Revoked {
                    at: revoked_at,
                    reason: Some("keyCompromise".into())
                }
            ),
            ("7f", "SHA-1", CertState::Unknown),
        ]
    );
    assert_eq!(
        read.answers[0].next_update,
        Some(now + time::Duration::hours(1))
    );
    assert_eq!(singles[1].cert_id, cert_id(&ca, SHA256, &[0x00, 0x9a]));
    assert!(basic.tbs_response_data.response_extensions.is_none());
    assert_eq!(
        basic.tbs_response_data.responder_id,
        ResponderId::ByKey(
            OctetString::new(IssuerHashes::of(ca.cert_der()).unwrap().sha1_key).unwrap()
        )
    );
}

#[test]
fn a_nonce_is_echoed_and_makes_the_answer_uncacheable() {
    let ca = ca();
    let nonce = [7u8; 16];
    let query = read_request(&ca, &request(vec![cert_id(&ca, SHA1, &[1])], Some(&nonce))).unwrap();
    assert_eq!(query.nonce(), Some(&nonce[..]));
    assert!(query.cache_key().is_none());
    let now = OffsetDateTime::now_utc();
    let answer = sign_response(Signer::Ca(&ca), &query, &[CertState::Good], now, now).unwrap();
    let basic = verified(&ca, &answer);
    assert_eq!(
        basic
            .tbs_response_data
            .nonce()
            .map(|n| n.0.as_bytes().to_vec()),
        Some(nonce.to_vec())
    );
}

#[test]
fn certificates_of_another_issuer_are_not_answered() {
    let ca = ca();
    let other = CaMaterial::generate_root("another CA", OffsetDateTime::now_utc()).unwrap();
    let der = request(
        vec![cert_id(&ca, SHA1, &[1]), cert_id(&other, SHA1, &[2])],
        None,
    );
    let err = read_request(&ca, &der).unwrap_err();
    assert!(matches!(err, OcspError::NotOurs(_)), "{err:?}");
    assert_eq!(err.code(), "unauthorized");
    let response = OcspResponse::from_der(&err.response_der()).unwrap();
    assert_eq!(response.response_status, OcspResponseStatus::Unauthorized);
    assert!(response.response_bytes.is_none());

    // A hash this responder does not compute cannot name this CA either.
    let mut md5 = cert_id(&ca, SHA1, &[1]);
    md5.hash_algorithm.oid = ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
    let err = read_request(&ca, &request(vec![md5], None)).unwrap_err();
    assert!(matches!(err, OcspError::NotOurs(_)), "{err:?}");
}

/// During a root rotation the CA answers for two roots: the request's CertIDs pick the one,
/// whichever comes first in the list; one request naming both, or a third issuer, is refused.
#[test]
fn a_request_is_read_for_the_root_its_cert_ids_name() {
    let new = ca();
    let old = CaMaterial::generate_root("old CA", OffsetDateTime::now_utc()).unwrap();
    let third = CaMaterial::generate_root("third CA", OffsetDateTime::now_utc()).unwrap();
    let served = [&new, &old];
    let served_der = [new.cert_der().as_ref(), old.cert_der().as_ref()];
    for alg in [SHA1, SHA256] {
        let der = request(
            vec![cert_id(&old, alg, &[7]), cert_id(&old, alg, &[8])],
            None,
        );
        let (index, query) = read_request_among(&served_der, &der).unwrap();
        assert_eq!(index, 1, "the old root's certificates");
        assert_eq!(query.serials(), ["07", "08"]);
        let der = request(vec![cert_id(&new, alg, &[9])], None);
        assert_eq!(read_request_among(&served_der, &der).unwrap().0, 0);
    }
    // Signed by the root named, the answer verifies with that root's key.
    let der = request(vec![cert_id(&old, SHA1, &[7])], None);
    let (index, query) = read_request_among(&served_der, &der).unwrap();
    let answer = sign_response(
        Signer::Ca(served[index]),
        &query,
        &[CertState::Good],
        OffsetDateTime::now_utc(),
        OffsetDateTime::now_utc() + time::Duration::hours(1),
    )
    .unwrap();
    verified(&old, &answer);

    let mixed = request(
        vec![cert_id(&new, SHA1, &[1]), cert_id(&old, SHA1, &[2])],
        None,
    );
    let err = read_request_among(&served_der, &mixed).unwrap_err();
    assert!(matches!(err, OcspError::NotOurs(_)), "{err:?}");
    assert!(
        err.to_string().contains("another of this CA's roots"),
        "{err}"
    );
    let stranger = request(vec![cert_id(&third, SHA1, &[1])], None);
    let err = read_request_among(&served_der, &stranger).unwrap_err();
    assert_eq!(err.code(), "unauthorized");
    // The old root alone no longer answers for the new root's certificates.
    let err = read_request(&old, &request(vec![cert_id(&new, SHA1, &[1])], None)).unwrap_err();
    assert_eq!(err.code(), "unauthorized");
}

#[test]
fn malformed_requests_are_refused_with_malformed_request() {
    let ca = ca();
    let good = request(vec![cert_id(&ca, SHA1, &[1])], None);
    let mut trailing = good.clone();
    trailing.push(0);
    let mut flipped = good.clone();
    flipped[0] ^= 0x20; // no longer a SEQUENCE
    let too_many = request(
        (0..=MAX_REQUESTS as u8)
            .map(|i| cert_id(&ca, SHA1, &[i + 1]))
            .collect(),
        None,
    );
    let long_nonce = request(vec![cert_id(&ca, SHA1, &[1])], Some(&[1u8; MAX_NONCE + 1]));
    let empty = request(vec![], None);
    for (what, der) in [
        ("garbage", b"not der at all".to_vec()),
        ("trailing bytes", trailing),
        ("wrong tag", flipped),
        ("too many certificates", too_many),
        ("nonce too long", long_nonce),
        ("no certificate", empty),
        ("empty body", Vec::new()),
    ] {
        let err = read_request(&ca, &der).unwrap_err();
        assert!(matches!(err, OcspError::Malformed(_)), "{what}: {err:?}");
        let response = OcspResponse::from_der(&err.response_der()).unwrap();
        assert_eq!(
            response.response_status,
            OcspResponseStatus::MalformedRequest,
            "{what}"
        );
        let summary = read_response(&err.response_der()).unwrap();
        assert_eq!((summary.status, summary.answer), ("malformedRequest", None));
    }
    assert!(read_request(&ca, &good).is_ok());
}

#[test]
fn a_state_list_that_does_not_match_the_request_is_not_signed() {
    let ca = ca();
    let query = read_request(&ca, &request(vec![cert_id(&ca, SHA1, &[1])], None)).unwrap();
    let now = OffsetDateTime::now_utc();
    let err = sign_response(Signer::Ca(&ca), &query, &[], now, now).unwrap_err();
    assert!(matches!(err, OcspError::Sign(_)), "{err:?}");
}

/// Found by the fuzz target `ocsp_response` (docs/fuzzing.md): a signed answer under the
/// status `unauthorized` was read as that status with good/revoked answers, which `show`
/// printed, though no client accepts responseBytes under an error status.
#[test]
fn an_error_status_with_response_bytes_is_refused() {
    let ca = ca();
    let query = read_request(&ca, &request(vec![cert_id(&ca, SHA1, &[0x01])], None)).unwrap();
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let mut der = sign_response(
        Signer::Ca(&ca),
        &query,
        &[CertState::Good],
        now,
        now + time::Duration::hours(1),
    )
    .unwrap();
    assert_eq!(read_response(&der).unwrap().status, "successful");
    // responseStatus is the first element: ENUMERATED (0x0a), length 1, 0 = successful.
    let at = der
        .windows(3)
        .position(|w| w == [0x0a, 0x01, 0x00])
        .unwrap();
    for (code, name) in [
        (1u8, "malformedRequest"),
        (3, "tryLater"),
        (6, "unauthorized"),
    ] {
        der[at + 2] = code;
        let err = read_response(&der).unwrap_err();
        assert!(
            err.contains(&format!(
                "the response status is {name} but it carries responseBytes"
            )),
            "{err}"
        );
    }
}
