//! The real [`Host`]: what each step does to the node and beyond (netlink, packet sockets,
//! nft, conntrackd, systemctl, the provider through the fip-claim library, the BGP speaker).
//! Every step checks before it changes and says which it did.

use std::{
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError},
        Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use hakit_cli::nat_notify::UnitAction;
use hakit_core::debug;
use hakit_core::exec;
use hakit_net::{garp, nft::Snat, Change, Netlink};
use log::{error, info, warn};

use crate::{
    config::Instance,
    conntrackd::{Conntrackd, Starter},
    engine::{Host, Pending, Settings, Supersede, Turn},
    event::State,
    plan::{announce_target, snat_to, Step, StepResult},
    runtime::Recorded,
};

/// The real host: netlink, packet sockets, nft, conntrackd, systemctl, the provider and the
/// BGP speaker. One per transition (it keeps what the address step did for the GARP step).
pub struct Real<'a> {
    s: &'a Settings,
    nl: &'a Netlink,
    added: Vec<IpAddr>,
    /// This transition's address step put (or found) every floating IP on the interface,
    /// so the GARP step need not dump the addresses again to check them.
    addresses_on: bool,
    garp_rest: Option<JoinHandle<anyhow::Result<garp::Report>>>,
}

impl<'a> Real<'a> {
    pub fn new(s: &'a Settings, nl: &'a Netlink) -> Real<'a> {
        Real {
            s,
            nl,
            added: Vec::new(),
            addresses_on: false,
            garp_rest: None,
        }
    }
}

impl Host for Real<'_> {
    fn run(&mut self, step: Step, t: &mut Turn) -> anyhow::Result<StepResult> {
        let mut ctx = Ctx {
            s: self.s,
            inst: t.inst,
            nl: self.nl,
            same: t.same,
            prev: t.prev,
            rec: &mut *t.rec,
            added: &mut self.added,
            addresses_on: &mut self.addresses_on,
            force_garp: t.force_garp,
            state: t.state,
            garp_rest: &mut self.garp_rest,
            superseded: t.superseded,
        };
        run_step(&mut ctx, step)
    }

    fn start(&mut self, step: Step, t: &Turn) -> Option<anyhow::Result<Box<dyn Pending>>> {
        match step {
            Step::Fip if t.inst.fip_claim == Some(true) => {
                Some(start_claim(self.s, t.inst).map(|c| Box::new(c) as Box<dyn Pending>))
            }
            Step::ConntrackdCommit => {
                start_commit(self.s, t).map(|c| c.map(|c| Box::new(c) as Box<dyn Pending>))
            }
            _ => None,
        }
    }

    fn settle(&mut self, t: &Turn) {
        if let Some(rest) = self.garp_rest.take() {
            match rest.join() {
                Ok(Ok(r)) => debug!(
                    "{}: later GARP rounds done ({} frames)",
                    t.inst.name, r.frames_sent
                ),
                Ok(Err(e)) => warn!("{}: later GARP rounds failed: {e:#}", t.inst.name),
                Err(_) => warn!("{}: GARP thread panicked", t.inst.name),
            }
        }
    }
}

/// Runs the transition of `inst` to `state` (generation `gen`) on this node: the engine's
/// loop over the real host.
pub fn transition(
    s: &Settings,
    inst: &Instance,
    state: State,
    gen: u64,
    nl: &Netlink,
    superseded: Supersede,
) -> anyhow::Result<crate::plan::Report> {
    crate::engine::run(&mut Real::new(s, nl), s, inst, state, gen, superseded)
}

/// One step's view of the transition and of the host.
struct Ctx<'c> {
    s: &'c Settings,
    inst: &'c Instance,
    nl: &'c Netlink,
    same: bool,
    prev: &'c Recorded,
    rec: &'c mut Recorded,
    added: &'c mut Vec<IpAddr>,
    addresses_on: &'c mut bool,
    force_garp: bool,
    state: State,
    garp_rest: &'c mut Option<JoinHandle<anyhow::Result<garp::Report>>>,
    superseded: Supersede<'c>,
}

fn conntrackd<'c>(ctx: &Ctx<'c>) -> Option<Conntrackd<'c>> {
    ctx.inst.conntrackd_config.as_ref().map(|c| Conntrackd {
        prog: ctx.s.conntrackd.clone(),
        config: c.clone(),
        timeout: ctx.s.command_timeout,
        stop: ctx.superseded,
    })
}

