//! The two ways nat-notify runs: one hook invocation, or a `notify_fifo` reader.

use std::{
    collections::VecDeque,
    fs::File,
    io::{BufRead, BufReader},
    path::Path,
    sync::{Arc, Condvar, Mutex},
    thread,
};

use anyhow::Context;
use hakit_core::{
    config::{Instance, UnknownInstance},
    usage_error, Exit,
};
use hakit_net::Netlink;
use log::{error, info, warn};

use crate::{
    engine::{self, Outcome, Report, Settings},
    event::{self, Event, State},
    supersede,
};

/// Finds the configured instance for an event; `Ok(None)` means "unknown, ignore".
pub fn find<'a>(
    instances: &'a [Instance],
    name: &str,
    policy: UnknownInstance,
) -> anyhow::Result<Option<&'a Instance>> {
    match instances.iter().find(|i| i.name == name) {
        Some(i) => Ok(Some(i)),
        None if policy == UnknownInstance::Fail => Err(usage_error(format!(
            "instance {name:?} is not configured (known: {})",
            instances
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        None => {
            info!("instance {name:?} is not configured here: ignored, nothing touched");
            Ok(None)
        }
    }
}

/// The generation a transition gets: a new one, except for MASTER_RX_LOWER_PRI, which
/// re-asserts the current state and must not supersede a MASTER transition in progress.
fn generation(s: &Settings, name: &str, state: State) -> anyhow::Result<u64> {
    if state == State::MasterRxLowerPri {
        return Ok(s
            .runtime
            .newer_intents(name, 0)?
            .last()
            .map_or(0, |i| i.generation));
    }
    s.runtime.register(name, state)
}

/// Maps a report to the exit code.
pub fn exit_of(r: &Report) -> Exit {
    match r.outcome {
        Outcome::Converged | Outcome::DryRun => Exit::Ok,
        Outcome::Failed => Exit::Failed,
        Outcome::Superseded => Exit::Partial,
    }
}

/// One hook invocation (`nat-notify master`, or the generic `notify` arguments).
pub fn hook(
    s: &Settings,
    all: &[Instance],
    inst: &Instance,
    state: State,
) -> anyhow::Result<Report> {
    let gen = generation(s, &inst.name, state)?;
    let nl = Netlink::open()?;
    let check = supersede::hook(&s.runtime, &nl, &inst.name, &inst.vrrp_vips, state, gen);
    let report = engine::transition(s, inst, state, gen, &nl, &check)?;
    if let Err(e) = engine::write_metrics(s, all) {
        warn!("{e:#}");
    }
    Ok(report)
}

/// Reads `notify_fifo` lines from `path` until EOF and handles them in order, serially. A
/// malformed line or a failed transition is logged and never ends the loop.
pub fn fifo(
    s: &Settings,
    all: &[Instance],
    policy: UnknownInstance,
    path: &Path,
) -> anyhow::Result<Exit> {
    ignore_termination();
    let file = File::open(path).with_context(|| format!("open notify FIFO {}", path.display()))?;
    info!("reading keepalived events from {}", path.display());
    // One netlink socket for the reader's whole life, not one per event.
    let nl = Netlink::open()?;
    let pending: supersede::Pending = Arc::new(Mutex::new(VecDeque::new()));
    let state = Arc::new((Mutex::new(false), Condvar::new())); // (eof, wake-up)
    let (q, st) = (pending.clone(), state.clone());
    thread::spawn(move || {
        for line in BufReader::new(file).lines() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    warn!("notify FIFO: unreadable line skipped: {e}");
                    continue;
                }
            };
            match event::from_fifo_line(&line) {
                Ok(Some(ev)) => {
                    if let Ok(mut q) = q.lock() {
                        q.push_back(ev);
                    }
                    st.1.notify_one();
                }
                Ok(None) => {}
                Err(e) => warn!("notify FIFO: {e}: skipped"),
            }
        }
        if let Ok(mut eof) = st.0.lock() {
            *eof = true;
        }
        st.1.notify_one();
    });
    let mut handled = 0u64;
    loop {
        let next = {
            let (eof, cv) = &*state;
            let mut done = eof
                .lock()
                .map_err(|_| anyhow::anyhow!("FIFO reader lock poisoned"))?;
            loop {
                if let Some(ev) = pending.lock().ok().and_then(|mut q| q.pop_front()) {
                    break Some(ev);
                }
                if *done {
                    break None;
                }
                done = cv
                    .wait(done)
                    .map_err(|_| anyhow::anyhow!("FIFO reader lock poisoned"))?;
            }
        };
        let Some(ev) = next else { break };
        let Some(ev) = pending.lock().ok().and_then(|mut q| coalesce(&mut q, ev)) else {
            continue;
        };
        handled += 1;
        if let Err(e) = fifo_event(s, &nl, all, policy, &pending, &ev) {
            error!("{} {}: {e:#}", ev.name, ev.state);
        }
    }
    info!("notify FIFO closed after {handled} event(s)");
    Ok(Exit::Ok)
}

