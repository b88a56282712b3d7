//! The load generator's own CPU time, so a run can tell how much of the machine the load side
//! took (scripts/bench-ca.sh prints it per certificate; docs/performance.md).

use std::time::Duration;

use nix::sys::resource::{getrusage, UsageWho};

/// User plus system CPU time this process has used so far, every thread included; `None` where
/// the kernel does not say.
pub fn process_cpu() -> Option<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let time = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).ok()?)
            .checked_add(Duration::from_micros(u64::try_from(t.tv_usec()).ok()?))
    };
    time(usage.user_time())?.checked_add(time(usage.system_time())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work() {
        let before = process_cpu().expect("getrusage works on Linux");
        // Busy work until the clock moves (rusage has microsecond resolution, ticks coarser).
        let mut x = 0u64;
        let mut after = before;
        while after <= before {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            after = process_cpu().expect("getrusage works on Linux");
        }
        assert!(after > before);
    }
}
