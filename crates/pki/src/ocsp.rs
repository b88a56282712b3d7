//! OCSP (RFC 6960): the CA's signed answer about certificates it issued.
//!
//! [`read_request`] takes an OCSPRequest apart and checks it: every CertID must name this CA
//! (issuer name and key hashed with SHA-1 or SHA-256), at most [`MAX_REQUESTS`] of them, and a
//! nonce of 1 to 32 octets (RFC 8954). The caller looks each serial up in its store and
//! [`sign_response`] signs the answer, as the [`Signer`] says: with the CA key itself (RFC 6960
//! §4.2.2.2: the issuer may answer for its own certificates), so an OCSP answer carries exactly
//! the authority of the CA's CRL; or with a [`DelegatedResponder`] the CA issued (`responder`),
//! whose certificate goes along in the answer.
//! The structures are RustCrypto's `x509-ocsp`; signing stays on key pairs this process made.

use aws_lc_rs::digest;
use const_oid09::ObjectIdentifier;
use der07::asn1::{BitString, GeneralizedTime, OctetString};
use der07::{Decode, Encode};
use rcgen::SigningKey;
use spki07::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert02::ext::pkix::CrlReason;
use x509_cert02::ext::Extension;
use x509_cert02::serial_number::SerialNumber;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    ResponderId, ResponseData, RevokedInfo, SingleResponse, Version,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::curve::Curve;
use crate::root::CaMaterial;

mod get_path;
mod responder;

pub use get_path::{decode_get_path, MAX_GET_REQUEST};
pub use responder::{DelegatedResponder, Signer};

/// CertIDs answered in one request; more is refused as malformed (an answer is signed once, but
/// each CertID is a store lookup).
pub const MAX_REQUESTS: usize = 16;
/// The longest nonce accepted (RFC 8954 §2.1).
pub const MAX_NONCE: usize = 32;

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");

/// Why a request gets no signed answer; each maps to one OCSPResponseStatus.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OcspError {
    /// The bytes are not an OCSPRequest this responder accepts (`malformedRequest`).
    #[error("malformed OCSP request: {0}")]
    Malformed(String),
    /// A CertID names another issuer, or hashes with an algorithm other than SHA-1/SHA-256
    /// (`unauthorized`: this responder answers only for its own CA).
    #[error("not this CA's certificate: {0}")]
    NotOurs(String),
    /// Signing the answer failed (`internalError`).
    #[error("signing the OCSP response: {0}")]
    Sign(String),
}

impl OcspError {
    /// The DER OCSPResponse that carries this error status and no answer.
    pub fn response_der(&self) -> Vec<u8> {
        let response = match self {
            OcspError::Malformed(_) => OcspResponse::malformed_request(),
            OcspError::NotOurs(_) => OcspResponse::unauthorized(),
            OcspError::Sign(_) => OcspResponse::internal_error(),
        };
        // An error response is three fixed octets plus the status; encoding cannot fail.
        response.to_der().unwrap_or_default()
    }

    /// A stable code for counters and logs: `malformed`, `unauthorized`, `internal`.
    pub fn code(&self) -> &'static str {
        match self {
            OcspError::Malformed(_) => "malformed",
            OcspError::NotOurs(_) => "unauthorized",
            OcspError::Sign(_) => "internal",
        }
    }
}

/// Where clients ask this CA about a certificate: an `http://` or `https://` URL, written into
/// the authorityInfoAccess extension of every leaf (`mtls-ca --ocsp-url`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponderUrl(String);

