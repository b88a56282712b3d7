//! Join tokens: 256 random bits, shown once, stored only as a SHA-256 hash.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;

/// Prefix that makes a leaked token easy to recognise (and to scan for in repositories).
pub const PREFIX: &str = "mtj_";

/// A new random token.
pub fn generate() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random number generator failed".to_string())?;
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The stored form of a token.
pub fn hash(token: &str) -> String {
    pki::sha256_hex(token.trim().as_bytes())
}

/// Hex digits of the hash that name a token in `token list` and `DELETE /api/v1/tokens/ID`
/// (and in `audit verify`'s messages): 48 bits, so two tokens of one CA practically never
/// share an ID, and still nothing that helps to redeem it.
pub const ID_LEN: usize = 12;

/// A token's ID: the first [`ID_LEN`] hex digits of its hash.
pub fn id(hash: &str) -> &str {
    &hash[..hash.len().min(ID_LEN)]
}

/// A token ID as given by an operator: [`ID_LEN`] to 64 hex digits of the token's hash (any
/// case), lowercased.
pub fn parse_id(s: &str) -> Result<String, String> {
    let s = s.trim();
    if (ID_LEN..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "{s:?} is not a token ID: expected {ID_LEN} to 64 hex digits of the token's hash, \
             as `mtls-ca token list` and GET /api/v1/tokens show them"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_stable() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 43);
        assert_eq!(hash(&a), hash(&format!("{a}\n")));
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn ids_are_hash_prefixes_and_only_hex_of_the_right_length_parses() {
        let h = hash("mtj_x");
        assert_eq!(id(&h), &h[..ID_LEN]);
        assert_eq!(parse_id(&h[..ID_LEN].to_uppercase()).unwrap(), &h[..ID_LEN]);
        assert_eq!(parse_id(&h).unwrap(), h);
        for bad in [
            "",
            "abc",
            &h[..ID_LEN - 1],
            "zzzzzzzzzzzz",
            &format!("{h}0"),
            "mtj_abcdefghij",
        ] {
            let err = parse_id(bad).unwrap_err();
            assert!(err.contains("is not a token ID"), "{bad}: {err}");
        }
    }
}
