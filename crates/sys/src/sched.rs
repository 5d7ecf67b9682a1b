//! Real-time scheduling for the long-running loops that must keep their cadence when every
//! core is busy (the uplink monitor's 20 ms probes).
//!
//! keepalived documents the failure this prevents (keepalived.conf(5), `vrrp_rt_priority`):
//! a node "too busy to process vrrp packets" hands over although nothing failed. A monitor
//! that probes every 20 ms and declares the uplink dead after four misses has the same
//! problem at a finer grain: on a loaded machine a normal (CFS) thread can wait 100 ms and
//! more for a core, and the misses are the monitor's own, not the uplink's. With `SCHED_RR`
//! the probe threads run the moment they wake.
//!
//! The bounds, as keepalived sets them: `RLIMIT_RTTIME` caps the CPU a thread may use
//! without blocking (a bug that spins is killed by the kernel, the unit restarts it, and the
//! stale heartbeat demotes the node meanwhile), and `SCHED_RESET_ON_FORK` keeps the children
//! a probe runs (`nft`, `systemctl`) out of the real-time class.

use std::time::Duration;

use anyhow::Context;
use nix::sys::resource::{setrlimit, Resource};

/// The highest real-time priority Linux accepts.
pub const MAX_PRIORITY: u8 = 99;

/// Puts the calling thread (and every thread it creates afterwards) in `SCHED_RR` at
/// `priority` (1..=99), with `RLIMIT_RTTIME` at `rttime` for the whole process. Call it
/// before spawning threads: Linux applies a policy per thread, and new threads inherit it.
pub fn realtime(priority: u8, rttime: Duration) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_PRIORITY).contains(&priority),
        "real-time priority {priority} is outside 1..={MAX_PRIORITY}"
    );
    let us = u64::try_from(rttime.as_micros()).unwrap_or(u64::MAX).max(1);
    // The limit first: the thread is never real-time without it.
    setrlimit(Resource::RLIMIT_RTTIME, us, us).context("RLIMIT_RTTIME")?;
    let mut param = zeroed_param();
    param.sched_priority = i32::from(priority);
    // The system call itself: musl's sched_setscheduler() is a stub (ENOSYS), since
    // POSIX means the process and Linux the thread.
    // SAFETY: the kernel reads one fully initialised sched_param through the pointer for
    // the duration of the call and keeps nothing; pid 0 is the calling thread.
    #[allow(unsafe_code)]
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_sched_setscheduler,
            0,
            nix::libc::SCHED_RR | nix::libc::SCHED_RESET_ON_FORK,
            &param as *const nix::libc::sched_param,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("sched_setscheduler(SCHED_RR)");
    }
    Ok(())
}

/// Puts the calling thread back in normal scheduling (SCHED_OTHER) if it is real-time:
/// hakit's hooks and checks inherit keepalived's real time (its unit sets it) and are not
/// real-time work, nor are the programs they run. Nothing happens for a normal thread.
pub fn normal() -> anyhow::Result<()> {
    if current().is_none() {
        return Ok(());
    }
    let param = zeroed_param();
    // SAFETY: as in `realtime`: one initialised sched_param, read for the call only; pid 0
    // is the calling thread.
    #[allow(unsafe_code)]
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_sched_setscheduler,
            0,
            nix::libc::SCHED_OTHER,
            &param as *const nix::libc::sched_param,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("sched_setscheduler(SCHED_OTHER)");
    }
    Ok(())
}

/// A `sched_param` of zeros (musl's has fields glibc's lacks; only the priority is read).
fn zeroed_param() -> nix::libc::sched_param {
    // SAFETY: sched_param is a C struct of integers (and, in musl, timespecs of integers):
    // all zeros is a valid value of every field.
    #[allow(unsafe_code)]
    unsafe {
        std::mem::zeroed()
    }
}

/// The calling thread's policy and priority, as /proc shows them: `Some(priority)` under
/// SCHED_RR or SCHED_FIFO, `None` otherwise.
pub fn current() -> Option<u8> {
    // SAFETY: sched_getscheduler takes no pointers; pid 0 is the calling thread. (System
    // calls, not libc's: musl's are stubs.)
    #[allow(unsafe_code)]
    let policy = unsafe { nix::libc::syscall(nix::libc::SYS_sched_getscheduler, 0) } as i32
        & !nix::libc::SCHED_RESET_ON_FORK;
    if policy != nix::libc::SCHED_RR && policy != nix::libc::SCHED_FIFO {
        return None;
    }
    let mut param = zeroed_param();
    // SAFETY: sched_getparam writes one sched_param through the pointer, which is valid
    // and exclusively borrowed for the call.
    #[allow(unsafe_code)]
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_sched_getparam,
            0,
            &mut param as *mut nix::libc::sched_param,
        )
    };
    (r == 0).then(|| u8::try_from(param.sched_priority).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_priorities_out_of_range_without_changing_anything() {
        let before = current();
        assert!(realtime(0, Duration::from_millis(200)).is_err());
        assert!(realtime(100, Duration::from_millis(200)).is_err());
        assert_eq!(current(), before);
    }

    #[test]
    fn a_thread_becomes_real_time_or_says_why_not() {
        // In a thread of its own: the policy is per thread, the test runner's stays.
        std::thread::spawn(|| match realtime(3, Duration::from_millis(500)) {
            Ok(()) => {
                assert_eq!(current(), Some(3));
                // A child does not inherit it (SCHED_RESET_ON_FORK).
                let out = std::process::Command::new("cat")
                    .arg("/proc/self/stat")
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                // proc(5): field 41 is the policy; fields 3.. follow the ")" of comm.
                let policy = text
                    .rsplit_once(')')
                    .and_then(|(_, f)| f.split_whitespace().nth(41 - 3))
                    .unwrap_or("?")
                    .to_string();
                assert_eq!(policy, "0", "child policy (0 = SCHED_OTHER): {text}");
            }
            // Unprivileged: refused by the kernel, named.
            Err(e) => {
                assert!(!nix::unistd::geteuid().is_root(), "root was refused: {e:#}");
                assert!(
                    format!("{e:#}").contains("RLIMIT_RTTIME")
                        || format!("{e:#}").contains("SCHED_RR")
                );
                assert_eq!(current(), None);
            }
        })
        .join()
        .unwrap();
    }
}
