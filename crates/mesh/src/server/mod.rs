//! Serving over mTLS: who the peer is ([`Peer`], [`PeerIdentify`]), which callers may proceed
//! ([`AllowList`]), any `tower` service (an axum `Router`) on the wire layer
//! ([`serve_http`]), and the plain-HTTP admin listener ([`admin`]).

pub mod admin;
mod allow;
mod http;
mod identify;
mod peer;

pub use allow::AllowList;
pub use http::{serve_http, server_limits, ServeOptions};
pub use identify::PeerIdentify;
pub use peer::Peer;
