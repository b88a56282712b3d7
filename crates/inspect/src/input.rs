//! Reading inputs: files or stdin, PEM (any number of blocks) or DER, with certificates, CSRs
//! and CRLs told apart by their PEM label or, for DER, by which structure parses; or a SPIFFE
//! bundle (a JSON JWK set, read by `pki::spiffe_bundle`).

use std::fmt;
use std::io::Read;

use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

/// Inputs larger than this are refused before parsing (a certificate bundle is kilobytes).
pub const MAX_INPUT_BYTES: usize = 16 << 20;

/// What an object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An X.509 certificate.
    Certificate,
    /// A PKCS#10 certificate signing request.
    Csr,
    /// An X.509 certificate revocation list.
    Crl,
    /// An OCSP response (RFC 6960), as `openssl ocsp -respout` writes it.
    #[serde(rename = "ocsp_response")]
    OcspResponse,
    /// A SPIFFE bundle: the JWK set of `GET /api/v1/bundle/spiffe` and of federation.
    #[serde(rename = "spiffe_bundle")]
    SpiffeBundle,
}

impl Kind {
    /// The PEM label this kind is written with (`CERTIFICATE`, ...). A SPIFFE bundle is JSON,
    /// never PEM: its X.509 authorities are written as `CERTIFICATE` blocks.
    pub fn pem_label(self) -> &'static str {
        match self {
            Kind::Certificate | Kind::SpiffeBundle => "CERTIFICATE",
            Kind::Csr => "CERTIFICATE REQUEST",
            Kind::Crl => "X509 CRL",
            Kind::OcspResponse => "OCSP RESPONSE",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Certificate => "certificate",
            Kind::Csr => "certificate request",
            Kind::Crl => "CRL",
            Kind::OcspResponse => "OCSP response",
            Kind::SpiffeBundle => "SPIFFE bundle",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

/// One certificate, CSR or CRL found in an input.
#[derive(Clone, Debug)]
pub struct Object {
    /// What it is.
    pub kind: Kind,
    /// Its DER encoding; for a SPIFFE bundle, its JSON text.
    pub der: Vec<u8>,
    /// The file name, or `-` for stdin.
    pub source: String,
    /// 1-based position among the objects of the source.
    pub index: usize,
}

/// Everything found in one input.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    /// The objects, in input order.
    pub objects: Vec<Object>,
    /// Blocks that were skipped on purpose (private keys, public keys, parameters).
    pub notes: Vec<String>,
}

/// Reads a file, or stdin for `-`, refusing inputs over [`MAX_INPUT_BYTES`].
pub fn read_source(path: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let limit = (MAX_INPUT_BYTES + 1) as u64;
    if path == "-" {
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .with_context(|| format!("cannot read {path}"))?;
    }
    if bytes.len() > MAX_INPUT_BYTES {
        bail!(
            "{}: larger than {} MiB; this is not a certificate, CSR or CRL file",
            display_source(path),
            MAX_INPUT_BYTES >> 20
        );
    }
    Ok(bytes)
}

/// Reads and parses one input.
pub fn load(path: &str) -> Result<Parsed> {
    let bytes = read_source(path)?;
    parse(path, &bytes)
}

/// Reads an input that must hold certificates only (roots, intermediates, a chain).
pub fn load_certificates(path: &str, role: &str) -> Result<Vec<Vec<u8>>> {
    let parsed = load(path).with_context(|| format!("reading the {role}"))?;
    let mut certs = Vec::new();
    for obj in parsed.objects {
        if obj.kind != Kind::Certificate {
            bail!(
                "{}: object #{} is a {}, but the {role} must be certificates",
                display_source(path),
                obj.index,
                obj.kind
            );
        }
        certs.push(obj.der);
    }
    Ok(certs)
}

/// Reads the trust anchors of `verify --roots`: certificates, or a SPIFFE bundle whose
/// `x509-svid` keys are taken as `mtls-ca` federation and the services take them
/// (`pki::spiffe_bundle::SpiffeBundle::parse`: a bundle they refuse is refused here too).
pub fn load_trust_anchors(path: &str) -> Result<Vec<Vec<u8>>> {
    let parsed = load(path).context("reading the roots")?;
    let mut certs = Vec::new();
    for obj in parsed.objects {
        match obj.kind {
            Kind::Certificate => certs.push(obj.der),
            Kind::SpiffeBundle => {
                let bundle = pki::spiffe_bundle::SpiffeBundle::parse(&obj.der)
                    .map_err(|e| anyhow!("{}: {e}", display_source(path)))?;
                certs.extend(bundle.x509_authorities);
            }
            kind => bail!(
                "{}: object #{} is a {kind}, but the roots must be certificates or a SPIFFE bundle",
                display_source(path),
                obj.index
            ),
        }
    }
    Ok(certs)
}

fn display_source(path: &str) -> &str {
    if path == "-" {
        "<stdin>"
    } else {
        path
    }
}

/// Finds every certificate, CSR and CRL in `bytes` (PEM or DER), or the SPIFFE bundle.
pub fn parse(source: &str, bytes: &[u8]) -> Result<Parsed> {
    let name = display_source(source);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        bail!("{name}: the input is empty");
    }
    // JSON starts with `{` (after blanks); neither PEM nor DER (0x30) does.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return match pki::spiffe_bundle::BundleDocument::read(bytes) {
            Ok(_) => Ok(Parsed {
                objects: vec![object(Kind::SpiffeBundle, bytes, source, 1)],
                notes: Vec::new(),
            }),
            Err(e) => Err(anyhow!("{name}: JSON input is {e}")),
        };
    }
    // DER first: a DER object may hold "-----BEGIN " in one of its strings (a subject, a URI),
    // and must not be read as PEM text because of it. PEM text never parses as DER.
    let der = parse_der(source, bytes).map(|obj| Parsed {
        objects: vec![obj],
        notes: Vec::new(),
    });
    let parsed = if der.is_err() && contains(bytes, b"-----BEGIN ") {
        parse_pem(source, bytes)
    } else {
        der
    };
    parsed.map_err(|e| anyhow!("{name}: {e}"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A DER object: a certificate, a CRL or a CSR, whichever parses completely.
fn parse_der(source: &str, der: &[u8]) -> std::result::Result<Object, String> {
    if der.first() != Some(&0x30) {
        return Err(format!(
            "neither PEM (no -----BEGIN line) nor DER (DER starts with byte 0x30, this input with 0x{:02x})",
            der.first().copied().unwrap_or_default()
        ));
    }
    let as_cert = match X509Certificate::from_der(der) {
        Ok(([], _)) => return Ok(object(Kind::Certificate, der, source, 1)),
        Ok((rest, _)) => format!("{} trailing bytes after the certificate", rest.len()),
        Err(e) => parse_error(&e),
    };
    if let Ok(([], _)) = CertificateRevocationList::from_der(der) {
        return Ok(object(Kind::Crl, der, source, 1));
    }
    if let Ok(([], _)) = X509CertificationRequest::from_der(der) {
        return Ok(object(Kind::Csr, der, source, 1));
    }
    if pki::ocsp::read_response(der).is_ok() {
        return Ok(object(Kind::OcspResponse, der, source, 1));
    }
    Err(format!(
        "DER input is not a certificate, CSR, CRL or OCSP response ({})",
        der_problem(der).unwrap_or_else(|| format!("as a certificate: {as_cert}"))
    ))
}

/// x509-parser's errors in words: its `Display` shows parser internals like `NomError(Eof)`.
fn parse_error(e: &impl fmt::Display) -> String {
    let raw = e.to_string();
    let detail = raw.strip_prefix("Parsing Error: ").unwrap_or(&raw);
    if detail.contains("Eof") || detail.contains("Incomplete") {
        "the DER data ends too early".to_string()
    } else if detail.contains("Tag") {
        format!("an ASN.1 element has an unexpected type ({detail})")
    } else {
        format!("malformed DER ({detail})")
    }
}

/// Says what is wrong with the outer DER element, when that is the problem.
fn der_problem(der: &[u8]) -> Option<String> {
    let len_byte = *der.get(1)?;
    let (header, declared) = if len_byte < 0x80 {
        (2, usize::from(len_byte))
    } else {
        let n = usize::from(len_byte & 0x7f);
        if n == 0 || n > 4 {
            return Some("the outer SEQUENCE has an invalid length".into());
        }
        let bytes = der.get(2..2 + n)?;
        let declared = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (2 + n, declared)
    };
    let present = der.len().saturating_sub(header);
    if declared > present {
        Some(format!(
            "truncated: the outer SEQUENCE declares {declared} bytes but {present} follow"
        ))
    } else if declared < present {
        Some(format!(
            "{} bytes follow the outer SEQUENCE",
            present - declared
        ))
    } else {
        None
    }
}

fn object(kind: Kind, der: &[u8], source: &str, index: usize) -> Object {
    Object {
        kind,
        der: der.to_vec(),
        source: source.to_string(),
        index,
    }
}

/// One `-----BEGIN X-----` ... `-----END X-----` block.
struct Block {
    label: String,
    line: usize,
    der: Vec<u8>,
}

/// Splits PEM text into blocks, with errors that give the block's label and line.
fn pem_blocks(bytes: &[u8]) -> std::result::Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, usize, String)> = None;
    for (i, raw_line) in bytes.split(|b| *b == b'\n').enumerate() {
        let lineno = i + 1;
        let line = String::from_utf8_lossy(raw_line);
        let line = line.trim();
        if let Some(label) = marker(line, "-----BEGIN ") {
            if let Some((open_label, start, _)) = &open {
                return Err(format!(
                    "the {open_label} block at line {start} has no END line before the next BEGIN at line {lineno}"
                ));
            }
            open = Some((label.to_string(), lineno, String::new()));
            continue;
        }
        let Some((label, start, body)) = open.as_mut() else {
            continue; // text outside blocks (e.g. `openssl x509 -text` output) is ignored
        };
        if let Some(end_label) = marker(line, "-----END ") {
            if end_label != label {
                return Err(format!(
                    "the {label} block at line {start} ends with END {end_label} at line {lineno}"
                ));
            }
            let der = base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .map_err(|e| {
                    format!("the {label} block at line {start} is not valid base64: {e}")
                })?;
            if der.is_empty() {
                return Err(format!("the {label} block at line {start} is empty"));
            }
            blocks.push(Block {
                label: label.clone(),
                line: *start,
                der,
            });
            open = None;
        } else if line.contains(':') {
            // RFC 1421 headers (Proc-Type, DEK-Info) of encrypted keys: not base64.
        } else {
            body.push_str(line);
        }
    }
    if let Some((label, start, _)) = open {
        return Err(format!(
            "the {label} block at line {start} has no -----END {label}----- line (truncated?)"
        ));
    }
    Ok(blocks)
}

