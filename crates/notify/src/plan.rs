//! What a transition does, before anything is done: the step vocabulary, the plan of each
//! state, the report's types and the dry run. Pure: no I/O, so every plan is unit-tested.

use std::net::IpAddr;

use hakit_bgp::{Demote, Role, Speaker, Target};
use hakit_cli::nat_notify::UnitAction;
use hakit_core::config::Cidr;

use crate::config::{Instance, StepName};
use serde::Serialize;

use crate::event::State;

/// The steps, in the order they can appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    ConntrackdCommit,
    AddressAdd,
    Garp,
    SnatEnsure,
    ConntrackdPrimary,
    Fip,
    Announce,
    UnitsUp,
    CommandsUp,
    CommandsDown,
    UnitsDown,
    AddressRemove,
    SnatRemove,
    ConntrackdBackup,
    ConntrackdFault,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::ConntrackdCommit => "conntrackd_commit",
            Step::AddressAdd => "address_add",
            Step::Garp => "garp",
            Step::SnatEnsure => "snat_ensure",
            Step::ConntrackdPrimary => "conntrackd_primary",
            Step::Fip => "fip_claim",
            Step::Announce => "bgp_announce",
            Step::UnitsUp => "units_up",
            Step::CommandsUp => "commands_up",
            Step::CommandsDown => "commands_down",
            Step::UnitsDown => "units_down",
            Step::AddressRemove => "address_remove",
            Step::SnatRemove => "snat_remove",
            Step::ConntrackdBackup => "conntrackd_backup",
            Step::ConntrackdFault => "conntrackd_fault",
        }
    }

    fn group(self) -> StepName {
        match self {
            Step::CommandsDown | Step::CommandsUp => StepName::Commands,
            Step::UnitsDown | Step::UnitsUp => StepName::Units,
            Step::AddressRemove | Step::AddressAdd | Step::Garp | Step::Fip => StepName::Address,
            Step::SnatRemove | Step::SnatEnsure => StepName::Snat,
            Step::Announce => StepName::Bgp,
            _ => StepName::Conntrackd,
        }
    }

    /// Whether a failure is worth retrying here (user commands are not re-run blindly;
    /// the provider claim has its own, longer retry loop).
    pub fn retriable(self) -> bool {
        !matches!(self, Step::CommandsUp | Step::CommandsDown | Step::Fip)
    }

    /// Whether this step waits for `background` (a step started in the background) to end
    /// first: units (lelastic announcing the route) and user commands for everything
    /// started before them (the provider must have the address), conntrackd's flush and
    /// resync for its commit.
    pub fn waits_for(self, background: Step) -> bool {
        match self {
            Step::UnitsUp | Step::CommandsUp => true,
            Step::ConntrackdPrimary => background == Step::ConntrackdCommit,
            _ => false,
        }
    }
}

// Reports, logs and metrics all name a step by [`Step::name`].
impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// The steps `state` runs for `inst`.
pub fn plan(state: State, inst: &Instance) -> Vec<Step> {
    use Step::*;
    // The announcement is demoted first: traffic leaves before the local state goes.
    let down = [Announce, CommandsDown, UnitsDown, AddressRemove, SnatRemove];
    let only = |allowed: &Option<Vec<StepName>>, steps: Vec<Step>| -> Vec<Step> {
        match allowed {
            Some(a) => steps
                .into_iter()
                .filter(|s| a.contains(&s.group()))
                .collect(),
            None => steps,
        }
    };
    // An explicit order (master_steps, backup_steps): group by group as listed, each
    // group's steps in their default order; a group not listed does not run.
    let ordered = |order: &Option<Vec<StepName>>, steps: Vec<Step>| -> Vec<Step> {
        match order {
            Some(o) => o
                .iter()
                .flat_map(|g| steps.iter().copied().filter(move |s| s.group() == *g))
                .collect(),
            None => steps,
        }
    };
    let down = |last: Step| ordered(&inst.backup_steps, [&down[..], &[last]].concat());
    match state {
        State::Master => ordered(
            &inst.master_steps,
            vec![
                ConntrackdCommit,
                AddressAdd,
                Garp,
                Fip,
                SnatEnsure,
                // The announcement moves the traffic: it needs the SNAT rule, not the
                // flush, resync and bulk send that follow (nor a commit, which runs beside).
                Announce,
                ConntrackdPrimary,
                UnitsUp,
                CommandsUp,
            ],
        ),
        State::Backup => down(ConntrackdBackup),
        State::Stop => only(&inst.stop_steps, down(ConntrackdBackup)),
        State::Fault => only(&inst.fault_steps, down(ConntrackdFault)),
        State::MasterRxLowerPri => vec![Garp, Fip, Announce],
    }
}

