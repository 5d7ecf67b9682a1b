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
    /// Drained by `ha-check drain`: the reason given (the track file says 1 whatever the
    /// probes say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drained: Option<String>,
    /// Standing down because only the VRRP path is cut (the track file says 1): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standing_down: Option<String>,
}

/// Where `ha-check drain` leaves its flag unless `[check] drain_file` says otherwise: on
/// disk, so a drain survives a reboot.
pub const DRAIN_FILE: &str = "/var/lib/hakit/drain";

/// The drain flag's reason, if the node is drained (`None`: not drained, or unreadable).
pub fn drained(file: &Path) -> Option<String> {
    let text = crate::runtime::read_file(file, 4096, crate::runtime::Trust::Config).ok()?;
    let reason = text.lines().next().unwrap_or("").trim();
    Some(if reason.is_empty() {
        "no reason given".to_string()
    } else {
        reason
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_flag_says_why() {
        let dir = std::env::temp_dir().join(format!("hakit-drain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("drain");
        assert_eq!(drained(&f), None, "no file: not drained");
        std::fs::write(&f, "kernel upgrade\nmore\n").unwrap();
        assert_eq!(drained(&f).as_deref(), Some("kernel upgrade"));
        std::fs::write(&f, "").unwrap();
        assert_eq!(drained(&f).as_deref(), Some("no reason given"));
        std::fs::write(&f, "a\u{1b}[31mb").unwrap();
        assert_eq!(
            drained(&f).as_deref(),
            Some("a[31mb"),
            "control characters dropped"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn beside_the_track_file() {
        assert_eq!(
            path(Path::new("/run/hakit-monitor/uplink")),
            Path::new("/run/hakit-monitor/uplink.heartbeat")
        );
    }
}
