//! Certificate serial numbers: random, positive, 20 octets (RFC 5280's maximum).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::error::{PkiError, Result};

/// 20 random octets with the top bit cleared (so the INTEGER is positive) and the next bit set
/// (so the encoding is always exactly 20 octets): 158 bits of entropy, well over the 128 required.
pub fn random_serial() -> Result<[u8; 20]> {
    let mut bytes = [0u8; 20];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Sign("the system random number generator failed".into()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(bytes)
}

/// Normalises a serial given by a user: hex with optional colons or `0x`, any case, leading
/// zero octets dropped. Returns lowercase hex without separators.
pub fn normalize_hex(input: &str) -> Result<String> {
    let cleaned: String = input
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if cleaned.is_empty() || !cleaned.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(PkiError::Policy(format!(
            "serial {input:?} is not hexadecimal (expected e.g. 4f:1a:... or 4f1a...)"
        )));
    }
    let padded = if cleaned.len() % 2 == 1 {
        format!("0{cleaned}")
    } else {
        cleaned
    };
    let bytes =
        hex::decode(&padded).map_err(|e| PkiError::Policy(format!("serial {input:?}: {e}")))?;
    Ok(hex::encode(strip_leading_zeros(&bytes)))
}

/// Serial content octets as stored (DER INTEGER content without redundant leading zeros).
pub fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[first..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_distinct_and_full_length() {
        let a = random_serial().unwrap();
        let b = random_serial().unwrap();
        assert_ne!(a, b);
        assert!(a[0] & 0x80 == 0 && a[0] & 0x40 != 0);
    }

    #[test]
    fn normalises_user_input() {
        assert_eq!(normalize_hex("0x4F:1A").unwrap(), "4f1a");
        assert_eq!(normalize_hex("00:4f").unwrap(), "4f");
        assert_eq!(normalize_hex("abc").unwrap(), "0abc");
        assert!(normalize_hex("xyz").is_err());
        assert!(normalize_hex("").is_err());
    }
}
