//! `ha-check monitor`: the probes run continuously, each at its own cadence, and the
//! verdict goes to keepalived through a `track_file` the moment it changes.
//!
//! A process started by `vrrp_script` every second cannot see an uplink die in less than
//! a second, plus `fall` intervals. This loop can: each probe has a thread that runs it
//! every `interval` (20 ms for ICMP and neighbour probes of the gateway), fall/rise
//! hysteresis per probe, the quorum groups of a normal run, and a netlink event socket
//! that re-runs the link, address and route probes at once when the kernel reports a
//! change (carrier lost, the WAN address removed, the default route withdrawn).
//!
//! keepalived's side (see keepalived.conf(5), `track_file`): with `weight 0`, any non-zero
//! value puts the instance in FAULT, which sends a priority-0 advert; the backup takes over
//! without waiting for `preempt_delay`. The file is replaced atomically (rename), only when
//! the verdict changes, and not at all until every probe has answered once: a restarted
//! monitor never flaps the pair with a premature value.
//!
//! Fail-safe: the monitor also refreshes `FILE.heartbeat` every 250 ms (JSON: pid, time,
//! verdict, what fails). `ha-check monitor-alive`, a `vrrp_script` with a negative weight,
//! fails when the heartbeat is stale or its process is gone, so a dead or hung monitor
//! lowers this node's priority (the peer takes over if it is healthy) instead of leaving
//! keepalived trusting a stale "healthy" file.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc, Mutex,
    },
    time::{Duration, Instant},
};

use hakit_core::runtime;
use log::{info, warn};

use crate::{
    config::Group,
    peer::{self, Decision, PeerConfig},
    probe::Tools,
    roles::Roles,
    runner::{judge, Verdict},
    split,
};

mod threads;
pub use threads::Monitored;
use threads::{lock, Change, State};

/// The shortest probe interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(5);
/// How often the heartbeat is refreshed.
pub const HEARTBEAT: Duration = Duration::from_millis(250);
pub use crate::rt::{realtime, RTTIME};

/// Where and how the verdict is published.
#[derive(Debug, Clone)]
pub struct Settings {
    pub track_file: PathBuf,
    /// Stop after this long (tests and benchmarks); `None` runs until `stop`.
    pub max_duration: Option<Duration>,
    /// SCHED_RR priority of the loop and the probe threads (0: a normal process).
    pub rt_priority: u8,
    /// `[check.peer]`: compare notes with the peer's monitor before giving the role away.
    pub peer: Option<PeerConfig>,
    /// `ha-check drain`'s flag: while it exists the track file says 1.
    pub drain_file: PathBuf,
}

impl Settings {
    pub fn heartbeat_file(&self) -> PathBuf {
        heartbeat_path(&self.track_file)
    }
}

pub use hakit_core::heartbeat::{path as heartbeat_path, Heartbeat};

use hakit_core::clock::unix_ms as now_ms;

/// What this node tells the peer's monitor ([`crate::peer`]).
fn report(
    states: &[State],
    probes: &[Monitored],
    groups: &[Group],
    seq: u64,
    now: Instant,
) -> peer::Report {
    let ms = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t).as_millis() as u64);
    peer::Report {
        seq,
        healthy: verdict(states, probes, groups).map(|v| v.healthy),
        probes: states
            .iter()
            .zip(probes)
            .map(|(s, m)| peer::ProbeReport {
                name: m.probe.name.clone(),
                up: s.up,
                ok_for_ms: ms(s.ok_since),
                last_ok_ms: ms(s.last_ok),
            })
            .collect(),
    }
}

/// This node's probes and failing groups as [`peer::decide`] reads them.
fn mine(
    states: &[State],
    probes: &[Monitored],
    v: &Verdict,
) -> (Vec<peer::Mine>, Vec<peer::Failing>) {
    let mine = states
        .iter()
        .zip(probes)
        .map(|(s, m)| peer::Mine {
            name: m.probe.name.clone(),
            group: m
                .probe
                .group
                .clone()
                .unwrap_or_else(|| format!("probe:{}", m.probe.name)),
            local: m.kernel(),
            interval: m.interval,
            fall: m.fall,
            rise: m.rise,
            up: s.up,
            down_since: s.down_since,
            last_ok: s.ok_since.is_some(),
        })
        .collect();
    let failing = v
        .groups
        .iter()
        .filter(|g| !g.ok)
        .map(|g| peer::Failing {
            group: g.name.clone(),
            min: g.min,
        })
        .collect();
    (mine, failing)
}

