use super::*;
use aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING;

fn signer() -> JwtSigner {
    let key = crate::keys::generate(crate::Curve::P384).unwrap();
    JwtSigner::from_pkcs8(&key.serialize_der()).unwrap()
}

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

const NOW: i64 = 1_800_000_000;

fn claims() -> Claims {
    Claims {
        sub: SpiffeId::parse("spiffe://mesh.local/service/web").unwrap(),
        aud: vec!["spiffe://mesh.local/service/db".into(), "other".into()],
        exp: NOW + 300,
        iat: NOW,
    }
}

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

/// A token with any header and claims, signed by `s` as ES384 (r||s).
fn raw(s: &JwtSigner, header: Value, claims: Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = s.signature(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&sig))
}

fn good_claims() -> Value {
    serde_json::json!({"sub": "spiffe://mesh.local/service/web", "aud": ["db"], "exp": NOW + 60, "iat": NOW})
}

#[test]
fn a_signed_token_verifies_and_carries_its_claims() {
    let s = signer();
    let token = s.sign(&claims()).unwrap();
    let got = verify(&token, &s.key_set(), "other", at(NOW)).unwrap();
    assert_eq!(got, claims());
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        serde_json::json!({"alg": "ES384", "kid": s.kid(), "typ": "JWT"})
    );
    // One second before exp still verifies.
    verify(&token, &s.key_set(), "other", at(NOW + 299)).unwrap();
}

