//! Request and response bodies as the wire layer hands them to and takes them from the
//! application.
//!
//! A handler may answer before it has read the whole request body (a 413 for an oversized
//! upload). The unread rest is then kept until the response has been sent and drained for a
//! moment afterwards (at most `DRAIN_AFTER_RESPONSE` bytes for `DRAIN_AFTER_RESPONSE_TIME`),
//! which gives the client time to read the answer and stop sending. Dropping it at once tears
//! the exchange down under the client: on HTTP/2 a stream dropped before its response is
//! complete is reset with CANCEL and the response discarded, and even RST_STREAM(NO_ERROR)
//! right after the response makes curl 7.88 report a framing error instead of the 413; on
//! HTTP/1 closing with unread data makes the kernel send a reset that can destroy the
//! response in flight.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};

use crate::activity::{Activity, InFlight};

/// The request body the application reads (any `http_body::Body` consumer works).
pub struct RequestBody {
    inner: Option<Incoming>,
    kept: Arc<Mutex<Option<Incoming>>>,
}

/// Unread request bytes read and discarded after a response, at most ... (16 MiB: a client
/// that sends a 3 MiB upload after a 100-continue has it all in flight before it reads the
/// answer; with 1 MiB here the rest made the connection close under it, and its kernel's
/// reset destroyed the 413 before curl read it, one run in a few. Discarding costs the TLS
/// decryption only, and the time bound below still caps how long a client holds the slot.)
const DRAIN_AFTER_RESPONSE: usize = 16 * 1024 * 1024;
/// ... and for at most this long; then the rest is dropped (HTTP/2: RST_STREAM NO_ERROR,
/// HTTP/1: the connection closes).
const DRAIN_AFTER_RESPONSE_TIME: Duration = Duration::from_secs(5);

/// The response's hold on its request body; dropped with the response body.
pub(crate) struct KeptBody {
    kept: Arc<Mutex<Option<Incoming>>>,
    activity: Arc<Activity>,
}

impl Drop for KeptBody {
    fn drop(&mut self) {
        let rest = self.kept.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(body) = rest {
            // The protocol is no longer at a message boundary of its own accord.
            self.activity.never_park();
            tokio::spawn(drain(body));
        }
    }
}

async fn drain(mut body: Incoming) {
    let read = async {
        let mut total = 0usize;
        while let Some(Ok(frame)) =
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            total += frame.data_ref().map_or(0, |d| d.len());
            if total > DRAIN_AFTER_RESPONSE {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_AFTER_RESPONSE_TIME, read).await;
}

impl RequestBody {
    pub(crate) fn new(inner: Incoming, activity: Arc<Activity>) -> (RequestBody, KeptBody) {
        let kept = Arc::new(Mutex::new(None));
        (
            RequestBody {
                inner: Some(inner),
                kept: kept.clone(),
            },
            KeptBody { kept, activity },
        )
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Some(body) = self.inner.take() {
            if !body.is_end_stream() {
                // Hand the unread rest to the response, which drains it once it is sent.
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
    // Fields drop in this order: an unread request body marks the connection as not parkable
    // before the end of the request makes it idle.
    _request: KeptBody,
    _in_flight: InFlight,
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