/// The verdict of the probes' current states (each probe counts as its hysteresis says).
fn verdict(states: &[State], probes: &[Monitored], groups: &[Group]) -> Option<Verdict> {
    let mut outcomes = Vec::with_capacity(states.len());
    for (s, m) in states.iter().zip(probes) {
        let mut o = s.last.clone()?;
        o.ok = s.up?;
        o.group = m.probe.group.clone();
        outcomes.push(o);
    }
    let g = judge(&outcomes, groups);
    Some(Verdict {
        healthy: g.iter().all(|g| g.ok),
        groups: g,
        probes: outcomes,
        deadline_ms: 0.0,
        ms: 0.0,
    })
}

/// What this node's reports are made of: the probes' states, the probes, the groups.
type Reported<'a> = (&'a Arc<Mutex<Vec<State>>>, &'a [Monitored], &'a [Group]);

/// This node's VRRP roles, shared by the reports and the watch over the VRRP path.
type SharedRoles = Arc<Mutex<Option<Roles>>>;

/// Why the track file says 1 whatever the probes say: drained, or standing down.
fn forced(drained: Option<&str>, standing: Option<&split::Standing>) -> Option<String> {
    drained
        .map(|r| format!("drained: {r}"))
        .or_else(|| standing.map(|s| format!("standing down for {}", s.instance)))
}

/// This node's VRRP roles, read again when `max_age` old.
fn own(roles: &SharedRoles, max_age: Duration, now: Instant) -> Vec<(String, Option<Instant>)> {
    lock(roles)
        .as_mut()
        .map(|r| r.current(max_age, now).to_vec())
        .unwrap_or_default()
}

/// Starts the exchange with the peer's monitor ([`crate::peer`]): every `every`, this
/// node's probes and its VRRP roles (read at most every 50 ms: a few small files).
fn exchange(
    cfg: &PeerConfig,
    settings: &Settings,
    every: Duration,
    stop: &Arc<AtomicBool>,
    (states, probes, groups): Reported<'_>,
    roles: &SharedRoles,
) -> anyhow::Result<peer::Latest> {
    let (states, probes, groups) = (states.clone(), probes.to_vec(), groups.to_vec());
    let roles = roles.clone();
    peer::spawn(cfg, every, settings.rt_priority, stop.clone(), move |seq| {
        let now = Instant::now();
        let mut r = report(&lock(&states), &probes, &groups, seq, now);
        if let Some(roles) = lock(&roles).as_mut() {
            r.probes
                .extend(roles.report(Duration::from_millis(50), now));
        }
        r
    })
}