impl ResponderUrl {
    /// Accepts an absolute `http://` or `https://` URL of printable ASCII (an IA5String in the
    /// certificate), at most 1,024 characters.
    pub fn parse(s: &str) -> Result<ResponderUrl, String> {
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .ok_or_else(|| format!("{s:?} is not an http:// or https:// URL"))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(format!("{s:?} names no host"));
        }
        if s.len() > 1024 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{s:?} must be at most 1024 printable ASCII characters, without spaces                  (percent-encode anything else)"
            ));
        }
        Ok(ResponderUrl(s.to_string()))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The authorityInfoAccess extension (RFC 5280 §4.2.2.1) naming this URL as the OCSP
    /// responder: `SEQUENCE { SEQUENCE { id-ad-ocsp, [6] IA5String } }`, non-critical.
    pub fn aia_extension(&self) -> Result<rcgen::CustomExtension, String> {
        use x509_cert02::ext::pkix::name::GeneralName;
        use x509_cert02::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};
        let url = der07::asn1::Ia5String::new(&self.0).map_err(|e| e.to_string())?;
        let aia = AuthorityInfoAccessSyntax(vec![AccessDescription {
            access_method: ID_AD_OCSP,
            access_location: GeneralName::UniformResourceIdentifier(url),
        }]);
        let der = aia.to_der().map_err(|e| e.to_string())?;
        Ok(rcgen::CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 5, 5, 7, 1, 1],
            der,
        ))
    }
}

/// What an OCSPResponse says, read without checking its signature (`mtls-inspect show`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseSummary {
    /// The responseStatus in RFC 6960's spelling (`successful`, `malformedRequest`,
    /// `internalError`, `tryLater`, `sigRequired`, `unauthorized`).
    pub status: &'static str,
    /// The signed answer, present when the status is `successful`.
    pub answer: Option<SignedAnswer>,
}

/// The BasicOCSPResponse of a successful answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedAnswer {
    /// `by key hash AB:CD:…` (SHA-1 of the responder's public key) or `by name CN=…`.
    pub responder: String,
    /// producedAt.
    pub produced_at: OffsetDateTime,
    /// The signature algorithm, dotted OID.
    pub signature_algorithm: String,
    /// The nonce echoed from the request, if any.
    pub nonce: Option<Vec<u8>>,
    /// Certificates sent along (a delegated responder's); 0 when the issuer signed.
    pub certificates: usize,
    /// The certificates sent along, described; the one whose key the responder ID names is
    /// the signer.
    pub signers: Vec<ResponderCert>,
    /// One per certificate asked about, in order.
    pub answers: Vec<SingleAnswer>,
}

/// A certificate sent along in an answer: a delegated responder's, as it presents itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponderCert {
    /// Subject, RFC 4514-style.
    pub subject: String,
    /// Issuer, RFC 4514-style.
    pub issuer: String,
    /// Serial, lowercase hex.
    pub serial_hex: String,
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
    /// Whether its extended key usage includes id-kp-OCSPSigning (RFC 6960 §4.2.2.2: clients
    /// refuse a delegated responder without it).
    pub ocsp_signing: bool,
    /// Whether it carries id-pkix-ocsp-nocheck.
    pub nocheck: bool,
    /// Whether its key is the one the responder ID names (it signed the answer).
    pub is_responder: bool,
}

/// The status of one certificate in an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleAnswer {
    /// Serial, lowercase hex without leading zero octets.
    pub serial_hex: String,
    /// How the CertID names the issuer: `SHA-1`, `SHA-256` or the OID.
    pub hash_algorithm: String,
    /// Good, revoked (time, reason) or unknown.
    pub state: CertState,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate, if given.
    pub next_update: Option<OffsetDateTime>,
}

