//! `ha-check watch`: the peer watch for clouds without VRRP, its arguments checked and
//! handed to [`crate::watch`].

use std::{
    net::IpAddr,
    sync::{atomic::AtomicBool, Arc},
};

use hakit_cli::ha_check::Cmd;
use hakit_core::{usage_error, Exit};

use crate::watch::{self, Watch};

/// Runs the watch `cmd` until a signal; `configured` is `watch_peer` of `[check]`.
pub(super) fn run(cmd: Cmd, configured: Option<IpAddr>) -> anyhow::Result<Exit> {
    let Cmd::Watch {
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
    } = cmd
    else {
        return Err(usage_error("not the watch command"));
    };
    if fall == 0 || rise == 0 || interval.get().is_zero() {
        return Err(usage_error("--fall, --rise and --interval must be above 0"));
    }
    // Never a placeholder: a peer that matches nothing looks dead, and the watch would
    // take the floating IP from a healthy primary.
    let peer = peer.or(configured).ok_or_else(|| {
        usage_error(
            "no peer to watch: set watch_peer in [check] (the primary's address) or give --peer",
        )
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
    super::signals::stop_on_signals(stop.clone());
    watch::run(&w, stop)?;
    Ok(Exit::Ok)
}