/// Runs until `stop` (or `max_duration`). `publish` is called with the verdict on every
/// change and at least every `publish_every` (the Prometheus textfile).
pub fn run(
    probes: Vec<Monitored>,
    groups: Vec<Group>,
    tools: Tools,
    settings: Settings,
    stop: Arc<AtomicBool>,
    publish_every: Duration,
    publish: &mut dyn FnMut(&Verdict, &split::PathReport),
) -> anyhow::Result<()> {
    let start = Instant::now();
    realtime_or_say(settings.rt_priority);
    let states = Arc::new(Mutex::new(vec![State::default(); probes.len()]));
    let (tx, rx) = mpsc::channel::<Change>();
    threads::spawn(&probes, &tools, settings.rt_priority, &states, tx, &stop)?;

    // The pair's other monitor, if configured: its reports, and how often they come.
    let every = probes
        .iter()
        .map(|m| m.interval)
        .min()
        .unwrap_or(HEARTBEAT)
        .clamp(Duration::from_millis(10), HEARTBEAT);
    let stale = every * 3;
    let listening = Instant::now();
    let roles = Arc::new(Mutex::new(settings.peer.as_ref().map(Roles::new)));
    let peer_latest = match &settings.peer {
        Some(cfg) => Some(exchange(
            cfg,
            &settings,
            every,
            &stop,
            (&states, &probes, &groups),
            &roles,
        )?),
        None => None,
    };
    // The peer's VRRP adverts, heard beside keepalived: a cut VRRP path makes the newer
    // MASTER stand down (see [`crate::split`]).
    let mut split = split::Watch::open(settings.peer.as_ref(), every);

    let mut t = Track {
        healthy: None,
        written: None,
        held: None,
        since_ms: now_ms(),
        next_beat: Instant::now(),
        next_publish: Instant::now() + publish_every,
        beat_error: false,
        drained: None,
    };
    let beat_file = settings.heartbeat_file();
    loop {
        if stop.load(Ordering::Relaxed)
            || settings.max_duration.is_some_and(|d| start.elapsed() >= d)
        {
            break;
        }
        let mut wait = t.next_beat.saturating_duration_since(Instant::now());
        if t.held.is_some() || split.is_some() {
            // Holding, or watching for a cut VRRP path: decide again as reports come.
            wait = wait.min(every);
        }
        let mut changed = match rx.recv_timeout(wait) {
            Ok(c) => {
                log_change(&probes[c.i], &c);
                true
            }
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                anyhow::bail!("every probe thread ended")
            }
        };
        changed |= t.read_drain(&settings.drain_file);
        if let (Some(w), Some(latest)) = (&mut split, &peer_latest) {
            let now = Instant::now();
            if w.update(
                peer::latest(latest).as_ref(),
                &mut || own(&roles, every, now),
                now,
            ) {
                changed = true;
                (t.next_beat, t.next_publish) = (now, now);
            }
        }
        let standing = split.as_ref().and_then(|w| w.standing.clone());
        let v = if changed || t.held.is_some() {
            verdict(&lock(&states), &probes, &groups)
        } else {
            None
        };
        if let Some(reason) = forced(t.drained.as_deref(), standing.as_ref()) {
            t.force(&settings.track_file, &reason)?;
        } else if let Some(v) = &v {
            let peer = settings.peer.as_ref().zip(peer_latest.as_ref());
            let (fault, why, wait) = t.judge(v, peer, stale, listening, || {
                mine(&lock(&states), &probes, v)
            });
            if t.apply(v, fault, &why, wait, &settings.track_file)? {
                // The heartbeat says the new verdict at once (nat-notify status reads it).
                t.next_beat = Instant::now();
                publish(v, &split::report(split.as_mut()));
                t.next_publish = Instant::now() + publish_every;
            }
        }
        let now = Instant::now();
        if now >= t.next_beat {
            t.next_beat = now + HEARTBEAT;
            let current = verdict(&lock(&states), &probes, &groups);
            t.beat(&beat_file, current.as_ref(), probes.len(), standing)?;
            if now >= t.next_publish {
                if let Some(v) = &current {
                    publish(v, &split::report(split.as_mut()));
                }
                t.next_publish = now + publish_every;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    Ok(())
}

/// The loop's real-time priority (the probe threads take the same), or why not.
fn realtime_or_say(rt_priority: u8) {
    match realtime(rt_priority) {
        Ok(()) if rt_priority > 0 => {
            info!("real-time scheduling: SCHED_RR priority {rt_priority}")
        }
        Ok(()) => {}
        Err(e) => warn!(
            "real-time scheduling refused ({e:#}): running as a normal process; on a busy machine probes may miss"
        ),
    }
}

/// A probe went up or down: said once, with what it saw.
fn log_change(m: &Monitored, c: &Change) {
    let o = c.detail.as_str();
    match (c.was, c.now) {
        (Some(true), Some(false)) => {
            warn!("{} down after {} failure(s): {o}", m.probe.name, m.fall)
        }
        (Some(false), Some(true)) => info!("{} up again: {o}", m.probe.name),
        (None, Some(false)) => warn!("{} down: {o}", m.probe.name),
        _ => {}
    }
}

/// What the loop has decided and written: the verdict, the track file (`Some(true)`: 1,
/// the role given away), why it holds the role while unhealthy, the drain, and when the
/// heartbeat and the textfile are next due.
struct Track {
    healthy: Option<bool>,
    written: Option<bool>,
    held: Option<String>,
    since_ms: u64,
    next_beat: Instant,
    next_publish: Instant,
    beat_error: bool,
    drained: Option<String>,
}

impl Track {
    /// The drain flag, read every round (at least every heartbeat): drained, the node gives
    /// the role away whatever the probes say; undrained, the verdict decides again. True
    /// when it changed.
    fn read_drain(&mut self, drain_file: &Path) -> bool {
        let now = hakit_core::heartbeat::drained(drain_file);
        if now == self.drained {
            return false;
        }
        match &now {
            Some(r) => warn!("drained ({r}): giving the role away until ha-check undrain"),
            None => info!("undrained: the verdict decides again"),
        }
        self.drained = now;
        self.next_beat = Instant::now();
        true
    }

    /// Drained or standing down: the track file says 1 whatever the probes say.
    fn force(&mut self, track_file: &Path, reason: &str) -> anyhow::Result<()> {
        self.held = None;
        if self.written != Some(true) {
            write_track(track_file, false)?;
            self.since_ms = now_ms();
            warn!("{} written 1 ({reason})", track_file.display());
            self.written = Some(true);
        }
        Ok(())
    }

    /// Whether an unhealthy verdict gives the role away (`fault`), why (the peer's view),
    /// and whether to hold without writing a first value (see `Decision::Wait`).
    fn judge(
        &self,
        v: &Verdict,
        peer: Option<(&PeerConfig, &peer::Latest)>,
        stale: Duration,
        listening: Instant,
        mine_now: impl FnOnce() -> (Vec<peer::Mine>, Vec<peer::Failing>),
    ) -> (bool, String, bool) {
        if v.healthy {
            return (false, String::new(), false);
        }
        if self.written == Some(true) {
            // Given away: it stays given away until this node is healthy again (a peer
            // that fails later holds the role itself; it never comes back here).
            return (true, String::new(), false);
        }
        let Some((cfg, latest)) = peer else {
            return (true, String::new(), false);
        };
        let (m, f) = mine_now();
        let seen = peer::latest(latest);
        match peer::decide(
            &m,
            &f,
            seen.as_ref(),
            (cfg.silent_after, stale),
            listening,
            Instant::now(),
        ) {
            Decision::Fault(w) => (true, w, false),
            Decision::Hold(w) => (false, w, false),
            Decision::Wait(w) => (false, w, self.written.is_none()),
        }
    }

    /// Logs and writes what [`Track::judge`] decided; true when the verdict changed.
    fn apply(
        &mut self,
        v: &Verdict,
        fault: bool,
        why: &str,
        wait: bool,
        track_file: &Path,
    ) -> anyhow::Result<bool> {
        let verdict_changed = self.healthy != Some(v.healthy);
        self.healthy = Some(v.healthy);
        if verdict_changed && !v.healthy {
            warn!("UNHEALTHY: {}", failing(v).join("; "));
        }
        match (&self.held, !v.healthy && !fault) {
            (None, true) => warn!("holding the role: {why}"),
            (Some(_), false) if !v.healthy => info!("no longer holding: {why}"),
            _ => {}
        }
        self.held = (!v.healthy && !fault).then(|| why.to_string());
        if self.written != Some(fault) && !wait {
            write_track(track_file, !fault)?;
            self.since_ms = now_ms();
            if fault {
                let why = if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({why})")
                };
                warn!("{} written 1{why}", track_file.display());
            } else {
                info!(
                    "{}: {} probe(s); {} written 0",
                    if v.healthy { "healthy" } else { "holding" },
                    v.probes.len(),
                    track_file.display()
                );
            }
            self.written = Some(fault);
        }
        Ok(verdict_changed)
    }

    /// Writes the heartbeat (`monitor-alive` and `nat-notify status` read it); a write
    /// error is said once, and its end.
    fn beat(
        &mut self,
        beat_file: &Path,
        current: Option<&Verdict>,
        probes: usize,
        standing: Option<split::Standing>,
    ) -> anyhow::Result<()> {
        let hb = Heartbeat {
            pid: std::process::id(),
            at_ms: now_ms(),
            healthy: self.written.map(|fault| !fault),
            since_ms: self.since_ms,
            failing: current.map(failing).unwrap_or_default(),
            probes,
            held: self.held.clone(),
            drained: self.drained.clone(),
            standing_down: standing.map(|s| s.why),
        };
        let r = runtime::write_atomic(beat_file, &serde_json::to_vec(&hb)?, 0o644);
        match (&r, self.beat_error) {
            (Err(e), false) => warn!("heartbeat: {e:#}"),
            (Ok(()), true) => info!("heartbeat written again"),
            _ => {}
        }
        self.beat_error = r.is_err();
        Ok(())
    }
}

fn failing(v: &Verdict) -> Vec<String> {
    v.probes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| format!("{}: {}", o.name, o.detail))
        .collect()
}

