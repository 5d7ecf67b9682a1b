//! Where a resolved step meets the world: the [`Effects`] trait, applied through one
//! [`Stepper`] (the loop's [`Host`]: resolve, then apply), implemented by the real host
//! ([`crate::steps::Real`]) and the [`Recorder`] (a fake that records what it was asked to
//! do); the dry run ([`dry_run`]) is the same resolution printed, so it lists exactly the
//! actions a run applies (tested below, against the recorder driven by the real loop).

use std::time::Duration;

use crate::{
    action::{resolve, Action, Observed, Resolved, Tables},
    config::Instance,
    engine::{Host, Pending, Ran, Turn},
    event::State,
    plan::{plan, Step},
    report::{Ended, Report, StepReport, StepResult},
    runtime::Recorded,
};

/// What applies an action.
pub trait Effects {
    /// Applies `action`: in line, or started in the background when it runs there
    /// ([`Action::background`]: the provider claim, conntrackd's commit). The loop retries
    /// a retriable failure.
    fn apply(&mut self, action: &Action, t: &mut Turn) -> anyhow::Result<Ran>;
    /// Waits for what the actions left running without a result of their own.
    fn settle(&mut self, t: &Turn);
    /// Whether this transition's address action added an address (observed, for GARP).
    fn added(&self) -> bool;
}

/// The loop's host over any [`Effects`]: each step resolved once, then applied.
pub struct Stepper<'a, E> {
    pub effects: E,
    tables: Tables<'a>,
}

impl<'a, E: Effects> Stepper<'a, E> {
    pub fn new(effects: E, tables: Tables<'a>) -> Self {
        Stepper { effects, tables }
    }

    fn resolve(&self, step: Step, t: &Turn) -> anyhow::Result<Resolved> {
        let obs = Observed {
            state: t.state,
            same: t.same,
            prev: t.prev,
            force_garp: t.force_garp,
            added: self.effects.added(),
        };
        resolve(step, t.inst, self.tables, &obs)
    }
}

impl<E: Effects> Host for Stepper<'_, E> {
    fn run(&mut self, step: Step, t: &mut Turn) -> anyhow::Result<Ran> {
        match self.resolve(step, t)? {
            Resolved::Skip(why) => Ok(Ran::Done(StepResult::Skipped(why))),
            Resolved::Unchanged(why) => Ok(Ran::Done(StepResult::Unchanged(why))),
            Resolved::Do(a) => self.effects.apply(&a, t),
        }
    }

    fn settle(&mut self, t: &Turn) {
        self.effects.settle(t)
    }
}

/// A background action that has already ended.
struct Done(Option<StepResult>);

impl Pending for Done {
    fn wait(&mut self, _: Duration) -> Option<StepResult> {
        Some(
            self.0
                .take()
                .unwrap_or_else(|| StepResult::Failed("joined twice".into())),
        )
    }
    fn stop(&mut self) {}
}

/// The recording fake: every action it is asked to apply, in order, each reported done.
#[derive(Debug, Default)]
pub struct Recorder {
    pub applied: Vec<Action>,
}

impl Effects for Recorder {
    fn apply(&mut self, action: &Action, _: &mut Turn) -> anyhow::Result<Ran> {
        self.applied.push(action.clone());
        let done = StepResult::Changed(action.describe());
        Ok(if action.background() {
            Ran::Started(Box::new(Done(Some(done))))
        } else {
            Ran::Done(done)
        })
    }
    fn settle(&mut self, _: &Turn) {}
    fn added(&self) -> bool {
        self.applied
            .iter()
            .any(|a| matches!(a, Action::Addresses { add: true, .. }))
    }
}

