//! "Is there a newer state than mine?", asked before every step.
//!
//! Hook mode (`nat-notify master`, generic `notify`): two signals.
//! * keepalived's own VIPs (`vrrp_vips`): keepalived adds an instance's virtual addresses
//!   before it runs the MASTER hook and removes them before BACKUP/FAULT/STOP, so their
//!   presence tells the state keepalived is in *now*. A hook whose state disagrees is stale.
//! * The intent log: every hook takes a generation when it starts. A newer intent that
//!   agrees with keepalived's VIPs (any newer intent where no VIPs are configured)
//!   supersedes an older one. A newer intent that disagrees is itself stale (a hook that
//!   happened to start late) and must not make the right one give up.
//!
//! MASTER_RX_LOWER_PRI re-asserts the current state: its intent supersedes nothing.
//!
//! FIFO mode: lines are read in keepalived's order, so a newer line for the same instance
//! waiting in the queue supersedes the transition in progress; intents from concurrent hook
//! invocations count too.

use std::{
    collections::VecDeque,
    net::IpAddr,
    sync::{Arc, Condvar, Mutex},
};

use hakit_net::Netlink;

use crate::{
    event::{Event, State},
    runtime::Runtime,
};

/// Whether all of `vips` are on this node (`None` when none are configured or netlink
/// cannot tell).
pub fn vips_held(nl: &Netlink, vips: &[IpAddr]) -> Option<bool> {
    if vips.is_empty() {
        return None;
    }
    vips_on(&nl.addresses(None).ok()?, vips)
}

/// Whether all of `vips` are among `addrs` (a dump already taken); `None` when none are
/// configured.
pub fn vips_on(addrs: &[hakit_net::IfAddr], vips: &[IpAddr]) -> Option<bool> {
    (!vips.is_empty()).then(|| vips.iter().all(|v| addrs.iter().any(|a| a.addr == *v)))
}

/// The hook-mode check for a transition of `instance` to `state` with generation `gen`.
pub fn hook<'a>(
    rt: &'a Runtime,
    nl: &'a Netlink,
    instance: &'a str,
    vips: &'a [IpAddr],
    state: State,
    gen: u64,
) -> impl Fn() -> Option<String> + 'a {
    move || {
        let held = vips_held(nl, vips);
        let agrees = |s: State| held.is_none_or(|h| s.holds_vips() == h);
        if !agrees(state) {
            let now = if held == Some(true) {
                "holds"
            } else {
                "no longer holds"
            };
            return Some(format!(
                "keepalived {now} the instance's VIPs: it has left {state}"
            ));
        }
        match rt.newer_intents(instance, gen) {
            Ok(newer) => newer
                .iter()
                .rev()
                .filter(|i| i.state != State::MasterRxLowerPri)
                .find(|i| agrees(i.state))
                .map(|i| format!("newer {} (generation {})", i.state, i.generation)),
            // Cannot read the log: do not guess, carry on (the lock still serialises us).
            Err(_) => None,
        }
    }
}

/// Events read from the FIFO and not yet handled, and whether the FIFO has ended: one lock
/// for both, and the wake-up sent under it, so the worker can never miss an event between
/// its look at the queue and its wait (a lost wake-up left an event unapplied until
/// keepalived wrote another line).
#[derive(Debug, Default)]
pub struct Inbox {
    queue: Mutex<(VecDeque<Event>, bool)>,
    ready: Condvar,
}

impl Inbox {
    /// Queues an event (coalesced with what it makes pointless) and wakes the worker.
    pub fn push(&self, ev: Event) {
        if let Ok(mut q) = self.queue.lock() {
            push_coalesced(&mut q.0, ev);
            self.ready.notify_one();
        }
    }

    /// Marks the end of the FIFO and wakes the worker.
    pub fn close(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.1 = true;
            self.ready.notify_one();
        }
    }

    /// The next event to apply (older events it makes pointless dropped), waiting for
    /// one; `None` once the FIFO has ended and everything queued was taken.
    pub fn next(&self) -> Option<Event> {
        let mut q = self.queue.lock().ok()?;
        loop {
            while let Some(ev) = q.0.pop_front() {
                if let Some(ev) = coalesce(&mut q.0, ev) {
                    return Some(ev);
                }
            }
            if q.1 {
                return None;
            }
            q = self.ready.wait(q).ok()?;
        }
    }

    /// The newest queued state (not MASTER_RX_LOWER_PRI) of `instance`, if any.
    pub fn newer(&self, instance: &str) -> Option<State> {
        let q = self.queue.lock().ok()?;
        q.0.iter()
            .rev()
            .find(|e| e.name == instance && e.state != State::MasterRxLowerPri)
            .map(|e| e.state)
    }
}