/// What one step did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "detail")]
pub enum StepResult {
    Changed(String),
    Unchanged(String),
    Skipped(String),
    Failed(String),
    Planned(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: Step,
    #[serde(flatten)]
    pub result: StepResult,
    pub ms: f64,
}

/// How a transition ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    Converged,
    Failed,
    Superseded,
    DryRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub instance: String,
    pub state: State,
    pub generation: u64,
    pub outcome: Ended,
    pub reason: Option<String>,
    pub already_converged: bool,
    pub steps: Vec<StepReport>,
    pub ms: f64,
}

/// Check run before each step: `Some(reason)` stops the transition as superseded.
/// Describes what `state` would do, without changing anything.
pub fn dry_run(inst: &Instance, state: State, bgp: Option<&Speaker>) -> Report {
    let steps = plan(state, inst)
        .into_iter()
        .map(|step| StepReport {
            step,
            result: StepResult::Planned(describe(step, inst, bgp, state)),
            ms: 0.0,
        })
        .collect();
    Report {
        instance: inst.name.clone(),
        state,
        generation: 0,
        outcome: Ended::DryRun,
        reason: None,
        already_converged: false,
        steps,
        ms: 0.0,
    }
}

fn fips(inst: &Instance) -> String {
    inst.floating_ips
        .iter()
        .map(Cidr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The address the LAN is NATed to: `snat_to`, else the first IPv4 floating IP.
pub fn snat_to(i: &Instance) -> Option<IpAddr> {
    i.snat_to.or_else(|| {
        i.floating_ips
            .iter()
            .find(|c| c.addr.is_ipv4())
            .map(|c| c.addr)
    })
}

/// What `state` makes of the announcement.
pub fn announce_target(b: &Speaker, state: State) -> Target {
    let demote = |d| match d {
        Demote::Secondary => Target::Announce(Role::Secondary),
        Demote::Withdraw => Target::Withdraw,
    };
    match state {
        State::Master | State::MasterRxLowerPri => Target::Announce(Role::Primary),
        State::Backup => Target::Announce(Role::Secondary),
        State::Fault => demote(b.fault),
        State::Stop => demote(b.stop),
    }
}

fn describe(step: Step, i: &Instance, bgp: Option<&Speaker>, state: State) -> String {
    let dev = i.interface.as_deref().unwrap_or("?");
    let ct = |what: &str| match &i.conntrackd_config {
        Some(c) => format!("conntrackd -C {} {what}", c.display()),
        None => "skip: conntrackd not configured".into(),
    };
    // -t only where an external cache shadows the kernel table (crate::conntrackd).
    let kernel_is_replica = i
        .conntrackd_config
        .as_deref()
        .is_some_and(crate::conntrackd::external_cache_disabled);
    let cmds = |c: &[Vec<String>]| {
        if c.is_empty() {
            "skip: none configured".into()
        } else {
            c.iter().map(|a| a.join(" ")).collect::<Vec<_>>().join("; ")
        }
    };
    let units = |verb: &str| {
        if i.units.is_empty() {
            "skip: none configured".into()
        } else {
            format!("systemctl {verb} {}", i.units.join(" "))
        }
    };
    match step {
        Step::ConntrackdCommit if kernel_is_replica => {
            "nothing: DisableExternalCache on (the kernel table already holds the peer's state)"
                .into()
        }
        Step::ConntrackdCommit => ct("-c, in the background (only the flush waits for it)"),
        Step::ConntrackdPrimary => ct("-f, -R, -B"),
        Step::ConntrackdBackup if kernel_is_replica => {
            ct("-s (start with -d if down), -n (no -t: DisableExternalCache on)")
        }
        Step::ConntrackdBackup => ct("-s (start with -d if down), -t, -n"),
        Step::ConntrackdFault if kernel_is_replica => {
            "nothing: DisableExternalCache on (-t would flush the peer's state from the kernel)"
                .into()
        }
        Step::ConntrackdFault => ct("-t"),
        Step::AddressAdd if !i.floating_ips.is_empty() => format!("add {} to {dev}", fips(i)),
        Step::AddressRemove if !i.floating_ips.is_empty() => {
            format!("remove {} from {dev}", fips(i))
        }
        Step::Garp if !i.floating_ips.is_empty() => format!("announce {} on {dev}", fips(i)),
        Step::AddressAdd | Step::AddressRemove | Step::Garp => "skip: no floating IPs".into(),
        Step::SnatEnsure | Step::SnatRemove => match &i.snat_source {
            Some(src) => format!(
                "{} SNAT {src} -> {} (nft)",
                if step == Step::SnatEnsure {
                    "ensure"
                } else {
                    "remove"
                },
                snat_to(i).map_or("?".into(), |a| a.to_string())
            ),
            None => "skip: snat_source not configured".into(),
        },
        Step::Fip if i.fip_claim == Some(true) => format!(
            "claim {} at the provider ([fip] settings), retried until done or superseded",
            i.fip_ip.map_or("[fip] ip".to_string(), |a| a.to_string())
        ),
        Step::Fip => "skip: provider claim not configured".into(),
        Step::Announce if i.announce == Some(true) => match bgp {
            Some(b) => {
                let t = announce_target(b, state);
                format!(
                    "{} {} {t} on {}",
                    if t == Target::Withdraw {
                        "withdraw"
                    } else {
                        "announce"
                    },
                    b.prefixes_text(),
                    b.kind_name()
                )
            }
            None => "fails: announce is set but there is no [bgp] table".into(),
        },
        Step::Announce => "skip: announce not configured".into(),
        Step::UnitsUp => units(match i.unit_action {
            Some(UnitAction::Start) => "start",
            _ => "restart",
        }),
        Step::UnitsDown => units("stop"),
        Step::CommandsUp => cmds(&i.up),
        Step::CommandsDown => cmds(&i.down),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Step::*;

    #[test]
    fn explicit_orders_run_group_by_group() {
        let mut i = Instance {
            name: "VI_1".into(),
            ..Instance::default()
        };
        // The default: the address first, the user's commands last.
        assert_eq!(plan(State::Master, &i)[1], AddressAdd);
        assert_eq!(plan(State::Master, &i).last(), Some(&CommandsUp));
        assert_eq!(plan(State::Backup, &i)[1], CommandsDown);
        // Storage: promote and mount, start the service, then its address.
        i.master_steps = Some(vec![StepName::Commands, StepName::Units, StepName::Address]);
        i.backup_steps = Some(vec![StepName::Address, StepName::Units, StepName::Commands]);
        assert_eq!(
            plan(State::Master, &i),
            [CommandsUp, UnitsUp, AddressAdd, Garp, Fip]
        );
        assert_eq!(
            plan(State::Backup, &i),
            [AddressRemove, UnitsDown, CommandsDown]
        );
        // FAULT and STOP keep that order, then their own subsets.
        i.fault_steps = Some(vec![StepName::Commands, StepName::Address]);
        assert_eq!(plan(State::Fault, &i), [AddressRemove, CommandsDown]);
        assert_eq!(
            plan(State::Stop, &i),
            [AddressRemove, UnitsDown, CommandsDown]
        );
    }
}