/// keepalived's track file: `0` healthy, `1` not (non-zero with weight 0 means FAULT).
pub fn write_track(path: &Path, healthy: bool) -> anyhow::Result<()> {
    runtime::write_atomic(path, if healthy { b"0\n" } else { b"1\n" }, 0o644)
}

/// Reads the heartbeat and judges it: Ok(heartbeat) when fresh (written within `max_age`
/// by a process that still exists), else an error saying why.
pub fn alive(track_file: &Path, max_age: Duration) -> anyhow::Result<Heartbeat> {
    let hb = hakit_core::heartbeat::read(track_file).map_err(anyhow::Error::msg)?;
    // A heartbeat dated in the future is not fresh: it says nothing about now (a clock
    // stepped back, or a file written by someone else to keep a dead monitor "alive").
    let ahead = hb.at_ms.saturating_sub(now_ms());
    if ahead > 2000 {
        anyhow::bail!(
            "the monitor's heartbeat is dated {:.1} s in the future (pid {}): not trusted",
            ahead as f64 / 1000.0,
            hb.pid
        );
    }
    let age = now_ms().saturating_sub(hb.at_ms);
    if age > max_age.as_millis() as u64 {
        anyhow::bail!(
            "the monitor's heartbeat is {:.1} s old (pid {}; limit {:.1} s)",
            age as f64 / 1000.0,
            hb.pid,
            max_age.as_secs_f64()
        );
    }
    if hb.pid == 0 || !Path::new(&format!("/proc/{}", hb.pid)).exists() {
        anyhow::bail!("the monitor (pid {}) is gone", hb.pid);
    }
    Ok(hb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ProbeResult;

    fn o(ok: bool) -> ProbeResult {
        ProbeResult {
            name: "gw".into(),
            kind: "icmp",
            group: None,
            ok,
            detail: String::new(),
            ms: 0.0,
        }
    }

    #[test]
    fn hysteresis_needs_fall_failures_and_rise_passes() {
        let mut s = State::default();
        assert!(s.apply(o(true), 3, 2), "the first answer sets the state");
        assert!(!s.apply(o(false), 3, 2));
        assert!(!s.apply(o(false), 3, 2));
        assert!(!s.apply(o(true), 3, 2), "a pass resets the failure streak");
        assert!(!s.apply(o(false), 3, 2));
        assert!(!s.apply(o(false), 3, 2));
        assert!(s.apply(o(false), 3, 2), "three in a row: down");
        assert_eq!(s.up, Some(false));
        assert!(!s.apply(o(true), 3, 2));
        assert!(s.apply(o(true), 3, 2), "two passes: up");
        assert_eq!(s.up, Some(true));
        let mut s = State::default();
        assert!(s.apply(o(false), 3, 2));
        assert_eq!(s.up, Some(false), "a first failure counts at once");
    }

    #[test]
    fn no_verdict_until_every_probe_answered() {
        let p = Monitored {
            probe: crate::probe::validate(
                &crate::config::Probe {
                    kind: Some("link".into()),
                    keys: crate::config::Keys(
                        [("interface".into(), crate::config::Value::Str("lo".into()))].into(),
                    ),
                    ..Default::default()
                },
                Duration::from_secs(1),
            )
            .unwrap(),
            interval: Duration::from_secs(1),
            fall: 1,
            rise: 1,
        };
        let probes = vec![p.clone(), p];
        let mut states = vec![State::default(); 2];
        states[0].apply(o(true), 1, 1);
        assert!(verdict(&states, &probes, &[]).is_none());
        states[1].apply(o(false), 1, 1);
        assert!(!verdict(&states, &probes, &[]).unwrap().healthy);
    }

    #[test]
    fn heartbeat_age_and_process() {
        let dir = std::env::temp_dir().join(format!("hakit-hb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let track = dir.join("uplink");
        let mut hb = Heartbeat {
            drained: None,
            standing_down: None,
            pid: std::process::id(),
            at_ms: now_ms(),
            healthy: Some(true),
            since_ms: now_ms(),
            failing: vec![],
            probes: 1,
            held: None,
        };
        let write = |hb: &Heartbeat| {
            std::fs::write(heartbeat_path(&track), serde_json::to_vec(hb).unwrap()).unwrap()
        };
        assert!(alive(&track, Duration::from_secs(3)).is_err(), "no file");
        write(&hb);
        assert_eq!(alive(&track, Duration::from_secs(3)).unwrap(), hb);
        hb.at_ms -= 5000;
        write(&hb);
        let e = alive(&track, Duration::from_secs(3))
            .unwrap_err()
            .to_string();
        assert!(e.contains("old"), "{e}");
        hb.at_ms = now_ms() + 60_000;
        write(&hb);
        let e = alive(&track, Duration::from_secs(3))
            .unwrap_err()
            .to_string();
        assert!(e.contains("in the future"), "{e}");
        hb.at_ms = now_ms();
        hb.pid = u32::MAX - 1;
        write(&hb);
        let e = alive(&track, Duration::from_secs(3))
            .unwrap_err()
            .to_string();
        assert!(e.contains("gone"), "{e}");
        std::fs::write(heartbeat_path(&track), "junk").unwrap();
        assert!(alive(&track, Duration::from_secs(3)).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