/// The FIFO reader's inbox, shared by the reading thread and the worker.
pub type Pending = Arc<Inbox>;

/// The FIFO-mode check: a newer line for `instance` is queued, or a hook registered a
/// newer intent.
pub fn fifo<'a>(
    rt: &'a Runtime,
    pending: &'a Pending,
    instance: &'a str,
    gen: u64,
) -> impl Fn() -> Option<String> + 'a {
    move || {
        if let Some(state) = pending.newer(instance) {
            return Some(format!("newer {state} queued in the FIFO"));
        }
        rt.newer_intents(instance, gen)
            .ok()?
            .iter()
            .rev()
            .find(|i| i.state != State::MasterRxLowerPri)
            .map(|i| format!("newer {} (generation {})", i.state, i.generation))
    }
}

/// Queued events at most (after coalescing there are at most two per instance; this only
/// bounds a flood of lines for instances that are not configured).
pub const MAX_QUEUE: usize = 10_000;

/// Queues `ev`, dropping the queued events of its instance it makes pointless (see
/// [`coalesce`]), so a burst of any size leaves at most a couple of events per instance.
pub fn push_coalesced(queue: &mut VecDeque<Event>, ev: Event) {
    let rx = ev.state == State::MasterRxLowerPri;
    queue.retain(|e| !(e.name == ev.name && (!rx || e.state == State::MasterRxLowerPri)));
    if queue.len() >= MAX_QUEUE {
        log::warn!("notify FIFO: {MAX_QUEUE} events queued; the oldest is dropped");
        queue.pop_front();
    }
    queue.push_back(ev);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event pushed from another thread is taken, however the two interleave, and
    /// the end of the FIFO is seen once everything queued was taken. Fewer events than
    /// [`MAX_QUEUE`]: a consumer that falls that far behind (under qemu, one did with
    /// 20,000) has the oldest dropped, by design.
    #[test]
    fn the_inbox_never_loses_a_wake_up() {
        let inbox: Pending = Arc::new(Inbox::default());
        let n = MAX_QUEUE as u32 - 1;
        let producer = {
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    inbox.push(Event {
                        name: format!("VI_{i}"),
                        state: State::Backup,
                    });
                    if i % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
                inbox.close();
            })
        };
        let mut taken = 0;
        while let Some(ev) = inbox.next() {
            assert_eq!(ev.name, format!("VI_{taken}"));
            taken += 1;
        }
        producer.join().unwrap();
        assert_eq!(taken, n);
        assert_eq!(inbox.next(), None, "the end stays the end");
    }

    fn rt(tag: &str) -> (Runtime, std::path::PathBuf) {
        let d = std::env::temp_dir().join(format!("hakit-supersede-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        (Runtime::open(&d).unwrap(), d)
    }

    /// MASTER_RX_LOWER_PRI has its own generation: a BACKUP registered after it supersedes
    /// it, and it never supersedes the MASTER transition it re-asserts.
    #[test]
    fn rx_lower_pri_is_superseded_by_a_later_backup_and_supersedes_nothing() {
        let (rt, d) = rt("rx");
        let nl = Netlink::open().unwrap();
        let master = rt.register("VI_1", State::Master).unwrap();
        let rx = rt.register("VI_1", State::MasterRxLowerPri).unwrap();
        assert!(rx > master);
        // Without VIPs to look at (hook mode without vrrp_vips), only the intent log speaks.
        assert_eq!(hook(&rt, &nl, "VI_1", &[], State::Master, master)(), None);
        let pending: Pending = Arc::new(Inbox::default());
        assert_eq!(fifo(&rt, &pending, "VI_1", master)(), None);
        let backup = rt.register("VI_1", State::Backup).unwrap();
        let why = hook(&rt, &nl, "VI_1", &[], State::MasterRxLowerPri, rx)().unwrap();
        assert!(
            why.contains(&format!("newer BACKUP (generation {backup})")),
            "{why}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
