//! The probes a mode runs, validated once before anything runs: each by its kind (exit 2
//! naming the probe), the monitor's own limits, the quorum groups, and the tools they need
//! (the `[bgp]` speaker, the `[fip]` table, the programs).

use std::{path::PathBuf, time::Duration};

use hakit_core::{usage_error, HDuration};

use crate::{
    config::{Check, Group, Probe},
    kinds::Class,
    monitor::{self, Monitored},
    probe::{self, Checked, Tools},
};

/// The validated probes and what runs them.
pub(super) struct Resolved {
    /// Every probe, validated.
    pub checked: Vec<Checked>,
    /// The monitor's probes, with their intervals and hysteresis (empty for a single run).
    pub monitored: Vec<Monitored>,
    pub groups: Vec<Group>,
    pub tools: Tools,
    /// The role-dependent probes the monitor leaves out (said once it starts, never before
    /// a refusal: a refusal is one line).
    pub left_out: Vec<String>,
}

/// What the whole file says beside `[check]` that the probes need.
pub(super) struct Context<'a> {
    pub deadline: Duration,
    /// Resolving for the monitor (its limits apply, fip-owner is left out).
    pub monitor: bool,
    pub runtime_dir: PathBuf,
    pub pair: Option<&'a str>,
    pub bgp: &'a hakit_bgp::Config,
    pub fip: &'a hakit_fip::config::Fip,
}

/// Validates `probes` and `groups` (from the file, or the one probe of a shortcut).
pub(super) fn resolve(
    probes: Vec<Probe>,
    groups: Vec<Group>,
    c: &Check,
    cx: Context<'_>,
) -> anyhow::Result<Resolved> {
    if probes.is_empty() {
        return Err(usage_error("no probes: add [[check.probe]] tables to the config file, or run one, e.g. `ha-check icmp 192.0.2.1`"));
    }
    let mut checked: Vec<Checked> = Vec::new();
    let mut monitored: Vec<Monitored> = Vec::new();
    let mut left_out = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        let mut ck = probe::validate(p, cx.deadline)
            .map_err(|e| usage_error(format!("probe {}: {e}", i + 1)))?;
        if cx.monitor {
            match monitored_probe(i, p, &mut ck)? {
                Some(m) => monitored.push(m),
                None => left_out.push(ck.name.clone()),
            }
        }
        checked.push(ck);
    }
    for g in &groups {
        if !checked
            .iter()
            .any(|p| p.group.as_deref() == Some(g.name.as_str()))
        {
            return Err(usage_error(format!("group {:?} has no probes", g.name)));
        }
    }
    if let Some(p) = cx.pair {
        hakit_core::metrics::check_pair(p).map_err(usage_error)?;
    }
    let bgp = if *cx.bgp == hakit_bgp::Config::default() {
        None
    } else {
        Some(hakit_bgp::Speaker::new(cx.bgp).map_err(usage_error)?)
    };
    let tools = Tools {
        bgp,
        fip: cx.fip.provider.is_some().then(|| cx.fip.clone()),
        cache_dir: cx.runtime_dir,
        keepalived_pid: c
            .peer
            .as_ref()
            .and_then(|p| p.keepalived_pid_file.clone())
            .unwrap_or_else(|| PathBuf::from(crate::peer::KEEPALIVED_PID)),
        ..Tools::default()
    };
    for (i, ck) in checked.iter().enumerate() {
        ck.needs(&tools)
            .map_err(|e| usage_error(format!("probe {}: {e}", i + 1)))?;
    }
    if cx.monitor && monitored.is_empty() {
        return Err(usage_error(
            "no probe for the monitor: fip-owner probes are role-dependent and left out; add the uplink's (icmp, neighbour, link, route)",
        ));
    }
    Ok(Resolved {
        checked,
        monitored,
        groups,
        tools,
        left_out,
    })
}

/// Probe `i` as the monitor runs it (its class's interval, fall and rise unless set; its
/// timeout its interval), or `None` for a role-dependent probe the monitor leaves out.
fn monitored_probe(i: usize, p: &Probe, ck: &mut Checked) -> anyhow::Result<Option<Monitored>> {
    let (interval, fall, rise) = ck.class().defaults();
    let interval = p.interval.map_or(interval, HDuration::get);
    let (fall, rise) = (p.fall.unwrap_or(fall), p.rise.unwrap_or(rise));
    if interval < monitor::MIN_INTERVAL {
        return Err(usage_error(format!(
            "probe {}: interval {interval:?} is below the minimum of 5ms",
            i + 1
        )));
    }
    if fall == 0 || rise == 0 {
        return Err(usage_error(format!(
            "probe {}: fall and rise must be at least 1",
            i + 1
        )));
    }
    if ck.class() == Class::Provider {
        // It fails on the BACKUP by design: in a track file (weight 0) that would be a
        // FAULT, and a BACKUP in FAULT can never take over.
        return Ok(None);
    }
    // A monitored probe answers within its interval unless told otherwise.
    ck.timeout = p.timeout.map_or(interval, HDuration::get);
    Ok(Some(Monitored {
        probe: ck.clone(),
        interval,
        fall,
        rise,
    }))
}