#[test]
fn every_forgery_and_mismatch_is_refused_with_its_reason() {
    let s = signer();
    let keys = s.key_set();
    let kid = s.kid().to_string();
    let header = serde_json::json!({"alg": "ES384", "kid": kid, "typ": "JWT"});
    let good = raw(&s, header.clone(), good_claims());
    verify(&good, &keys, "db", at(NOW)).unwrap();
    let parts: Vec<&str> = good.split('.').collect();

    // alg none, with and without a signature.
    let none_header = b64(serde_json::json!({"alg": "none", "kid": kid})
        .to_string()
        .as_bytes());
    let alg_none = format!("{none_header}.{}.", parts[1]);
    let alg_none_sig = format!("{none_header}.{}.{}", parts[1], parts[2]);
    // HS256 keyed with the public key: the classic key-confusion forgery.
    let hs_header = b64(
        serde_json::json!({"alg": "HS256", "kid": kid, "typ": "JWT"})
            .to_string()
            .as_bytes(),
    );
    let hs_input = format!("{hs_header}.{}", parts[1]);
    let mac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, keys.get(&kid).unwrap());
    let hs256 = format!(
        "{hs_input}.{}",
        b64(aws_lc_rs::hmac::sign(&mac_key, hs_input.as_bytes()).as_ref())
    );
    let rs256 = format!(
        "{}.{}.{}",
        b64(serde_json::json!({"alg": "RS256", "kid": kid})
            .to_string()
            .as_bytes()),
        parts[1],
        parts[2]
    );
    let es384_lower = raw(
        &s,
        serde_json::json!({"alg": "es384", "kid": kid}),
        good_claims(),
    );
    // Another key, and another key claiming our kid.
    let other = signer();
    let wrong_kid = raw(
        &other,
        serde_json::json!({"alg": "ES384", "kid": other.kid()}),
        good_claims(),
    );
    let stolen_kid = raw(&other, header.clone(), good_claims());
    let no_kid = raw(&s, serde_json::json!({"alg": "ES384"}), good_claims());
    // Claims problems, properly signed.
    let mut c = good_claims();
    c["exp"] = Value::from(NOW);
    let expired = raw(&s, header.clone(), c);
    let mut c = good_claims();
    c["aud"] = serde_json::json!(["dbx", "d"]);
    let wrong_aud = raw(&s, header.clone(), c);
    let mut c = good_claims();
    c["aud"] = serde_json::json!([]);
    let empty_aud = raw(&s, header.clone(), c);
    let mut c = good_claims();
    c["sub"] = Value::from("spiffe://mesh.local/");
    let bad_sub = raw(&s, header.clone(), c);
    let mut c = good_claims();
    c["sub"] = Value::from("https://mesh.local/service/web");
    let https_sub = raw(&s, header.clone(), c);
    let mut c = good_claims();
    c.as_object_mut().unwrap().remove("exp");
    let no_exp = raw(&s, header.clone(), c);
    let mut c = good_claims();
    c["exp"] = Value::from("later");
    let text_exp = raw(&s, header.clone(), c);
    let crit = raw(
        &s,
        serde_json::json!({"alg": "ES384", "kid": kid, "crit": ["b64"]}),
        good_claims(),
    );
    // Tampered payload: another subject under the original signature.
    let mut c = good_claims();
    c["sub"] = Value::from("spiffe://mesh.local/service/admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(c.to_string().as_bytes()),
        parts[2]
    );
    // A valid ECDSA signature in DER instead of JOSE r||s.
    let der_key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P384_SHA384_ASN1_SIGNING,
        &crate::keys::generate(crate::Curve::P384)
            .unwrap()
            .serialize_der(),
    )
    .unwrap();
    let mut der_keys = KeySet::new();
    der_keys
        .insert(&kid, der_key.public_key().as_ref())
        .unwrap();
    let input = format!("{}.{}", parts[0], parts[1]);
    let der_sig = der_key
        .sign(&SystemRandom::new(), input.as_bytes())
        .unwrap();
    let der_signed = format!("{input}.{}", b64(der_sig.as_ref()));
    let padded = format!("{}=.{}.{}", parts[0], parts[1], parts[2]);

    let no_keys = KeySet::new();
    type Check = fn(&JwtError) -> bool;
    let cases: Vec<(&str, String, &KeySet, Check)> = vec![
        (
            "alg none",
            alg_none,
            &keys,
            |e| matches!(e, JwtError::Algorithm(a) if a == "none"),
        ),
        ("alg none with a signature", alg_none_sig, &keys, |e| {
            matches!(e, JwtError::Algorithm(_))
        }),
        (
            "HS256 keyed with the public key",
            hs256,
            &keys,
            |e| matches!(e, JwtError::Algorithm(a) if a == "HS256"),
        ),
        ("RS256", rs256, &keys, |e| {
            matches!(e, JwtError::Algorithm(_))
        }),
        ("alg in lowercase", es384_lower, &keys, |e| {
            matches!(e, JwtError::Algorithm(_))
        }),
        ("unknown kid", wrong_kid, &keys, |e| {
            matches!(e, JwtError::UnknownKey(_))
        }),
        ("another key under our kid", stolen_kid, &keys, |e| {
            matches!(e, JwtError::Signature(_))
        }),
        ("no kid", no_kid, &keys, |e| {
            matches!(e, JwtError::Malformed(_))
        }),
        ("expired (exp == now)", expired, &keys, |e| {
            matches!(e, JwtError::Expired { .. })
        }),
        ("wrong audience", wrong_aud, &keys, |e| {
            matches!(e, JwtError::Audience { .. })
        }),
        ("empty audience", empty_aud, &keys, |e| {
            matches!(e, JwtError::Malformed(_))
        }),
        ("sub without a path", bad_sub, &keys, |e| {
            matches!(e, JwtError::Subject(_))
        }),
        ("sub not spiffe", https_sub, &keys, |e| {
            matches!(e, JwtError::Subject(_))
        }),
        ("no exp", no_exp, &keys, |e| {
            matches!(e, JwtError::Malformed(_))
        }),
        ("exp not an integer", text_exp, &keys, |e| {
            matches!(e, JwtError::Malformed(_))
        }),
        ("crit header", crit, &keys, |e| {
            matches!(e, JwtError::Malformed(_))
        }),
        ("tampered payload", tampered, &keys, |e| {
            matches!(e, JwtError::Signature(_))
        }),
        (
            "DER signature",
            der_signed,
            &der_keys,
            |e| matches!(e, JwtError::Signature(m) if m.contains("not DER")),
        ),
        ("padded base64", padded, &keys, |e| {
            matches!(e, JwtError::Malformed(_))
        }),
        (
            "two parts",
            format!("{}.{}", parts[0], parts[1]),
            &keys,
            |e| matches!(e, JwtError::Malformed(_)),
        ),
        ("four parts", format!("{good}.x"), &keys, |e| {
            matches!(e, JwtError::Malformed(_))
        }),
        ("empty", String::new(), &keys, |e| {
            matches!(e, JwtError::Malformed(_))
        }),
        ("too long", "a".repeat(MAX_TOKEN_LEN + 1), &keys, |e| {
            matches!(e, JwtError::Malformed(_))
        }),
        ("empty key set", good.clone(), &no_keys, |e| {
            matches!(e, JwtError::UnknownKey(_))
        }),
    ];
    for (name, token, keys, expected) in cases {
        match verify(&token, keys, "db", at(NOW)) {
            Ok(c) => panic!("{name}: accepted ({c:?})"),
            Err(e) => assert!(expected(&e), "{name}: wrong error {e:?}"),
        }
    }
}

