//! All probes in parallel under one deadline, then the verdict by quorum groups.
//!
//! Each probe runs on its own thread with the smaller of its own timeout and what is left
//! of the deadline. The caller waits until every probe has answered or the deadline
//! passes; a probe that has not answered by then counts as failed, and the process exits
//! without waiting for it (its thread dies with the process), so a run never outlives the
//! deadline by more than the time it takes to print and exit.

use std::{
    collections::BTreeMap,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use crate::config::Group;
use serde::Serialize;

use crate::probe::{Checked, ProbeResult, Tools};

#[derive(Debug, Clone, Serialize)]
pub struct GroupVerdict {
    pub name: String,
    pub passed: usize,
    pub total: usize,
    pub min: usize,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub healthy: bool,
    pub groups: Vec<GroupVerdict>,
    pub probes: Vec<ProbeResult>,
    pub deadline_ms: f64,
    pub ms: f64,
}

/// Runs `probes` in parallel and judges them by `groups`.
pub fn run(probes: &[Checked], groups: &[Group], deadline: Duration, tools: &Tools) -> Verdict {
    let start = Instant::now();
    let end = start + deadline;
    let (tx, rx) = mpsc::channel();
    for (i, p) in probes.iter().enumerate() {
        let (p, tx, tools) = (p.clone(), tx.clone(), tools.clone());
        let timeout = p.timeout.min(deadline);
        thread::spawn(move || {
            let _ = tx.send((i, p.run(timeout, &tools)));
        });
    }
    drop(tx);
    let mut results: Vec<Option<ProbeResult>> = vec![None; probes.len()];
    while results.iter().any(Option::is_none) {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, o)) => results[i] = Some(o),
            Err(_) => break,
        }
    }
    let outcomes: Vec<ProbeResult> = results
        .into_iter()
        .zip(probes)
        .map(|(r, p)| {
            r.unwrap_or_else(|| ProbeResult {
                name: p.name.clone(),
                kind: p.kind,
                group: p.group.clone(),
                ok: false,
                detail: format!("no answer within the {deadline:?} deadline"),
                ms: deadline.as_secs_f64() * 1000.0,
            })
        })
        .collect();
    let verdict_groups = judge(&outcomes, groups);
    Verdict {
        healthy: verdict_groups.iter().all(|g| g.ok),
        groups: verdict_groups,
        probes: outcomes,
        deadline_ms: deadline.as_secs_f64() * 1000.0,
        ms: start.elapsed().as_secs_f64() * 1000.0,
    }
}

/// Quorum per group; a probe without a group is a group of one that must pass.
pub fn judge(outcomes: &[ProbeResult], groups: &[Group]) -> Vec<GroupVerdict> {
    let mut by: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for o in outcomes {
        let key = o
            .group
            .clone()
            .unwrap_or_else(|| format!("probe:{}", o.name));
        let e = by.entry(key).or_default();
        e.1 += 1;
        if o.ok {
            e.0 += 1;
        }
    }
    by.into_iter()
        .map(|(name, (passed, total))| {
            let min = groups
                .iter()
                .find(|g| g.name == name)
                .and_then(|g| g.min)
                .unwrap_or(total)
                .min(total);
            GroupVerdict {
                ok: passed >= min,
                name,
                passed,
                total,
                min,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(name: &str, group: Option<&str>, ok: bool) -> ProbeResult {
        ProbeResult {
            name: name.into(),
            kind: "icmp",
            group: group.map(str::to_string),
            ok,
            detail: String::new(),
            ms: 0.0,
        }
    }

    #[test]
    fn quorum_groups() {
        let groups = vec![Group {
            name: "external".into(),
            min: Some(1),
        }];
        let outs = vec![
            o("a", Some("external"), false),
            o("b", Some("external"), true),
            o("c", Some("external"), false),
            o("gw", None, true),
        ];
        let v = judge(&outs, &groups);
        assert!(v.iter().all(|g| g.ok), "{v:?}");
        let outs = vec![
            o("a", Some("external"), false),
            o("b", Some("external"), false),
            o("gw", None, true),
        ];
        assert!(
            !judge(&outs, &groups)
                .iter()
                .find(|g| g.name == "external")
                .unwrap()
                .ok
        );
        // A group with no configured min needs all of its probes.
        let outs = vec![o("x", Some("snat"), true), o("y", Some("snat"), false)];
        assert!(!judge(&outs, &[])[0].ok);
    }
}