/// Only the newest event of an instance matters. Given the event just taken from the
/// queue, returns the one to apply now, or `None` when a newer queued event makes it
/// pointless: a later MASTER/BACKUP/FAULT/STOP of the same instance replaces it, and a
/// later MASTER_RX_LOWER_PRI replaces an earlier one. MASTER_RX_LOWER_PRI events queued
/// behind a MASTER are dropped (the MASTER transition re-announces anyway). keepalived
/// sends MASTER_RX_LOWER_PRI with every advert it hears during a one-way VRRP loss (25/s at
/// advert_int 0.04): applied one by one they kept a node re-announcing for minutes after the
/// cut healed.
pub fn coalesce(queue: &mut VecDeque<Event>, ev: Event) -> Option<Event> {
    let rx = |e: &Event| e.state == State::MasterRxLowerPri;
    let mut later = queue.iter().filter(|e| e.name == ev.name);
    if later.clone().any(|e| !rx(e)) || (rx(&ev) && later.any(rx)) {
        return None;
    }
    if !rx(&ev) && ev.state == State::Master {
        queue.retain(|e| !(e.name == ev.name && rx(e)));
    }
    Some(ev)
}

/// keepalived signals its FIFO script when it shuts down, possibly while the STOP event is
/// still queued or being applied. The reader ends at EOF instead (keepalived's exit closes
/// the FIFO), so the last event is always handled in full.
#[allow(unsafe_code)]
fn ignore_termination() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in [Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: SIG_IGN installs no handler code, so no async-signal-safety rules apply;
        // the previous disposition is not needed.
        if let Err(e) = unsafe { signal(sig, SigHandler::SigIgn) } {
            warn!("cannot ignore {sig}: {e}");
        }
    }
}

fn fifo_event(
    s: &Settings,
    nl: &Netlink,
    all: &[Instance],
    policy: UnknownInstance,
    pending: &supersede::Pending,
    ev: &Event,
) -> anyhow::Result<()> {
    let Some(inst) = find(all, &ev.name, policy)? else {
        return Ok(());
    };
    let gen = generation(s, &inst.name, ev.state)?;
    let check = supersede::fifo(&s.runtime, pending, &inst.name, gen);
    let report = engine::transition(s, inst, ev.state, gen, nl, &check)?;
    if let Err(e) = engine::write_metrics(s, all) {
        warn!("{e:#}");
    }
    if report.outcome == Outcome::Superseded {
        info!("{} {}: superseded by a newer event", ev.name, ev.state);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: &str, state: State) -> Event {
        Event {
            group: false,
            name: name.into(),
            state,
            priority: None,
        }
    }

    fn drain(events: &[(&str, State)]) -> Vec<(String, State)> {
        let mut q: VecDeque<Event> = events.iter().map(|(n, s)| ev(n, *s)).collect();
        let mut applied = Vec::new();
        while let Some(e) = q.pop_front() {
            if let Some(e) = coalesce(&mut q, e) {
                applied.push((e.name, e.state));
            }
        }
        applied
    }

    #[test]
    fn a_burst_of_rx_lower_pri_is_applied_once() {
        let burst: Vec<_> = (0..1000)
            .map(|_| ("VI_1", State::MasterRxLowerPri))
            .collect();
        assert_eq!(
            drain(&burst),
            vec![("VI_1".to_string(), State::MasterRxLowerPri)]
        );
    }

    #[test]
    fn only_the_newest_state_of_each_instance_is_applied() {
        use State::*;
        let got = drain(&[
            ("VI_1", Master),
            ("VI_2", Backup),
            ("VI_1", Backup),
            ("VI_1", Master),
            ("VI_1", MasterRxLowerPri),
            ("VI_2", Master),
            ("VI_1", MasterRxLowerPri),
        ]);
        assert_eq!(
            got,
            vec![("VI_1".to_string(), Master), ("VI_2".to_string(), Master)]
        );
    }

    #[test]
    fn rx_lower_pri_after_a_backup_is_kept_for_the_engine_to_judge() {
        use State::*;
        assert_eq!(
            drain(&[("VI_1", Backup), ("VI_1", MasterRxLowerPri)]),
            vec![("VI_1".to_string(), MasterRxLowerPri)]
        );
    }
}
