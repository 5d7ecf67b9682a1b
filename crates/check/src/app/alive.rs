//! `ha-check monitor-alive`: keepalived's vrrp_script that demotes a node whose monitor is
//! dead or hung (its heartbeat stale).

use std::{path::Path, time::Duration};

use hakit_core::Exit;
use log::{info, warn};

use super::state::changed;

/// Exit 0 while the monitor writing `track`'s heartbeat is alive; said once per change.
pub(super) fn run(track: &Path, max_age: Duration, rt: &Path) -> Exit {
    match crate::monitor::alive(track, max_age) {
        Ok(hb) => {
            if changed(rt, "ha-check.monitor-alive.last", "") {
                info!("the monitor (pid {}) is alive", hb.pid);
            }
            Exit::Ok
        }
        Err(e) => {
            // keepalived runs this every second: said once per change, not every run.
            let now = format!("{e:#}");
            let key = now.split(" (").next().unwrap_or_default().to_string();
            if changed(rt, "ha-check.monitor-alive.last", &key) {
                warn!("monitor not alive: {now}");
            }
            Exit::Failed
        }
    }
}