#[test]
fn signing_refuses_claims_no_verifier_would_accept() {
    let s = signer();
    let mut c = claims();
    c.aud = vec![];
    assert!(matches!(s.sign(&c), Err(JwtError::Malformed(_))));
    let mut c = claims();
    c.aud = vec!["".into()];
    assert!(matches!(s.sign(&c), Err(JwtError::Malformed(_))));
    let mut c = claims();
    c.exp = c.iat;
    assert!(matches!(s.sign(&c), Err(JwtError::Malformed(_))));
}

#[test]
fn key_sets_round_trip_through_a_spiffe_bundle() {
    let s = signer();
    let jwk = s.public_jwk();
    assert_eq!(jwk.kid.as_deref(), Some(s.kid()));
    assert_eq!(jwk.use_.as_deref(), Some("jwt-svid"));
    assert_eq!(
        jwk.thumbprint(),
        s.kid(),
        "the kid is the RFC 7638 thumbprint"
    );
    let bundle = serde_json::json!({
        "keys": [
            {"use": "x509-svid", "kty": "EC", "crv": "P-384", "x": jwk.x, "y": jwk.y, "x5c": ["AAAA"]},
            serde_json::to_value(&jwk).unwrap(),
        ],
        "spiffe_sequence": 1,
    });
    let set = KeySet::from_jwks(&bundle).unwrap();
    assert_eq!(set, s.key_set());
    assert_eq!(set.to_jwks(), vec![jwk.clone()]);
    let token = s.sign(&claims()).unwrap();
    verify(&token, &set, "other", at(NOW)).unwrap();

    for (name, bad) in [
        ("no keys", serde_json::json!({})),
        (
            "jwt-svid without kid",
            serde_json::json!({"keys": [{"use": "jwt-svid", "kty": "EC", "crv": "P-384", "x": jwk.x, "y": jwk.y}]}),
        ),
        (
            "P-256",
            serde_json::json!({"keys": [{"use": "jwt-svid", "kid": "k", "kty": "EC", "crv": "P-256", "x": jwk.x, "y": jwk.y}]}),
        ),
        (
            "RSA",
            serde_json::json!({"keys": [{"use": "jwt-svid", "kid": "k", "kty": "RSA", "crv": "", "x": "", "y": ""}]}),
        ),
        (
            "short x",
            serde_json::json!({"keys": [{"use": "jwt-svid", "kid": "k", "kty": "EC", "crv": "P-384", "x": "AAAA", "y": jwk.y}]}),
        ),
        (
            "unknown use",
            serde_json::json!({"keys": [{"use": "sig", "kid": "k", "kty": "EC", "crv": "P-384", "x": jwk.x, "y": jwk.y}]}),
        ),
    ] {
        assert!(
            matches!(KeySet::from_jwks(&bad), Err(JwtError::Key(_))),
            "{name}"
        );
    }
    assert!(JwtSigner::from_pkcs8(
        &crate::keys::generate(crate::Curve::P256)
            .unwrap()
            .serialize_der()
    )
    .is_err());
}

/// Where the key set, now read by the bundle reader, differs from the reader it replaced:
/// a key without `use` but with a `kid` was trusted for JWT-SVIDs and is refused now (the
/// bundle spec requires `use`; trusting an undeclared key widens what the publisher vouched
/// for); two `jwt-svid` keys with one `kid` silently kept the last and are refused now (a
/// verifier must not guess which key a token means); an `x509-svid` key that is not an EC
/// JWK (an RSA authority) refused the whole set and is left to the X.509 reader now.
#[test]
fn the_key_set_takes_the_bundle_readers_verdicts() {
    let s = signer();
    let jwk = serde_json::to_value(s.public_jwk()).unwrap();
    let mut no_use = jwk.clone();
    no_use.as_object_mut().unwrap().remove("use");
    let e = KeySet::from_jwks(&serde_json::json!({"keys": [no_use]})).unwrap_err();
    assert!(e.to_string().contains("no use"), "{e}");

    let other = serde_json::to_value(signer().public_jwk()).unwrap();
    let mut same_kid = other.clone();
    same_kid["kid"] = jwk["kid"].clone();
    let e = KeySet::from_jwks(&serde_json::json!({"keys": [jwk, same_kid]})).unwrap_err();
    assert!(e.to_string().contains("is also the kid of key #1"), "{e}");

    let rsa_authority = serde_json::json!({"use": "x509-svid", "kty": "RSA", "n": "AQAB", "e": "AQAB", "x5c": ["AAAA"]});
    let set = KeySet::from_jwks(&serde_json::json!({"keys": [rsa_authority, jwk, other]})).unwrap();
    assert_eq!(set.len(), 2);
    assert!(set.get(s.kid()).is_some());
}

