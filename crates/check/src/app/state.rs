//! What ha-check remembers between runs, in its runtime directory: the last verdict and
//! the last nft counter error (so a 1-second vrrp_script logs changes, not every run) and
//! the run counters the alerts read.

use hakit_core::runtime;
use hakit_net::nft::NftTable;
use log::{info, warn};

use crate::runner::Verdict;

/// Logs the verdict when it differs from the last run's (kept in the runtime directory),
/// so a 1-second vrrp_script does not flood syslog.
pub(super) fn log_on_change(dir: &std::path::Path, v: &Verdict) {
    let failing: Vec<String> = v
        .probes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| format!("{}: {}", o.name, o.detail))
        .collect();
    let key: Vec<&str> = v
        .probes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| o.name.as_str())
        .collect();
    let now = format!("{}|{}", v.healthy, key.join(","));
    if !changed(dir, "ha-check.last", &now) {
        hakit_core::debug!(
            "unchanged: {}",
            if v.healthy { "healthy" } else { "unhealthy" }
        );
        return;
    }
    if v.healthy {
        info!("healthy: {} probe(s) pass", v.probes.len());
    } else {
        warn!("UNHEALTHY: {}", failing.join("; "));
    }
}

/// Logs a failure to read the nft counters when it first happens or changes, and the
/// recovery, not every second (the runtime directory remembers the last error).
pub(super) fn log_counter_errors(
    dir: &std::path::Path,
    table: &NftTable,
    err: Option<&anyhow::Error>,
) {
    let now = err.map(|e| format!("{e:#}")).unwrap_or_default();
    if !changed(dir, "ha-check.nft-counters.last", &now) {
        return;
    }
    match err {
        Some(_) => warn!("nft counters of table {table} not exported: {now}"),
        None => info!("nft counters of table {table} readable again"),
    }
}

/// Whether `now` differs from what the file in the runtime directory recorded last run;
/// records it if so. A missing file reads as "" (the quiet state).
pub(super) fn changed(dir: &std::path::Path, file: &str, now: &str) -> bool {
    let path = dir.join(file);
    // Only a private runtime directory keeps this state: in one another user can write,
    // every run logs (noisier, never misled).
    if runtime::ensure_private_dir(dir).is_err() {
        return true;
    }
    if std::fs::read_to_string(&path).unwrap_or_default() == now {
        return false;
    }
    let _ = runtime::write_atomic(&path, now.as_bytes(), 0o644);
    true
}

/// Adds this run to the counters kept in the runtime directory: (runs, failures) so far.
/// Without a private runtime directory they start from this run (still valid counters:
/// Prometheus reads a drop as a reset).
pub(super) fn count_run(dir: &std::path::Path, healthy: bool) -> (u64, u64) {
    let path = dir.join("ha-check.counters");
    let private = runtime::ensure_private_dir(dir).is_ok();
    let (mut runs, mut failures) = private
        .then(|| std::fs::read_to_string(&path).ok())
        .flatten()
        .and_then(|t| {
            let (r, f) = t.trim().split_once(' ')?;
            Some((r.parse::<u64>().ok()?, f.parse::<u64>().ok()?))
        })
        .filter(|(r, f)| f <= r)
        .unwrap_or((0, 0));
    runs = runs.saturating_add(1);
    if !healthy {
        failures = failures.saturating_add(1);
    }
    if private {
        let _ = runtime::write_atomic(&path, format!("{runs} {failures}\n").as_bytes(), 0o644);
    }
    (runs, failures)
}