/// Reads a DER OCSPResponse (no signature check: this describes, it does not trust).
pub fn read_response(der: &[u8]) -> Result<ResponseSummary, String> {
    use x509_ocsp::OcspResponseStatus as S;
    let response = OcspResponse::from_der(der).map_err(|e| e.to_string())?;
    let status = match response.response_status {
        S::Successful => "successful",
        S::MalformedRequest => "malformedRequest",
        S::InternalError => "internalError",
        S::TryLater => "tryLater",
        S::SigRequired => "sigRequired",
        S::Unauthorized => "unauthorized",
    };
    let Some(bytes) = response.response_bytes else {
        return Ok(ResponseSummary {
            status,
            answer: None,
        });
    };
    // An error status comes without responseBytes (RFC 6960 4.2.1); a signed answer under one
    // would be shown as statuses no client accepts (found by the fuzz target ocsp_response).
    if status != "successful" {
        return Err(format!(
            "the response status is {status} but it carries responseBytes, which only a \
             successful response has (RFC 6960 4.2.1)"
        ));
    }
    let basic_oid = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
    if bytes.response_type != basic_oid {
        return Err(format!(
            "response type {} is not id-pkix-ocsp-basic",
            bytes.response_type
        ));
    }
    let basic =
        BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(|e| e.to_string())?;
    let data = &basic.tbs_response_data;
    let responder = match &data.responder_id {
        ResponderId::ByKey(k) => format!("by key hash {}", colon_hex(k.as_bytes())),
        ResponderId::ByName(n) => format!("by name {n}"),
    };
    let mut signers = Vec::new();
    for cert in basic.certs.iter().flatten() {
        let der = cert.to_der().map_err(|e| e.to_string())?;
        signers.push(describe_signer(&der, &data.responder_id)?);
    }
    let mut answers = Vec::with_capacity(data.responses.len());
    for single in &data.responses {
        let hash_algorithm = match single.cert_id.hash_algorithm.oid {
            oid if oid == SHA1 => "SHA-1".to_string(),
            oid if oid == SHA256 => "SHA-256".to_string(),
            oid => oid.to_string(),
        };
        let state = match &single.cert_status {
            CertStatus::Good(_) => CertState::Good,
            CertStatus::Unknown(_) => CertState::Unknown,
            CertStatus::Revoked(info) => CertState::Revoked {
                at: from_ocsp_time(&info.revocation_time)?,
                reason: info.revocation_reason.map(|r| {
                    let code = r as u8;
                    crate::crl::reason_name(code)
                        .map_or_else(|| format!("reason {code}"), str::to_string)
                }),
            },
        };
        answers.push(SingleAnswer {
            serial_hex: serial_hex(&single.cert_id.serial_number),
            hash_algorithm,
            state,
            this_update: from_ocsp_time(&single.this_update)?,
            next_update: single
                .next_update
                .as_ref()
                .map(from_ocsp_time)
                .transpose()?,
        });
    }
    Ok(ResponseSummary {
        status,
        answer: Some(SignedAnswer {
            responder,
            produced_at: from_ocsp_time(&data.produced_at)?,
            signature_algorithm: basic.signature_algorithm.oid.to_string(),
            nonce: data.nonce().map(|n| n.0.as_bytes().to_vec()),
            certificates: basic.certs.as_ref().map_or(0, Vec::len),
            signers,
            answers,
        }),
    })
}

fn describe_signer(der: &[u8], id: &ResponderId) -> Result<ResponderCert, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let tbs = &cert.tbs_certificate;
    let ocsp_signing = cert
        .extended_key_usage()
        .ok()
        .flatten()
        .is_some_and(|e| e.value.ocsp_signing);
    let nocheck = tbs
        .extensions()
        .iter()
        .any(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.48.1.5");
    let is_responder = match id {
        ResponderId::ByKey(k) => {
            let key = &tbs.subject_pki.subject_public_key.data;
            digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, key).as_ref() == k.as_bytes()
        }
        ResponderId::ByName(n) => n.to_der().ok().as_deref() == Some(tbs.subject.as_raw()),
    };
    Ok(ResponderCert {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        serial_hex: hex::encode(tbs.raw_serial()),
        not_before: tbs.validity.not_before.to_datetime(),
        not_after: tbs.validity.not_after.to_datetime(),
        ocsp_signing,
        nocheck,
        is_responder,
    })
}

fn from_ocsp_time(t: &OcspGeneralizedTime) -> Result<OffsetDateTime, String> {
    let secs = i64::try_from(t.0.to_unix_duration().as_secs()).map_err(|e| e.to_string())?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| e.to_string())
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The DER OCSPResponse `tryLater`: the responder cannot answer now (its store is unreachable).
pub fn try_later_response() -> Vec<u8> {
    // A fixed four-octet structure; encoding cannot fail.
    OcspResponse::try_later().to_der().unwrap_or_default()
}

