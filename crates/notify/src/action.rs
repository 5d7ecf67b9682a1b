//! What a step decides, apart from doing it: [`resolve`] turns a step, the resolved instance
//! and what was observed (the previous record, what this transition's address step added)
//! into an [`Action`] (or a reason it has nothing to do), without I/O but reading the
//! conntrackd configuration (whether its external cache is on). An action is applied by an
//! [`crate::effects::Effects`]: the real one ([`crate::steps`]), a recording fake, or the dry
//! run's printer, so `--dry-run` prints the very actions a run applies, described once by
//! [`Action::describe`].

use std::{net::IpAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use hakit_bgp::{Speaker, Target};
use hakit_cli::nat_notify::UnitAction;
use hakit_core::config::Cidr;
use serde::{Serialize, Serializer};

use crate::{
    config::Instance,
    event::State,
    plan::{announce_target, snat_to, Step},
    runtime::{Recorded, Siblings},
};

/// conntrackd's role commands (conntrackd(8)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `-f`, `-R`, `-B`: flush the caches, resync the kernel table, send a bulk update.
    /// Without `flush_external` only the internal cache is flushed (`-f internal`): the
    /// external cache still backs the flows the peer forwards for another instance.
    Primary { flush_external: bool },
    /// `-s`, `-t`, `-n`; the daemon started through its unit first if it is down and
    /// `start` (never on STOP). Without `purge` no `-t`: this node still holds a MASTER
    /// instance, whose live flows `-t`'s scheduled flush would delete.
    Backup { start: bool, purge: bool },
    /// `-t` when `purge` (as for [`Role::Backup`]).
    Fault { purge: bool },
}

/// One effect of a transition, as the dry run prints it and a run applies it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// `conntrackd -c`: the external cache into the kernel table (in the background), and
    /// `-c expect`, the expectations (FTP, SIP helpers), when `ExpectationSync` is on.
    ConntrackdCommit { config: PathBuf, expect: bool },
    /// A conntrackd role; `replica`: DisableExternalCache is on (the kernel table holds the
    /// peer's flows, so nothing is committed or shortened).
    Conntrackd {
        config: PathBuf,
        role: Role,
        replica: bool,
    },
    /// The floating IPs onto (`add`) or off the WAN interface.
    Addresses {
        dev: String,
        add: bool,
        #[serde(serialize_with = "texts")]
        cidrs: Vec<Cidr>,
    },
    /// Gratuitous ARPs / unsolicited NAs: the first round at once, the rest every `interval`.
    Garp {
        dev: String,
        ips: Vec<IpAddr>,
        rounds: u32,
        #[serde(serialize_with = "millis")]
        interval: Duration,
    },
    /// The SNAT rule ensured (`ensure`) or removed; with `egress`, the policy routing that
    /// sends the LAN's traffic via that gateway on `oifname` too.
    Snat {
        ensure: bool,
        table: String,
        #[serde(serialize_with = "text")]
        source: Cidr,
        to: IpAddr,
        oifname: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        egress: Option<Egress>,
    },
    /// The provider claim (in the background), retried for up to `retry_for`.
    Claim {
        ip: Option<IpAddr>,
        #[serde(serialize_with = "millis")]
        retry_for: Duration,
    },
    /// The BGP speaker's announcement role, in place.
    Announce {
        #[serde(serialize_with = "text")]
        target: Target,
        prefixes: String,
        speaker: String,
    },
    /// `systemctl VERB UNIT…`.
    Units { verb: String, units: Vec<String> },
    /// The user's commands, in order; `stop_at_first`: the `up` ones stop at a failure.
    Commands {
        argv: Vec<Vec<String>>,
        stop_at_first: bool,
    },
}

/// An egress gateway's route and its table (the rules: [`hakit_net::egress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Egress {
    pub gateway: IpAddr,
    pub table: u32,
}

/// The egress route's table when the instance names none.
pub const EGRESS_TABLE: u32 = 1147;

fn text<S: Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn texts<S: Serializer>(v: &[Cidr], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(Cidr::to_string))
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

impl Action {
    /// Started on its own thread by the loop (a network API or a long commit must not hold
    /// up the local data plane).
    pub fn background(&self) -> bool {
        matches!(self, Action::ConntrackdCommit { .. } | Action::Claim { .. })
    }

