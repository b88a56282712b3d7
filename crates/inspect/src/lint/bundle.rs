//! The SPIFFE bundle rules: what `pki::spiffe_bundle` found wrong with a bundle (the reader
//! federation and the services use), as lint findings with the same rule ids in `show` and
//! `lint`.

use pki::spiffe_bundle::{BundleDocument, BundleKey, BundleNumber, KeyProblem};

use super::rules::*;

/// The findings about the bundle as a whole: its numbers, and whether any key vouches for
/// X509-SVIDs.
pub fn document_findings(doc: &BundleDocument) -> Vec<Finding> {
    let mut f = Vec::new();
    for (name, number, missing) in [
        ("spiffe_sequence", &doc.sequence, BUNDLE_SEQUENCE),
        (
            "spiffe_refresh_hint",
            &doc.refresh_hint_seconds,
            BUNDLE_REFRESH_HINT,
        ),
    ] {
        match number {
            BundleNumber::Valid(_) => {}
            BundleNumber::Absent => f.push(Finding::new(missing, format!("no {name}"))),
            BundleNumber::Invalid(raw) => f.push(Finding::new(
                BUNDLE_NUMBER_SYNTAX,
                format!("{name} is {raw}, not an unsigned integer"),
            )),
        }
    }
    let usable = doc
        .keys
        .iter()
        .any(|k| k.is_x509_svid() && !k.problems.iter().any(KeyProblem::refuses_authority));
    if !usable {
        f.push(Finding::new(
            BUNDLE_X509_AUTHORITY,
            "no usable x509-svid key: this bundle vouches for no X509-SVID",
        ));
    }
    f
}

/// The findings about one key, each message starting with the key's number.
pub fn key_findings(key: &BundleKey) -> Vec<Finding> {
    key.problems
        .iter()
        .map(|p| {
            let rule = match p {
                KeyProblem::NotObject | KeyProblem::NoKty => BUNDLE_KEY_SHAPE,
                KeyProblem::NoUse => BUNDLE_KEY_USE,
                KeyProblem::UnknownUse(_) => BUNDLE_KEY_USE_UNKNOWN,
                KeyProblem::NoX5c | KeyProblem::X5cCount(_) | KeyProblem::X5cNotBase64 => {
                    BUNDLE_X5C
                }
                KeyProblem::Certificate(_) | KeyProblem::KeyMismatch => BUNDLE_X509_KEY,
                KeyProblem::NotCa => BUNDLE_X509_CA,
                KeyProblem::NoKid => BUNDLE_JWT_KID,
                KeyProblem::DuplicateKid { .. } => BUNDLE_KID_UNIQUE,
                KeyProblem::JwtKey(_) => BUNDLE_JWT_ES384,
            };
            Finding::new(rule, format!("key #{}: {p}", key.index))
        })
        .collect()
}

/// Every finding about a bundle, errors first.
pub fn bundle_findings(doc: &BundleDocument) -> Vec<Finding> {
    let mut f = document_findings(doc);
    f.extend(doc.keys.iter().flat_map(key_findings));
    f.sort_by_key(|finding| finding.severity);
    f
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rules(json: &str) -> Vec<(&'static str, String)> {
        let doc = BundleDocument::read(json.as_bytes()).unwrap();
        bundle_findings(&doc)
            .into_iter()
            .map(|f| (f.rule, f.message))
            .collect()
    }

    /// An empty bundle vouches for nothing and lacks both numbers; a key without use, one
    /// without kty and a jwt-svid key on another curve are each named by their rule.
    #[test]
    fn bundle_level_and_key_level_findings() {
        assert_eq!(
            rules(r#"{"keys": []}"#),
            [
                ("spiffe-bundle-sequence", "no spiffe_sequence".to_string()),
                (
                    "spiffe-bundle-refresh-hint",
                    "no spiffe_refresh_hint".to_string()
                ),
                (
                    "spiffe-bundle-x509-authority",
                    "no usable x509-svid key: this bundle vouches for no X509-SVID".to_string()
                ),
            ]
        );
        let found = rules(
            r#"{"keys": [{"kty": "EC"}, {"use": "jwt-svid", "kid": "a"},
                {"use": "jwt-svid", "kty": "EC", "crv": "P-256", "kid": "b", "x": "AA", "y": "AA"}],
                "spiffe_sequence": 1, "spiffe_refresh_hint": 1.5}"#,
        );
        let ids: Vec<&str> = found.iter().map(|(r, _)| *r).collect();
        assert_eq!(
            ids,
            [
                "spiffe-bundle-number-syntax",
                "spiffe-bundle-key-use",
                "spiffe-bundle-key-shape",
                "spiffe-bundle-x509-authority",
                "spiffe-bundle-jwt-es384",
                "spiffe-bundle-jwt-es384",
            ]
        );
        assert_eq!(
            found[0].1,
            "spiffe_refresh_hint is 1.5, not an unsigned integer"
        );
        assert!(found[1].1.starts_with("key #1: no use"), "{found:?}");
        assert!(
            found[5]
                .1
                .starts_with("key #3: JWT key: key type EC on curve P-256"),
            "{found:?}"
        );
    }
}
