//! `rotation` on tokio's paused clock against the in-process CA: when renewals happen, how
//! failures back off toward expiry, re-enrollment with a fresh token, and readiness on the way.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::health::{assess, Readiness};
use crate::refresh::run;
use crate::stop::Stop;
use crate::testing::World;

#[test]
fn jitter_stays_in_bounds_and_varies() {
    let samples: Vec<f64> = (0..200).map(|_| random_jitter()).collect();
    assert!(samples.iter().all(|j| (-JITTER..=JITTER).contains(j)));
    assert!(samples.iter().any(|j| *j > 0.05));
    assert!(samples.iter().any(|j| *j < -0.05));
}

#[test]
fn retries_double_then_tighten_toward_expiry() {
    let hour = Duration::from_secs(3600);
    assert_eq!(retry_delay(0, false, hour), Duration::from_secs(1));
    assert_eq!(retry_delay(3, false, hour), Duration::from_secs(8));
    assert_eq!(
        retry_delay(6, false, Duration::from_secs(8)),
        Duration::from_secs(2)
    );
    assert_eq!(retry_delay(9, true, Duration::ZERO), Duration::from_secs(5));
}

/// An enrolled identity and a running rotation loop on the world's clock.
struct Running {
    identity: Arc<Identity>,
    events: Arc<Events>,
    stop: Stop,
    task: tokio::task::JoinHandle<()>,
}

async fn start(w: &World, rotate_at: f64) -> Running {
    let enroller = w.enroller();
    let first = enroller.enroll().await.expect("first enrollment");
    let identity = Identity::new(first);
    let events = Events::new();
    let rotation = Rotation::new(
        enroller,
        identity.clone(),
        events.clone(),
        w.clock.clone(),
        rotate_at,
        random_jitter(),
    );
    let stop = Stop::new();
    let task = stop.spawn(run(rotation, stop.clone()));
    Running {
        identity,
        events,
        stop,
        task,
    }
}

impl Running {
    async fn stop(self) {
        crate::stop::stop_and_join(&self.stop, vec![self.task], Duration::from_secs(1)).await;
    }
}

fn seconds(d: time::Duration) -> f64 {
    d.as_seconds_f64()
}

/// Equal within the millisecond granularity of tokio's timer.
fn close_to(got: f64, want: f64) -> bool {
    (got - want).abs() < 0.005
}