fn marker<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    line.strip_prefix(prefix)?.strip_suffix("-----")
}

fn parse_pem(source: &str, bytes: &[u8]) -> std::result::Result<Parsed, String> {
    let mut parsed = Parsed::default();
    for block in pem_blocks(bytes)? {
        let kind = match block.label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => Kind::Certificate,
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => Kind::Csr,
            "X509 CRL" => Kind::Crl,
            "OCSP RESPONSE" => Kind::OcspResponse,
            label if label.contains("PRIVATE KEY") => {
                parsed.notes.push(format!(
                    "skipped the {label} block at line {}: private keys are never shown",
                    block.line
                ));
                continue;
            }
            label => {
                parsed
                    .notes
                    .push(format!("skipped the {label} block at line {}", block.line));
                continue;
            }
        };
        let what = format!("the {} block at line {}", block.label, block.line);
        let der = check_der(kind, &block.der, block.label == "TRUSTED CERTIFICATE")
            .map_err(|e| format!("{what} is not a valid {kind}: {e}"))?;
        let index = parsed.objects.len() + 1;
        parsed.objects.push(object(kind, der, source, index));
    }
    if parsed.objects.is_empty() {
        let found = if parsed.notes.is_empty() {
            "no PEM blocks".to_string()
        } else {
            parsed.notes.join("; ")
        };
        return Err(format!(
            "no CERTIFICATE, CERTIFICATE REQUEST or X509 CRL block found ({found})"
        ));
    }
    Ok(parsed)
}

