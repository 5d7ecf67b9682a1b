//! A unit's state, through `systemctl` (the program that owns it).

use std::time::Duration;

use hakit_core::exec;

/// What `systemctl is-active UNIT` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// It exited 0: the unit is active (or reloading).
    pub active: bool,
    /// Its one word: `active`, `inactive`, `failed`, `activating`, ...
    pub word: String,
}

/// `systemctl is-active UNIT` within `timeout`; an error only when systemctl could not be
/// run or did not finish.
pub fn unit_state(systemctl: &str, unit: &str, timeout: Duration) -> anyhow::Result<UnitState> {
    let r = exec::run(&exec::argv(&[systemctl, "is-active", unit]), None, timeout)?;
    Ok(UnitState {
        active: r.success(),
        word: r.stdout.trim().to_string(),
    })
}
