//! Real time for the monitor's threads (its loop, its probe threads, the peer exchange).

use std::time::Duration;

/// The bound under SCHED_RR: CPU time a thread may use without blocking (a probe blocks
/// every few microseconds; a thread that spins is killed, and the unit restarts it).
pub const RTTIME: Duration = Duration::from_millis(200);

/// The calling thread real-time, if asked (per thread: the children a probe runs, `nft`
/// or `systemctl`, are not; see hakit_core::sched).
pub fn realtime(priority: u8) -> anyhow::Result<()> {
    if priority == 0 {
        return Ok(());
    }
    hakit_core::sched::realtime(priority, RTTIME)
}
