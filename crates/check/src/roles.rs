//! This node's VRRP role per instance, as the monitors' reports carry it (`@vrrp:` lines,
//! see [`crate::peer`]): MASTER when nat-notify's newest intent says so and a running
//! keepalived stands behind it, with since when ([`Roles`], for `split.rs`).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::peer::{PeerConfig, ProbeReport, VRRP};

/// This node's VRRP role per instance (see the module's notes), as report lines: one per
/// `INSTANCE.intents` in `runtime_dir` (at most 64), sorted by name.
pub fn vrrp_roles(runtime_dir: &Path, keepalived_pid: &Path) -> Vec<ProbeReport> {
    let alive = keepalived_alive(keepalived_pid);
    let Ok(dir) = std::fs::read_dir(runtime_dir) else {
        return Vec::new();
    };
    let mut out: Vec<ProbeReport> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let inst = name.strip_suffix(".intents")?.to_string();
            let ok = !inst.is_empty()
                && inst.len() <= 64
                && inst
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            ok.then(|| ProbeReport {
                name: format!("{VRRP}{inst}"),
                up: Some(alive && newest_intent_is_master(&e.path())),
                ok_for_ms: None,
                last_ok_ms: None,
            })
        })
        .take(64)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// This node's VRRP roles, each with when it became MASTER on this monitor's clock (to a
/// read's precision): the reports say "MASTER for N ms" (`ok_for_ms` of the `@vrrp:` lines),
/// and `split.rs` compares the two nodes' ages.
#[derive(Debug)]
pub struct Roles {
    runtime_dir: PathBuf,
    keepalived_pid: PathBuf,
    read: Option<Instant>,
    since: Vec<(String, Option<Instant>)>,
}

impl Roles {
    pub fn new(cfg: &PeerConfig) -> Roles {
        Roles {
            runtime_dir: cfg.runtime_dir.clone(),
            keepalived_pid: cfg.keepalived_pid.clone(),
            read: None,
            since: Vec::new(),
        }
    }

    /// Instance -> MASTER since (`None`: not MASTER), read again when the last read is
    /// `max_age` old.
    pub fn current(&mut self, max_age: Duration, now: Instant) -> &[(String, Option<Instant>)] {
        if self
            .read
            .is_none_or(|t| now.saturating_duration_since(t) >= max_age)
        {
            let old = std::mem::take(&mut self.since);
            self.since = vrrp_roles(&self.runtime_dir, &self.keepalived_pid)
                .into_iter()
                .filter_map(|p| {
                    let inst = p.name.strip_prefix(VRRP)?.to_string();
                    let was = old.iter().find(|(i, _)| *i == inst).and_then(|(_, s)| *s);
                    let since = (p.up == Some(true)).then(|| was.unwrap_or(now));
                    Some((inst, since))
                })
                .collect();
            self.read = Some(now);
        }
        &self.since
    }

    /// The report's `@vrrp:` lines: up while MASTER, `ok_for_ms` for how long, and
    /// `last_ok_ms` how long ago the roles were read (the receiver knows the role is no
    /// older than that).
    pub fn report(&mut self, max_age: Duration, now: Instant) -> Vec<ProbeReport> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.current(max_age, now);
        let read = self.read.map(|t| ms(now.saturating_duration_since(t)));
        self.since
            .iter()
            .map(|(inst, since)| ProbeReport {
                name: format!("{VRRP}{inst}"),
                up: Some(since.is_some()),
                ok_for_ms: since.map(|s| ms(now.saturating_duration_since(s))),
                last_ok_ms: read,
            })
            .collect()
    }
}

/// Whether `pid_file` names a running keepalived.
/// Running: the process and its children (keepalived's VRRP and checker processes) are
/// keepalived and none is stopped, traced or a zombie. A frozen keepalived (SIGSTOP, as
/// validate.yml's crash does it) still has its pid and its addresses but sends no advert:
/// it is no MASTER, or the peer would stand down for a node that died.
fn keepalived_alive(pid_file: &Path) -> bool {
    use hakit_core::runtime::{read_file, Trust};
    let Ok(text) = read_file(pid_file, 64, Trust::Config) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return false;
    };
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    running_keepalived(pid)
        && children
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .all(running_keepalived)
}

/// `/proc/PID/stat` names keepalived in a state that runs (not T, t, Z or X).
fn running_keepalived(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let comm = &stat[open + 1..close.max(open + 1)];
    let state = stat[close + 1..].trim_start().chars().next();
    comm == "keepalived" && !matches!(state, None | Some('T' | 't' | 'Z' | 'X' | 'x'))
}

/// Whether nat-notify's newest intent in `path` (`INSTANCE.intents`) is MASTER.
fn newest_intent_is_master(path: &Path) -> bool {
    use hakit_core::runtime::{read_file, Trust};
    let Ok(text) = read_file(path, 64 << 10, Trust::Config) else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["recent"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(|i| i["state"].as_str())
        .is_some_and(|s| s == "MASTER" || s == "MASTER_RX_LOWER_PRI")
}
