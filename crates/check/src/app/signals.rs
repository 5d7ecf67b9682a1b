//! SIGTERM and SIGINT for the long-running modes (the monitor, the peer watch).

use std::sync::{atomic::AtomicBool, Arc};

use log::info;

/// SIGTERM/SIGINT set `stop`; the watch loop checks it between probes.
pub(super) fn stop_on_signals(stop: Arc<AtomicBool>) {
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
