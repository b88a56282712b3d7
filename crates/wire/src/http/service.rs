//! The hyper service wrapped around the application for one connection: marks each request in
//! flight until its response has been sent, bounds it by the request timeout (408), answers
//! a connection refused by the per-identity limit with 429, and turns "close after this
//! response" into `Connection: close` (HTTP/1) or a graceful shutdown (HTTP/2).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use crate::activity::{Activity, CloseReason};
use crate::admission::Refused;
use crate::drain::Drain;
use crate::http::body::{Inner, RequestBody, ResponseBody};
use crate::http::{CloseConnection, HttpApp};
use crate::listener::BoxFuture;

pub(crate) struct Tracked<A: HttpApp> {
    pub app: Arc<A>,
    pub peer: Arc<A::Peer>,
    pub activity: Arc<Activity>,
    pub refused: Option<Refused>,
    pub request_timeout: Duration,
    pub h2: bool,
    pub drain: Drain,
    /// For log lines: the peer's address, its identity, and both as "ADDR (identity)".
    pub addr: SocketAddr,
    pub identity: Option<Arc<str>>,
    pub who: Arc<str>,
}

impl<A: HttpApp> hyper::service::Service<Request<Incoming>> for Tracked<A> {
    type Response = Response<ResponseBody<A::Body>>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        // Started here, synchronously: the request is in flight from its complete header on.
        let in_flight = self.activity.begin();
        let (parts, body) = req.into_parts();
        let (body, kept) = RequestBody::new(body, self.activity.clone());
        let req = Request::from_parts(parts, body);
        let activity = self.activity.clone();
        let h2 = self.h2;
        let drain = self.drain.clone();
        let finish = move |mut response: Response<Inner<A::Body>>| {
            if let Some(CloseConnection(reason)) = response.extensions_mut().remove() {
                activity.request_close(reason);
            }
            if !h2 && (activity.close_is_requested() || drain.is_draining()) {
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|inner| ResponseBody::new(inner, in_flight, kept)))
        };
        if let Some(refused) = &self.refused {
            let reason = CloseReason::new(refused.code(), refused.to_string());
            let mut response = json_error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                &format!(
                    "{refused}; close idle connections or ask the operator to raise the limit"
                ),
            );
            response.extensions_mut().insert(CloseConnection(reason));
            return Box::pin(std::future::ready(finish(response)));
        }
        let handler = self.app.call(&self.peer, req);
        let timeout = self.request_timeout;
        let (addr, identity, who) = (self.addr, self.identity.clone(), self.who.clone());
        Box::pin(async move {
            let response = match tokio::time::timeout(timeout, handler).await {
                Ok(response) => response.map(Inner::App),
                Err(_) => {
                    let message = format!(
                        "the request was not complete within {timeout:?} (body and handler); \
                         the connection is closed"
                    );
                    tracing::info!(
                        event = "request_timeout", peer_addr = %addr,
                        identity = identity.as_deref().unwrap_or("-"),
                        "request from {who} took longer than {timeout:?}: answering 408 and closing"
                    );
                    let mut response =
                        json_error(StatusCode::REQUEST_TIMEOUT, "request_timeout", &message);
                    response
                        .extensions_mut()
                        .insert(CloseConnection(CloseReason::new(
                            "request_timeout",
                            format!("a request took longer than {timeout:?}"),
                        )));
                    response
                }
            };
            finish(response)
        })
    }
}

/// `{"error":{"code":..,"message":..}}`, the shape every mtls-mesh API uses.
pub(crate) fn json_error<B>(status: StatusCode, code: &str, message: &str) -> Response<Inner<B>> {
    let body = format!(
        "{{\"error\":{{\"code\":{},\"message\":{}}}}}",
        json_string(code),
        json_string(message)
    );
    let mut response = Response::new(Inner::Local(Some(Bytes::from(body))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A JSON string literal (quotes, backslashes and control characters escaped).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
        let r = json_error::<()>(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            "CN=\"x\"",
        );
        let Inner::Local(Some(body)) = r.body() else {
            panic!("a local body")
        };
        assert_eq!(
            body.as_ref(),
            br#"{"error":{"code":"too_many_connections","message":"CN=\"x\""}}"#
        );
    }
}
