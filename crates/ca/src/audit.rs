//! The audit chain: each entry's hash covers its own fields and the previous entry's hash, so
//! editing, deleting or reordering any row breaks every hash after it.

/// Hash of the empty chain, the `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Hash of one entry. Fields are length-prefixed so no two different entries encode alike.
pub fn entry_hash(prev_hash: &str, seq: i64, at: &str, event: &str, detail: &str) -> String {
    let mut buf = Vec::with_capacity(128 + detail.len());
    for field in [prev_hash, &seq.to_string(), at, event, detail] {
        buf.extend_from_slice(&(field.len() as u64).to_be_bytes());
        buf.extend_from_slice(field.as_bytes());
    }
    pki::sha256_hex(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_field() {
        let base = entry_hash(GENESIS, 1, "t", "issue", "{}");
        assert_ne!(base, entry_hash(GENESIS, 2, "t", "issue", "{}"));
        assert_ne!(base, entry_hash(GENESIS, 1, "u", "issue", "{}"));
        assert_ne!(base, entry_hash(GENESIS, 1, "t", "renew", "{}"));
        assert_ne!(base, entry_hash(GENESIS, 1, "t", "issue", "{ }"));
        assert_ne!(
            entry_hash("a", 1, "bc", "d", ""),
            entry_hash("ab", 1, "c", "d", "")
        );
    }
}
