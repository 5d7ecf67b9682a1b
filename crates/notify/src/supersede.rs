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
    sync::{Arc, Mutex},
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
    let addrs = nl.addresses(None).ok()?;
    Some(vips.iter().all(|v| addrs.iter().any(|a| a.addr == *v)))
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

/// Events read from the FIFO and not yet handled.
pub type Pending = Arc<Mutex<VecDeque<Event>>>;

/// The FIFO-mode check: a newer line for `instance` is queued, or a hook registered a
/// newer intent.
pub fn fifo<'a>(
    rt: &'a Runtime,
    pending: &'a Pending,
    instance: &'a str,
    gen: u64,
) -> impl Fn() -> Option<String> + 'a {
    move || {
        if let Ok(q) = pending.lock() {
            if let Some(e) = q
                .iter()
                .rev()
                .find(|e| e.name == instance && e.state != State::MasterRxLowerPri)
            {
                return Some(format!("newer {} queued in the FIFO", e.state));
            }
        }
        rt.newer_intents(instance, gen)
            .ok()?
            .iter()
            .rev()
            .find(|i| i.state != State::MasterRxLowerPri)
            .map(|i| format!("newer {} (generation {})", i.state, i.generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let pending: Pending = Arc::new(Mutex::new(VecDeque::new()));
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
