//! `ha-check`'s run: the configuration layers resolved and validated (exit 2, one line),
//! the probes built, then one of its modes: a single parallel run judged by the quorum
//! groups (with the textfile, the nft counters and log-once state), an ad-hoc probe from
//! a shell, the continuous monitor, monitor-alive, or the peer watch.

use std::{
    path::PathBuf,
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use hakit_cli::ha_check::{Cli, Cmd, IDENT};
use hakit_core::{
    config::pick,
    metrics::{Kind, Textfile},
    runtime::{self, DEFAULT_DIR},
    usage_error, Exit, HDuration,
};
use hakit_net::nft::{counters, Counter, NftTable};
use log::{info, warn};

use crate::{
    config::{CheckFile, Group, Probe},
    kinds::Class,
    monitor::{self, Monitored},
    probe::{self, Checked, Tools},
    runner::{self, Verdict},
    watch::{self, Watch},
};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs what the command line asks: the probes once (keepalived's `vrrp_script`), one
/// ad-hoc probe, the monitor, monitor-alive or the peer watch.
///
/// `shortcut` is the probe a kind's subcommand names (`ha-check icmp 192.0.2.1`), parsed by
/// [`crate::shortcut`].
pub fn run(cli: Cli, shortcut: Option<Probe>) -> anyhow::Result<Exit> {
    let file: CheckFile<hakit_bgp::Config> = cli.common.init(IDENT)?;
    let c = file.check;
    let interval = pick(cli.interval, c.interval, HDuration(DEFAULT_INTERVAL)).get();
    let deadline = pick(cli.deadline, c.deadline, HDuration(interval * 4 / 5)).get();
    if deadline.is_zero() {
        return Err(usage_error("the deadline must be longer than 0"));
    }
    let drain_file = c
        .drain_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(hakit_core::heartbeat::DRAIN_FILE));
    match &cli.cmd {
        Some(Cmd::Drain { reason }) => {
            let reason = reason.join(" ");
            if reason.chars().any(char::is_control) || reason.len() > 200 {
                return Err(usage_error(
                    "the reason is one line of at most 200 characters",
                ));
            }
            if let Some(dir) = drain_file.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow::anyhow!("create {}: {e}", dir.display()))?;
            }
            hakit_core::runtime::write_atomic(
                &drain_file,
                format!("{reason}\n").as_bytes(),
                0o644,
            )?;
            warn!(
                "drained: {}",
                if reason.is_empty() {
                    "no reason given"
                } else {
                    &reason
                }
            );
            hakit_core::outln!(
                "drained ({}): the monitor gives the role away within 250 ms and keeps it away, across reboots, until `ha-check undrain`",
                drain_file.display()
            );
            return Ok(Exit::Ok);
        }
        Some(Cmd::Undrain) => {
            match std::fs::remove_file(&drain_file) {
                Ok(()) => {
                    info!("undrained");
                    hakit_core::outln!(
                        "undrained: the monitor's verdict decides again (keepalived may take the role back)"
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    hakit_core::outln!("not drained ({} does not exist)", drain_file.display())
                }
                Err(e) => anyhow::bail!("remove {}: {e}", drain_file.display()),
            }
            return Ok(Exit::Ok);
        }
        _ => {}
    }
    if let Some(Cmd::Watch {
        peer,
        method,
        port,
        interval,
        probe_timeout,
        fall,
        rise,
        command_timeout,
        max_probes,
        command,
    }) = cli.cmd
    {
        if fall == 0 || rise == 0 || interval.get().is_zero() {
            return Err(usage_error("--fall, --rise and --interval must be above 0"));
        }
        // Never a placeholder: a peer that matches nothing looks dead, and the watch would
        // take the floating IP from a healthy primary.
        let peer = peer.or(c.watch_peer).ok_or_else(|| {
            usage_error("no peer to watch: set watch_peer in [check] (the primary's address) or give --peer")
        })?;
        let w = Watch {
            peer,
            method,
            port,
            interval: interval.get(),
            timeout: probe_timeout.map_or(interval.get() * 4 / 5, |t| t.get()),
            fall,
            rise,
            command,
            command_timeout: command_timeout.get(),
            max_probes,
        };
        let stop = Arc::new(AtomicBool::new(false));
        stop_on_signals(stop.clone());
        watch::run(&w, stop)?;
        return Ok(Exit::Ok);
    }
    if let Some(Cmd::MonitorAlive {
        track_file,
        max_age,
    }) = &cli.cmd
    {
        let track = track_file.clone().or(c.track_file.clone()).ok_or_else(|| {
            usage_error("no track file: set track_file in [check] or give --track-file")
        })?;
        let rt = pick(
            cli.runtime_dir.clone(),
            file.general.runtime_dir.clone(),
            PathBuf::from(DEFAULT_DIR),
        );
        return Ok(match crate::monitor::alive(&track, max_age.get()) {
            Ok(hb) => {
                if changed(&rt, "ha-check.monitor-alive.last", "") {
                    info!("the monitor (pid {}) is alive", hb.pid);
                }
                Exit::Ok
            }
            Err(e) => {
                // keepalived runs this every second: said once per change, not every run.
                let now = format!("{e:#}");
                let key = now.split(" (").next().unwrap_or_default().to_string();
                if changed(&rt, "ha-check.monitor-alive.last", &key) {
                    warn!("monitor not alive: {now}");
                }
                Exit::Failed
            }
        });
    }
    let monitor = match &cli.cmd {
        Some(Cmd::Monitor {
            track_file,
            textfile_interval,
            duration,
            rt_priority,
        }) => {
            let track = track_file.clone().or(c.track_file.clone()).ok_or_else(|| {
                usage_error("no track file: set track_file in [check] or give --track-file")
            })?;
            check_track_dir(&track)?;
            let runtime_dir = pick(
                cli.runtime_dir.clone(),
                file.general.runtime_dir.clone(),
                PathBuf::from(DEFAULT_DIR),
            );
            let peer = c
                .peer
                .as_ref()
                .map(|p| crate::peer::PeerConfig::from_table(p, runtime_dir))
                .transpose()
                .map_err(usage_error)?;
            let rt = rt_priority.or(c.monitor_rt_priority).unwrap_or(10);
            if rt > hakit_core::sched::MAX_PRIORITY {
                return Err(usage_error(format!(
                    "monitor_rt_priority {rt} is outside 0-{}",
                    hakit_core::sched::MAX_PRIORITY
                )));
            }
            Some((
                track,
                textfile_interval.get(),
                duration.map(HDuration::get),
                rt,
                peer,
            ))
        }
        _ => None,
    };
    let adhoc_run = shortcut.is_some();
    let (probes, groups): (Vec<Probe>, Vec<Group>) = match shortcut {
        Some(p) => (vec![p], Vec::new()),
        None => (c.probes, c.groups),
    };
    if probes.is_empty() {
        return Err(usage_error("no probes: add [[check.probe]] tables to the config file, or run one, e.g. `ha-check icmp 192.0.2.1`"));
    }
    let mut checked: Vec<Checked> = Vec::new();
    let mut monitored: Vec<Monitored> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        let mut ck = probe::validate(p, deadline)
            .map_err(|e| usage_error(format!("probe {}: {e}", i + 1)))?;
        let (interval, fall, rise) = ck.class().defaults();
        let interval = p.interval.map_or(interval, HDuration::get);
        let (fall, rise) = (p.fall.unwrap_or(fall), p.rise.unwrap_or(rise));
        if monitor.is_some() {
            if interval < monitor::MIN_INTERVAL {
                return Err(usage_error(format!(
                    "probe {}: interval {interval:?} is below the minimum of 5ms",
                    i + 1
                )));
            }
            if fall == 0 || rise == 0 {
                return Err(usage_error(format!(
                    "probe {}: fall and rise must be at least 1",
                    i + 1
                )));
            }
            if ck.class() == Class::Provider {
                // It fails on the BACKUP by design: in a track file (weight 0) that would be
                // a FAULT, and a BACKUP in FAULT can never take over.
                left_out.push(ck.name.clone());
                checked.push(ck);
                continue;
            }
            // A monitored probe answers within its interval unless told otherwise.
            ck.timeout = p.timeout.map_or(interval, HDuration::get);
            monitored.push(Monitored {
                probe: ck.clone(),
                interval,
                fall,
                rise,
            });
        }
        checked.push(ck);
    }
    for g in &groups {
        if !checked
            .iter()
            .any(|p| p.group.as_deref() == Some(g.name.as_str()))
        {
            return Err(usage_error(format!("group {:?} has no probes", g.name)));
        }
    }
    let rt = pick(
        cli.runtime_dir,
        file.general.runtime_dir,
        PathBuf::from(DEFAULT_DIR),
    );
    if let Some(p) = &file.general.pair {
        hakit_core::metrics::check_pair(p).map_err(usage_error)?;
    }
    let bgp = if file.bgp == hakit_bgp::Config::default() {
        None
    } else {
        Some(hakit_bgp::Speaker::new(&file.bgp).map_err(usage_error)?)
    };
    let tools = Tools {
        bgp,
        fip: file.fip.provider.is_some().then_some(file.fip),
        cache_dir: rt.clone(),
        keepalived_pid: c
            .peer
            .as_ref()
            .and_then(|p| p.keepalived_pid_file.clone())
            .unwrap_or_else(|| PathBuf::from(crate::peer::KEEPALIVED_PID)),
        ..Tools::default()
    };
    for (i, ck) in checked.iter().enumerate() {
        ck.needs(&tools)
            .map_err(|e| usage_error(format!("probe {}: {e}", i + 1)))?;
    }
    // A one-shot run while the monitor runs (an operator's `ha-check -v`) disturbs
    // nothing: the monitor owns the metrics (the same textfile and run counters), so the run
    // writes none of them unless told where with --textfile.
    let monitor_runs = monitor.is_none()
        && cli.textfile.is_none()
        && c.track_file
            .as_ref()
            .is_some_and(|t| crate::monitor::alive(t, hakit_core::heartbeat::STALE).is_ok());
    if monitor_runs {
        info!("the uplink monitor runs and writes the metrics: this run leaves them alone");
    }
    let textfile = cli
        .textfile
        .or(c.textfile)
        .or_else(|| {
            file.general
                .textfile_dir
                .map(|d| d.join("hakit_ha_check.prom"))
        })
        .filter(|_| !monitor_runs);
    let nft_table = cli
        .nft_counters
        .or(c.nft_counters)
        .map(|s| s.parse::<NftTable>().map_err(usage_error))
        .transpose()?;
    if monitor.is_some() && monitored.is_empty() {
        return Err(usage_error(
            "no probe for the monitor: fip-owner probes are role-dependent and left out; add the uplink's (icmp, neighbour, link, route)",
        ));
    }
    for name in &left_out {
        info!("{name}: role-dependent (fails on the BACKUP), not part of the monitor's verdict");
    }
    if let Some((track, every, duration, rt_priority, peer)) = monitor {
        let stop = Arc::new(AtomicBool::new(false));
        stop_on_signals(stop.clone());
        info!(
            "monitoring {} probe(s); verdicts to {}",
            monitored.len(),
            track.display()
        );
        let pair = file.general.pair.clone();
        let mut publish = |v: &Verdict, vrrp: &crate::split::PathReport| {
            if let Some(path) = &textfile {
                let mut t = metrics(pair.as_deref(), v, None);
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
        warn_unless_tmpfs(&track);
        monitor::run(
            monitored,
            groups,
            tools,
            monitor::Settings {
                track_file: track,
                max_duration: duration,
                rt_priority,
                peer,
                drain_file: drain_file.clone(),
            },
            stop,
            every,
            &mut publish,
        )?;
        return Ok(Exit::Ok);
    }
    // The counters are only for the textfile; read them beside the probes, same deadline.
    let counters = nft_table.filter(|_| textfile.is_some()).map(|table| {
        let read = std::thread::spawn({
            let (table, tools) = (table.clone(), tools.clone());
            move || counters::parse(tools.ruleset(deadline)?, &table)
        });
        (table, read)
    });
    let verdict = runner::run(&checked, &groups, deadline, &tools);
    let counters = counters.map(|(table, read)| {
        let got = read
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the nft counter reader panicked")));
        log_counter_errors(&rt, &table, got.as_ref().err());
        (table, got.ok())
    });
    if adhoc_run {
        // A probe run by hand is logged every time and leaves vrrp_script's state alone.
        let o = &verdict.probes[0];
        info!(
            "{} {}: {}",
            o.name,
            if o.ok { "ok" } else { "FAILED" },
            o.detail
        );
    } else {
        log_on_change(&rt, &verdict);
    }
    if let Some(path) = textfile {
        let mut t = metrics(file.general.pair.as_deref(), &verdict, counters.as_ref());
        if !adhoc_run {
            // Counters, so an alert can count failed runs in a window whatever the scrape
            // interval (a gauge sampled by scrapes cannot count events); kept in the
            // runtime directory across runs, reset with it (Prometheus handles resets).
            let (runs, failures) = count_run(&rt, verdict.healthy);
            add_counters(&mut t, runs, failures);
            t.add(
                "hakit_ha_check_interval_seconds",
                Kind::Gauge,
                "How often ha-check is expected to run (its vrrp_script interval).",
                &[],
                interval.as_secs_f64(),
            );
        }
        if let Err(e) = t.write(&path) {
            warn!("metrics textfile: {e:#}");
        }
    }
    if cli.json {
        hakit_core::outln!("{}", serde_json::to_string(&verdict)?);
    } else if cli.common.verbose > 0 || std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        for o in &verdict.probes {
            hakit_core::outln!(
                "{} {:<28} {:>9.3} ms  {}",
                if o.ok { "ok  " } else { "FAIL" },
                o.name,
                o.ms,
                o.detail
            );
        }
        hakit_core::outln!(
            "{} in {:.1} ms (deadline {:.0} ms)",
            if verdict.healthy {
                "healthy"
            } else {
                "UNHEALTHY"
            },
            verdict.ms,
            verdict.deadline_ms
        );
    }
    Ok(if verdict.healthy {
        Exit::Ok
    } else {
        Exit::Failed
    })
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

/// Logs the verdict when it differs from the last run's (kept in the runtime directory),
/// so a 1-second vrrp_script does not flood syslog.
fn log_on_change(dir: &std::path::Path, v: &Verdict) {
    let failing: Vec<String> = v
        .probes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| format!("{}: {}", o.name, o.detail))
        .collect();
    let key: Vec<&str> = v
        .probes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| o.name.as_str())
        .collect();
    let now = format!("{}|{}", v.healthy, key.join(","));
    if !changed(dir, "ha-check.last", &now) {
        hakit_core::debug!(
            "unchanged: {}",
            if v.healthy { "healthy" } else { "unhealthy" }
        );
        return;
    }
    if v.healthy {
        info!("healthy: {} probe(s) pass", v.probes.len());
    } else {
        warn!("UNHEALTHY: {}", failing.join("; "));
    }
}

