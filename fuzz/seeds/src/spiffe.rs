//! SPIFFE IDs and trust domains, valid and invalid (one seed per rule of `pki::spiffe`).

use crate::out::Corpus;

const SEEDS: &[(&str, &str)] = &[
    ("valid-service", "spiffe://mesh.local/service/api"),
    ("valid-chars", "spiffe://mesh.local/service/api-v1_x.y"),
    ("valid-short", "spiffe://a/B"),
    ("valid-ca", "spiffe://mesh.local/ca"),
    ("valid-below-ca", "spiffe://mesh.local/ca/replica-1"),
    ("valid-cart", "spiffe://mesh.local/cart"),
    (
        "valid-deep",
        "spiffe://prod.example-1_x/ns/default/sa/payment-worker",
    ),
    ("td-mesh", "mesh.local"),
    ("td-chars", "a-b_c.9"),
    ("refused-scheme", "https://mesh.local/x"),
    ("refused-scheme-case", "SPIFFE://mesh.local/x"),
    ("refused-scheme-slash", "spiffe:/mesh.local/x"),
    ("refused-td-case", "spiffe://Mesh.local/x"),
    ("refused-td-empty", "spiffe:///x"),
    ("refused-td-port", "spiffe://mesh.local:8443/x"),
    ("refused-td-userinfo", "spiffe://user@mesh.local/x"),
    ("refused-td-space", "spiffe://me sh/x"),
    ("refused-td-unicode", "spiffe://m\u{e9}sh/x"),
    ("refused-path-empty", "spiffe://mesh.local"),
    ("refused-path-slash", "spiffe://mesh.local/"),
    ("refused-path-double", "spiffe://mesh.local/a//b"),
    ("refused-path-trailing", "spiffe://mesh.local/a/"),
    ("refused-path-dot", "spiffe://mesh.local/a/./b"),
    ("refused-path-dotdot", "spiffe://mesh.local/a/../b"),
    ("refused-path-space", "spiffe://mesh.local/a b"),
    ("refused-percent", "spiffe://mesh.local/a%20b"),
    ("refused-query", "spiffe://mesh.local/a?x=1"),
    ("refused-fragment", "spiffe://mesh.local/a#f"),
    ("refused-nul", "spiffe://mesh.local/a\0b"),
    ("refused-empty", ""),
];

pub fn write(corpus: &Corpus) {
    for (name, id) in SEEDS {
        corpus.write(&format!("{name}.txt"), id);
    }
    // At the length limits: the longest trust domain, the longest ID, one byte over.
    corpus.write(
        "limit-td-255.txt",
        format!("spiffe://{}/x", "a".repeat(255)),
    );
    let max = format!("spiffe://mesh.local/{}", "a".repeat(2048 - 20));
    corpus.write("limit-id-2048.txt", &max);
    corpus.write("refused-limit-id-2049.txt", format!("{max}a"));
}
