//! The last refusals the authority made, newest first, for the dashboard (docs/dashboard.md):
//! the counters of `/metrics` say how many, this says which and when.

use std::collections::VecDeque;
use std::sync::Mutex;

use time::OffsetDateTime;

/// How many refusals are kept; older ones fall off (the counters keep counting them).
pub const KEPT: usize = 50;
/// Messages are cut to this many characters: they may quote what the caller sent.
const MESSAGE_LIMIT: usize = 300;

/// One refusal as the caller was told it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// When, by the authority's clock.
    pub at: OffsetDateTime,
    /// The stable error code (`token_used`, `not_admin`, ...).
    pub code: &'static str,
    /// The message sent to the caller (never an internal cause), cut to 300 characters.
    pub message: String,
}

/// A bounded ring of the last [`KEPT`] refusals.
#[derive(Default)]
pub struct RecentRefusals {
    ring: Mutex<VecDeque<Refusal>>,
}

impl RecentRefusals {
    /// Remembers a refusal, dropping the oldest beyond [`KEPT`].
    pub fn record(&self, at: OffsetDateTime, code: &'static str, message: &str) {
        let message = match message.char_indices().nth(MESSAGE_LIMIT) {
            Some((cut, _)) => format!("{}…", &message[..cut]),
            None => message.to_string(),
        };
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == KEPT {
            ring.pop_back();
        }
        ring.push_front(Refusal { at, code, message });
    }

    /// The kept refusals, newest first.
    pub fn newest_first(&self) -> Vec<Refusal> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_cuts_long_messages() {
        let ring = RecentRefusals::default();
        let t0 = OffsetDateTime::UNIX_EPOCH;
        for i in 0..(KEPT + 5) {
            ring.record(t0 + time::Duration::seconds(i as i64), "token_used", "m");
        }
        let kept = ring.newest_first();
        assert_eq!(kept.len(), KEPT);
        assert_eq!(kept[0].at, t0 + time::Duration::seconds((KEPT + 4) as i64));
        assert_eq!(kept[KEPT - 1].at, t0 + time::Duration::seconds(5));

        ring.record(t0, "bad_csr", &"é".repeat(400));
        let cut = &ring.newest_first()[0].message;
        assert_eq!(cut.chars().count(), MESSAGE_LIMIT + 1);
        assert!(cut.ends_with('…'));
    }
}
