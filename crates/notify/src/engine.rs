//! One transition of one instance: the ordered, idempotent steps.
//!
//! Order on MASTER (each step optional by configuration):
//! 1. conntrackd commit (`-c`), before traffic can arrive;
//! 2. floating IPs onto the WAN interface (netlink);
//! 3. GARP/NA: the first round synchronously, the rest on a thread so later steps do not
//!    wait for the interval;
//! 4. the provider claim through the fip-claim library (`fip_claim = true`), started on its
//!    own thread and retried until done or superseded: in a routed cloud it is what brings
//!    the return traffic, so it must not wait behind the local steps, nor they behind it;
//! 5. the SNAT rule (nft);
//! 6. the `[bgp]` speaker's announcement set to primary, in place (`announce = true`: where
//!    the provider routes by BGP, as Linode does, this is what moves the traffic; after the
//!    SNAT rule and conntrackd's commit, so the traffic it attracts finds both);
//! 7. conntrackd flush/resync/bulk (`-f` retried while the commit runs, `-R`, `-B`);
//! 8. units restarted/started (after the claim has finished); 9. user `up` commands in
//!    order, stopping at the first failure.
//!
//! The local data plane (1–3, 5) never waits for a network API. A failed step does
//! not stop the ones after it (a broken conntrackd must not keep the address from moving);
//! it is retried (bounded), recorded and reported in the exit code. Only the user's `up`
//! commands stop at their first failure, since each usually depends on the one before
//! (promote, then mount).
//!
//! BACKUP/STOP run the reverse (the announcement demoted first, `down` commands, units
//! stopped, floating IPs removed, SNAT removed, conntrackd backup sequence); FAULT runs the
//! configured subset with conntrackd `-t` only. MASTER_RX_LOWER_PRI re-announces (GARP, the
//! primary role) and re-claims, only on a MASTER.
//!
//! Every step checks before it changes. When the previous transition already converged to
//! the same state, steps whose effect cannot be observed (conntrackd, units, commands) are
//! not repeated, and those that can (addresses, SNAT) are verified: a second `master` changes
//! nothing and says so.
//!
//! Before every step the caller's supersession check runs: a newer state (a newer intent,
//! keepalived's VIPs saying otherwise, a newer FIFO line) stops the transition at once and
//! leaves the node to the newer one.

use std::{
    net::IpAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError},
        Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};
use hakit_bgp::{Demote, Role, Speaker, Target};
use hakit_core::{
    config::{Cidr, Instance, StepName, UnitAction},
    exec,
    metrics::{Kind, Textfile},
};
use hakit_net::{garp, Change, Netlink};
use log::{debug, error, info, warn};
use serde::Serialize;

use crate::{
    conntrackd::{Conntrackd, Starter},
    event::State,
    nft::Snat,
    runtime::{now_unix, Recorded, Runtime, StepRecord},
};

/// MASTER_RX_LOWER_PRI re-announces (GARPs, provider claim) at most this often per
/// instance: keepalived reports it for every advert heard during a one-way VRRP loss
/// (25/s at advert_int 0.04), and each re-claim is a provider API read.
pub const REASSERT_EVERY: Duration = Duration::from_secs(1);

/// Process-wide settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub runtime: Runtime,
    pub lock_timeout: Duration,
    pub command_timeout: Duration,
    pub retries: u32,
    pub nft: String,
    pub conntrackd: String,
    pub systemctl: String,
    pub textfile: Option<PathBuf>,
    /// keepalived's configuration (for `status`).
    pub keepalived_config: PathBuf,
    /// The `[fip]` table, for the provider-claim step.
    pub fip: Option<hakit_core::config::Fip>,
    /// The `[bgp]` speaker, for the announcement step.
    pub bgp: Option<hakit_bgp::Speaker>,
    /// `[general] pair`: on every metric as `pair="…"`.
    pub pair: Option<String>,
    /// Set in the FIFO reader: its heartbeat interval (the textfile then carries the
    /// heartbeat, refreshed that often).
    pub heartbeat: Option<Duration>,
    /// `[check] track_file`: `status` shows the uplink monitor's verdict and its age.
    pub monitor_track_file: Option<PathBuf>,
}