/// What a checked request asks.
#[derive(Clone, Debug)]
pub struct OcspQuery {
    cert_ids: Vec<CertId>,
    serials: Vec<String>,
    nonce: Option<Vec<u8>>,
}

impl OcspQuery {
    /// The serials asked about, lowercase hex without leading zero octets (as the store keeps
    /// them), in request order.
    pub fn serials(&self) -> &[String] {
        &self.serials
    }

    /// The request's nonce, echoed in the answer.
    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_deref()
    }

    /// A key under which the signed answer may be cached: the CertIDs as asked. `None` when the
    /// request carries a nonce, whose answer must be signed afresh.
    pub fn cache_key(&self) -> Option<String> {
        if self.nonce.is_some() {
            return None;
        }
        let mut key = String::new();
        for id in &self.cert_ids {
            key.push_str(&hex::encode(id.to_der().ok()?));
            key.push(',');
        }
        Some(key)
    }
}

/// The status of one certificate, as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertState {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at `at`, for `reason` (an RFC 5280 reason name) if one was given.
    Revoked {
        /// When.
        at: OffsetDateTime,
        /// The reason name.
        reason: Option<String>,
    },
    /// This CA never issued a certificate with that serial.
    Unknown,
}

/// Reads and checks a DER OCSPRequest for `ca`.
pub fn read_request(ca: &CaMaterial, der: &[u8]) -> Result<OcspQuery, OcspError> {
    read_request_for(ca.cert_der(), der)
}

/// [`read_request`] for the CA certificate `issuer_der` alone: the check needs the issuer's
/// name and public key, never its private key (the fuzz target `ocsp_request` reads requests
/// for a fixed certificate this way).
pub fn read_request_for(issuer_der: &[u8], der: &[u8]) -> Result<OcspQuery, OcspError> {
    read_request_among(&[issuer_der], der).map(|(_, query)| query)
}

/// Reads and checks a DER OCSPRequest for one of the CA certificates `issuers_der` (during a
/// root rotation a CA answers for the leaves of its old root too): every CertID must name the
/// same one of them, since one answer is signed by one key and RFC 6960 §4.2.2.2 lets only the
/// issuer of a certificate (or its delegate) sign for it. Returns the index of that CA in
/// `issuers_der`. A CertID naming none of them, or two CertIDs naming two of them, get
/// [`OcspError::NotOurs`] (`unauthorized`: RFC 6960 §2.3, the server cannot answer
/// authoritatively).
pub fn read_request_among(
    issuers_der: &[&[u8]],
    der: &[u8],
) -> Result<(usize, OcspQuery), OcspError> {
    let request = OcspRequest::from_der(der).map_err(|e| OcspError::Malformed(e.to_string()))?;
    let tbs = request.tbs_request;
    if tbs.request_list.is_empty() {
        return Err(OcspError::Malformed(
            "the request lists no certificate".into(),
        ));
    }
    if tbs.request_list.len() > MAX_REQUESTS {
        return Err(OcspError::Malformed(format!(
            "the request lists {} certificates; at most {MAX_REQUESTS} are answered at once",
            tbs.request_list.len()
        )));
    }
    let issuers = issuers_der
        .iter()
        .map(|der| IssuerHashes::of(der))
        .collect::<Result<Vec<_>, _>>()?;
    let mut named: Option<usize> = None;
    let mut cert_ids = Vec::with_capacity(tbs.request_list.len());
    let mut serials = Vec::with_capacity(tbs.request_list.len());
    for one in tbs.request_list {
        let id = one.req_cert;
        let mut found = None;
        for (i, issuer) in issuers.iter().enumerate() {
            if issuer.names(&id)? {
                found = Some(i);
                break;
            }
        }
        let serial = serial_hex(&id.serial_number);
        match (found, named) {
            (None, _) => {
                return Err(OcspError::NotOurs(format!(
                    "serial {serial} names another issuer"
                )))
            }
            (Some(i), Some(first)) if i != first => {
                return Err(OcspError::NotOurs(format!(
                    "serial {serial} names another of this CA's roots than the request's first \
                     certificate; ask about each root's certificates in a request of its own"
                )))
            }
            (Some(i), _) => named = Some(i),
        }
        serials.push(serial);
        cert_ids.push(id);
    }
    let nonce = match tbs
        .request_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == NONCE)
    {
        None => None,
        Some(ext) => Some(nonce_value(ext)?),
    };
    Ok((
        named.unwrap_or_default(),
        OcspQuery {
            cert_ids,
            serials,
            nonce,
        },
    ))
}

