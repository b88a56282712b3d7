//! Who may hold a connection slot: the total cap (waited for), the per-source cap (checked at
//! accept), the room kept for authenticated peers and the per-identity cap (checked once the
//! handshake has said who the peer is). A `Slot` is the connection's claim; dropping it gives
//! everything back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::counters::Counters;
use crate::limits::Limits;

/// Why a connection was refused; `code()` is the counter and log reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The source address holds `--max-connections-per-source` already.
    #[error(
        "{address} already holds {}, the most one source address may hold",
        connections(*.limit)
    )]
    PerSource {
        /// The source address (IPv4-mapped addresses as IPv4).
        address: IpAddr,
        /// The per-source limit.
        limit: usize,
    },
    /// Connections without a client certificate hold every slot they may.
    #[error(
        "{} without a client certificate already open, the most allowed (the other slots \
         are kept for authenticated peers)",
        connections(*.limit)
    )]
    Unauthenticated {
        /// `max_connections - authenticated_reserve`.
        limit: usize,
    },
    /// The identity holds `--max-connections-per-identity` already.
    #[error(
        "{identity} already holds {}, the most one identity may hold",
        connections(*.limit)
    )]
    PerIdentity {
        /// The identity (SPIFFE ID, else subject).
        identity: String,
        /// The per-identity limit.
        limit: usize,
    },
}

fn connections(n: usize) -> String {
    if n == 1 {
        "1 connection".to_string()
    } else {
        format!("{n} connections")
    }
}

impl Refused {
    /// Stable code: `connections_refused_total{reason=code}` and the log's `reason` field.
    pub fn code(&self) -> &'static str {
        match self {
            Refused::PerSource { .. } => "per_source",
            Refused::Unauthenticated { .. } => "unauthenticated",
            Refused::PerIdentity { .. } => "per_identity",
        }
    }
}

/// What a slot counts against once its handshake is over.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Class {
    Handshaking,
    Unauthenticated,
    Authenticated { identity: Option<String> },
}

#[derive(Default)]
struct Counts {
    per_source: HashMap<IpAddr, usize>,
    per_identity: HashMap<String, usize>,
    unauthenticated: usize,
}

/// The admission state of one listener.
pub struct Admission {
    slots: Arc<Semaphore>,
    max_per_source: Option<usize>,
    unauthenticated_limit: usize,
    max_per_identity: Option<usize>,
    counts: Mutex<Counts>,
    counters: Arc<Counters>,
}

