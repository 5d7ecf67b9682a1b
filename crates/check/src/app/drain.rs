//! `ha-check drain` and `undrain`: the maintenance flag the monitor reads (a file that
//! survives reboots), written and removed.

use std::path::Path;

use hakit_core::{usage_error, Exit};
use log::{info, warn};

/// Writes the drain file with `reason`: the monitor gives the role away and keeps it away.
pub(super) fn drain(reason: &[String], drain_file: &Path) -> anyhow::Result<Exit> {
    let reason = reason.join(" ");
    if reason.chars().any(char::is_control) || reason.len() > 200 {
        return Err(usage_error(
            "the reason is one line of at most 200 characters",
        ));
    }
    if let Some(dir) = drain_file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("create {}: {e}", dir.display()))?;
    }
    hakit_core::runtime::write_atomic(drain_file, format!("{reason}\n").as_bytes(), 0o644)?;
    warn!(
        "drained: {}",
        if reason.is_empty() {
            "no reason given"
        } else {
            &reason
        }
    );
    hakit_core::outln!(
        "drained ({}): the monitor gives the role away within 250 ms and keeps it away, across reboots, until `ha-check undrain`",
        drain_file.display()
    );
    Ok(Exit::Ok)
}

/// Removes the drain file: the monitor's verdict decides again.
pub(super) fn undrain(drain_file: &Path) -> anyhow::Result<Exit> {
    match std::fs::remove_file(drain_file) {
        Ok(()) => {
            info!("undrained");
            hakit_core::outln!(
                "undrained: the monitor's verdict decides again (keepalived may take the role back)"
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            hakit_core::outln!("not drained ({} does not exist)", drain_file.display())
        }
        Err(e) => anyhow::bail!("remove {}: {e}", drain_file.display()),
    }
    Ok(Exit::Ok)
}