/// Signs the answer to `query` as `signer`: one SingleResponse per CertID, in order, with
/// `states[i]` for `query.serials()[i]`, valid from `now` to `next_update` (cut to a delegated
/// responder's NotAfter).
pub fn sign_response(
    signer: Signer<'_>,
    query: &OcspQuery,
    states: &[CertState],
    now: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<Vec<u8>, OcspError> {
    if states.len() != query.cert_ids.len() {
        return Err(OcspError::Sign(format!(
            "{} states for {} certificates",
            states.len(),
            query.cert_ids.len()
        )));
    }
    let this_update = ocsp_time(now)?;
    let next_update = ocsp_time(signer.latest_next_update(next_update))?;
    let mut responses = Vec::with_capacity(states.len());
    for (id, state) in query.cert_ids.iter().zip(states) {
        let cert_status = match state {
            CertState::Good => CertStatus::good(),
            CertState::Unknown => CertStatus::unknown(),
            CertState::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
                revocation_time: ocsp_time(*at)?,
                revocation_reason: reason.as_deref().and_then(crl_reason),
            }),
        };
        responses.push(SingleResponse {
            cert_id: id.clone(),
            cert_status,
            this_update,
            next_update: Some(next_update),
            single_extensions: None,
        });
    }
    let response_extensions = match &query.nonce {
        None => None,
        Some(nonce) => Some(vec![Extension {
            extn_id: NONCE,
            critical: false,
            extn_value: OctetString::new(
                OctetString::new(nonce.clone())
                    .and_then(|n| n.to_der())
                    .map_err(sign_err)?,
            )
            .map_err(sign_err)?,
        }]),
    };
    // The responder ID is the SHA-1 of the signer's public key BIT STRING (RFC 6960 §4.2.1).
    let (key_id, certs) = match signer {
        Signer::Ca(ca) => (IssuerHashes::of(ca.cert_der())?.sha1_key, None),
        Signer::Delegated(r) => {
            let cert = x509_cert02::Certificate::from_der(r.cert_der()).map_err(sign_err)?;
            let id = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, r.public_key_bits());
            (id.as_ref().to_vec(), Some(vec![cert]))
        }
    };
    let tbs_response_data = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(key_id).map_err(sign_err)?),
        produced_at: this_update,
        responses,
        response_extensions,
    };
    let tbs = tbs_response_data.to_der().map_err(sign_err)?;
    let (signature, curve) = match signer {
        Signer::Ca(ca) => (ca.issuer().key().sign(&tbs), ca.curve()),
        Signer::Delegated(r) => (r.key().sign(&tbs), r.curve()),
    };
    let signature = signature.map_err(|e| OcspError::Sign(crate::ca_key::sign_reason(e)))?;
    let basic = BasicOcspResponse {
        tbs_response_data,
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: signature_oid(curve),
            parameters: None,
        },
        signature: BitString::from_bytes(&signature).map_err(sign_err)?,
        certs,
    };
    OcspResponse::successful(basic)
        .and_then(|r| r.to_der())
        .map_err(sign_err)
}

fn sign_err(e: der07::Error) -> OcspError {
    OcspError::Sign(e.to_string())
}