/// An IPv4 peer on a dual-stack socket shows as `::ffff:a.b.c.d`; it is the same source.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Admission {
    /// The admission state for `limits`, counting refusals in `counters`.
    pub fn new(limits: &Limits, counters: Arc<Counters>) -> Arc<Admission> {
        Arc::new(Admission {
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            max_per_source: limits.max_per_source,
            unauthenticated_limit: limits.unauthenticated_limit(),
            max_per_identity: limits.max_per_identity,
            counts: Mutex::new(Counts::default()),
            counters,
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts are plain integers; a panic elsewhere cannot leave them half-updated.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a connection slot is free. The accept loop calls this before `accept`, so
    /// connections beyond the cap wait in the kernel's queue.
    pub async fn room(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed, so acquiring can only succeed; the loop is defensive.
        loop {
            if let Ok(p) = self.slots.clone().acquire_owned().await {
                return p;
            }
            tokio::task::yield_now().await;
        }
    }

    /// A free slot now, if any (the tests; the accept loop waits with `room`).
    #[cfg(test)]
    pub fn try_room(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Admits a just-accepted connection from `source` into the slot `permit` holds, or
    /// refuses it because its source holds too many.
    pub fn admit(
        self: &Arc<Self>,
        permit: OwnedSemaphorePermit,
        source: IpAddr,
    ) -> Result<Slot, Refused> {
        let source = canonical(source);
        let mut counts = self.counts();
        let held = counts.per_source.get(&source).copied().unwrap_or(0);
        if let Some(limit) = self.max_per_source {
            if held >= limit {
                return Err(Refused::PerSource {
                    address: source,
                    limit,
                });
            }
        }
        counts.per_source.insert(source, held + 1);
        drop(counts);
        self.counters.opened();
        Ok(Slot {
            admission: self.clone(),
            _permit: permit,
            source,
            class: Class::Handshaking,
        })
    }
}

/// One admitted connection's claim on the limits; released on drop.
pub struct Slot {
    admission: Arc<Admission>,
    _permit: OwnedSemaphorePermit,
    source: IpAddr,
    class: Class,
}

impl Slot {
    /// Records how the handshake ended. An unauthenticated connection beyond the room left
    /// for such connections is refused (close it); a connection of an identity that holds
    /// its limit already is refused but keeps its slot, so the protocol can answer it once.
    pub fn establish(
        &mut self,
        authenticated: bool,
        identity: Option<&str>,
    ) -> Result<(), Refused> {
        debug_assert_eq!(self.class, Class::Handshaking, "established twice");
        let a = &self.admission;
        let mut counts = a.counts();
        if !authenticated {
            if counts.unauthenticated >= a.unauthenticated_limit {
                return Err(Refused::Unauthenticated {
                    limit: a.unauthenticated_limit,
                });
            }
            counts.unauthenticated += 1;
            a.counters.unauthenticated_opened();
            self.class = Class::Unauthenticated;
            return Ok(());
        }
        let (Some(limit), Some(identity)) = (a.max_per_identity, identity) else {
            self.class = Class::Authenticated { identity: None };
            return Ok(());
        };
        let held = counts.per_identity.get(identity).copied().unwrap_or(0);
        if held >= limit {
            return Err(Refused::PerIdentity {
                identity: identity.to_string(),
                limit,
            });
        }
        counts.per_identity.insert(identity.to_string(), held + 1);
        self.class = Class::Authenticated {
            identity: Some(identity.to_string()),
        };
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let a = &self.admission;
        let mut counts = a.counts();
        decrement(&mut counts.per_source, &self.source);
        match &self.class {
            Class::Handshaking | Class::Authenticated { identity: None } => {}
            Class::Unauthenticated => {
                counts.unauthenticated -= 1;
                a.counters.unauthenticated_released();
            }
            Class::Authenticated {
                identity: Some(identity),
            } => decrement(&mut counts.per_identity, identity),
        }
        drop(counts);
        a.counters.released();
        // The semaphore permit is released when `_permit` drops, right after this.
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn admission(limits: Limits) -> (Arc<Admission>, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        (Admission::new(&limits, counters.clone()), counters)
    }

    fn admit(a: &Arc<Admission>, source: &str) -> Result<Slot, Refused> {
        let permit = a.try_room().expect("a free slot");
        a.admit(permit, ip(source))
    }

    #[test]
    fn unauthenticated_connections_leave_the_reserve_to_authenticated_ones() {
        let limits = Limits {
            max_connections: 16,
            authenticated_reserve: 4,
            max_per_source: None,
            ..Limits::default()
        };
        let (a, counters) = admission(limits);
        let mut unauth = Vec::new();
        for _ in 0..12 {
            let mut s = admit(&a, "10.0.0.1").unwrap();
            s.establish(false, None).unwrap();
            unauth.push(s);
        }
        // The 13th unauthenticated connection may handshake (it could have been a peer with
        // a certificate) but is refused once it turns out it has none.
        let mut s = admit(&a, "10.0.0.1").unwrap();
        assert_eq!(
            s.establish(false, None),
            Err(Refused::Unauthenticated { limit: 12 })
        );
        drop(s);
        // Authenticated peers still find the four reserved slots.
        let mut auth = Vec::new();
        for _ in 0..4 {
            let mut s = admit(&a, "10.0.0.2").unwrap();
            s.establish(true, Some("spiffe://td/a")).unwrap();
            auth.push(s);
        }
        assert!(a.try_room().is_none(), "all 16 slots are taken");
        assert_eq!(counters.open(), 16);
        assert_eq!(counters.unauthenticated(), 12);
        // Freeing one unauthenticated slot lets one more unauthenticated peer in.
        unauth.pop();
        let mut s = admit(&a, "10.0.0.3").unwrap();
        assert_eq!(s.establish(false, None), Ok(()));
    }

    #[test]
    fn a_zero_reserve_lets_unauthenticated_peers_use_every_slot() {
        let (a, _) = admission(Limits {
            max_connections: 2,
            authenticated_reserve: 0,
            ..Limits::default()
        });
        let mut s1 = admit(&a, "10.0.0.1").unwrap();
        let mut s2 = admit(&a, "10.0.0.1").unwrap();
        s1.establish(false, None).unwrap();
        s2.establish(false, None).unwrap();
        assert!(a.try_room().is_none());
    }

    #[test]
    fn a_source_beyond_its_limit_is_refused_and_others_are_not() {
        let (a, counters) = admission(Limits {
            max_connections: 10,
            max_per_source: Some(2),
            ..Limits::default()
        });
        let s1 = admit(&a, "10.0.0.1").unwrap();
        let _s2 = admit(&a, "10.0.0.1").unwrap();
        let refused = admit(&a, "10.0.0.1").err().unwrap();
        assert_eq!(
            refused,
            Refused::PerSource {
                address: ip("10.0.0.1"),
                limit: 2
            }
        );
        assert_eq!(refused.code(), "per_source");
        // The same address seen through a dual-stack socket is the same source.
        assert!(admit(&a, "::ffff:10.0.0.1").is_err());
        let _other = admit(&a, "10.0.0.2").unwrap();
        // The refused connections gave their slots back.
        assert_eq!(counters.open(), 3);
        drop(s1);
        assert!(admit(&a, "10.0.0.1").is_ok());
    }

    #[test]
    fn an_identity_beyond_its_limit_is_refused_until_one_closes() {
        let (a, _) = admission(Limits {
            max_connections: 10,
            max_per_identity: Some(2),
            authenticated_reserve: 0,
            ..Limits::default()
        });
        let id = "spiffe://mesh.local/service/x";
        let mut s1 = admit(&a, "10.0.0.1").unwrap();
        s1.establish(true, Some(id)).unwrap();
        let mut s2 = admit(&a, "10.0.0.2").unwrap();
        s2.establish(true, Some(id)).unwrap();
        let mut s3 = admit(&a, "10.0.0.3").unwrap();
        let refused = s3.establish(true, Some(id)).unwrap_err();
        assert_eq!(refused.code(), "per_identity");
        assert!(refused.to_string().contains("already holds 2 connections"));
        // Another identity is not affected.
        let mut other = admit(&a, "10.0.0.1").unwrap();
        other
            .establish(true, Some("spiffe://mesh.local/y"))
            .unwrap();
        // The refused slot does not count against the identity; a closed one frees a place.
        drop(s3);
        drop(s1);
        let mut s4 = admit(&a, "10.0.0.4").unwrap();
        assert_eq!(s4.establish(true, Some(id)), Ok(()));
    }

    #[test]
    fn every_count_returns_to_zero_when_the_slots_are_dropped() {
        let (a, counters) = admission(Limits {
            max_connections: 4,
            max_per_source: Some(4),
            max_per_identity: Some(4),
            authenticated_reserve: 1,
            ..Limits::default()
        });
        let mut slots = Vec::new();
        for (auth, id) in [(false, None), (true, Some("a")), (true, None)] {
            let mut s = admit(&a, "10.0.0.1").unwrap();
            s.establish(auth, id).unwrap();
            slots.push(s);
        }
        slots.push(admit(&a, "10.0.0.1").unwrap()); // still handshaking
        assert_eq!(counters.open(), 4);
        slots.clear();
        assert_eq!(counters.open(), 0);
        assert_eq!(counters.unauthenticated(), 0);
        let counts = a.counts();
        assert!(counts.per_source.is_empty());
        assert!(counts.per_identity.is_empty());
        assert_eq!(counts.unauthenticated, 0);
        drop(counts);
        assert_eq!(a.slots.available_permits(), 4);
    }
}
