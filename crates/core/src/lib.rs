//! Shared plumbing for the four hakit binaries.
//!
//! Everything a keepalived hook needs before it can do its real job lives here, so that
//! each binary's `main.rs` stays a thin parse–run–exit:
//!
//! * [`exit`]: the exit-code contract (0 ok, 1 failed, 2 usage/config, 3 superseded or
//!   partial), identical in every binary because keepalived and shell scripts read it.
//! * [`duration`]: human durations (`200ms`, `1s`, `1.5s`) for flags, env and the file.
//! * [`config`]: the one TOML file shared by all binaries, with the precedence
//!   flag > env > file > default and unknown keys rejected by name.
//! * [`logging`]: syslog (`/dev/log`, overridable) plus stderr when interactive or `-v`.
//! * [`runtime`]: the runtime directory, exclusive locks and atomic file replacement.
//! * [`metrics`]: a Prometheus textfile writer (written atomically).
//! * [`sched`]: real-time scheduling, bounded, for the loops that must keep their cadence.
//! * [`clock`], [`sysctl`], [`heartbeat`]: the wall clock, kernel settings and the uplink
//!   monitor's heartbeat, each read one way by every binary.
//!
//! Library code here never prints and never exits; only [`cli::finish`] does, on behalf of
//! `main`.

pub mod cli;
pub mod clock;
pub mod config;
pub mod duration;
pub mod exec;
pub mod exit;
pub mod heartbeat;
pub mod logging;
pub mod metrics;
pub mod procs;
pub mod runtime;
pub mod sysctl;
pub use hakit_sys::sched;

pub use duration::HDuration;

/// The `--version` text: the package version, and the commit when the build named it
/// (build.rs of the hakit package, from `HAKIT_COMMIT`).
#[macro_export]
macro_rules! version {
    () => {
        match option_env!("HAKIT_VERSION") {
            Some(v) => v,
            None => env!("CARGO_PKG_VERSION"),
        }
    };
}
pub use exit::{usage_error, Exit, UsageError};
