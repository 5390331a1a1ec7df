//! Clocks: a monotonic nanosecond clock for latency, and wall-clock nanoseconds for timestamps.

use nix::time::{clock_gettime, ClockId};

/// Nanoseconds on `CLOCK_MONOTONIC`: comparable between processes on the same host (the clock is
/// system-wide), never going backwards. A vDSO call, about 20 ns; no system call.
pub fn monotonic_ns() -> u64 {
    read(ClockId::CLOCK_MONOTONIC)
}

/// Nanoseconds since the Unix epoch on `CLOCK_REALTIME`, for message timestamps.
pub fn realtime_ns() -> u64 {
    read(ClockId::CLOCK_REALTIME)
}

fn read(clock: ClockId) -> u64 {
    // These clocks exist on every Linux kernel; a failure would mean a broken vDSO, and 0 is
    // the honest "no reading" rather than a panic on the hot path.
    clock_gettime(clock).map_or(0, |t| {
        (t.tv_sec() as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(t.tv_nsec() as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_never_goes_backwards() {
        let mut last = monotonic_ns();
        for _ in 0..10_000 {
            let now = monotonic_ns();
            assert!(now >= last);
            last = now;
        }
        assert!(last > 0);
    }

    #[test]
    fn realtime_clock_is_after_2020() {
        assert!(realtime_ns() > 1_577_836_800 * 1_000_000_000);
    }
}
