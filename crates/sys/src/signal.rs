//! Signal dispositions: `signal(2)` is unsafe in nix because a handler must be
//! async-signal-safe; hakit only ever installs SIG_IGN and SIG_DFL, which run no code.

use std::process::Command;

use nix::sys::signal::{sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};

/// Ignores `sig`; returns the disposition it replaced (for [`restore`]).
#[allow(unsafe_code)]
pub fn ignore(sig: Signal) -> nix::Result<SigHandler> {
    // SAFETY: SIG_IGN installs no handler code, so no async-signal-safety rules apply.
    unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) }
}

/// Puts back a disposition [`ignore`] returned (SIG_IGN or SIG_DFL: hakit installs no
/// handlers; anything else is refused).
#[allow(unsafe_code)]
pub fn restore(sig: Signal, old: SigHandler) -> nix::Result<()> {
    if !matches!(old, SigHandler::SigIgn | SigHandler::SigDfl) {
        return Err(nix::errno::Errno::EINVAL);
    }
    // SAFETY: SIG_IGN or SIG_DFL, checked above: no handler code.
    unsafe { nix::sys::signal::signal(sig, old) }.map(|_| ())
}

/// The child `cmd` starts with the default disposition of `sigs` and no signal
/// blocked (SIG_IGN survives exec: a daemon a hook starts could not be stopped with
/// SIGTERM).
#[allow(unsafe_code)]
pub fn defaults_in_child(cmd: &mut Command, sigs: &'static [Signal]) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the child between fork and exec; signal(2) with SIG_DFL and
    // sigprocmask(2) are async-signal-safe, and nothing is allocated.
    unsafe {
        cmd.pre_exec(move || {
            for sig in sigs {
                nix::sys::signal::signal(*sig, SigHandler::SigDfl).map_err(std::io::Error::from)?;
            }
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}