/// Logs a failure to read the nft counters when it first happens or changes, and the
/// recovery, not every second (the runtime directory remembers the last error).
fn log_counter_errors(dir: &std::path::Path, table: &NftTable, err: Option<&anyhow::Error>) {
    let now = err.map(|e| format!("{e:#}")).unwrap_or_default();
    if !changed(dir, "ha-check.nft-counters.last", &now) {
        return;
    }
    match err {
        Some(_) => warn!("nft counters of table {table} not exported: {now}"),
        None => info!("nft counters of table {table} readable again"),
    }
}

/// Whether `now` differs from what the file in the runtime directory recorded last run;
/// records it if so. A missing file reads as "" (the quiet state).
fn changed(dir: &std::path::Path, file: &str, now: &str) -> bool {
    let path = dir.join(file);
    // Only a private runtime directory keeps this state: in one another user can write,
    // every run logs (noisier, never misled).
    if runtime::ensure_private_dir(dir).is_err() {
        return true;
    }
    if std::fs::read_to_string(&path).unwrap_or_default() == now {
        return false;
    }
    let _ = runtime::write_atomic(&path, now.as_bytes(), 0o644);
    true
}

/// Adds this run to the counters kept in the runtime directory: (runs, failures) so far.
/// Without a private runtime directory they start from this run (still valid counters:
/// Prometheus reads a drop as a reset).
fn count_run(dir: &std::path::Path, healthy: bool) -> (u64, u64) {
    let path = dir.join("ha-check.counters");
    let private = runtime::ensure_private_dir(dir).is_ok();
    let (mut runs, mut failures) = private
        .then(|| std::fs::read_to_string(&path).ok())
        .flatten()
        .and_then(|t| {
            let (r, f) = t.trim().split_once(' ')?;
            Some((r.parse::<u64>().ok()?, f.parse::<u64>().ok()?))
        })
        .filter(|(r, f)| f <= r)
        .unwrap_or((0, 0));
    runs = runs.saturating_add(1);
    if !healthy {
        failures = failures.saturating_add(1);
    }
    if private {
        let _ = runtime::write_atomic(&path, format!("{runs} {failures}\n").as_bytes(), 0o644);
    }
    (runs, failures)
}

