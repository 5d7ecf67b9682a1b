//! One run of the probes (keepalived's `vrrp_script`, or one probe by hand): in parallel
//! under one deadline, judged by the quorum groups, logged once per change, the textfile
//! with the nft counters, printed for a person or as JSON.

use std::{path::PathBuf, time::Duration};

use hakit_core::{metrics::Kind, Exit};
use hakit_net::nft::{counters, NftTable};
use log::{info, warn};

use super::{
    metrics::{add_counters, metrics},
    probes::Resolved,
    state::{count_run, log_counter_errors, log_on_change},
};
use crate::runner::{self, Verdict};

/// How the run reports.
pub(super) struct Args {
    pub deadline: Duration,
    /// The vrrp_script interval, exported for the alerts.
    pub interval: Duration,
    /// A probe run by hand (a shortcut): logged every time, no run counters.
    pub by_hand: bool,
    pub textfile: Option<PathBuf>,
    pub nft_table: Option<NftTable>,
    pub pair: Option<String>,
    pub rt: PathBuf,
    pub json: bool,
    pub verbose: bool,
}

/// Runs the probes once; exit 0 healthy, 1 not.
pub(super) fn run(a: Args, r: Resolved) -> anyhow::Result<Exit> {
    // The counters are only for the textfile; read them beside the probes, same deadline.
    let counters = a.nft_table.filter(|_| a.textfile.is_some()).map(|table| {
        let read = std::thread::spawn({
            let (table, tools, deadline) = (table.clone(), r.tools.clone(), a.deadline);
            move || counters::parse(tools.ruleset(deadline)?, &table)
        });
        (table, read)
    });
    let verdict = runner::run(&r.checked, &r.groups, a.deadline, &r.tools);
    let counters = counters.map(|(table, read)| {
        let got = read
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the nft counter reader panicked")));
        log_counter_errors(&a.rt, &table, got.as_ref().err());
        (table, got.ok())
    });
    if a.by_hand {
        // A probe run by hand is logged every time and leaves vrrp_script's state alone.
        let o = &verdict.probes[0];
        info!(
            "{} {}: {}",
            o.name,
            if o.ok { "ok" } else { "FAILED" },
            o.detail
        );
    } else {
        log_on_change(&a.rt, &verdict);
    }
    if let Some(path) = &a.textfile {
        let mut t = metrics(a.pair.as_deref(), &verdict, counters.as_ref());
        if !a.by_hand {
            // Counters, so an alert can count failed runs in a window whatever the scrape
            // interval (a gauge sampled by scrapes cannot count events); kept in the
            // runtime directory across runs, reset with it (Prometheus handles resets).
            let (runs, failures) = count_run(&a.rt, verdict.healthy);
            add_counters(&mut t, runs, failures);
            t.add(
                "hakit_ha_check_interval_seconds",
                Kind::Gauge,
                "How often ha-check is expected to run (its vrrp_script interval).",
                &[],
                a.interval.as_secs_f64(),
            );
        }
        if let Err(e) = t.write(path) {
            warn!("metrics textfile: {e:#}");
        }
    }
    if a.json {
        hakit_core::outln!("{}", serde_json::to_string(&verdict)?);
    } else if a.verbose || std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        print(&verdict);
    }
    Ok(if verdict.healthy {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// One line per probe, then the verdict.
fn print(verdict: &Verdict) {
    for o in &verdict.probes {
        hakit_core::outln!(
            "{} {:<28} {:>9.3} ms  {}",
            if o.ok { "ok  " } else { "FAIL" },
            o.name,
            o.ms,
            o.detail
        );
    }
    hakit_core::outln!(
        "{} in {:.1} ms (deadline {:.0} ms)",
        if verdict.healthy {
            "healthy"
        } else {
            "UNHEALTHY"
        },
        verdict.ms,
        verdict.deadline_ms
    );
}
