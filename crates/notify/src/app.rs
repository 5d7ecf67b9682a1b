//! The two ways nat-notify runs: one hook invocation, or a `notify_fifo` reader.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    os::unix::fs::FileTypeExt,
    path::Path,
    sync::Arc,
    thread,
};

use anyhow::Context;
use hakit_cli::nat_notify::UnknownInstance;
use hakit_core::{usage_error, Exit};
use hakit_net::Netlink;
use log::{error, info, warn};

use crate::{
    config::Instance,
    engine::Settings,
    event::{self, Event, State},
    metrics,
    report::{Ended, Report},
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

/// The generation a transition gets: a new one for every event. MASTER_RX_LOWER_PRI
/// takes its own too (it used to reuse the newest, so a BACKUP racing it could not
/// supersede it and the provider ended up routing to a BACKUP); it never supersedes
/// anything itself ([`supersede`] ignores such intents).
///
/// Bookkeeping never blocks the data plane: when the intent log cannot be written (a full
/// or read-only /run), the transition runs as the newest there is (keepalived's VIPs still
/// tell a stale hook apart).
fn generation(s: &Settings, name: &str, state: State) -> anyhow::Result<u64> {
    Ok(s.runtime.register(name, state).unwrap_or_else(|e| {
        warn!("{name}: cannot record the intent ({e:#}): going on as the newest");
        u64::MAX
    }))
}

/// Maps a report to the exit code.
pub fn exit_of(r: &Report) -> Exit {
    match r.outcome {
        Ended::Converged | Ended::DryRun => Exit::Ok,
        Ended::Failed => Exit::Failed,
        Ended::Superseded => Exit::Partial,
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
    let report = crate::steps::transition(s, all, inst, state, gen, &nl, &check)?;
    if let Err(e) = metrics::write_metrics(s, all) {
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
    check_fifo(path)?;
    ignore_termination();
    let file = File::open(path).with_context(|| format!("open notify FIFO {}", path.display()))?;
    info!("reading keepalived events from {}", path.display());
    // One netlink socket for the reader's whole life, not one per event.
    let nl = Netlink::open()?;
    let pending: supersede::Pending = Arc::new(supersede::Inbox::default());
    let inbox = pending.clone();
    thread::spawn(move || {
        let mut reader = BufReader::new(file);
        let mut buf = Vec::new();
        loop {
            match read_line(&mut reader, &mut buf) {
                Ok(Line::Eof) => break,
                Ok(Line::TooLong(n)) => warn!(
                    "notify FIFO: a line of {n} bytes or more skipped (events are under {MAX_LINE})"
                ),
                Ok(Line::Text) => match event::from_fifo_line(&String::from_utf8_lossy(&buf)) {
                    Ok(Some(ev)) => inbox.push(ev),
                    Ok(None) => {}
                    Err(e) => warn!("notify FIFO: {}: skipped", capped(&e, 200)),
                },
                Err(e) => {
                    error!("notify FIFO: read error, the reader stops: {e}");
                    break;
                }
            }
        }
        inbox.close();
    });
    if let Some(every) = s.heartbeat {
        // The reader's heartbeat: the textfile rewritten every `every`, so a reader that
        // died or hangs shows as stale (HakitWriterSilent), not as the last healthy state.
        let (hs, all) = (s.clone(), all.to_vec());
        thread::spawn(move || loop {
            if let Err(e) = metrics::write_metrics(&hs, &all) {
                warn!("metrics textfile (heartbeat): {e:#}");
            }
            thread::sleep(every);
        });
    }
    let mut handled = 0u64;
    while let Some(ev) = pending.next() {
        handled += 1;
        if let Err(e) = fifo_event(s, &nl, all, policy, &pending, &ev) {
            error!("{} {}: {e:#}", ev.name, ev.state);
        }
    }
    info!("notify FIFO closed after {handled} event(s)");
    Ok(Exit::Ok)
}

/// Anything but a FIFO is a usage error: a directory made the reader spin at 100% CPU on
/// EISDIR, a regular file would be read once and end the reader at its end.
pub fn check_fifo(path: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_fifo() => Ok(()),
        Ok(_) => Err(usage_error(format!(
            "{} is not a FIFO (keepalived's vrrp_notify_fifo creates one)",
            path.display()
        ))),
        Err(e) => Err(usage_error(format!("notify FIFO {}: {e}", path.display()))),
    }
}

/// keepalived's FIFO lines are ~40 bytes; anything this long is not one of them.
const MAX_LINE: usize = 4096;

enum Line {
    Text,
    TooLong(usize),
    Eof,
}

/// Reads one line into `buf` (without its newline), never holding more than [`MAX_LINE`]
/// bytes of it: a longer line is read to its end and dropped.
fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Line> {
    buf.clear();
    let mut dropped = 0usize;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(if dropped > 0 {
                Line::TooLong(dropped)
            } else if buf.is_empty() {
                Line::Eof
            } else {
                Line::Text
            });
        }
        let (part, end) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if dropped > 0 || buf.len() + part.len() > MAX_LINE {
            dropped += buf.len() + part.len();
            buf.clear();
        } else {
            buf.extend_from_slice(part);
        }
        let used = end.unwrap_or(chunk.len());
        r.consume(used);
        if end.is_some() {
            return Ok(if dropped > 0 {
                Line::TooLong(dropped)
            } else {
                Line::Text
            });
        }
    }
}

