//! The pins a pinned-mode service trusts now. The verifiers read them at each handshake; the
//! file watcher replaces them when `--trust-pins-file` changes; the open-connection watchers
//! (`peer_watch`) subscribe and close connections whose peer key is no longer pinned.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::tls::pinned::PinSet;

/// The current pin set, swappable, with a change signal.
#[derive(Debug)]
pub struct LivePins {
    current: ArcSwap<PinSet>,
    generation: watch::Sender<u64>,
}

impl LivePins {
    /// Starts with `pins`.
    pub fn new(pins: PinSet) -> Arc<LivePins> {
        Arc::new(LivePins {
            current: ArcSwap::from_pointee(pins),
            generation: watch::channel(0).0,
        })
    }

    /// The pins trusted now.
    pub fn current(&self) -> Arc<PinSet> {
        self.current.load_full()
    }

    /// Replaces the pins; returns false (and wakes no one) when they are the same.
    pub(crate) fn set(&self, pins: PinSet) -> bool {
        if *self.current.load_full() == pins {
            return false;
        }
        self.current.store(Arc::new(pins));
        self.generation.send_modify(|g| *g += 1);
        true
    }

    /// A receiver that sees every change of the pins.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}