/// Checks that `der` parses as `kind`; returns the object's own bytes (OpenSSL's TRUSTED
/// CERTIFICATE appends trust settings after the certificate, which are dropped).
fn check_der(kind: Kind, der: &[u8], allow_trailing: bool) -> std::result::Result<&[u8], String> {
    // x509-parser reads the outer tag's number only (0x10, 0x70 and 0xf0 pass as a SEQUENCE);
    // refuse here what `parse_der` refuses, so PEM and DER input agree (found by fuzzing).
    if der.first() != Some(&0x30) {
        return Err(format!(
            "its DER does not start with a SEQUENCE (byte 0x30) but with 0x{:02x}",
            der.first().copied().unwrap_or_default()
        ));
    }
    let rest_len = match kind {
        Kind::Certificate => X509Certificate::from_der(der)
            .map(|(rest, _)| rest.len())
            .map_err(|e| parse_error(&e))?,
        Kind::Csr => X509CertificationRequest::from_der(der)
            .map(|(rest, _)| rest.len())
            .map_err(|e| parse_error(&e))?,
        Kind::Crl => CertificateRevocationList::from_der(der)
            .map(|(rest, _)| rest.len())
            .map_err(|e| parse_error(&e))?,
        // der's decoder refuses trailing bytes itself.
        Kind::OcspResponse => pki::ocsp::read_response(der).map(|_| 0)?,
        Kind::SpiffeBundle => return Err("a SPIFFE bundle is JSON, not PEM".into()),
    };
    if rest_len > 0 && !allow_trailing {
        return Err(format!("{rest_len} trailing bytes"));
    }
    Ok(&der[..der.len() - rest_len])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "-----BEGIN FOO-----\nAAEC\n-----END FOO-----\n";

    #[test]
    fn empty_and_garbage_are_clear_errors() {
        let e = parse("x.pem", b"").unwrap_err().to_string();
        assert_eq!(e, "x.pem: the input is empty");
        let e = parse("-", b" \n").unwrap_err().to_string();
        assert_eq!(e, "<stdin>: the input is empty");
        let e = parse("x", b"hello").unwrap_err().to_string();
        assert!(e.contains("neither PEM"), "{e}");
        let e = parse("x", b"\x30\x03\x02\x01\x01").unwrap_err().to_string();
        assert!(
            e.contains("DER input is not a certificate, CSR, CRL or OCSP response"),
            "{e}"
        );
    }

    /// A DER certificate whose subject holds "-----BEGIN " was read as PEM and refused ("no
    /// PEM blocks"). Seen while writing the fuzz target `inspect_input`, whose round trip
    /// (every object parses again from its own DER) states the rule this test checks.
    #[test]
    fn der_holding_a_pem_marker_is_still_der() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "-----BEGIN CERTIFICATE-----");
        params.distinguished_name = dn;
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let parsed = parse("x.der", &der).unwrap();
        assert_eq!(parsed.objects.len(), 1);
        assert_eq!(parsed.objects[0].kind, Kind::Certificate);
        assert_eq!(parsed.objects[0].der, der);
    }

    /// Found by the fuzz target `inspect_input` (docs/fuzzing.md): a CSR whose outer tag is
    /// 0x10 (SEQUENCE's number without the constructed bit) was shown from PEM, though the same
    /// bytes as DER are refused.
    #[test]
    fn a_pem_block_is_refused_unless_its_der_starts_with_a_sequence() {
        use base64::Engine as _;
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap();
        for tag in [0x10, 0x70, 0xf0] {
            let mut der = csr.der().to_vec();
            der[0] = tag;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
            let pem = format!(
                "-----BEGIN CERTIFICATE REQUEST-----\n{b64}\n-----END CERTIFICATE REQUEST-----\n"
            );
            let e = parse("x", pem.as_bytes()).unwrap_err().to_string();
            assert!(
                e.contains("does not start with a SEQUENCE (byte 0x30)"),
                "0x{tag:02x}: {e}"
            );
            assert!(parse("x", &der).is_err(), "0x{tag:02x} as DER");
        }
    }

    #[test]
    fn pem_framing_errors_name_the_block() {
        let e = parse("x", b"-----BEGIN CERTIFICATE-----\nMIIB\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "x: the CERTIFICATE block at line 1 has no -----END CERTIFICATE----- line (truncated?)"
        );
        let e = parse(
            "x",
            b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END X509 CRL-----\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ends with END X509 CRL at line 3"), "{e}");
        let e = parse(
            "x",
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not valid base64"), "{e}");
        let e = parse(
            "x",
            b"-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("x: the CERTIFICATE block at line 1 is not a valid certificate"),
            "{e}"
        );
        let e = parse("x", ONE.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            e,
            "x: no CERTIFICATE, CERTIFICATE REQUEST or X509 CRL block found (skipped the FOO block at line 1)"
        );
    }
}