    /// One line, as the dry run prints it and a log names it.
    pub fn describe(&self) -> String {
        let list = |v: &[Cidr]| v.iter().map(Cidr::to_string).collect::<Vec<_>>().join(", ");
        match self {
            Action::ConntrackdCommit { config, expect } => format!(
                "conntrackd -C {} -c{}, in the background (only the flush waits for it)",
                config.display(),
                if *expect { ", -c expect" } else { "" }
            ),
            Action::Conntrackd {
                config,
                role,
                replica,
            } => {
                let keep = "; no -t: another instance is MASTER here";
                let what = match (role, replica) {
                    (Role::Primary { flush_external: true }, _) => "-f, -R, -B".to_string(),
                    (Role::Primary { flush_external: false }, _) => {
                        "-f internal, -R, -B (the external cache backs the peer's other instance)".to_string()
                    }
                    (Role::Backup { start, purge }, replica) => format!(
                        "-s{}{}, -n{}",
                        if *start {
                            " (start with -d if down)"
                        } else {
                            " (not started if down: STOP)"
                        },
                        if *purge && !*replica { ", -t" } else { "" },
                        if *replica {
                            " (no -t: DisableExternalCache on)"
                        } else if !*purge {
                            keep
                        } else {
                            ""
                        }
                    ),
                    (Role::Fault { .. }, true) => {
                        return "nothing: DisableExternalCache on (-t would flush the peer's state from the kernel)".into()
                    }
                    (Role::Fault { purge: true }, false) => "-t".to_string(),
                    (Role::Fault { purge: false }, false) => {
                        return "nothing: another instance is MASTER here (-t would flush its live flows)".into()
                    }
                };
                format!("conntrackd -C {} {what}", config.display())
            }
            Action::Addresses {
                dev,
                add: true,
                cidrs,
            } => format!("add {} to {dev}", list(cidrs)),
            Action::Addresses { dev, cidrs, .. } => format!("remove {} from {dev}", list(cidrs)),
            Action::Garp {
                dev,
                ips,
                rounds,
                interval,
            } => format!(
                "announce {} on {dev} ({rounds} round(s) every {interval:?})",
                ips.iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Action::Snat {
                ensure,
                source,
                to,
                oifname,
                egress,
                ..
            } => format!(
                "{} SNAT {source} -> {to} on {oifname} (nft){}",
                if *ensure { "ensure" } else { "remove" },
                egress.map_or(String::new(), |e| format!(
                    ", and from {source} via {} on {oifname} (policy rules, table {})",
                    e.gateway, e.table
                ))
            ),
            Action::Claim { ip, .. } => format!(
                "claim {} at the provider ([fip] settings), retried until done or superseded",
                ip.map_or("[fip] ip".to_string(), |a| a.to_string())
            ),
            Action::Announce {
                target,
                prefixes,
                speaker,
            } => format!(
                "{} {prefixes} {target} on {speaker}",
                if *target == Target::Withdraw {
                    "withdraw"
                } else {
                    "announce"
                }
            ),
            Action::Units { verb, units } => format!("systemctl {verb} {}", units.join(" ")),
            Action::Commands { argv, .. } => argv
                .iter()
                .map(|a| a.join(" "))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// What a step resolved to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// Not configured for this instance.
    Skip(String),
    /// Configured, and already done (the previous transition converged to this state).
    Unchanged(String),
    Do(Action),
}

/// What the step sees of the world besides the instance: the previous record, and what
/// this transition observed so far.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub state: State,
    /// The previous transition converged to this same state.
    pub same: bool,
    pub prev: &'a Recorded,
    /// A re-assertion (MASTER_RX_LOWER_PRI): announce again even when nothing changed.
    pub force_garp: bool,
    /// This transition's address step added an address (not just found it).
    pub added: bool,
}

/// The tables beside the instance a step may need.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tables<'a> {
    pub fip: Option<&'a hakit_fip::config::Fip>,
    pub bgp: Option<&'a Speaker>,
    /// The instances beside it that share its conntrackd.
    pub siblings: Siblings,
}

/// What `step` does for `inst` now. Pure but for reading conntrackd's configuration file.
pub fn resolve(
    step: Step,
    inst: &Instance,
    tables: Tables,
    obs: &Observed,
) -> anyhow::Result<Resolved> {
    use Resolved::{Do, Skip};
    let skip = |why: &str| Ok(Skip(why.to_string()));
    let dev = || {
        inst.interface
            .clone()
            .context("floating_ips need the instance's interface")
    };
    match step {
        Step::ConntrackdCommit
        | Step::ConntrackdPrimary
        | Step::ConntrackdBackup
        | Step::ConntrackdFault => conntrackd(step, inst, tables.siblings, obs),
        Step::UnitsUp | Step::UnitsDown | Step::CommandsUp | Step::CommandsDown => {
            units_and_commands(step, inst, obs)
        }
        Step::AddressAdd | Step::AddressRemove | Step::Garp if inst.floating_ips.is_empty() => {
            skip("no floating IPs")
        }
        Step::AddressAdd | Step::AddressRemove => Ok(Do(Action::Addresses {
            dev: dev()?,
            add: step == Step::AddressAdd,
            cidrs: inst.floating_ips.clone(),
        })),
        Step::Garp if obs.same && !obs.added && !obs.force_garp => {
            Ok(Resolved::Unchanged("already announced".into()))
        }
        Step::Garp => Ok(Do(Action::Garp {
            dev: dev()?,
            ips: inst.floating_ips.iter().map(|c| c.addr).collect(),
            rounds: inst.garp_count.unwrap_or(3).max(1),
            interval: inst
                .garp_interval
                .map_or(Duration::from_millis(100), |d| d.get()),
        })),
        Step::SnatEnsure | Step::SnatRemove => {
            let Some(source) = inst.snat_source else {
                return skip("snat_source not configured");
            };
            Ok(Do(Action::Snat {
                ensure: step == Step::SnatEnsure,
                table: inst.snat_table.clone().unwrap_or_else(|| "hakit".into()),
                source,
                to: snat_to(inst).context(
                    "snat_source is set but neither snat_to nor an IPv4 floating IP is configured",
                )?,
                oifname: inst
                    .interface
                    .clone()
                    .context("snat needs the instance's interface")?,
                egress: inst.egress_gateway.map(|gateway| Egress {
                    gateway,
                    table: inst.egress_table.unwrap_or(EGRESS_TABLE),
                }),
            }))
        }
        Step::Fip if inst.fip_claim != Some(true) => skip("provider claim not configured"),
        Step::Fip => {
            let fip = tables.fip.context(
                "fip_claim is set but the config file has no [fip] table with a provider",
            )?;
            Ok(Do(Action::Claim {
                ip: inst.fip_ip.or(fip.ip),
                retry_for: inst
                    .fip_retry_for
                    .map_or(Duration::from_secs(300), |d| d.get()),
            }))
        }
        Step::Announce if inst.announce != Some(true) => skip("announce not configured"),
        Step::Announce => {
            let b = &tables
                .bgp
                .context("announce is set but the config file has no [bgp] table")?
                .only(&inst.announce_prefixes);
            Ok(Do(Action::Announce {
                target: announce_target(b, obs.state),
                prefixes: b.prefixes_text(),
                speaker: b.kind_name().to_string(),
            }))
        }
    }
}

/// The conntrackd steps: commit (of an external cache), then the role of the state; a role
/// already commanded by a converged transition to the same state is not repeated.
fn conntrackd(
    step: Step,
    inst: &Instance,
    siblings: Siblings,
    obs: &Observed,
) -> anyhow::Result<Resolved> {
    let Some(config) = inst.conntrackd_config.clone() else {
        return Ok(Resolved::Skip("conntrackd not configured".into()));
    };
    let was = |role: &str| obs.same && obs.prev.conntrackd.as_deref() == Some(role);
    let replica = crate::conntrackd::external_cache_disabled(&config);
    // Per node, not per instance (active-active): purge only when no other instance is
    // MASTER here, flush the external cache only when every one is.
    let purge = siblings.none_master();
    let (role, name) = match step {
        Step::ConntrackdCommit if was("primary") => {
            return Ok(Resolved::Unchanged(
                "external cache already committed".into(),
            ))
        }
        Step::ConntrackdCommit if replica => {
            return Ok(Resolved::Unchanged(
                "external cache disabled: the kernel table already holds the peer's state".into(),
            ))
        }
        Step::ConntrackdCommit => {
            let expect = crate::conntrackd::expectation_sync(&config);
            return Ok(Resolved::Do(Action::ConntrackdCommit { config, expect }));
        }
        Step::ConntrackdPrimary => (
            Role::Primary {
                flush_external: siblings.all_master(),
            },
            "primary",
        ),
        Step::ConntrackdBackup => (
            Role::Backup {
                start: obs.state != State::Stop,
                purge,
            },
            "backup",
        ),
        _ => (Role::Fault { purge }, "fault"),
    };
    if was(name) {
        return Ok(Resolved::Unchanged(format!("conntrackd already {name}")));
    }
    Ok(Resolved::Do(Action::Conntrackd {
        config,
        role,
        replica,
    }))
}

/// Units and the user's commands: their effect cannot be observed, so a converged
/// transition to the same state has already run them.
fn units_and_commands(step: Step, inst: &Instance, obs: &Observed) -> anyhow::Result<Resolved> {
    let units = matches!(step, Step::UnitsUp | Step::UnitsDown);
    let argv = if step == Step::CommandsUp {
        &inst.up
    } else {
        &inst.down
    };
    if units && inst.units.is_empty() {
        return Ok(Resolved::Skip("no units configured".into()));
    }
    if !units && argv.is_empty() {
        return Ok(Resolved::Skip("no commands configured".into()));
    }
    if obs.same {
        return Ok(Resolved::Unchanged(if units {
            format!("units already handled: {}", inst.units.join(" "))
        } else {
            "commands already run for this state".into()
        }));
    }
    Ok(Resolved::Do(if units {
        Action::Units {
            verb: match (step, inst.unit_action) {
                (Step::UnitsDown, _) => "stop",
                (_, Some(UnitAction::Start)) => "start",
                _ => "restart",
            }
            .into(),
            units: inst.units.clone(),
        }
    } else {
        Action::Commands {
            argv: argv.clone(),
            stop_at_first: step == Step::CommandsUp,
        }
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    //! Every step kind resolved, without root: what it does, when it has nothing to do,
    //! and what it refuses.

    use super::*;
    use crate::plan::plan;

    /// An instance with every step kind configured (also status's tests' fixture).
    pub(crate) fn inst() -> Instance {
        Instance {
            name: "VI_1".into(),
            interface: Some("eth0".into()),
            floating_ips: vec!["203.0.113.10/32".parse().unwrap()],
            snat_source: Some("198.51.100.0/24".parse().unwrap()),
            units: vec!["lelastic.service".into()],
            up: vec![vec!["/bin/true".into()]],
            down: vec![vec!["/bin/false".into()]],
            ..Instance::default()
        }
    }

    fn obs(state: State, same: bool, prev: &Recorded) -> Observed<'_> {
        Observed {
            state,
            same,
            prev,
            force_garp: false,
            added: false,
        }
    }

    fn go(step: Step, i: &Instance, o: &Observed) -> Resolved {
        resolve(step, i, Tables::default(), o).unwrap()
    }

    #[test]
    fn a_fresh_master_does_every_configured_step() {
        let (i, prev) = (inst(), Recorded::default());
        let o = obs(State::Master, false, &prev);
        let actions: Vec<Resolved> = plan(State::Master, &i)
            .into_iter()
            .map(|s| go(s, &i, &o))
            .collect();
        assert_eq!(
            actions[1],
            Resolved::Do(Action::Addresses {
                dev: "eth0".into(),
                add: true,
                cidrs: i.floating_ips.clone()
            })
        );
        let Resolved::Do(garp) = &actions[2] else {
            panic!("{actions:?}")
        };
        assert_eq!(
            garp.describe(),
            "announce 203.0.113.10 on eth0 (3 round(s) every 100ms)"
        );
        let Resolved::Do(snat) = &actions[4] else {
            panic!("{actions:?}")
        };
        assert_eq!(
            snat.describe(),
            "ensure SNAT 198.51.100.0/24 -> 203.0.113.10 on eth0 (nft)"
        );
        assert_eq!(
            go(Step::UnitsUp, &i, &o),
            Resolved::Do(Action::Units {
                verb: "restart".into(),
                units: vec!["lelastic.service".into()]
            })
        );
        assert!(matches!(
            go(Step::CommandsUp, &i, &o),
            Resolved::Do(Action::Commands {
                stop_at_first: true,
                ..
            })
        ));
        // Not configured: said, not done.
        for s in [
            Step::ConntrackdCommit,
            Step::ConntrackdPrimary,
            Step::Fip,
            Step::Announce,
        ] {
            assert!(matches!(go(s, &i, &o), Resolved::Skip(_)), "{s:?}");
        }
    }

    #[test]
    fn a_repeated_state_repeats_only_what_can_be_verified() {
        let mut i = inst();
        i.conntrackd_config = Some("/nonexistent/conntrackd.conf".into());
        let prev = Recorded {
            conntrackd: Some("primary".into()),
            ..Recorded::default()
        };
        let o = obs(State::Master, true, &prev);
        // Addresses and SNAT are checked again (idempotent); GARP only if an address was added.
        assert!(matches!(go(Step::AddressAdd, &i, &o), Resolved::Do(_)));
        assert!(matches!(go(Step::SnatEnsure, &i, &o), Resolved::Do(_)));
        assert!(matches!(go(Step::Garp, &i, &o), Resolved::Unchanged(_)));
        assert!(matches!(
            go(Step::Garp, &i, &Observed { added: true, ..o }),
            Resolved::Do(_)
        ));
        assert!(matches!(
            go(
                Step::Garp,
                &i,
                &Observed {
                    force_garp: true,
                    ..o
                }
            ),
            Resolved::Do(_)
        ));
        for s in [
            Step::ConntrackdCommit,
            Step::ConntrackdPrimary,
            Step::UnitsUp,
            Step::CommandsUp,
        ] {
            assert!(matches!(go(s, &i, &o), Resolved::Unchanged(_)), "{s:?}");
        }
    }

    #[test]
    fn down_states_reverse_and_stop_never_starts_conntrackd() {
        let mut i = inst();
        i.conntrackd_config = Some("/nonexistent/conntrackd.conf".into());
        i.unit_action = Some(UnitAction::Start);
        let prev = Recorded::default();
        let backup = |state| match go(Step::ConntrackdBackup, &i, &obs(state, false, &prev)) {
            Resolved::Do(Action::Conntrackd { role, .. }) => role,
            r => panic!("{r:?}"),
        };
        assert_eq!(
            backup(State::Backup),
            Role::Backup {
                start: true,
                purge: true
            }
        );
        assert_eq!(
            backup(State::Stop),
            Role::Backup {
                start: false,
                purge: true
            }
        );
        let o = obs(State::Backup, false, &prev);
        assert!(matches!(
            go(Step::AddressRemove, &i, &o),
            Resolved::Do(Action::Addresses { add: false, .. })
        ));
        assert!(matches!(
            go(Step::SnatRemove, &i, &o),
            Resolved::Do(Action::Snat { ensure: false, .. })
        ));
        assert!(
            matches!(go(Step::UnitsDown, &i, &o), Resolved::Do(Action::Units { ref verb, .. }) if verb == "stop")
        );
        assert!(matches!(
            go(Step::CommandsDown, &i, &o),
            Resolved::Do(Action::Commands {
                stop_at_first: false,
                ..
            })
        ));
        assert!(matches!(
            go(Step::ConntrackdFault, &i, &obs(State::Fault, false, &prev)),
            Resolved::Do(Action::Conntrackd {
                role: Role::Fault { purge: true },
                ..
            })
        ));
    }

    /// Active-active: conntrackd's commands reach every instance's flows, so the policy is
    /// per node. A node going down for one instance while MASTER of another never purges
    /// (`-t` would flush that instance's live flows PurgeTimeout later); gaining one while
    /// the peer keeps another flushes only the internal cache (the external one backs the
    /// peer's flows); the commit brings the expectations when they are synced. The
    /// one-instance profile (no siblings) keeps its commands.
    #[test]
    fn conntrackd_is_driven_per_node_when_instances_share_it() {
        let dir = std::env::temp_dir().join(format!("hakit-aa-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("conntrackd.conf");
        std::fs::write(
            &conf,
            "Sync {\n  Mode FTFW {\n    DisableExternalCache off\n  }\n  Options {\n    ExpectationSync on\n  }\n}\n",
        )
        .unwrap();
        let mut i = inst();
        i.conntrackd_config = Some(conf.clone());
        let prev = Recorded::default();
        let role = |step, state, siblings: Siblings| {
            let t = Tables {
                siblings,
                ..Tables::default()
            };
            match resolve(step, &i, t, &obs(state, false, &prev)).unwrap() {
                Resolved::Do(Action::Conntrackd { role, .. }) => role,
                r => panic!("{r:?}"),
            }
        };
        let alone = Siblings::default();
        let other_master = Siblings {
            count: 1,
            master: 1,
        };
        let other_backup = Siblings {
            count: 1,
            master: 0,
        };
        // The one-instance profile: as before.
        assert_eq!(
            role(Step::ConntrackdPrimary, State::Master, alone),
            Role::Primary {
                flush_external: true
            }
        );
        assert_eq!(
            role(Step::ConntrackdFault, State::Fault, alone),
            Role::Fault { purge: true }
        );
        // B goes BACKUP here while A stays MASTER here: no purge.
        assert_eq!(
            role(Step::ConntrackdBackup, State::Backup, other_master),
            Role::Backup {
                start: true,
                purge: false
            }
        );
        assert_eq!(
            role(Step::ConntrackdFault, State::Fault, other_master),
            Role::Fault { purge: false }
        );
        assert_eq!(
            role(Step::ConntrackdBackup, State::Backup, other_backup),
            Role::Backup {
                start: true,
                purge: true
            }
        );
        // Gaining B while the peer keeps A: the external cache stays; gaining the last one
        // (every instance here, the peer forwards nothing): flushed.
        assert_eq!(
            role(Step::ConntrackdPrimary, State::Master, other_backup),
            Role::Primary {
                flush_external: false
            }
        );
        assert_eq!(
            role(Step::ConntrackdPrimary, State::Master, other_master),
            Role::Primary {
                flush_external: true
            }
        );
        // The commit brings the expectations when conntrackd syncs them, and says so.
        let commit = resolve(
            Step::ConntrackdCommit,
            &i,
            Tables::default(),
            &obs(State::Master, false, &prev),
        )
        .unwrap();
        let Resolved::Do(a @ Action::ConntrackdCommit { expect: true, .. }) = commit else {
            panic!("{commit:?}")
        };
        assert!(a.describe().contains("-c, -c expect"), "{}", a.describe());
        let d = Action::Conntrackd {
            config: conf.clone(),
            role: Role::Fault { purge: false },
            replica: false,
        }
        .describe();
        assert!(d.contains("another instance is MASTER here"), "{d}");
        std::fs::write(&conf, "Sync {\n  Mode FTFW {\n  }\n}\n").unwrap();
        let commit = resolve(
            Step::ConntrackdCommit,
            &i,
            Tables::default(),
            &obs(State::Master, false, &prev),
        )
        .unwrap();
        assert!(
            matches!(
                commit,
                Resolved::Do(Action::ConntrackdCommit { expect: false, .. })
            ),
            "{commit:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_claim_and_the_announcement_need_their_tables() {
        let mut i = inst();
        i.fip_claim = Some(true);
        i.announce = Some(true);
        let prev = Recorded::default();
        let o = obs(State::Master, false, &prev);
        let e = resolve(Step::Fip, &i, Tables::default(), &o).unwrap_err();
        assert!(format!("{e}").contains("no [fip] table"), "{e}");
        let e = resolve(Step::Announce, &i, Tables::default(), &o).unwrap_err();
        assert!(format!("{e}").contains("no [bgp] table"), "{e}");
        let fip = hakit_fip::config::Fip {
            ip: Some("203.0.113.10".parse().unwrap()),
            ..Default::default()
        };
        let r = resolve(
            Step::Fip,
            &i,
            Tables {
                fip: Some(&fip),
                ..Tables::default()
            },
            &o,
        )
        .unwrap();
        let Resolved::Do(claim) = r else {
            panic!("{r:?}")
        };
        assert!(claim.background());
        assert_eq!(
            serde_json::to_value(&claim).unwrap(),
            serde_json::json!({"action": "claim", "ip": "203.0.113.10", "retry_for": 300000})
        );
        // An instance without an interface cannot move its addresses: refused, not guessed.
        i.interface = None;
        assert!(resolve(Step::AddressAdd, &i, Tables::default(), &o).is_err());
        assert!(resolve(Step::SnatEnsure, &i, Tables::default(), &o).is_err());
    }
}
