//! What a transition does, before anything is done: the step vocabulary, the plan of each
//! state and the report's types. Pure: no I/O, so every plan is unit-tested. What each
//! step then decides is [`crate::action`].

use std::net::IpAddr;

use hakit_bgp::{Demote, Role, Speaker, Target};

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
