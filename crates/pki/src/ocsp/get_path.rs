//! The request of `GET /ocsp/<path>` (RFC 6960 appendix A.1): "the URL-encoding of the base64
//! encoding of the DER encoding of the OCSPRequest". The one decoder of that path; the CA's
//! handler and the fuzz target `ocsp_get_path` both call [`decode_get_path`].
//!
//! What is accepted, as clients really send it: the path as it arrived (percent-encoded, and
//! with '/' left unescaped by clients that do not escape it, so spread over several segments),
//! in standard base64 with or without padding, or its URL-safe alphabet (which needs no
//! escaping). Everything else is [`OcspError::Malformed`].

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use percent_encoding::percent_decode_str;

use super::OcspError;

/// The longest base64 request accepted, after percent-decoding (a request names at most
/// [`super::MAX_REQUESTS`] certificates: far less than this).
pub const MAX_GET_REQUEST: usize = 8 * 1024;

/// The longest path accepted as it arrives: every character of the longest request escaped.
const MAX_GET_PATH: usize = 3 * MAX_GET_REQUEST;

/// The DER request carried by `path`, the part of the request target after `/ocsp/` exactly
/// as it arrived (still percent-encoded, without the query string). The DER is not checked
/// here; `read_request*` does that.
pub fn decode_get_path(path: &str) -> Result<Vec<u8>, OcspError> {
    // Bounded before any work, so a huge path costs nothing.
    if path.len() > MAX_GET_PATH {
        return Err(OcspError::Malformed(format!(
            "the GET request path is {} characters; at most {MAX_GET_PATH} are read",
            path.len()
        )));
    }
    let base64: Vec<u8> = percent_decode_str(path).collect();
    if base64.is_empty() {
        return Err(OcspError::Malformed("the GET request path is empty".into()));
    }
    if base64.len() > MAX_GET_REQUEST {
        return Err(OcspError::Malformed(format!(
            "the GET request is {} base64 characters; at most {MAX_GET_REQUEST} are read",
            base64.len()
        )));
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(&base64).ok())
        .ok_or_else(|| {
            OcspError::Malformed(
                "the GET request path is not base64 once percent-decoded (RFC 6960 A.1: \
                 standard or URL-safe alphabet, padded or not)"
                    .into(),
            )
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    /// DER whose standard base64 holds '+', '/' and '=' (0xfb 0xff → "+/8=").
    const DER: &[u8] = &[0x30, 0x02, 0xfb, 0xff];

    #[test]
    fn the_rfc_spelling_with_percent_encoded_plus_slash_and_equals_decodes() {
        assert_eq!(STANDARD.encode(DER), "MAL7/w==");
        assert_eq!(decode_get_path("MAL7%2Fw%3D%3D").unwrap(), DER);
        // Lowercase hex digits in the escapes.
        assert_eq!(decode_get_path("MAL7%2fw%3d%3d").unwrap(), DER);
        let plus = [0xfb, 0xef, 0xbe];
        assert_eq!(STANDARD.encode(plus), "++++");
        assert_eq!(decode_get_path("%2B%2b%2B%2B").unwrap(), plus);
    }

    #[test]
    fn unescaped_unpadded_and_url_safe_spellings_decode_too() {
        // '/' left unescaped (the path then has several segments) and '=' unescaped.
        assert_eq!(decode_get_path("MAL7/w==").unwrap(), DER);
        assert_eq!(decode_get_path("MAL7/w").unwrap(), DER);
        assert_eq!(decode_get_path("MAL7_w==").unwrap(), DER);
        assert_eq!(decode_get_path("MAL7_w").unwrap(), DER);
        assert_eq!(decode_get_path("++++").unwrap(), [0xfb, 0xef, 0xbe]);
    }

    #[test]
    fn everything_else_is_malformed() {
        for bad in [
            "",
            "%",
            "%zz",
            "%2",
            "MAL7%2Fw%3D", // padding cut short
            "MAL7/w=",     // the same, unescaped
            "MAL7+_w==",   // two alphabets mixed
            "MAL7 w==",    // a space
            "MAL7%20w==",  // an escaped space
            "MAL7/x==",    // non-zero trailing bits: not the canonical encoding
            "M",           // one character carries no whole octet
            "%E2%82%AC",   // not ASCII once decoded
            "MAL7/w==?x",  // a query belongs to the URI, not to the path given here
            "not base64 !",
        ] {
            let e = decode_get_path(bad).unwrap_err();
            assert_eq!(e.code(), "malformed", "{bad:?}: {e}");
        }
    }

    #[test]
    fn oversized_paths_are_refused_before_and_after_percent_decoding() {
        let longest = "A".repeat(MAX_GET_REQUEST);
        assert_eq!(
            decode_get_path(&longest).unwrap().len(),
            MAX_GET_REQUEST / 4 * 3
        );
        let e = decode_get_path(&"A".repeat(MAX_GET_REQUEST + 4)).unwrap_err();
        assert!(e.to_string().contains("base64 characters"), "{e}");
        // Fully escaped, the longest request still fits; one more character does not.
        let escaped = "%41".repeat(MAX_GET_REQUEST);
        assert_eq!(
            decode_get_path(&escaped).unwrap().len(),
            MAX_GET_REQUEST / 4 * 3
        );
        let e = decode_get_path(&format!("{escaped}A")).unwrap_err();
        assert!(e.to_string().contains("characters; at most"), "{e}");
    }
}