/// The run and failure counters the alerts read (`increase(...)` over a window).
fn add_counters(t: &mut Textfile, runs: u64, failures: u64) {
    t.add(
        "hakit_ha_check_runs_total",
        Kind::Counter,
        "Runs of the configured checks.",
        &[],
        runs as f64,
    );
    t.add(
        "hakit_ha_check_failures_total",
        Kind::Counter,
        "Runs whose verdict was unhealthy.",
        &[],
        failures as f64,
    );
}

/// The VRRP path as the monitor hears it (see `split.rs`); the names beside keepalived's
/// exporters' are in the README ("VRRP path metrics").
fn vrrp_metrics(t: &mut Textfile, p: &crate::split::PathReport) {
    t.add(
        "hakit_vrrp_path_cut",
        Kind::Gauge,
        "1 while this node stands down because only the VRRP path is cut: the peer reports MASTER over the sync link, its adverts do not arrive.",
        &[],
        f64::from(u8::from(p.standing_down)),
    );
    if !p.listening {
        return;
    }
    let counters = [
        (
            "hakit_vrrp_adverts_received_total",
            "VRRP adverts heard from the peer.",
            p.received,
        ),
        (
            "hakit_vrrp_adverts_missed_total",
            "VRRP adverts the peer's announced interval promised and that did not arrive.",
            p.missed,
        ),
        (
            "hakit_vrrp_priority_zero_received_total",
            "Priority-0 adverts from the peer (its keepalived resigning).",
            p.priority_zero,
        ),
    ];
    for (name, help, n) in counters {
        t.add(name, Kind::Counter, help, &[], n as f64);
    }
    if let Some(iv) = p.interval {
        t.add(
            "hakit_vrrp_advert_interval_seconds",
            Kind::Gauge,
            "The advert interval the peer announces.",
            &[],
            iv.as_secs_f64(),
        );
    }
    if let Some(g) = p.gaps {
        let gaps = [
            (
                "hakit_vrrp_advert_gap_max_seconds",
                "The longest gap between the peer's adverts since the last write.",
                g.max,
            ),
            (
                "hakit_vrrp_advert_gap_p99_seconds",
                "The 99th percentile of the gaps between the peer's adverts since the last write.",
                g.p99,
            ),
        ];
        for (name, help, d) in gaps {
            t.add(name, Kind::Gauge, help, &[], d.as_secs_f64());
        }
    }
}

