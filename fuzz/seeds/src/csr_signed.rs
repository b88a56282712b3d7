//! Seeds of `csr_signed`: the attributes field (`[0]` content, where the extensionRequest
//! lives) of every CSR the `csr` seeds hold (`from-<csr seed>`), plus a challengePassword
//! attribute and none.

use crate::csrs::Csrs;
use crate::out::Corpus;

/// The elements of a DER body (one-byte tags, definite lengths).
fn elements(mut body: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while let [tag, first, rest @ ..] = body {
        let (len, rest) = if *first < 0x80 {
            (usize::from(*first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            let len = rest[..n]
                .iter()
                .fold(0usize, |a, b| (a << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        out.push((*tag, &rest[..len]));
        body = &rest[len..];
    }
    out
}

/// The content of the `[0]` attributes of a DER CSR.
fn attributes(csr: &[u8]) -> Vec<u8> {
    let (_, body) = elements(csr)[0];
    let (_, info) = elements(body)[0];
    let fields = elements(info);
    let (tag, attrs) = fields[fields.len() - 1];
    assert_eq!(tag, 0xa0, "the CSR's last info field is not [0] attributes");
    attrs.to_vec()
}

pub fn write(corpus: &Corpus, csrs: &Csrs) {
    for (name, der) in &csrs.all {
        corpus.write(&format!("from-{name}.attrs"), attributes(der));
    }
    // challengePassword (1.2.840.113549.1.9.7) "secret", an attribute pki ignores.
    corpus.write(
        "challenge-password.attrs",
        [
            &[
                0x30, 0x17, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07,
            ][..],
            &[0x31, 0x0a, 0x0c, 0x08],
            b"secret!!",
        ]
        .concat(),
    );
    corpus.write("none.attrs", b"");
}