/// The dry run, the printer: what `state` would do for `inst`, as a fresh transition
/// (nothing recorded before), without changing anything: each step resolved as a run
/// resolves it, and its action said (and listed, as `--json` shows it).
pub fn dry_run(inst: &Instance, state: State, tables: Tables) -> Report {
    let prev = Recorded::default();
    let obs = Observed {
        state,
        same: false,
        prev: &prev,
        force_garp: state == State::MasterRxLowerPri,
        added: false,
    };
    let mut outcome = Ended::DryRun;
    let steps = plan(state, inst)
        .into_iter()
        .map(|step| {
            let (result, action) = match resolve(step, inst, tables, &obs) {
                Ok(Resolved::Do(a)) => (StepResult::Planned(a.describe()), Some(a)),
                Ok(Resolved::Skip(why)) => (StepResult::Planned(format!("skip: {why}")), None),
                Ok(Resolved::Unchanged(why)) => {
                    (StepResult::Planned(format!("nothing: {why}")), None)
                }
                Err(e) => {
                    outcome = Ended::Failed;
                    (StepResult::Failed(format!("{e:#}")), None)
                }
            };
            StepReport {
                step,
                result,
                action,
                ms: 0.0,
            }
        })
        .collect();
    Report {
        instance: inst.name.clone(),
        state,
        generation: 0,
        outcome,
        reason: None,
        already_converged: false,
        steps,
        ms: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{run, Settings};

    /// `nat-notify master --dry-run --json` lists exactly the actions a run applies: the
    /// dry run's report, as JSON, against what the recording fake was asked to do by the
    /// loop, for every state and a configuration with every step.
    #[test]
    fn the_dry_run_lists_exactly_the_actions_a_run_applies() {
        let dir = std::env::temp_dir().join(format!("hakit-effects-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conntrackd = dir.join("conntrackd.conf");
        std::fs::write(&conntrackd, "Sync {\n}\n").unwrap();
        let inst = Instance {
            name: "VI_1".into(),
            interface: Some("eth0".into()),
            floating_ips: vec!["203.0.113.10/32".parse().unwrap()],
            snat_source: Some("198.51.100.0/24".parse().unwrap()),
            conntrackd_config: Some(conntrackd),
            fip_claim: Some(true),
            units: vec!["lelastic.service".into()],
            up: vec![vec!["/bin/true".into()]],
            down: vec![vec!["/bin/true".into(), "down".into()]],
            ..Instance::default()
        };
        let fip = hakit_fip::config::Fip {
            ip: Some("203.0.113.10".parse().unwrap()),
            ..Default::default()
        };
        let tables = Tables {
            fip: Some(&fip),
            bgp: None,
            siblings: Default::default(),
        };
        for state in [State::Master, State::Backup, State::Fault, State::Stop] {
            let s = Settings {
                runtime: crate::runtime::Runtime::at(&dir.join(format!("run-{state}"))),
                lock_timeout: Duration::from_secs(1),
                command_timeout: Duration::from_secs(1),
                retries: 0,
                nft: "nft".into(),
                conntrackd: "conntrackd".into(),
                systemctl: "systemctl".into(),
                textfile: None,
                keepalived_config: dir.join("keepalived.conf"),
                fip: Some(fip.clone()),
                bgp: None,
                pair: None,
                heartbeat: None,
                monitor_track_file: None,
            };
            s.runtime.create().unwrap();
            let json = serde_json::to_value(dry_run(&inst, state, tables)).unwrap();
            let listed: Vec<serde_json::Value> = json["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s.get("action").cloned())
                .collect();
            let mut host = Stepper::new(Recorder::default(), tables);
            let report = run(&mut host, &s, &inst, state, 1, &|| None).unwrap();
            assert_eq!(report.outcome, Ended::Converged, "{state}: {report:?}");
            let applied: Vec<serde_json::Value> = host
                .effects
                .applied
                .iter()
                .map(|a| serde_json::to_value(a).unwrap())
                .collect();
            assert!(!applied.is_empty(), "{state}");
            // The same actions; the loop starts background ones when it reaches them, so
            // compare in plan order.
            assert_eq!(listed, applied, "{state}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
