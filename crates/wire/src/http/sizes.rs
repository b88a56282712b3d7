//! The sizes of the futures every idle connection keeps alive. A future keeps the size of its
//! largest state for as long as it lives, so these are bytes paid per connection for its
//! whole life (docs/performance.md "Memory per idle connection"). The bounds leave room for
//! compiler changes (measured: 928 and 328 bytes with Rust 1.95, unoptimized); a change that
//! puts a large state (hyper's connection, a TLS stream, a second copy of the arguments) back
//! into them fails here: they were 2,080 and 472 bytes before.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};

use super::{Http, HttpApp, RequestBody};
use crate::listener::{BoxFuture, Identified, Identify, Rejected};

/// An application for the types only: nothing here is ever run.
struct App;

impl Identify for App {
    type Peer = ();

    fn identify(
        &self,
        _: SocketAddr,
        _: &rustls::ServerConnection,
    ) -> Result<Identified<()>, Rejected> {
        Err(Rejected { code: "test" })
    }
}

impl HttpApp for App {
    type Body = Incoming;

    fn call(&self, _: &Arc<()>, _: Request<RequestBody>) -> BoxFuture<Response<Incoming>> {
        Box::pin(std::future::pending())
    }
}

/// The size of the future `f` returns, without calling it.
fn future_size<F: Future, A, B, C>(_: impl Fn(A, B, C) -> F) -> usize {
    std::mem::size_of::<F>()
}

fn future_size4<F: Future, A, B, C, D>(_: impl Fn(A, B, C, D) -> F) -> usize {
    std::mem::size_of::<F>()
}

#[test]
fn the_futures_an_idle_connection_keeps_stay_small() {
    let driver = future_size(super::http1::serve::<App>);
    let task = future_size4(crate::listener::connection::<App, Http<App>>);
    assert!(
        driver <= 1152,
        "the HTTP/1 driver future (parked wait included) is {driver} bytes"
    );
    assert!(task <= 448, "the connection task's future is {task} bytes");
}
