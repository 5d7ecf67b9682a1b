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

/// Why a heartbeat could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unread {
    /// No file (or not a regular file, or unreadable): the monitor never wrote one here.
    Missing(String),
    /// A file that does not hold a heartbeat.
    NotAHeartbeat(String),
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unread::Missing(e) | Unread::NotAHeartbeat(e) => f.write_str(e),
        }
    }
}

/// The heartbeat beside `track_file`: never blocking (a FIFO in its place), at most 64 KiB.
/// The one reader: `monitor-alive`, `nat-notify status` and the lab all read it here.
pub fn read(track_file: &Path) -> Result<Heartbeat, Unread> {
    let p = path(track_file);
    let text = crate::runtime::read_file(&p, 64 << 10, crate::runtime::Trust::Config)
        .map_err(|e| Unread::Missing(format!("no heartbeat at {}: {e:#}", p.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| Unread::NotAHeartbeat(format!("{} is not a heartbeat: {e}", p.display())))
}

impl Heartbeat {
    /// How old it is at `now_ms` (0 if dated later).
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.at_ms)
    }
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
    fn a_heartbeat_is_read_or_said_why_not() {
        let dir = std::env::temp_dir().join(format!("hakit-hb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let track = dir.join("uplink");
        assert!(matches!(read(&track), Err(Unread::Missing(_))));
        std::fs::write(path(&track), "not json").unwrap();
        assert!(matches!(read(&track), Err(Unread::NotAHeartbeat(_))));
        let hb = Heartbeat {
            pid: 7,
            at_ms: 1_000,
            healthy: Some(true),
            since_ms: 500,
            failing: Vec::new(),
            probes: 2,
            held: None,
            drained: Some("kernel upgrade".into()),
            standing_down: None,
        };
        std::fs::write(path(&track), serde_json::to_vec(&hb).unwrap()).unwrap();
        assert_eq!(read(&track), Ok(hb.clone()));
        assert_eq!((hb.age_ms(1_250), hb.age_ms(900)), (250, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
