//! The uplink monitor's heartbeat file, `FILE.heartbeat` beside keepalived's track file:
//! `ha-check monitor` writes it every 250 ms and on every change of verdict; `ha-check
//! monitor-alive` (keepalived's chk_hakit_monitor), `nat-notify status` and the lab read
//! it. One definition for the writer and every reader.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// Older than this, the monitor is dead or hung: `monitor-alive`'s default `--max-age`,
/// and what `nat-notify status` reports as a problem.
pub const STALE: Duration = Duration::from_secs(2);

/// `FILE.heartbeat` beside the track file `FILE`.
pub fn path(track_file: &Path) -> PathBuf {
    let mut s = track_file.as_os_str().to_owned();
    s.push(".heartbeat");
    PathBuf::from(s)
}

/// What the heartbeat file holds (JSON, one object).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Heartbeat {
    pub pid: u32,
    /// Unix time of this write, milliseconds.
    pub at_ms: u64,
    /// The verdict written to the track file; `None` until every probe answered once.
    pub healthy: Option<bool>,
    /// Unix time the verdict last changed, milliseconds.
    pub since_ms: u64,
    /// The probes that are down, with their last answer.
    pub failing: Vec<String>,
    pub probes: usize,
    /// Unhealthy, but keeping the role: why (the peer is no better off; see `[check.peer]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beside_the_track_file() {
        assert_eq!(
            path(Path::new("/run/hakit-monitor/uplink")),
            Path::new("/run/hakit-monitor/uplink.heartbeat")
        );
    }
}
