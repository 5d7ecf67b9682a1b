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
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use hakit_core::runtime;
use log::{info, warn};

use crate::{
    config::Group,
    kinds::Class,
    peer::{self, Decision, PeerConfig},
    probe::{Checked, ProbeResult, Tools},
    runner::{judge, Verdict},
    split,
};

/// The shortest probe interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(5);
/// How often the heartbeat is refreshed.
pub const HEARTBEAT: Duration = Duration::from_millis(250);
pub use crate::rt::{realtime, RTTIME};

/// A probe with its cadence and hysteresis.
#[derive(Debug, Clone)]
pub struct Monitored {
    pub probe: Checked,
    pub interval: Duration,
    pub fall: u32,
    pub rise: u32,
}

impl Monitored {
    /// Link, address and route probes read the kernel's state: its events re-run them.
    pub fn kernel(&self) -> bool {
        self.probe.class() == Class::Kernel
    }
}

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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One probe's state: the last answer, the hysteresis, and the times the peer's monitor
/// compares (see [`crate::peer`]).
#[derive(Debug, Clone, Default)]
struct State {
    up: Option<bool>,
    streak: u32,
    last: Option<ProbeResult>,
    /// When the current run of passes began (`None` while failing).
    ok_since: Option<Instant>,
    last_ok: Option<Instant>,
    /// When the current run of failures began (`None` while passing).
    fail_since: Option<Instant>,
    /// While down: when the failing run that took it down began.
    down_since: Option<Instant>,
}

impl State {
    /// Applies one answer; true when the probe's up/down state changed.
    fn apply(&mut self, o: ProbeResult, fall: u32, rise: u32) -> bool {
        self.apply_at(o, fall, rise, Instant::now())
    }

    fn apply_at(&mut self, o: ProbeResult, fall: u32, rise: u32, now: Instant) -> bool {
        let ok = o.ok;
        self.last = Some(o);
        if ok {
            self.last_ok = Some(now);
            self.ok_since.get_or_insert(now);
            self.fail_since = None;
        } else {
            self.ok_since = None;
            self.fail_since.get_or_insert(now);
        }
        let changed = match self.up {
            None => {
                self.up = Some(ok);
                self.streak = 0;
                true
            }
            Some(up) if up == ok => {
                self.streak = 0;
                false
            }
            Some(up) => {
                self.streak += 1;
                if self.streak >= if up { fall } else { rise } {
                    self.up = Some(ok);
                    self.streak = 0;
                    true
                } else {
                    false
                }
            }
        };
        if changed {
            self.down_since = if ok { None } else { self.fail_since };
        }
        changed
    }
}

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

/// A probe's up/down state changed.
struct Change {
    i: usize,
    was: Option<bool>,
    now: Option<bool>,
    detail: String,
}