#[tokio::test(start_paused = true)]
async fn renews_at_half_the_lifetime_within_the_jitter() {
    let lifetime = time::Duration::hours(1);
    let w = World::new(lifetime);
    let r = start(&w, 0.5).await;
    // Ten hours of service.
    tokio::time::sleep(Duration::from_secs(10 * 3600)).await;
    let sign = w.ca.calls_to("/api/v1/sign");
    let renew = w.ca.calls_to("/api/v1/renew");
    assert_eq!(sign.len(), 1, "one enrollment, then renewals only");
    assert!(renew.len() >= 16, "{} renewals in 10 h", renew.len());
    // Each certificate was issued at the previous call (the CA issues from "now", in whole
    // seconds) and renewed at 50% ±10% of its lifetime.
    let mut issued_at = sign[0].at;
    let mut offsets = Vec::new();
    for call in &renew {
        let fraction = seconds(call.at - issued_at) / seconds(lifetime);
        assert!(
            (0.4 - 1.0 / 3600.0..=0.6 + 1.0 / 3600.0).contains(&fraction),
            "renewed at {fraction:.4} of the lifetime"
        );
        offsets.push(fraction);
        issued_at = call.at;
    }
    let spread = offsets.iter().cloned().fold(f64::MIN, f64::max)
        - offsets.iter().cloned().fold(f64::MAX, f64::min);
    assert!(
        spread > 0.02,
        "the jitter varies between renewals: {offsets:?}"
    );
    // Every renewal was published, and the certificate in use is the last one issued.
    assert_eq!(r.identity.generation(), renew.len() as u64);
    let current = r.identity.current();
    assert!(current.info.not_before >= renew.last().unwrap().at - time::Duration::SECOND);
    assert_eq!(
        r.events
            .metrics
            .rotations
            .load(std::sync::atomic::Ordering::Relaxed),
        renew.len() as u64
    );
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn backs_off_toward_expiry_then_reenrolls_with_a_fresh_token() {
    let lifetime = time::Duration::hours(1);
    let w = World::new(lifetime);
    let r = start(&w, 0.5).await;
    let first = r.identity.current();
    let not_after = first.info.not_after;
    w.ca.set_down(true);

    // Renewal starts at 40-60% of the lifetime and keeps failing.
    let degraded_at = not_after - lifetime * 0.05;
    tokio::time::sleep(pki::timefmt::until(degraded_at, w.clock.now())).await;
    let health = assess(&r.identity.current(), None, w.clock.now());
    assert_eq!(health.state, Readiness::Degraded, "{:?}", health.reason);
    tokio::time::sleep(pki::timefmt::until(not_after, w.clock.now()) + Duration::from_secs(1))
        .await;
    assert_eq!(
        assess(&r.identity.current(), None, w.clock.now()).state,
        Readiness::Unhealthy
    );
    let attempts: Vec<_> =
        w.ca.calls_to("/api/v1/renew")
            .into_iter()
            .map(|c| c.at)
            .collect();
    assert!(attempts.len() > 10, "{} attempts", attempts.len());
    let start = first.info.not_before + lifetime * 0.4;
    assert!(attempts[0] >= start && attempts[0] <= first.info.not_before + lifetime * 0.6);
    // Doubling at first (1 s, 2 s, 4 s, ...), never waiting past a quarter of the time left,
    // and the last attempt close to expiry.
    assert!(close_to(seconds(attempts[1] - attempts[0]), 1.0));
    assert!(close_to(seconds(attempts[2] - attempts[1]), 2.0));
    assert!(close_to(seconds(attempts[3] - attempts[2]), 4.0));
    for pair in attempts.windows(2) {
        let gap = seconds(pair[1] - pair[0]);
        let left = seconds(not_after - pair[0]);
        assert!(
            gap <= (left / 4.0).max(0.2) + 0.001,
            "waited {gap} s with {left} s left"
        );
        assert!(pair[1] <= not_after, "renewal attempted after expiry");
    }
    let last_gap = seconds(not_after - *attempts.last().unwrap());
    assert!(last_gap < 5.0, "last attempt {last_gap} s before expiry");

    // Expired, the token spent at enrollment: no CA call until a fresh token arrives, even
    // with the CA back.
    w.ca.set_down(false);
    let calls_before = w.ca.calls().len();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(w.ca.calls().len(), calls_before, "nothing to send the CA");
    assert_eq!(r.identity.current().info.serial_hex, first.info.serial_hex);

    std::fs::write(w.token_file.path(), "token-two").unwrap();
    tokio::time::sleep(TOKEN_POLL + Duration::from_millis(1)).await;
    let sign = w.ca.calls_to("/api/v1/sign");
    assert_eq!(sign.len(), 2);
    assert_eq!(sign[1].token.as_deref(), Some("token-two"));
    assert!(
        w.ca.calls_to("/api/v1/renew").len() == attempts.len(),
        "no renewal after expiry"
    );
    let fresh = r.identity.current();
    assert_ne!(fresh.info.serial_hex, first.info.serial_hex);
    assert_eq!(assess(&fresh, None, w.clock.now()).state, Readiness::Ready);
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_renewal_keeps_the_current_certificate_and_retries() {
    let w = World::new(time::Duration::hours(1));
    let r = start(&w, 0.5).await;
    let first = r.identity.current();
    w.ca.script(&[crate::testing::Fail::Refused(503, "store_unavailable")]);
    tokio::time::sleep(Duration::from_secs(40 * 60)).await;
    let renew = w.ca.calls_to("/api/v1/renew");
    assert_eq!(renew.len(), 2, "refused once, then renewed on the retry");
    assert!(close_to(seconds(renew[1].at - renew[0].at), 1.0));
    assert_ne!(r.identity.current().info.serial_hex, first.info.serial_hex);
    assert_eq!(
        r.events
            .metrics
            .rotation_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    r.stop().await;
}
