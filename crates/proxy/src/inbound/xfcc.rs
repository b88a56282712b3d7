//! The caller headers of HTTP mode. `X-Forwarded-Client-Cert` in Envoy's format: one element
//! (this proxy is the only hop the application trusts) of `;`-separated `Key=Value` pairs,
//! `By` (the proxy's SPIFFE ID), `Hash` (lowercase hex SHA-256 of the client certificate's
//! DER) and `URI` (the client's SPIFFE ID); a value holding `,`, `;` or `=` is double-quoted,
//! and a `"` inside a value is written `\"`. `X-Client-Spiffe-Id` carries the caller's ID alone.
//! Both are removed from the client's request first, in any case and however often they appear,
//! and so are their spellings with `_` for `-`: CGI, WSGI, PHP and Rack turn both spellings into
//! the same variable (`HTTP_X_CLIENT_SPIFFE_ID`), so a client could otherwise set the identity
//! an application reads.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

/// `x-forwarded-client-cert`.
pub const XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
/// `x-client-spiffe-id`.
pub const CLIENT_SPIFFE_ID: HeaderName = HeaderName::from_static("x-client-spiffe-id");

/// One XFCC value, quoted as Envoy's format requires.
fn value(v: &str) -> String {
    let escaped = v.replace('"', "\\\"");
    if v.contains([',', ';', '=', '"']) {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

/// The XFCC element for a client certificate whose DER has the SHA-256 `cert_sha256`
/// (lowercase hex, `mesh::server::Peer::certificate_sha256`) with SPIFFE ID `uri`, added by
/// the proxy whose SPIFFE ID is `by`.
pub fn element(by: Option<&str>, cert_sha256: &str, uri: Option<&str>) -> String {
    let mut parts = Vec::with_capacity(3);
    if let Some(by) = by {
        parts.push(format!("By={}", value(by)));
    }
    parts.push(format!("Hash={cert_sha256}"));
    if let Some(uri) = uri {
        parts.push(format!("URI={}", value(uri)));
    }
    parts.join(";")
}

/// Removes whatever the client sent under the caller headers, then sets them from the
/// verified certificate. A value that cannot be a header (cannot happen: SPIFFE IDs and hex
/// are visible ASCII) leaves the header out rather than forwarding the client's.
pub fn set_caller_headers(
    headers: &mut HeaderMap,
    by: Option<&str>,
    cert_sha256: &str,
    uri: Option<&str>,
) {
    // HeaderMap names are case-insensitive and `remove` drops every value.
    headers.remove(&XFCC);
    headers.remove(&CLIENT_SPIFFE_ID);
    let aliases: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let dashed = name.as_str().replace('_', "-");
            dashed == XFCC.as_str() || dashed == CLIENT_SPIFFE_ID.as_str()
        })
        .cloned()
        .collect();
    for alias in aliases {
        headers.remove(alias);
    }
    if let Ok(v) = HeaderValue::from_str(&element(by, cert_sha256, uri)) {
        headers.insert(XFCC, v);
    }
    if let Some(uri) = uri {
        if let Ok(v) = HeaderValue::from_str(uri) {
            headers.insert(CLIENT_SPIFFE_ID, v);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    #[test]
    fn the_element_follows_envoys_format() {
        let hash = pki::sha256_hex(b"certificate");
        let e = element(
            Some("spiffe://mesh.local/proxy/b"),
            &hash,
            Some("spiffe://mesh.local/service/a"),
        );
        assert_eq!(
            e,
            format!("By=spiffe://mesh.local/proxy/b;Hash={hash};URI=spiffe://mesh.local/service/a")
        );
        assert_eq!(value("a,b"), "\"a,b\"");
        assert_eq!(value("CN=\"x\""), "\"CN=\\\"x\\\"\"");
        assert_eq!(element(None, &hash, None), format!("Hash={hash}"));
    }

    #[test]
    fn spoofed_headers_are_replaced_in_any_case_and_number() {
        let mut h = HeaderMap::new();
        h.append(
            "X-Forwarded-Client-Cert",
            HeaderValue::from_static("URI=spiffe://evil/x"),
        );
        h.append("x-forwarded-client-cert", HeaderValue::from_static("By=x"));
        h.append(
            "X-CLIENT-SPIFFE-ID",
            HeaderValue::from_static("spiffe://evil/x"),
        );
        set_caller_headers(
            &mut h,
            Some("spiffe://td/p"),
            "c0ffee",
            Some("spiffe://td/a"),
        );
        assert_eq!(h.get_all(&XFCC).iter().count(), 1);
        assert_eq!(h.get_all(&CLIENT_SPIFFE_ID).iter().count(), 1);
        assert_eq!(h[&CLIENT_SPIFFE_ID], "spiffe://td/a");
        assert!(!h[&XFCC].to_str().unwrap().contains("evil"));
        // A caller without a SPIFFE ID (pinned mode): no ID header at all, not the spoofed one.
        let mut h = HeaderMap::new();
        h.append(
            "x-client-spiffe-id",
            HeaderValue::from_static("spiffe://evil/x"),
        );
        set_caller_headers(&mut h, None, "c0ffee", None);
        assert!(h.get(&CLIENT_SPIFFE_ID).is_none());
    }

    #[test]
    fn underscore_spellings_that_cgi_and_wsgi_merge_are_removed_too() {
        let mut h = HeaderMap::new();
        h.append(
            "X_Client_Spiffe_Id",
            HeaderValue::from_static("spiffe://evil/x"),
        );
        h.append(
            "x-forwarded_client-cert",
            HeaderValue::from_static("URI=spiffe://evil/x"),
        );
        h.append("x-client-spiffe", HeaderValue::from_static("kept"));
        set_caller_headers(
            &mut h,
            Some("spiffe://td/p"),
            "c0ffee",
            Some("spiffe://td/a"),
        );
        let names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "x-client-spiffe",
                "x-forwarded-client-cert",
                "x-client-spiffe-id"
            ],
            "only the proxy's own caller headers and unrelated ones are left"
        );
        assert_eq!(h[&CLIENT_SPIFFE_ID], "spiffe://td/a");
    }
}