/// At most `n` characters of `s`, control characters escaped: an error that quotes input
/// must not carry a whole hostile line (or terminal escapes) into the log.
fn capped(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).flat_map(char::escape_debug).collect();
    if s.chars().nth(n).is_some() {
        out.push('…');
    }
    out
}

/// keepalived signals its FIFO script when it shuts down, possibly while the STOP event is
/// still queued or being applied. The reader ends at EOF instead (keepalived's exit closes
/// the FIFO), so the last event is always handled in full.
fn ignore_termination() {
    use nix::sys::signal::Signal;
    for sig in [Signal::SIGTERM, Signal::SIGHUP] {
        if let Err(e) = hakit_sys::signal::ignore(sig) {
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
    let report = crate::steps::transition(s, all, inst, ev.state, gen, nl, &check)?;
    if let Err(e) = metrics::write_metrics(s, all) {
        warn!("{e:#}");
    }
    if report.outcome == Ended::Superseded {
        info!("{} {}: superseded by a newer event", ev.name, ev.state);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn ev(name: &str, state: State) -> Event {
        Event {
            name: name.into(),
            state,
        }
    }

    fn drain(events: &[(&str, State)]) -> Vec<(String, State)> {
        let mut q: VecDeque<Event> = events.iter().map(|(n, s)| ev(n, *s)).collect();
        let mut applied = Vec::new();
        while let Some(e) = q.pop_front() {
            if let Some(e) = crate::supersede::coalesce(&mut q, e) {
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
    fn a_burst_queues_a_couple_of_events_per_instance() {
        let mut q = VecDeque::new();
        for i in 0..100_000u32 {
            let state = [State::Master, State::Backup, State::MasterRxLowerPri][i as usize % 3];
            crate::supersede::push_coalesced(
                &mut q,
                ev(if i % 2 == 0 { "VI_1" } else { "VI_2" }, state),
            );
        }
        assert!(q.len() <= 4, "{q:?}");
        // The newest state of each instance survives.
        let last = |n: &str| {
            q.iter()
                .rev()
                .find(|e| e.name == n && e.state != State::MasterRxLowerPri)
                .map(|e| e.state)
        };
        assert_eq!(last("VI_1"), Some(State::Master)); // i = 99_996, 99_996 % 3 == 0
        assert_eq!(last("VI_2"), Some(State::Master)); // i = 99_999, 99_999 % 3 == 0
    }

    #[test]
    fn long_lines_are_dropped_without_being_held() {
        let long = "x".repeat(1 << 20);
        let input = format!("INSTANCE \"VI_1\" MASTER 150\n{long}\nINSTANCE \"VI_1\" BACKUP 150");
        let mut r = BufReader::with_capacity(64, input.as_bytes());
        let mut buf = Vec::new();
        assert!(matches!(read_line(&mut r, &mut buf).unwrap(), Line::Text));
        assert_eq!(buf, b"INSTANCE \"VI_1\" MASTER 150");
        assert!(matches!(read_line(&mut r, &mut buf).unwrap(), Line::TooLong(n) if n == 1 << 20));
        assert!(
            buf.capacity() <= 2 * MAX_LINE,
            "held {} bytes",
            buf.capacity()
        );
        assert!(matches!(read_line(&mut r, &mut buf).unwrap(), Line::Text));
        assert_eq!(buf, b"INSTANCE \"VI_1\" BACKUP 150");
        assert!(matches!(read_line(&mut r, &mut buf).unwrap(), Line::Eof));
        assert_eq!(capped("a\u{1b}[31mb", 3), "a\\u{1b}[…");
    }

    #[test]
    fn rx_lower_pri_after_a_backup_is_kept_for_the_engine_to_judge() {
        use State::*;
        assert_eq!(
            drain(&[("VI_1", Backup), ("VI_1", MasterRxLowerPri)]),
            vec![
                ("VI_1".to_string(), Backup),
                ("VI_1".to_string(), MasterRxLowerPri)
            ]
        );
    }
}