/// The CA's name and key, hashed as CertIDs name an issuer.
struct IssuerHashes {
    sha1_name: Vec<u8>,
    sha1_key: Vec<u8>,
    sha256_name: Vec<u8>,
    sha256_key: Vec<u8>,
}

impl IssuerHashes {
    fn of(issuer_der: &[u8]) -> Result<IssuerHashes, OcspError> {
        let (_, cert) = X509Certificate::from_der(issuer_der)
            .map_err(|e| OcspError::Sign(format!("the CA certificate: {e}")))?;
        let name = cert.tbs_certificate.subject.as_raw();
        let key = &cert.tbs_certificate.subject_pki.subject_public_key.data;
        let hash = |alg, data: &[u8]| digest::digest(alg, data).as_ref().to_vec();
        Ok(IssuerHashes {
            sha1_name: hash(&digest::SHA1_FOR_LEGACY_USE_ONLY, name),
            sha1_key: hash(&digest::SHA1_FOR_LEGACY_USE_ONLY, key),
            sha256_name: hash(&digest::SHA256, name),
            sha256_key: hash(&digest::SHA256, key),
        })
    }

    /// Whether `id` names this issuer; an unreadable hash algorithm is refused.
    fn names(&self, id: &CertId) -> Result<bool, OcspError> {
        let (name, key) = match id.hash_algorithm.oid {
            oid if oid == SHA1 => (&self.sha1_name, &self.sha1_key),
            oid if oid == SHA256 => (&self.sha256_name, &self.sha256_key),
            oid => {
                return Err(OcspError::NotOurs(format!(
                    "CertID hashed with {oid}; this responder reads SHA-1 and SHA-256"
                )))
            }
        };
        Ok(id.issuer_name_hash.as_bytes() == name.as_slice()
            && id.issuer_key_hash.as_bytes() == key.as_slice())
    }
}

/// Lowercase hex without leading zero octets (an INTEGER's sign octet included).
fn serial_hex(serial: &SerialNumber) -> String {
    let bytes = serial.as_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    hex::encode(&bytes[first..])
}

fn nonce_value(ext: &Extension) -> Result<Vec<u8>, OcspError> {
    // The extension's value is a DER OCTET STRING holding the nonce (RFC 8954 §2.1).
    let nonce = OctetString::from_der(ext.extn_value.as_bytes())
        .map_err(|e| OcspError::Malformed(format!("nonce: {e}")))?;
    let len = nonce.as_bytes().len();
    if len == 0 || len > MAX_NONCE {
        return Err(OcspError::Malformed(format!(
            "nonce of {len} octets; RFC 8954 allows 1 to {MAX_NONCE}"
        )));
    }
    Ok(nonce.as_bytes().to_vec())
}

fn ocsp_time(t: OffsetDateTime) -> Result<OcspGeneralizedTime, OcspError> {
    let secs = u64::try_from(t.unix_timestamp())
        .map_err(|_| OcspError::Sign(format!("time {t} is before 1970")))?;
    GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map(OcspGeneralizedTime::from)
        .map_err(sign_err)
}

fn signature_oid(curve: Curve) -> ObjectIdentifier {
    match curve {
        Curve::P256 => ECDSA_SHA256,
        Curve::P384 => ECDSA_SHA384,
        Curve::P521 => ECDSA_SHA512,
    }
}

fn crl_reason(name: &str) -> Option<CrlReason> {
    Some(
        match crate::crl::reason_code(crate::crl::canonical_reason(name)?)? {
            0 => CrlReason::Unspecified,
            1 => CrlReason::KeyCompromise,
            2 => CrlReason::CaCompromise,
            3 => CrlReason::AffiliationChanged,
            4 => CrlReason::Superseded,
            5 => CrlReason::CessationOfOperation,
            6 => CrlReason::CertificateHold,
            8 => CrlReason::RemoveFromCRL,
            9 => CrlReason::PrivilegeWithdrawn,
            10 => CrlReason::AaCompromise,
            _ => return None,
        },
    )
}

#[cfg(test)]
mod delegated_tests;
#[cfg(test)]
mod tests;
