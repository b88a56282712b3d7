//! P-521 key shares: valid uncompressed points from aws-lc-rs (through `pki::tls_p521`) and
//! from OpenSSL, and the encodings TLS 1.3 forbids or no curve point has (compressed, hybrid,
//! infinity, off the curve, coordinates not below p, wrong lengths).

use crate::openssl::OpenSsl;
use crate::out::Corpus;

/// The uncompressed point of the public key in `key` (a PEM private key), via DER SPKI.
fn openssl_point(ssl: &OpenSsl, key: &str, form: &str) -> Vec<u8> {
    let spki = ssl.run(&[
        "ec",
        "-in",
        key,
        "-pubout",
        "-outform",
        "DER",
        "-conv_form",
        form,
    ]);
    let len = if form == "compressed" { 67 } else { 133 };
    spki[spki.len() - len..].to_vec()
}

pub fn write(corpus: &Corpus, ssl: &OpenSsl) {
    let ours: Vec<Vec<u8>> = (0..3)
        .map(|_| pki::tls_p521::SECP521R1.start().unwrap().pub_key().to_vec())
        .collect();
    for (i, point) in ours.iter().enumerate() {
        corpus.write(&format!("ours-{i}.bin"), point);
    }
    ssl.key("p521.key", "ec:P-521");
    let point = openssl_point(ssl, "p521.key", "uncompressed");
    assert!(pki::tls_p521::is_uncompressed_p521_point(&point));
    corpus.write("openssl-uncompressed.bin", &point);
    corpus.write(
        "refused-openssl-compressed.bin",
        openssl_point(ssl, "p521.key", "compressed"),
    );

    let mut hybrid = point.clone();
    hybrid[0] = 0x06 | (point[132] & 1);
    corpus.write("refused-hybrid.bin", hybrid);
    corpus.write("refused-infinity.bin", [0x00]);
    let mut off_curve = point.clone();
    off_curve[132] ^= 0x01;
    corpus.write("refused-off-curve.bin", off_curve);
    // p = 2^521 - 1 as a 66-byte coordinate: x = p is not a field element.
    let mut p = vec![0x01];
    p.extend(std::iter::repeat_n(0xff, 65));
    let mut x_is_p = vec![0x04];
    x_is_p.extend(&p);
    x_is_p.extend(&point[67..]);
    corpus.write("refused-x-equals-p.bin", x_is_p);
    let mut zero = vec![0x04];
    zero.extend([0u8; 132]);
    corpus.write("refused-zero-coordinates.bin", zero);
    corpus.write("refused-short.bin", &point[..132]);
    let mut long = point.clone();
    long.push(0);
    corpus.write("refused-long.bin", long);
    corpus.write("refused-empty.bin", b"");
}
