//! Request and response bodies as the wire layer hands them to and takes them from the
//! application.
//!
//! The request body is kept alive until the response has been sent, even when the handler
//! drops it early (a 413 answered without reading an oversized upload). On HTTP/2 that order
//! matters: a request stream dropped before the response is complete is reset with CANCEL and
//! the client never sees the response; dropped after it, the stream ends with RST_STREAM
//! NO_ERROR, which tells the client to stop sending and keep the response (RFC 9113 §8.1).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};

use crate::activity::InFlight;

/// The request body the application reads (any `http_body::Body` consumer works).
pub struct RequestBody {
    inner: Option<Incoming>,
    kept: Arc<Mutex<Option<Incoming>>>,
}

/// The response's hold on its request body.
pub(crate) struct KeptBody(#[allow(dead_code)] Arc<Mutex<Option<Incoming>>>);

impl RequestBody {
    pub(crate) fn new(inner: Incoming) -> (RequestBody, KeptBody) {
        let kept = Arc::new(Mutex::new(None));
        (
            RequestBody {
                inner: Some(inner),
                kept: kept.clone(),
            },
            KeptBody(kept),
        )
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Some(body) = self.inner.take() {
            if !body.is_end_stream() {
                // Hand the unread rest to the response; it is dropped when the response is.
                *self.kept.lock().unwrap_or_else(|p| p.into_inner()) = Some(body);
            }
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(|b| b.size_hint())
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

pub(crate) enum Inner<B> {
    App(B),
    /// A response the wire layer wrote itself (408, 429).
    Local(Option<Bytes>),
}

/// The response body as sent: the application's (or ours), plus the request's in-flight mark
/// and its kept request body, both released when hyper drops the body after the last frame.
pub struct ResponseBody<B> {
    inner: Inner<B>,
    _in_flight: InFlight,
    _request: KeptBody,
}

impl<B> ResponseBody<B> {
    pub(crate) fn new(inner: Inner<B>, in_flight: InFlight, request: KeptBody) -> Self {
        ResponseBody {
            inner,
            _in_flight: in_flight,
            _request: request,
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match &mut self.inner {
            Inner::App(body) => Pin::new(body).poll_frame(cx),
            Inner::Local(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::App(body) => body.is_end_stream(),
            Inner::Local(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::App(body) => body.size_hint(),
            Inner::Local(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}
