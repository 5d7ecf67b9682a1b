//! The monitor's threads: the probes that are asked and answered (icmp, neighbour), one
//! thread per interval; every other probe, a thread each; the kernel's events, which re-run
//! the link, address and route probes at once. Each applies its answers to its probe's
//! [`State`] (the hysteresis) and tells the loop only when a probe goes up or down.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use log::warn;

use crate::{
    kinds::Class,
    probe::{Checked, ProbeResult, Tools},
    rt::realtime,
};

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

/// One probe's state: the last answer, the hysteresis, and the times the peer's monitor
/// compares (see [`crate::peer`]).
#[derive(Debug, Clone, Default)]
pub(super) struct State {
    pub(super) up: Option<bool>,
    streak: u32,
    pub(super) last: Option<ProbeResult>,
    /// When the current run of passes began (`None` while failing).
    pub(super) ok_since: Option<Instant>,
    pub(super) last_ok: Option<Instant>,
    /// When the current run of failures began (`None` while passing).
    fail_since: Option<Instant>,
    /// While down: when the failing run that took it down began.
    pub(super) down_since: Option<Instant>,
}

impl State {
    /// Applies one answer; true when the probe's up/down state changed.
    pub(super) fn apply(&mut self, o: ProbeResult, fall: u32, rise: u32) -> bool {
        self.apply_at(o, fall, rise, Instant::now())
    }

    pub(super) fn apply_at(&mut self, o: ProbeResult, fall: u32, rise: u32, now: Instant) -> bool {
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

/// A probe's up/down state changed.
pub(super) struct Change {
    pub(super) i: usize,
    pub(super) was: Option<bool>,
    pub(super) now: Option<bool>,
    pub(super) detail: String,
}

/// The states, also when a probe thread panicked while holding them (never poisoned for
/// good: the data is a plain record, valid after any partial update).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts the probe threads (and the kernel events' if a probe reads the kernel's state);
/// each applies its answers to `states` and sends a [`Change`] on `tx`.
pub(super) fn spawn(
    probes: &[Monitored],
    tools: &Tools,
    rt_priority: u8,
    states: &Arc<Mutex<Vec<State>>>,
    tx: mpsc::Sender<Change>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    // Each probe thread applies its answers to its own slot and wakes the loop below only
    // when its up/down state changes: 50 answers a second per probe cost no extra thread
    // switch (a context switch is most of a probe's price in a VM).
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
            probes.to_vec(),
            tx.clone(),
            stop.clone(),
            states.clone(),
            rt_priority,
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
        let rt = rt_priority;
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
        let (stop, rt) = (stop.clone(), rt_priority);
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

    Ok(())
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