#[test]
fn a_root_becomes_an_x509_svid_jwk_with_its_certificate() {
    let root = crate::CaMaterial::generate_root("Test Root", OffsetDateTime::now_utc()).unwrap();
    let jwk = x509_authority_jwk(root.cert_der()).unwrap();
    assert_eq!(
        (jwk.kty.as_str(), jwk.crv.as_str(), jwk.use_.as_deref()),
        ("EC", "P-384", Some("x509-svid"))
    );
    assert_eq!(
        jwk.x5c,
        Some(vec![STANDARD.encode(root.cert_der().as_ref())])
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(&jwk.x).unwrap().len(), 48);
    assert!(x509_authority_jwk(b"not a certificate").is_err());
}

/// A device stand-in that answers a fixed `r||s` (or a failure) and records the digest it was
/// given, as a PKCS#11 token doing CKM_ECDSA would be given one.
struct RecordingDevice {
    point: Vec<u8>,
    answer: std::result::Result<Vec<u8>, String>,
    digests: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl DigestSigner for RecordingDevice {
    fn public_point(&self) -> &[u8] {
        &self.point
    }
    fn sign_digest(&self, digest: &[u8]) -> std::result::Result<Vec<u8>, String> {
        self.digests.lock().unwrap().push(digest.to_vec());
        self.answer.clone()
    }
    fn describe(&self) -> String {
        "pkcs11:token=t;object=jwt".into()
    }
}

fn device(answer: std::result::Result<Vec<u8>, String>) -> Arc<RecordingDevice> {
    let key = crate::keys::generate(crate::Curve::P384).unwrap();
    let local = JwtSigner::from_pkcs8(&key.serialize_der()).unwrap();
    Arc::new(RecordingDevice {
        point: local.point.clone(),
        answer,
        digests: std::sync::Mutex::new(Vec::new()),
    })
}

#[test]
fn a_device_key_signs_the_sha384_digest_and_its_raw_signature_is_the_jws_signature() {
    let fixed: Vec<u8> = (0..96u8).collect();
    let dev = device(Ok(fixed.clone()));
    let signer = JwtSigner::device(dev.clone()).unwrap();
    // The same kid rule as a key in this process: the thumbprint of the public key.
    let jwk = Jwk::from_p384_point(&dev.point).unwrap();
    assert_eq!(signer.kid(), jwk.thumbprint());
    assert_eq!(signer.public_jwk().kid.as_deref(), Some(signer.kid()));
    assert_eq!(
        signer.key_set().get(signer.kid()),
        Some(dev.point.as_slice())
    );
    assert!(format!("{signer:?}").contains("pkcs11:token=t;object=jwt"));

    let token = signer.sign(&claims()).unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(sig).unwrap(), fixed);
    let digests = dev.digests.lock().unwrap();
    assert_eq!(
        digests.as_slice(),
        [
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, input.as_bytes())
                .as_ref()
                .to_vec()
        ]
    );
    let header = json_part(input.split('.').next().unwrap(), "header").unwrap();
    assert_eq!(header["alg"], "ES384");
    assert_eq!(header["kid"], signer.kid());
}

#[test]
fn a_device_failure_or_a_malformed_device_signature_is_an_error_naming_the_device() {
    let signer = JwtSigner::device(device(Err("CKR_DEVICE_REMOVED".into()))).unwrap();
    let err = signer.sign(&claims()).unwrap_err().to_string();
    assert!(
        err.contains("pkcs11:token=t;object=jwt") && err.contains("CKR_DEVICE_REMOVED"),
        "{err}"
    );
    let signer = JwtSigner::device(device(Ok(vec![1; 104]))).unwrap();
    let err = signer.sign(&claims()).unwrap_err().to_string();
    assert!(err.contains("104 bytes"), "{err}");
}