/// The steps, in the order they can appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
            Step::AddressRemove | Step::AddressAdd | Step::Garp => StepName::Address,
            Step::SnatRemove | Step::SnatEnsure => StepName::Snat,
            Step::Announce => StepName::Bgp,
            _ => StepName::Conntrackd,
        }
    }

    /// Whether a failure is worth retrying here (user commands are not re-run blindly;
    /// the provider claim has its own, longer retry loop).
    fn retriable(self) -> bool {
        !matches!(self, Step::CommandsUp | Step::CommandsDown | Step::Fip)
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
    match state {
        State::Master => vec![
            ConntrackdCommit,
            AddressAdd,
            Garp,
            Fip,
            SnatEnsure,
            // The announcement moves the traffic: it needs conntrackd's commit (first) and the
            // SNAT rule, not the flush, resync and bulk send that follow.
            Announce,
            ConntrackdPrimary,
            UnitsUp,
            CommandsUp,
        ],
        State::Backup => [&down[..], &[ConntrackdBackup]].concat(),
        State::Stop => only(&inst.stop_steps, [&down[..], &[ConntrackdBackup]].concat()),
        State::Fault => only(&inst.fault_steps, [&down[..], &[ConntrackdFault]].concat()),
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
pub enum Outcome {
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
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub already_converged: bool,
    pub steps: Vec<StepReport>,
    pub ms: f64,
}

/// Check run before each step: `Some(reason)` stops the transition as superseded.
pub type Supersede<'a> = &'a dyn Fn() -> Option<String>;

struct Ctx<'a> {
    s: &'a Settings,
    inst: &'a Instance,
    nl: &'a Netlink,
    /// The previous transition converged to this same state.
    same: bool,
    prev: &'a Recorded,
    rec: &'a mut Recorded,
    added: Vec<IpAddr>,
    /// This transition's address step put (or found) every floating IP on the interface,
    /// so the GARP step need not dump the addresses again to check them.
    addresses_on: bool,
    force_garp: bool,
    /// The state this transition runs (on STOP nothing is started: keepalived, and often
    /// the node, is going down).
    state: State,
    garp_rest: Option<JoinHandle<anyhow::Result<garp::Report>>>,
    /// The provider claim running on its own thread: when it started, where its result
    /// arrives, and the flag that tells it to stop retrying (set when a newer state
    /// supersedes this one).
    claim: Option<(Instant, Receiver<StepResult>, Arc<AtomicBool>)>,
    superseded: Supersede<'a>,
}

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
        outcome: Outcome::DryRun,
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
        Step::ConntrackdCommit => ct("-c"),
        Step::ConntrackdPrimary => ct("-f, -R, -B"),
        Step::ConntrackdBackup => ct("-s (start with -d if down), -t, -n"),
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

/// Runs the transition of `inst` to `state` (generation `gen`).
pub fn transition(
    s: &Settings,
    inst: &Instance,
    state: State,
    gen: u64,
    nl: &Netlink,
    superseded: Supersede,
) -> anyhow::Result<Report> {
    let start = Instant::now();
    let mut report = Report {
        instance: inst.name.clone(),
        state,
        generation: gen,
        outcome: Outcome::Converged,
        reason: None,
        already_converged: false,
        steps: Vec::new(),
        ms: 0.0,
    };
    // While an older transition holds the lock, this one keeps asking whether it is itself
    // superseded: the newest intent waits (the older one stops at its next check, within
    // a running command too), an older one gives way at once.
    let _lock = match s.runtime.lock(&inst.name, s.lock_timeout, superseded)? {
        Ok(l) => l,
        Err(why) => {
            info!(
                "{} {state} (generation {gen}) superseded while waiting for the lock: {why}",
                inst.name
            );
            report.outcome = Outcome::Superseded;
            report.reason = Some(why);
            return Ok(report);
        }
    };
    let waited = start.elapsed();
    if waited > Duration::from_millis(5) {
        debug!("{}: waited {waited:?} for the instance lock", inst.name);
    }
    if let Some(why) = superseded() {
        info!(
            "{} {state} (generation {gen}) superseded before it started: {why}",
            inst.name
        );
        report.outcome = Outcome::Superseded;
        report.reason = Some(why);
        return Ok(report);
    }
    let prev = s.runtime.recorded(&inst.name).unwrap_or_default();
    // The state to re-assert is the newest one keepalived asked for, not only the one
    // recorded: a BACKUP hook that registered but has not run yet makes this node BACKUP.
    // Only a re-assertion needs it (the intent log is read from disk: not on every hook).
    let asked = if state == State::MasterRxLowerPri {
        s.runtime
            .newer_intents(&inst.name, 0)
            .ok()
            .and_then(|i| {
                i.into_iter()
                    .rev()
                    .find(|i| i.state != State::MasterRxLowerPri)
            })
            .map(|i| i.state)
    } else {
        None
    };
    if state == State::MasterRxLowerPri
        && (prev.state != Some(State::Master) || asked.is_some_and(|a| a != State::Master))
    {
        info!(
            "{}: MASTER_RX_LOWER_PRI while recorded as {}: nothing to re-assert",
            inst.name,
            asked.or(prev.state).map_or("nothing", State::as_str)
        );
        report.reason = Some("not MASTER".into());
        return Ok(report);
    }
    if state == State::MasterRxLowerPri
        && prev.converged
        && (0.0..REASSERT_EVERY.as_secs_f64()).contains(&(now_unix() - prev.reasserted_unix))
    {
        debug!(
            "{}: MASTER_RX_LOWER_PRI within {REASSERT_EVERY:?} of the last one: already re-asserted",
            inst.name
        );
        report.reason = Some("re-asserted moments ago".into());
        return Ok(report);
    }
    let target = if state == State::MasterRxLowerPri {
        State::Master
    } else {
        state
    };
    let same = prev.state == Some(target) && prev.converged;
    let mut rec = prev.clone();
    rec.generation = gen.max(prev.generation);
    rec.state = Some(target);
    rec.converged = false;
    rec.superseded = false;
    rec.at_unix = now_unix();
    if state == State::MasterRxLowerPri {
        rec.reasserted_unix = rec.at_unix;
    }
    if let Err(e) = s.runtime.record(&inst.name, &rec) {
        warn!("{}: {e:#}: the transition goes on unrecorded", inst.name);
    }

    let mut ctx = Ctx {
        s,
        inst,
        nl,
        same,
        prev: &prev,
        rec: &mut rec,
        added: Vec::new(),
        addresses_on: false,
        force_garp: state == State::MasterRxLowerPri,
        state,
        garp_rest: None,
        claim: None,
        superseded,
    };
    let mut failed = false;
    for step in plan(state, inst) {
        if let Some(why) = superseded() {
            info!(
                "{} {state} (generation {gen}) superseded before {}: {why}",
                inst.name,
                step.name()
            );
            report.outcome = Outcome::Superseded;
            report.reason = Some(why);
            break;
        }
        if matches!(step, Step::UnitsUp | Step::CommandsUp) {
            // Units (lelastic announcing the route) and user commands come after the
            // provider has the address: wait for the claim first.
            if let Some((ms, result)) = finish_claim(&mut ctx) {
                failed |= record_step(&mut ctx, &mut report, state, Step::Fip, result, ms);
            }
        }
        if step == Step::Fip && inst.fip_claim == Some(true) {
            match start_claim(&ctx) {
                Ok(pending) => {
                    // Its place in the report, filled in when the claim is joined.
                    report.steps.push(StepReport {
                        step,
                        result: StepResult::Planned("running".into()),
                        ms: 0.0,
                    });
                    ctx.claim = Some(pending);
                    continue;
                }
                Err(e) => {
                    let r = StepResult::Failed(format!("{e:#}"));
                    failed |= record_step(&mut ctx, &mut report, state, step, r, 0.0);
                    continue;
                }
            }
        }
        let t = Instant::now();
        let mut attempt = 0;
        let result = loop {
            match run_step(&mut ctx, step) {
                Ok(r) => break r,
                Err(e) if step.retriable() && attempt < s.retries && superseded().is_none() => {
                    attempt += 1;
                    let pause = Duration::from_millis(50 << attempt.min(6));
                    warn!(
                        "{} {}: {e:#}; retry {attempt}/{} in {pause:?}",
                        inst.name,
                        step.name(),
                        s.retries
                    );
                    thread::sleep(pause);
                }
                Err(e) => break StepResult::Failed(format!("{e:#}")),
            }
        };
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        failed |= record_step(&mut ctx, &mut report, state, step, result, ms);
    }
    if let Some((ms, result)) = finish_claim(&mut ctx) {
        failed |= record_step(&mut ctx, &mut report, state, Step::Fip, result, ms);
    }
    // A last step stopped because a newer state arrived is superseded, not failed.
    if failed && report.outcome == Outcome::Converged {
        if let Some(why) = superseded() {
            report.outcome = Outcome::Superseded;
            report.reason = Some(why);
        }
    }
    if let Some(rest) = ctx.garp_rest.take() {
        match rest.join() {
            Ok(Ok(r)) => debug!(
                "{}: later GARP rounds done ({} frames)",
                inst.name, r.frames_sent
            ),
            Ok(Err(e)) => warn!("{}: later GARP rounds failed: {e:#}", inst.name),
            Err(_) => warn!("{}: GARP thread panicked", inst.name),
        }
    }
    report.already_converged = same
        && report.outcome == Outcome::Converged
        && !failed
        && report
            .steps
            .iter()
            .all(|r| !matches!(r.result, StepResult::Changed(_)));
    if failed && report.outcome == Outcome::Converged {
        report.outcome = Outcome::Failed;
    }
    rec.converged = report.outcome == Outcome::Converged;
    rec.superseded = report.outcome == Outcome::Superseded;
    rec.duration_seconds = start.elapsed().as_secs_f64();
    if !report.already_converged && state != State::MasterRxLowerPri {
        *rec.transitions_total
            .entry(target.as_str().to_string())
            .or_default() += 1;
    }
    if let Err(e) = s.runtime.record(&inst.name, &rec) {
        warn!("{}: {e:#}: the transition goes on unrecorded", inst.name);
    }
    report.ms = start.elapsed().as_secs_f64() * 1000.0;
    match report.outcome {
        Outcome::Converged if report.already_converged => {
            info!(
                "{} already converged as {target}: nothing changed ({:.1} ms)",
                inst.name, report.ms
            )
        }
        Outcome::Converged => info!("{} converged to {target} in {:.1} ms", inst.name, report.ms),
        Outcome::Failed => error!(
            "{} did not converge to {target}: see the failed steps above",
            inst.name
        ),
        _ => {}
    }
    Ok(report)
}

/// Logs a step's result and records it in the state file and the report; returns whether
/// it failed.
fn record_step(
    ctx: &mut Ctx,
    report: &mut Report,
    state: State,
    step: Step,
    result: StepResult,
    ms: f64,
) -> bool {
    let name = &ctx.inst.name;
    let failed = matches!(result, StepResult::Failed(_));
    match &result {
        StepResult::Changed(d) => info!("{name} {state}: {}: {d}", step.name()),
        StepResult::Failed(d) => {
            error!("{name} {state}: {} failed: {d}", step.name());
            *ctx.rec
                .step_failures_total
                .entry(step.name().to_string())
                .or_default() += 1;
        }
        StepResult::Unchanged(d) | StepResult::Skipped(d) => {
            debug!("{name} {state}: {}: {d}", step.name())
        }
        StepResult::Planned(_) => {}
    }
    ctx.rec.steps.insert(
        step.name().to_string(),
        StepRecord {
            ok: !failed,
            detail: detail(&result),
            seconds: ms / 1000.0,
        },
    );
    let entry = StepReport { step, result, ms };
    match report
        .steps
        .iter_mut()
        .find(|r| r.step == step && matches!(r.result, StepResult::Planned(_)))
    {
        Some(slot) => *slot = entry,
        None => report.steps.push(entry),
    }
    failed
}

fn detail(r: &StepResult) -> String {
    match r {
        StepResult::Changed(d)
        | StepResult::Unchanged(d)
        | StepResult::Skipped(d)
        | StepResult::Failed(d)
        | StepResult::Planned(d) => d.clone(),
    }
}

fn conntrackd(ctx: &Ctx) -> Option<Conntrackd> {
    ctx.inst.conntrackd_config.as_ref().map(|c| Conntrackd {
        prog: ctx.s.conntrackd.clone(),
        config: c.clone(),
        timeout: ctx.s.command_timeout,
    })
}

fn snat(ctx: &Ctx) -> anyhow::Result<Option<Snat>> {
    let Some(source) = ctx.inst.snat_source else {
        return Ok(None);
    };
    let to = snat_to(ctx.inst)
        .context("snat_source is set but neither snat_to nor an IPv4 floating IP is configured")?;
    Ok(Some(Snat {
        nft: ctx.s.nft.clone(),
        table: ctx
            .inst
            .snat_table
            .clone()
            .unwrap_or_else(|| "hakit".into()),
        instance: ctx.inst.name.clone(),
        source,
        to,
        oifname: ctx
            .inst
            .interface
            .clone()
            .context("snat needs the instance's interface")?,
        timeout: ctx.s.command_timeout,
    }))
}

fn link_index(ctx: &Ctx) -> anyhow::Result<(String, u32)> {
    let dev = ctx
        .inst
        .interface
        .clone()
        .context("floating_ips need the instance's interface")?;
    let link = ctx
        .nl
        .link_by_name(&dev)?
        .with_context(|| format!("interface {dev} does not exist"))?;
    Ok((dev, link.index))
}

/// The conntrackd role steps share: skip when not configured or already in that role.
fn conntrackd_role(
    ctx: &mut Ctx,
    role: &str,
    f: impl Fn(&Conntrackd) -> anyhow::Result<()>,
) -> anyhow::Result<StepResult> {
    let Some(c) = conntrackd(ctx) else {
        return Ok(StepResult::Skipped("conntrackd not configured".into()));
    };
    if ctx.same && ctx.prev.conntrackd.as_deref() == Some(role) {
        return Ok(StepResult::Unchanged(format!("conntrackd already {role}")));
    }
    f(&c)?;
    ctx.rec.conntrackd = Some(role.to_string());
    Ok(StepResult::Changed(format!("conntrackd now {role}")))
}

fn systemctl(ctx: &Ctx, verb: &str) -> anyhow::Result<StepResult> {
    if ctx.inst.units.is_empty() {
        return Ok(StepResult::Skipped("no units configured".into()));
    }
    if ctx.same {
        return Ok(StepResult::Unchanged(format!(
            "units already handled: {}",
            ctx.inst.units.join(" ")
        )));
    }
    let mut errors = Vec::new();
    for unit in &ctx.inst.units {
        if let Some(why) = (ctx.superseded)() {
            bail!("superseded before {verb} {unit}: {why}");
        }
        if let Err(e) = exec::run_ok_until(
            &exec::argv(&[&ctx.s.systemctl, verb, unit]),
            ctx.s.command_timeout,
            ctx.superseded,
        ) {
            errors.push(format!("{e:#}"));
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(StepResult::Changed(format!(
        "{verb} {}",
        ctx.inst.units.join(" ")
    )))
}

fn commands(ctx: &Ctx, cmds: &[Vec<String>], stop_at_first: bool) -> anyhow::Result<StepResult> {
    if cmds.is_empty() {
        return Ok(StepResult::Skipped("no commands configured".into()));
    }
    if ctx.same {
        return Ok(StepResult::Unchanged(
            "commands already run for this state".into(),
        ));
    }
    let mut errors = Vec::new();
    for (n, argv) in cmds.iter().enumerate() {
        if let Some(why) = (ctx.superseded)() {
            bail!(
                "superseded before command {} of {}: {why}",
                n + 1,
                cmds.len()
            );
        }
        if let Err(e) = exec::run_ok_until(argv, ctx.s.command_timeout, ctx.superseded) {
            errors.push(format!("{e:#}"));
            if stop_at_first {
                let left = cmds.len() - n - 1;
                bail!("{} ({left} later command(s) not run)", errors.join("; "));
            }
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(StepResult::Changed(format!(
        "ran {} command(s)",
        cmds.len()
    )))
}

fn run_step(ctx: &mut Ctx, step: Step) -> anyhow::Result<StepResult> {
    match step {
        Step::ConntrackdCommit => {
            let Some(c) = conntrackd(ctx) else {
                return Ok(StepResult::Skipped("conntrackd not configured".into()));
            };
            if ctx.same && ctx.prev.conntrackd.as_deref() == Some("primary") {
                return Ok(StepResult::Unchanged(
                    "external cache already committed".into(),
                ));
            }
            if c.external_cache_disabled() {
                return Ok(StepResult::Unchanged(
                    "external cache disabled: the kernel table already holds the peer's state"
                        .into(),
                ));
            }
            c.commit()?;
            Ok(StepResult::Changed(
                "external cache committed to the kernel".into(),
            ))
        }
        Step::ConntrackdPrimary => conntrackd_role(ctx, "primary", Conntrackd::primary),
        Step::ConntrackdBackup => {
            let start = if ctx.state == State::Stop {
                Starter::Never
            } else {
                Starter::for_this_node(&ctx.s.systemctl)
            };
            let Some(c) = conntrackd(ctx) else {
                return Ok(StepResult::Skipped("conntrackd not configured".into()));
            };
            if ctx.same && ctx.prev.conntrackd.as_deref() == Some("backup") {
                return Ok(StepResult::Unchanged("conntrackd already backup".into()));
            }
            if c.backup(&start)? {
                ctx.rec.conntrackd = Some("backup".into());
                Ok(StepResult::Changed("conntrackd now backup".into()))
            } else {
                Ok(StepResult::Unchanged(
                    "conntrackd is not running; not started on STOP".into(),
                ))
            }
        }
        Step::ConntrackdFault => conntrackd_role(ctx, "fault", Conntrackd::fault),
        Step::AddressAdd | Step::AddressRemove => {
            if ctx.inst.floating_ips.is_empty() {
                return Ok(StepResult::Skipped("no floating IPs".into()));
            }
            let (dev, index) = link_index(ctx)?;
            let (mut changed, mut same) = (Vec::new(), Vec::new());
            for c in &ctx.inst.floating_ips {
                let r = if step == Step::AddressAdd {
                    ctx.nl.add_address(index, c.addr, c.prefix)?
                } else {
                    ctx.nl.del_address(index, c.addr, c.prefix)?
                };
                match r {
                    Change::Applied => changed.push(c.to_string()),
                    Change::AlreadyThere => same.push(c.to_string()),
                }
                if r == Change::Applied && step == Step::AddressAdd {
                    ctx.added.push(c.addr);
                }
            }
            ctx.addresses_on = step == Step::AddressAdd;
            let (done, prep, already) = if step == Step::AddressAdd {
                ("added", "to", "on")
            } else {
                ("removed", "from", "absent from")
            };
            if changed.is_empty() {
                Ok(StepResult::Unchanged(format!(
                    "{} already {already} {dev}",
                    same.join(", ")
                )))
            } else {
                Ok(StepResult::Changed(format!(
                    "{done} {} {prep} {dev}",
                    changed.join(", ")
                )))
            }
        }
        Step::Garp => {
            if ctx.inst.floating_ips.is_empty() {
                return Ok(StepResult::Skipped("no floating IPs".into()));
            }
            if ctx.same && ctx.added.is_empty() && !ctx.force_garp {
                return Ok(StepResult::Unchanged("already announced".into()));
            }
            let (dev, _) = link_index(ctx)?;
            let count = ctx.inst.garp_count.unwrap_or(3).max(1);
            let interval = ctx
                .inst
                .garp_interval
                .map_or(Duration::from_millis(100), |d| d.get());
            let plan = garp::Plan {
                interface: dev.clone(),
                ips: ctx.inst.floating_ips.iter().map(|c| c.addr).collect(),
                count: 1,
                interval,
                reply: false,
                force: ctx.addresses_on,
                router: None,
            };
            let burst = garp::resolve(ctx.nl, &plan)?;
            let first = burst.send()?;
            if count > 1 {
                let mut rest = burst.clone();
                rest.count = count - 1;
                ctx.garp_rest = Some(thread::spawn(move || {
                    thread::sleep(interval);
                    rest.send()
                }));
            }
            Ok(StepResult::Changed(format!(
                "announced on {dev}: first round of {} frame(s) after {:.3} ms, {} more round(s) every {interval:?}",
                first.frames_sent,
                first.first_frame_after.as_secs_f64() * 1000.0,
                count - 1
            )))
        }
        Step::SnatEnsure => match snat(ctx)? {
            None => Ok(StepResult::Skipped("snat_source not configured".into())),
            Some(n) => Ok(if n.ensure()? {
                StepResult::Changed(format!(
                    "SNAT {} -> {} on {} added",
                    n.source, n.to, n.oifname
                ))
            } else {
                StepResult::Unchanged(format!("SNAT {} -> {} present", n.source, n.to))
            }),
        },
        Step::SnatRemove => match snat(ctx)? {
            None => Ok(StepResult::Skipped("snat_source not configured".into())),
            Some(n) => Ok(if n.remove()? {
                StepResult::Changed(format!("SNAT {} -> {} removed", n.source, n.to))
            } else {
                StepResult::Unchanged("no hakit SNAT rule present".into())
            }),
        },
        // Started on its own thread by the transition loop when configured.
        Step::Fip => Ok(StepResult::Skipped("provider claim not configured".into())),
        Step::UnitsUp => systemctl(
            ctx,
            match ctx.inst.unit_action {
                Some(UnitAction::Start) => "start",
                _ => "restart",
            },
        ),
        Step::Announce => announce(ctx),
        Step::UnitsDown => systemctl(ctx, "stop"),
        Step::CommandsUp => commands(ctx, &ctx.inst.up, true),
        Step::CommandsDown => commands(ctx, &ctx.inst.down, false),
    }
}

/// How long a speaker started by the announcement step gets to come up and announce what
/// it was started with, before the step sets the role over it.
const SPEAKER_START: Duration = Duration::from_secs(10);

/// The announcement step: the `[bgp]` speaker's role for this state, in place (read, write
/// what differs, read back; never a restart). A speaker that does not answer is said to be
/// down loudly and started (never on STOP) through its unit; the step then fails until the
/// speaker has a session to announce on.
fn announce(ctx: &mut Ctx) -> anyhow::Result<StepResult> {
    if ctx.inst.announce != Some(true) {
        return Ok(StepResult::Skipped("announce not configured".into()));
    }
    let b = ctx
        .s
        .bgp
        .as_ref()
        .context("announce is set but the config file has no [bgp] table")?;
    let target = announce_target(b, ctx.state);
    let prefixes = b.prefixes_text();
    let err = match b.ensure(target) {
        Ok(a) if a.changed.is_empty() => {
            return Ok(StepResult::Unchanged(format!(
                "{prefixes} already {target} on {}",
                b.kind_name()
            )))
        }
        Ok(a) => {
            let was = a
                .changed
                .iter()
                .map(|(p, w)| format!("{p} was {w}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Ok(StepResult::Changed(format!(
                "{prefixes} now {target} on {} ({was})",
                b.kind_name()
            )));
        }
        Err(e) => e,
    };
    let Some(unit) = b.unit.as_deref().filter(|_| ctx.state != State::Stop) else {
        return Err(err);
    };
    let active = exec::run(
        &exec::argv(&[&ctx.s.systemctl, "is-active", "--quiet", unit]),
        None,
        ctx.s.command_timeout,
    )
    .is_ok_and(|r| r.success());
    if active {
        return Err(err);
    }
    error!(
        "{}: the bgp speaker is not running ({unit} inactive; {err:#}): starting it",
        ctx.inst.name
    );
    exec::run_ok_until(
        &exec::argv(&[&ctx.s.systemctl, "start", unit]),
        ctx.s.command_timeout,
        ctx.superseded,
    )?;
    // lelastic adds its paths (with the role it was started with) once its API is up:
    // setting the role before that would be overwritten.
    let first = b.prefixes[0];
    let until = Instant::now() + SPEAKER_START;
    while !matches!(b.read(&first), Ok(hakit_bgp::Seen::Path(_))) && Instant::now() < until {
        if let Some(why) = (ctx.superseded)() {
            bail!("superseded while {unit} started: {why}");
        }
        thread::sleep(Duration::from_millis(100));
    }
    b.ensure(target)
        .with_context(|| format!("{unit} was started but"))?;
    let up = b
        .sessions()
        .map_or(0, |s| s.iter().filter(|s| s.established).count());
    if up == 0 {
        // Not retried here: the sessions take seconds (GoBGP waits 5-9 s to connect), and
        // this transition must say that nothing is announced yet.
        return Ok(StepResult::Failed(format!(
            "{unit} was not running: started it and set {prefixes} {target}; no BGP session is established yet, so nothing is announced"
        )));
    }
    Ok(StepResult::Changed(format!(
        "{unit} was not running: started it; {prefixes} now {target} ({up} session(s) up)"
    )))
}

/// Step 4: claim the floating IP at the provider through the fip-claim library, on a thread
/// of its own, so the local steps after it (SNAT, conntrackd) do not wait for a network API
/// and the API does not wait for them: in a routed cloud the claim is what brings the
/// return traffic. Retried with backoff until it succeeds, `fip_retry_for` runs out, or a
/// newer state supersedes this one; a refusal (the IP belongs to a node outside the pair)
/// is not retried. Joined before units and user commands run ([`finish_claim`]).
fn start_claim(ctx: &Ctx) -> anyhow::Result<(Instant, Receiver<StepResult>, Arc<AtomicBool>)> {
    let mut cfg = ctx
        .s
        .fip
        .clone()
        .context("fip_claim is set but the config file has no [fip] table with a provider")?;
    cfg.ip = ctx.inst.fip_ip.or(cfg.ip);
    let limit = ctx
        .inst
        .fip_retry_for
        .map_or(Duration::from_secs(300), |d| d.get());
    let name = ctx.inst.name.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("fip-claim".into())
        .spawn(move || {
            let _ = tx.send(claim_loop(&cfg, &name, limit, &stopped));
        })
        .context("start the provider-claim thread")?;
    Ok((started, rx, stop))
}

fn claim_loop(
    cfg: &hakit_core::config::Fip,
    name: &str,
    limit: Duration,
    stop: &AtomicBool,
) -> StepResult {
    let start = Instant::now();
    let mut pause = Duration::from_millis(200);
    loop {
        match hakit_fip::run(cfg, hakit_fip::model::Mode::Claim, false, false) {
            Ok(out) if out.already_converged => {
                return StepResult::Unchanged(format!(
                    "{} {} already on this node",
                    out.provider,
                    out.ip.map_or("?".into(), |i| i.to_string())
                ))
            }
            Ok(out) => {
                return StepResult::Changed(format!("{}: {}", out.provider, out.changed.join("; ")))
            }
            Err(e) if e.downcast_ref::<hakit_fip::model::Refused>().is_some() => {
                return StepResult::Failed(format!("{e:#}"))
            }
            Err(e) => {
                if start.elapsed() + pause > limit {
                    return StepResult::Failed(format!(
                        "{e:#} (gave up after {:.1}s)",
                        start.elapsed().as_secs_f64()
                    ));
                }
                if stop.load(Ordering::Relaxed) {
                    return StepResult::Skipped(format!(
                        "superseded while claiming; last error: {e:#}"
                    ));
                }
                warn!("{name}: provider claim failed, retrying in {pause:?}: {e:#}");
                let until = Instant::now() + pause;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(20));
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Waits for a claim started by [`start_claim`], telling it to stop retrying as soon as a
/// newer state supersedes this transition; returns its duration (ms) and result.
/// The result is taken the moment it arrives; the supersession check (a netlink dump and
/// a file read) runs only while the claim is still waiting, every 100 ms.
fn finish_claim(ctx: &mut Ctx) -> Option<(f64, StepResult)> {
    let (started, rx, stop) = ctx.claim.take()?;
    let result = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(r) => break r,
            Err(RecvTimeoutError::Timeout) => {
                if !stop.load(Ordering::Relaxed) && (ctx.superseded)().is_some() {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                break StepResult::Failed("the provider-claim thread panicked".into())
            }
        }
    };
    Some((started.elapsed().as_secs_f64() * 1000.0, result))
}

/// Writes the Prometheus textfile for `instances` from their recorded state.
pub fn write_metrics(s: &Settings, instances: &[Instance]) -> anyhow::Result<()> {
    let Some(path) = &s.textfile else {
        return Ok(());
    };
    let mut t = Textfile::for_pair(s.pair.as_deref());
    if let Some(every) = s.heartbeat {
        t.add(
            "hakit_nat_notify_fifo_heartbeat_timestamp_seconds",
            Kind::Gauge,
            "Unix time the notify FIFO reader last proved it is alive.",
            &[],
            now_unix(),
        );
        t.add(
            "hakit_nat_notify_fifo_heartbeat_interval_seconds",
            Kind::Gauge,
            "How often the FIFO reader refreshes its heartbeat.",
            &[],
            every.as_secs_f64(),
        );
    }
    for inst in instances {
        let r = s.runtime.recorded(&inst.name)?;
        let i = inst.name.as_str();
        for st in [State::Master, State::Backup, State::Fault, State::Stop] {
            let v = if r.state == Some(st) { 1.0 } else { 0.0 };
            t.add(
                "hakit_nat_notify_state",
                Kind::Gauge,
                "1 for the state the instance was last moved to.",
                &[("vrrp_instance", i), ("state", st.as_str())],
                v,
            );
            let n = r.transitions_total.get(st.as_str()).copied().unwrap_or(0);
            t.add(
                "hakit_nat_notify_transitions_total",
                Kind::Counter,
                "Transitions that changed something, by target state.",
                &[("vrrp_instance", i), ("state", st.as_str())],
                n as f64,
            );
        }
        t.add(
            "hakit_nat_notify_converged",
            Kind::Gauge,
            "1 if the last transition completed every step.",
            &[("vrrp_instance", i)],
            f64::from(u8::from(r.converged)),
        );
        t.add(
            "hakit_nat_notify_last_transition_timestamp_seconds",
            Kind::Gauge,
            "Unix time the last transition started.",
            &[("vrrp_instance", i)],
            r.at_unix,
        );
        t.add(
            "hakit_nat_notify_last_transition_duration_seconds",
            Kind::Gauge,
            "Duration of the last transition.",
            &[("vrrp_instance", i)],
            r.duration_seconds,
        );
        for (step, rec) in &r.steps {
            t.add(
                "hakit_nat_notify_step_duration_seconds",
                Kind::Gauge,
                "Duration of each step in its last run.",
                &[("vrrp_instance", i), ("step", step)],
                rec.seconds,
            );
            t.add(
                "hakit_nat_notify_step_ok",
                Kind::Gauge,
                "1 if the step succeeded in its last run.",
                &[("vrrp_instance", i), ("step", step)],
                f64::from(u8::from(rec.ok)),
            );
        }
        for (step, n) in &r.step_failures_total {
            t.add(
                "hakit_nat_notify_step_failures_total",
                Kind::Counter,
                "Failed step runs.",
                &[("vrrp_instance", i), ("step", step)],
                *n as f64,
            );
        }
    }
    t.write(path)
        .map_err(|e| anyhow!("metrics textfile: {e:#}"))
}