/// The states, also when a probe thread panicked while holding them (never poisoned for
/// good: the data is a plain record, valid after any partial update).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
type SharedRoles = Arc<Mutex<Option<peer::Roles>>>;

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
    match realtime(settings.rt_priority) {
        Ok(()) if settings.rt_priority > 0 => info!(
            "real-time scheduling: SCHED_RR priority {}",
            settings.rt_priority
        ),
        Ok(()) => {}
        Err(e) => warn!(
            "real-time scheduling refused ({e:#}): running as a normal process; on a busy machine probes may miss"
        ),
    }
    // Each probe thread applies its answers to its own slot and wakes the loop below only
    // when its up/down state changes: 50 answers a second per probe cost no extra thread
    // switch (a context switch is most of a probe's price in a VM).
    let states = Arc::new(Mutex::new(vec![State::default(); probes.len()]));
    let (tx, rx) = mpsc::channel::<Change>();
    let mut wakers: Vec<mpsc::Sender<()>> = Vec::new();
    // The probes that are one question and one answer (icmp, neighbour) share a thread per
    // interval: asked together on each tick, answered in one poll. At 20 ms that is one
    // wake-up per tick instead of one per probe, most of their CPU in a VM.
    let mut ticks: std::collections::BTreeMap<Duration, Vec<usize>> = Default::default();
    for (i, m) in probes.iter().enumerate() {
        if m.probe.splits() {
            ticks.entry(m.interval).or_default().push(i);
        }
    }
    for (interval, members) in ticks {
        let (probes, tx, stop, states, rt) = (
            probes.clone(),
            tx.clone(),
            stop.clone(),
            states.clone(),
            settings.rt_priority,
        );
        thread::Builder::new()
            .name(format!("tick-{}ms", interval.as_millis()))
            .spawn(move || {
                // As the loop's (whose outcome is logged above).
                let _ = realtime(rt);
                tick_loop(&members, &probes, interval, &states, &tx, &stop)
            })?;
    }
    for (i, m) in probes.iter().enumerate() {
        if m.probe.splits() {
            continue;
        }
        let (m, tx, tools, stop, states) = (
            m.clone(),
            tx.clone(),
            tools.clone(),
            stop.clone(),
            states.clone(),
        );
        let (wtx, wrx) = mpsc::channel::<()>();
        if m.kernel() {
            wakers.push(wtx);
        }
        let rt = settings.rt_priority;
        thread::Builder::new()
            .name(format!("probe-{i}"))
            .spawn(move || {
                // As the loop's (whose outcome is logged above).
                let _ = realtime(rt);
                probe_loop(i, &m, &tools, &states, &tx, &wrx, &stop)
            })?;
    }
    drop(tx);
    if !wakers.is_empty() {
        let events = hakit_net::neighbour::Events::open()?;
        let (stop, rt) = (stop.clone(), settings.rt_priority);
        thread::Builder::new()
            .name("netlink-events".into())
            .spawn(move || {
                let _ = realtime(rt);
                while !stop.load(Ordering::Relaxed) {
                    match events.wait(Duration::from_millis(500)) {
                        Ok(true) => {
                            for w in &wakers {
                                let _ = w.send(());
                            }
                        }
                        Ok(false) => {}
                        Err(e) => {
                            warn!("kernel events: {e:#}; link, address and route probes fall back to their interval");
                            return;
                        }
                    }
                }
            })?;
    }

    // The pair's other monitor, if configured: its reports, and how often they come.
    let every = probes
        .iter()
        .map(|m| m.interval)
        .min()
        .unwrap_or(HEARTBEAT)
        .clamp(Duration::from_millis(10), HEARTBEAT);
    let stale = every * 3;
    let listening = Instant::now();
    let roles = Arc::new(Mutex::new(settings.peer.as_ref().map(peer::Roles::new)));
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

    // The verdict, and what the track file says (true: 1, give the role away).
    let mut healthy: Option<bool> = None;
    let mut written: Option<bool> = None;
    let mut held: Option<String> = None;
    let mut since_ms = now_ms();
    let mut next_beat = Instant::now();
    let mut next_publish = Instant::now() + publish_every;
    let mut beat_error = false;
    let beat_file = settings.heartbeat_file();
    let mut drained: Option<String> = None;
    loop {
        if stop.load(Ordering::Relaxed)
            || settings.max_duration.is_some_and(|d| start.elapsed() >= d)
        {
            break;
        }
        let mut wait = next_beat.saturating_duration_since(Instant::now());
        if held.is_some() || split.is_some() {
            // Holding, or watching for a cut VRRP path: decide again as reports come.
            wait = wait.min(every);
        }
        let mut changed = false;
        match rx.recv_timeout(wait) {
            Ok(Change {
                i,
                was,
                now,
                detail,
            }) => {
                let m = &probes[i];
                changed = true;
                {
                    let o = detail.as_str();
                    match (was, now) {
                        (Some(true), Some(false)) => {
                            warn!("{} down after {} failure(s): {o}", m.probe.name, m.fall)
                        }
                        (Some(false), Some(true)) => info!("{} up again: {o}", m.probe.name),
                        (None, Some(false)) => warn!("{} down: {o}", m.probe.name),
                        _ => {}
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                anyhow::bail!("every probe thread ended")
            }
        }
        // The drain flag, read every round (at least every heartbeat): drained, the node
        // gives the role away whatever the probes say; undrained, the verdict decides again.
        let drain_now = hakit_core::heartbeat::drained(&settings.drain_file);
        if drain_now != drained {
            match &drain_now {
                Some(r) => warn!("drained ({r}): giving the role away until ha-check undrain"),
                None => info!("undrained: the verdict decides again"),
            }
            drained = drain_now;
            changed = true;
            next_beat = Instant::now();
        }
        if let (Some(w), Some(latest)) = (&mut split, &peer_latest) {
            let now = Instant::now();
            if w.update(
                peer::latest(latest).as_ref(),
                &mut || own(&roles, every, now),
                now,
            ) {
                changed = true;
                (next_beat, next_publish) = (now, now);
            }
        }
        let standing = split.as_ref().and_then(|w| w.standing.clone());
        let v = if changed || held.is_some() {
            verdict(&lock(&states), &probes, &groups)
        } else {
            None
        };
        if let Some(reason) = forced(drained.as_deref(), standing.as_ref()) {
            held = None;
            if written != Some(true) {
                write_track(&settings.track_file, false)?;
                since_ms = now_ms();
                warn!("{} written 1 ({reason})", settings.track_file.display());
                written = Some(true);
            }
        } else if let Some(v) = &v {
            // `wait`: hold without writing a first value (see `Decision::Wait`).
            let mut wait = false;
            let (fault, why) = if v.healthy {
                (false, String::new())
            } else if written == Some(true) {
                // Given away: it stays given away until this node is healthy again (a peer
                // that fails later holds the role itself; it never comes back here).
                (true, String::new())
            } else {
                match (&settings.peer, &peer_latest) {
                    (Some(cfg), Some(latest)) => {
                        let (m, f) = mine(&lock(&states), &probes, v);
                        let seen = peer::latest(latest);
                        match peer::decide(
                            &m,
                            &f,
                            seen.as_ref(),
                            (cfg.silent_after, stale),
                            listening,
                            Instant::now(),
                        ) {
                            Decision::Fault(w) => (true, w),
                            Decision::Hold(w) => (false, w),
                            Decision::Wait(w) => {
                                wait = written.is_none();
                                (false, w)
                            }
                        }
                    }
                    _ => (true, String::new()),
                }
            };
            let verdict_changed = healthy != Some(v.healthy);
            healthy = Some(v.healthy);
            if verdict_changed && !v.healthy {
                warn!("UNHEALTHY: {}", failing(v).join("; "));
            }
            match (&held, !v.healthy && !fault) {
                (None, true) => warn!("holding the role: {why}"),
                (Some(_), false) if !v.healthy => info!("no longer holding: {why}"),
                _ => {}
            }
            held = (!v.healthy && !fault).then_some(why.clone());
            if written != Some(fault) && !wait {
                write_track(&settings.track_file, !fault)?;
                since_ms = now_ms();
                if fault {
                    let why = if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({why})")
                    };
                    warn!("{} written 1{why}", settings.track_file.display());
                } else {
                    info!(
                        "{}: {} probe(s); {} written 0",
                        if v.healthy { "healthy" } else { "holding" },
                        v.probes.len(),
                        settings.track_file.display()
                    );
                }
                written = Some(fault);
            }
            if verdict_changed {
                // The heartbeat says the new verdict at once (nat-notify status reads it).
                next_beat = Instant::now();
                publish(v, &split::report(split.as_mut()));
                next_publish = Instant::now() + publish_every;
            }
        }
        let now = Instant::now();
        if now >= next_beat {
            next_beat = now + HEARTBEAT;
            let current = verdict(&lock(&states), &probes, &groups);
            let hb = Heartbeat {
                pid: std::process::id(),
                at_ms: now_ms(),
                healthy: written.map(|fault| !fault),
                since_ms,
                failing: current.as_ref().map(failing).unwrap_or_default(),
                probes: probes.len(),
                held: held.clone(),
                drained: drained.clone(),
                standing_down: standing.map(|s| s.why),
            };
            let r = runtime::write_atomic(&beat_file, &serde_json::to_vec(&hb)?, 0o644);
            match (&r, beat_error) {
                (Err(e), false) => warn!("heartbeat: {e:#}"),
                (Ok(()), true) => info!("heartbeat written again"),
                _ => {}
            }
            beat_error = r.is_err();
            if now >= next_publish {
                if let Some(v) = &current {
                    publish(v, &split::report(split.as_mut()));
                }
                next_publish = now + publish_every;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    Ok(())
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

/// Applies one answer to probe `i`'s state; tells the loop when its up/down state changed.
/// False when the loop is gone.
fn apply(
    i: usize,
    m: &Monitored,
    o: ProbeResult,
    states: &Mutex<Vec<State>>,
    tx: &mpsc::Sender<Change>,
) -> bool {
    let detail = o.detail.clone();
    let change = {
        let mut st = lock(states);
        let was = st[i].up;
        st[i].apply(o, m.fall, m.rise).then(|| (was, st[i].up))
    };
    match change {
        Some((was, now)) => tx
            .send(Change {
                i,
                was,
                now,
                detail,
            })
            .is_ok(),
        None => true,
    }
}

/// The probes `members` (all [`Checked::splits`], same `interval`) on one schedule: each
/// tick sends every question, then waits in one poll until each is answered or its
/// timeout passes (what arrived by then is read once more: an answer that came while
/// this thread waited for a core is in time).
fn tick_loop(
    members: &[usize],
    probes: &[Monitored],
    interval: Duration,
    states: &Mutex<Vec<State>>,
    tx: &mpsc::Sender<Change>,
    stop: &AtomicBool,
) {
    let mut sessions: Vec<crate::probe::Session> =
        members.iter().map(|_| Default::default()).collect();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Each answer is applied as it comes (a slow probe does not hold back the others).
        let mut gone = false;
        let mut waiting = Vec::with_capacity(members.len());
        for (k, &i) in members.iter().enumerate() {
            match probes[i]
                .probe
                .ask(&mut sessions[k], probes[i].probe.timeout)
            {
                Ok(asked) => waiting.push((k, asked)),
                Err(o) => gone |= !apply(i, &probes[i], o, states, tx),
            }
        }
        while !waiting.is_empty() && !gone {
            let now = Instant::now();
            waiting.retain(|(k, asked)| {
                let i = members[*k];
                match probes[i].probe.answer(&mut sessions[*k], asked, now) {
                    Some(o) => {
                        gone |= !apply(i, &probes[i], o, states, tx);
                        false
                    }
                    None => true,
                }
            });
            let Some(deadline) = waiting.iter().map(|(_, a)| a.deadline()).min() else {
                break;
            };
            let fds: Vec<_> = waiting
                .iter()
                .filter_map(|(k, _)| sessions[*k].fd())
                .collect();
            if fds.is_empty() {
                thread::sleep(deadline.saturating_duration_since(Instant::now()));
            } else if let Err(e) = hakit_net::sock::wait_any(&fds, deadline) {
                warn!("poll: {e:#}");
                thread::sleep(deadline.saturating_duration_since(Instant::now()));
            }
        }
        if gone {
            return;
        }
        // The next tick on the schedule (no drift); a tick that overran starts again now.
        next += interval;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        thread::sleep(next - now);
    }
}

fn probe_loop(
    i: usize,
    m: &Monitored,
    tools: &Tools,
    states: &Mutex<Vec<State>>,
    tx: &mpsc::Sender<Change>,
    wake: &mpsc::Receiver<()>,
    stop: &AtomicBool,
) {
    let kernel = m.kernel();
    let mut session = crate::probe::Session::default();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // nft-rule: a fresh ruleset listing per run (a single run's shared one would be
        // stale); every other probe reads the tools as they are.
        let fresh;
        let t = if m.probe.class() == Class::Ruleset {
            fresh = Tools {
                ruleset: Arc::default(),
                ..tools.clone()
            };
            &fresh
        } else {
            tools
        };
        let o = m.probe.run_in(&mut session, m.probe.timeout, t);
        if !apply(i, m, o, states, tx) {
            return;
        }
        // The next tick on the schedule (no drift); a probe that overran starts again now.
        next += m.interval;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        let wait = next - now;
        if kernel {
            // A kernel event runs the probe at once (and restarts its schedule).
            if wake.recv_timeout(wait).is_ok() {
                while wake.try_recv().is_ok() {}
                next = Instant::now();
            }
        } else {
            thread::sleep(wait);
        }
    }
}

/// Reads the heartbeat and judges it: Ok(heartbeat) when fresh (written within `max_age`
/// by a process that still exists), else an error saying why.
pub fn alive(track_file: &Path, max_age: Duration) -> anyhow::Result<Heartbeat> {
    let path = heartbeat_path(track_file);
    // Never blocking (a FIFO in its place), at most 64 KiB.
    let text = hakit_core::runtime::read_file(&path, 64 << 10, hakit_core::runtime::Trust::Config)
        .map_err(|e| anyhow::anyhow!("no heartbeat at {}: {e:#}", path.display()))?;
    let hb: Heartbeat = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a heartbeat: {e}", path.display()))?;
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
