//! `ha-check monitor`: the probes continuously, the verdict to keepalived's track file, the
//! textfile on every change and every interval.

use std::{
    path::PathBuf,
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use hakit_core::{
    metrics::{Kind, Textfile},
    usage_error, Exit,
};
use log::{info, warn};

use super::{
    metrics::{add_counters, metrics, vrrp_metrics},
    probes::Resolved,
    state::count_run,
};
use crate::{monitor, peer::PeerConfig, runner::Verdict};

/// The monitor's settings from the command line and `[check]`.
pub(super) struct Args {
    pub track: PathBuf,
    /// How often the textfile is rewritten (and on every change).
    pub every: Duration,
    pub duration: Option<Duration>,
    pub rt_priority: u8,
    pub peer: Option<PeerConfig>,
    pub drain_file: PathBuf,
}

/// Checks the settings that refuse to start (exit 2) before the probes are resolved.
pub(super) fn check(track: &std::path::Path, rt_priority: u8) -> anyhow::Result<()> {
    check_track_dir(track)?;
    if rt_priority > hakit_core::sched::MAX_PRIORITY {
        return Err(usage_error(format!(
            "monitor_rt_priority {rt_priority} is outside 0-{}",
            hakit_core::sched::MAX_PRIORITY
        )));
    }
    Ok(())
}

/// Runs the monitor until a signal (or `duration`).
pub(super) fn run(
    a: Args,
    r: Resolved,
    textfile: Option<PathBuf>,
    pair: Option<String>,
    rt: PathBuf,
) -> anyhow::Result<Exit> {
    for name in &r.left_out {
        info!("{name}: role-dependent (fails on the BACKUP), not part of the monitor's verdict");
    }
    let stop = Arc::new(AtomicBool::new(false));
    super::signals::stop_on_signals(stop.clone());
    info!(
        "monitoring {} probe(s); verdicts to {}",
        r.monitored.len(),
        a.track.display()
    );
    let every = a.every;
    let mut publish = |v: &Verdict, vrrp: &crate::split::PathReport| {
        if let Some(path) = &textfile {
            let mut t: Textfile = metrics(pair.as_deref(), v, None);
            vrrp_metrics(&mut t, vrrp);
            // The counters the alerts read, per published verdict (every textfile
            // interval and every change), kept in the runtime directory as for runs.
            let (runs, failures) = count_run(&rt, v.healthy);
            add_counters(&mut t, runs, failures);
            t.add(
                "hakit_ha_check_interval_seconds",
                Kind::Gauge,
                "How often ha-check is expected to write (the monitor: its textfile interval).",
                &[],
                every.as_secs_f64(),
            );
            if let Err(e) = t.write(path) {
                warn!("metrics textfile: {e:#}");
            }
        }
    };
    warn_unless_tmpfs(&a.track);
    monitor::run(
        r.monitored,
        r.groups,
        r.tools,
        monitor::Settings {
            track_file: a.track,
            max_duration: a.duration,
            rt_priority: a.rt_priority,
            peer: a.peer,
            drain_file: a.drain_file,
        },
        stop,
        every,
        &mut publish,
    )?;
    Ok(Exit::Ok)
}

/// The track file's directory must exist and be writable now: keepalived cannot be told
/// anything otherwise (the unit creates it: RuntimeDirectory=hakit-monitor).
fn check_track_dir(track: &std::path::Path) -> anyhow::Result<()> {
    let dir = track
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let meta = std::fs::metadata(dir).map_err(|e| {
        usage_error(format!(
            "track file directory {}: {e} (hakit-monitor.service creates /run/hakit-monitor)",
            dir.display()
        ))
    })?;
    if !meta.is_dir() {
        return Err(usage_error(format!("{} is not a directory", dir.display())));
    }
    if nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_err() {
        return Err(usage_error(format!(
            "track file directory {} is not writable",
            dir.display()
        )));
    }
    // keepalived trusts whatever file is there: a directory another user can write lets
    // that user replace the verdict (put a healthy node in FAULT, or keep a dead one MASTER).
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    if meta.mode() & 0o002 != 0 || (meta.uid() != 0 && meta.uid() != me) {
        return Err(usage_error(format!(
            "track file directory {} (mode {:o}, owner uid {}) can be written by other users, who could replace the verdict keepalived reads: use one only this user writes (hakit-monitor.service creates /run/hakit-monitor, mode 0755)",
            dir.display(),
            meta.mode() & 0o7777,
            meta.uid()
        )));
    }
    Ok(())
}

/// The heartbeat is replaced four times a second. On a disk, a rename that frees blocks can
/// wait for the disk (a synchronous discard), seconds when it is busy: the heartbeat goes
/// stale and monitor-alive demotes a healthy node. /run is a tmpfs. Said once, at start,
/// after every refusal (those are one line).
fn warn_unless_tmpfs(track: &std::path::Path) {
    use nix::sys::statfs::{statfs, FsType, TMPFS_MAGIC};
    const RAMFS_MAGIC: FsType = FsType(0x8584_58f6);
    let dir = track
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if let Ok(fs) = statfs(dir) {
        if fs.filesystem_type() != TMPFS_MAGIC && fs.filesystem_type() != RAMFS_MAGIC {
            warn!(
                "track file directory {} is not a tmpfs: a busy disk can stall the heartbeat and demote this node; keep it under /run (hakit-monitor.service uses /run/hakit-monitor)",
                dir.display()
            );
        }
    }
}