fn metrics(
    pair: Option<&str>,
    v: &Verdict,
    nft: Option<&(NftTable, Option<Vec<Counter>>)>,
) -> Textfile {
    let mut t = Textfile::for_pair(pair);
    t.add(
        "hakit_ha_check_healthy",
        Kind::Gauge,
        "1 if the last run was healthy.",
        &[],
        f64::from(u8::from(v.healthy)),
    );
    t.add(
        "hakit_ha_check_run_duration_seconds",
        Kind::Gauge,
        "Duration of the last run.",
        &[],
        v.ms / 1000.0,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    t.add(
        "hakit_ha_check_last_run_timestamp_seconds",
        Kind::Gauge,
        "Unix time of the last run.",
        &[],
        now,
    );
    for o in &v.probes {
        let labels = [("probe", o.name.as_str()), ("kind", o.kind)];
        t.add(
            "hakit_ha_check_probe_up",
            Kind::Gauge,
            "1 if the probe passed in the last run.",
            &labels,
            f64::from(u8::from(o.ok)),
        );
        t.add(
            "hakit_ha_check_probe_latency_seconds",
            Kind::Gauge,
            "Probe duration in the last run.",
            &labels,
            o.ms / 1000.0,
        );
    }
    // Configured quorum groups only: a probe's implicit group of one repeats its probe_up.
    for g in v.groups.iter().filter(|g| !g.name.starts_with("probe:")) {
        t.add(
            "hakit_ha_check_group_passed",
            Kind::Gauge,
            "Probes of the group that passed.",
            &[("group", g.name.as_str())],
            g.passed as f64,
        );
    }
    if let Some((table, read)) = nft {
        let table = table.to_string();
        t.add(
            "hakit_ha_check_nft_table_readable",
            Kind::Gauge,
            "1 if the nftables table's named counters could be read in the last run.",
            &[("table", table.as_str())],
            f64::from(u8::from(read.is_some())),
        );
        for c in read.iter().flatten() {
            let labels = [("table", table.as_str()), ("counter", c.name.as_str())];
            t.add(
                "hakit_ha_check_nft_packets_total",
                Kind::Counter,
                "Packets counted by the named nftables counter since the ruleset was loaded.",
                &labels,
                c.packets as f64,
            );
            t.add(
                "hakit_ha_check_nft_bytes_total",
                Kind::Counter,
                "Bytes counted by the named nftables counter since the ruleset was loaded.",
                &labels,
                c.bytes as f64,
            );
        }
    }
    t
}

/// SIGTERM/SIGINT set `stop`; the watch loop checks it between probes.
fn stop_on_signals(stop: Arc<AtomicBool>) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    // Blocked in this thread before any other starts, so every thread inherits the mask
    // and the signals wait for the thread below.
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            info!("{sig} received: stopping");
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
}
