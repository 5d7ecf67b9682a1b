//! The wall clock, read one way by every binary: the time since the Unix epoch (zero for a
//! clock set before 1970, never a panic). Durations between events use `Instant`; this is
//! for what is written down (heartbeats, records, metrics) and compared across processes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, since the epoch.
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Now, in milliseconds since the epoch.
pub fn unix_ms() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}

/// Now, in seconds since the epoch.
pub fn unix_secs() -> f64 {
    since_epoch().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_readings_agree() {
        let (ms, s) = (unix_ms(), unix_secs());
        // 2020-01-01 onwards, and the two within a second of each other.
        assert!(ms > 1_577_836_800_000, "{ms}");
        assert!((s * 1000.0 - ms as f64).abs() < 1000.0, "{s} vs {ms}");
    }
}