fn snat<'c>(ctx: &Ctx<'c>) -> anyhow::Result<Option<Snat<'c>>> {
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
        stop: ctx.superseded,
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
fn conntrackd_role<'c>(
    ctx: &mut Ctx<'c>,
    role: &str,
    f: impl Fn(&Conntrackd<'c>) -> anyhow::Result<()>,
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
            None,
            ctx.s.command_timeout,
            exec::OUTPUT_CAP,
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
        if let Err(e) = exec::run_ok_until(
            argv,
            None,
            ctx.s.command_timeout,
            exec::OUTPUT_CAP,
            ctx.superseded,
        ) {
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
            *ctx.addresses_on = step == Step::AddressAdd;
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
                force: *ctx.addresses_on,
                router: None,
            };
            let burst = garp::resolve(ctx.nl, &plan)?;
            let first = burst.send()?;
            if count > 1 {
                let mut rest = burst.clone();
                rest.count = count - 1;
                *ctx.garp_rest = Some(thread::spawn(move || {
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
    let err = match b.ensure(target, ctx.superseded) {
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
    let active = hakit_net::systemd::unit_state(&ctx.s.systemctl, unit, ctx.s.command_timeout)
        .is_ok_and(|u| u.active);
    if active {
        return Err(err);
    }
    error!(
        "{}: the bgp speaker is not running ({unit} inactive; {err:#}): starting it",
        ctx.inst.name
    );
    exec::run_ok_until(
        &exec::argv(&[&ctx.s.systemctl, "start", unit]),
        None,
        ctx.s.command_timeout,
        exec::OUTPUT_CAP,
        ctx.superseded,
    )?;
    // lelastic adds its paths (with the role it was started with) once its API is up:
    // setting the role before that would be overwritten.
    let first = b.prefixes[0];
    let until = Instant::now() + SPEAKER_START;
    while !matches!(b.read(&first, ctx.superseded), Ok(hakit_bgp::Seen::Path(_)))
        && Instant::now() < until
    {
        if let Some(why) = (ctx.superseded)() {
            bail!("superseded while {unit} started: {why}");
        }
        thread::sleep(Duration::from_millis(100));
    }
    b.ensure(target, ctx.superseded)
        .with_context(|| format!("{unit} was started but"))?;
    let up = b
        .sessions(ctx.superseded)
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

/// How long the background commit's `conntrackd -c` may run: conntrackd answers it only
/// when the commit has finished, 1.2 s for 100,000 flows and 19 s for 1,000,000 on the
/// bench machine (BENCHMARKS.md, "A production-sized connection table").
const COMMIT_CLIENT: Duration = Duration::from_secs(120);

/// The external cache's commit on its own thread, when there is one to commit: `conntrackd
/// -c` returns only when the commit has finished (seconds for a large table), and the
/// address, GARP, claim and SNAT rule must not wait behind it. New flows are forwarded at
/// once; an existing flow's packets are dropped (not NATed: the ruleset's forward and input
/// chains) until its entry is committed. None (run in line, which says why it is nothing to
/// do) when conntrackd is not configured, has no external cache, or already committed.
fn start_commit(s: &Settings, t: &Turn) -> Option<anyhow::Result<Background>> {
    let config = t.inst.conntrackd_config.clone()?;
    if crate::conntrackd::external_cache_disabled(&config)
        || (t.same && t.prev.conntrackd.as_deref() == Some("primary"))
    {
        return None;
    }
    let (prog, retries) = (s.conntrackd.clone(), s.retries);
    Some(Background::spawn("conntrackd-commit", move |stopped| {
        let stop_fn = || {
            stopped
                .load(Ordering::Relaxed)
                .then(|| "superseded".to_string())
        };
        let c = Conntrackd {
            prog,
            config,
            timeout: COMMIT_CLIENT,
            stop: &stop_fn,
        };
        let t0 = Instant::now();
        // Retried as the loop retries a step in line (`retries`, the same pauses).
        let mut attempt = 0;
        loop {
            match c.commit() {
                Ok(()) => {
                    break StepResult::Changed(format!(
                        "external cache committed to the kernel in {:.1} s",
                        t0.elapsed().as_secs_f64()
                    ))
                }
                Err(e) if attempt < retries && stop_fn().is_none() => {
                    attempt += 1;
                    let pause = crate::engine::retry_pause(attempt);
                    warn!("conntrackd commit: {e:#}; retry {attempt}/{retries} in {pause:?}");
                    thread::sleep(pause);
                }
                Err(e) => break StepResult::Failed(format!("{e:#}")),
            }
        }
    }))
}

/// The provider claim: the floating IP claimed through the fip-claim library, on a thread
/// of its own, so the local steps after it (SNAT, conntrackd) do not wait for a network API
/// and the API does not wait for them: in a routed cloud the claim is what brings the
/// return traffic. Retried with backoff until it succeeds, `fip_retry_for` runs out, or a
/// newer state supersedes this one; a refusal (the IP belongs to a node outside the pair)
/// is not retried. Joined before units and user commands run (the loop joins it).
fn start_claim(s: &Settings, inst: &Instance) -> anyhow::Result<Background> {
    let mut cfg = s
        .fip
        .clone()
        .context("fip_claim is set but the config file has no [fip] table with a provider")?;
    cfg.ip = inst.fip_ip.or(cfg.ip);
    let limit = inst
        .fip_retry_for
        .map_or(Duration::from_secs(300), |d| d.get());
    let name = inst.name.clone();
    let runtime = s.runtime.clone();
    Background::spawn("fip-claim", move |stopped| {
        claim_loop(&cfg, &name, limit, stopped, &runtime)
    })
}

/// How fresh the peer's roles must be to hold a claim (the monitors write them at least
/// every 100 ms while they hear each other).
const PEER_FRESH: Duration = Duration::from_millis(300);
/// How long a claim waits for a peer that still says MASTER before it gives up: the peer's
/// own hook records its leaving MASTER within milliseconds, so a peer MASTER for this long
/// is MASTER (a cut VRRP path), not slow.
const PEER_HOLD: Duration = Duration::from_millis(500);

fn claim_loop(
    cfg: &hakit_fip::config::Fip,
    name: &str,
    limit: Duration,
    stop: &AtomicBool,
    runtime: &crate::runtime::Runtime,
) -> StepResult {
    let start = Instant::now();
    let mut pause = Duration::from_millis(200);
    // A second path between the nodes: while the peer's monitor says, on the sync link,
    // that the peer's keepalived is MASTER, this node became MASTER because the VRRP path
    // is cut, not because the peer died. Both claiming would make them fight over the
    // address by API; the claim is held, and the node reports the split (status, the
    // HakitBothNodesMaster alert).
    let mut held: Option<Instant> = None;
    while let Some(why) = runtime.peer_is_master(name, PEER_FRESH) {
        let since = *held.get_or_insert_with(|| {
            warn!("{name}: not claiming the provider IP yet: {why}");
            Instant::now()
        });
        if since.elapsed() >= PEER_HOLD {
            return StepResult::Failed(format!(
                "held, not claimed: {why} (split: both nodes MASTER)"
            ));
        }
        if stop.load(Ordering::Relaxed) {
            return StepResult::Skipped("superseded while the claim was held".into());
        }
        thread::sleep(Duration::from_millis(20));
    }
    if held.is_some() {
        info!("{name}: the peer is no longer MASTER: claiming the provider IP");
    }
    // Resolved once (TLS agent, token; this node's identity after the first try), not on
    // every retry. A configuration that cannot make a session (no token) cannot be retried
    // into one.
    let mut session = match hakit_fip::Session::new(cfg, None) {
        Ok(s) => s,
        Err(e) => return StepResult::Failed(format!("{e:#}")),
    };
    loop {
        match session.run(hakit_fip::model::Mode::Claim, false, false) {
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

/// A step running on its own thread (the provider claim, conntrackd's commit): where its
/// result arrives, and the flag that tells it to stop retrying.
struct Background {
    what: &'static str,
    rx: Receiver<StepResult>,
    stop: Arc<AtomicBool>,
}

impl Background {
    /// Runs `f` on a thread named `what`; `f` watches the flag to stop early.
    fn spawn(
        what: &'static str,
        f: impl FnOnce(&AtomicBool) -> StepResult + Send + 'static,
    ) -> anyhow::Result<Background> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .name(what.into())
            .spawn(move || {
                let _ = tx.send(f(&stopped));
            })
            .with_context(|| format!("start the {what} thread"))?;
        Ok(Background { what, rx, stop })
    }
}

impl Pending for Background {
    fn wait(&mut self, wait: Duration) -> Option<StepResult> {
        match self.rx.recv_timeout(wait) {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(StepResult::Failed(format!(
                "the {} thread panicked",
                self.what
            ))),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
