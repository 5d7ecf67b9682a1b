//! The real effects: what each action does to the node and beyond (netlink, packet sockets,
//! nft, conntrackd, systemctl, the provider through the fip-claim library, the BGP speaker).
//! What a step decides is [`crate::action`]; every action checks before it changes and
//! says which it did.

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

use anyhow::{bail, Context};
use hakit_core::config::Cidr;
use hakit_core::debug;
use hakit_core::exec;
use hakit_net::{garp, nft::Snat, Change, Link, Netlink};
use log::{error, info, warn};

use crate::{
    action::{Action, Role, Tables},
    config::Instance,
    conntrackd::{Conntrackd, Starter},
    effects::{Effects, Stepper},
    engine::{Pending, Ran, Settings, Supersede, Turn},
    event::State,
    report::StepResult,
};

/// The real effects: netlink, packet sockets, nft, conntrackd, systemctl, the provider and
/// the BGP speaker. One per transition (it keeps what the address action did for GARP).
pub struct Real<'a> {
    s: &'a Settings,
    nl: &'a Netlink,
    added: Vec<IpAddr>,
    /// The interface this transition's address action put (or found) every floating IP on:
    /// GARP neither looks the link up again nor dumps the addresses to check them.
    addresses_on: Option<Link>,
    garp_rest: Option<JoinHandle<anyhow::Result<garp::Report>>>,
}

impl<'a> Real<'a> {
    pub fn new(s: &'a Settings, nl: &'a Netlink) -> Real<'a> {
        Real {
            s,
            nl,
            added: Vec::new(),
            addresses_on: None,
            garp_rest: None,
        }
    }
}

impl Effects for Real<'_> {
    fn apply(&mut self, action: &Action, t: &mut Turn) -> anyhow::Result<Ran> {
        let s = self.s;
        let done = match action {
            Action::ConntrackdCommit { config, expect } => {
                return Ok(Ran::Started(Box::new(start_commit(
                    s,
                    config.clone(),
                    *expect,
                )?)))
            }
            Action::Claim { ip, retry_for } => {
                let claim = start_claim(s, t.inst, *ip, *retry_for)?;
                return Ok(Ran::Started(Box::new(claim)));
            }
            Action::Conntrackd { config, role, .. } => conntrackd_role(s, t, config, *role)?,
            Action::Addresses { dev, add, cidrs } => self.addresses(dev, *add, cidrs)?,
            Action::Garp {
                dev,
                ips,
                rounds,
                interval,
            } => self.garp(dev, ips, *rounds, *interval)?,
            Action::Snat {
                ensure,
                table,
                source,
                to,
                oifname,
                egress,
            } => {
                // The route first on the way up and last on the way down: the SNAT rule
                // never translates traffic that the wrong gateway would carry.
                let routed = match egress {
                    Some(e) if *ensure => Some(self.egress(*source, oifname, *e, true)?),
                    _ => None,
                };
                let n = Snat {
                    nft: s.nft.clone(),
                    table: table.clone(),
                    instance: t.inst.name.clone(),
                    source: *source,
                    to: *to,
                    oifname: oifname.clone(),
                    timeout: s.command_timeout,
                    stop: t.superseded,
                };
                let rule = format!("SNAT {source} -> {to}");
                let nat = if *ensure {
                    if n.ensure()? {
                        StepResult::Changed(format!("{rule} on {oifname} added"))
                    } else {
                        StepResult::Unchanged(format!("{rule} present"))
                    }
                } else if n.remove()? {
                    StepResult::Changed(format!("{rule} removed"))
                } else {
                    StepResult::Unchanged("no hakit SNAT rule present".into())
                };
                let routed = match egress {
                    Some(e) if !*ensure => Some(self.egress(*source, oifname, *e, false)?),
                    _ => routed,
                };
                match routed {
                    Some(r) => both(nat, r),
                    None => nat,
                }
            }
            Action::Announce { target, .. } => announce(s, t, *target)?,
            Action::Units { verb, units } => systemctl(s, t, verb, units)?,
            Action::Commands {
                argv,
                stop_at_first,
            } => commands(s, t, argv, *stop_at_first)?,
        };
        Ok(Ran::Done(done))
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

    fn added(&self) -> bool {
        !self.added.is_empty()
    }
}

impl Real<'_> {
    /// The egress gateway's policy routing, ensured or removed: (changed, what).
    fn egress(
        &self,
        source: Cidr,
        dev: &str,
        e: crate::action::Egress,
        ensure: bool,
    ) -> anyhow::Result<(bool, String)> {
        let link = self
            .nl
            .link_by_name(dev)?
            .with_context(|| format!("no interface {dev} for the egress route"))?;
        let egress = hakit_net::egress::Egress {
            source,
            gateway: e.gateway,
            oif: link.index,
            table: e.table,
        };
        let what = format!("egress from {source} via {} (table {})", e.gateway, e.table);
        Ok(if ensure {
            match self.nl.ensure_egress(&egress)? {
                Change::Applied => (true, format!("{what} added")),
                Change::AlreadyThere => (false, format!("{what} present")),
            }
        } else {
            match self.nl.remove_egress(&egress)? {
                Change::Applied => (true, format!("{what} removed")),
                Change::AlreadyThere => (false, "no egress route present".into()),
            }
        })
    }

    fn addresses(&mut self, dev: &str, add: bool, cidrs: &[Cidr]) -> anyhow::Result<StepResult> {
        let link = self
            .nl
            .link_by_name(dev)?
            .with_context(|| format!("interface {dev} does not exist"))?;
        let index = link.index;
        let (mut changed, mut same) = (Vec::new(), Vec::new());
        for c in cidrs {
            let r = if add {
                self.nl.add_address(index, c.addr, c.prefix)?
            } else {
                self.nl.del_address(index, c.addr, c.prefix)?
            };
            match r {
                Change::Applied => changed.push(c.to_string()),
                Change::AlreadyThere => same.push(c.to_string()),
            }
            if r == Change::Applied && add {
                self.added.push(c.addr);
            }
        }
        self.addresses_on = add.then_some(link);
        let (done, prep, already) = if add {
            ("added", "to", "on")
        } else {
            ("removed", "from", "absent from")
        };
        Ok(if changed.is_empty() {
            StepResult::Unchanged(format!("{} already {already} {dev}", same.join(", ")))
        } else {
            StepResult::Changed(format!("{done} {} {prep} {dev}", changed.join(", ")))
        })
    }

    fn garp(
        &mut self,
        dev: &str,
        ips: &[IpAddr],
        rounds: u32,
        interval: Duration,
    ) -> anyhow::Result<StepResult> {
        let on = self.addresses_on.as_ref().filter(|l| l.name == dev);
        let plan = garp::Plan {
            interface: dev.to_string(),
            ips: ips.to_vec(),
            count: 1,
            interval,
            reply: false,
            force: on.is_some(),
            router: None,
        };
        let burst = match on {
            Some(link) => garp::resolve_on(self.nl, &plan, link)?,
            None => garp::resolve(self.nl, &plan)?,
        };
        let first = burst.send()?;
        if rounds > 1 {
            let mut rest = burst.clone();
            rest.count = rounds - 1;
            self.garp_rest = Some(thread::spawn(move || {
                thread::sleep(interval);
                rest.send()
            }));
        }
        Ok(StepResult::Changed(format!(
            "announced on {dev}: first round of {} frame(s) after {:.3} ms, {} more round(s) every {interval:?}",
            first.frames_sent,
            first.first_frame_after.as_secs_f64() * 1000.0,
            rounds - 1
        )))
    }
}

/// Runs the transition of `inst` to `state` (generation `gen`) on this node: the engine's
/// loop over the real effects.
/// The SNAT rule's result with the egress route's: changed when either changed.
fn both(nat: StepResult, (changed, what): (bool, String)) -> StepResult {
    match nat {
        StepResult::Changed(n) => StepResult::Changed(format!("{n}; {what}")),
        StepResult::Unchanged(n) if changed => StepResult::Changed(format!("{n}; {what}")),
        StepResult::Unchanged(n) => StepResult::Unchanged(format!("{n}; {what}")),
        other => other,
    }
}

pub fn transition(
    s: &Settings,
    all: &[Instance],
    inst: &Instance,
    state: State,
    gen: u64,
    nl: &Netlink,
    superseded: Supersede,
) -> anyhow::Result<crate::report::Report> {
    let tables = Tables {
        fip: s.fip.as_ref(),
        bgp: s.bgp.as_ref(),
        siblings: s.runtime.siblings(all, inst),
    };
    let mut host = Stepper::new(Real::new(s, nl), tables);
    crate::engine::run(&mut host, s, inst, state, gen, superseded)
}

/// Commands conntrackd's role and notes it in the record.
fn conntrackd_role(
    s: &Settings,
    t: &mut Turn,
    config: &std::path::Path,
    role: Role,
) -> anyhow::Result<StepResult> {
    let c = conntrackd(s, config, t.superseded);
    let name = match role {
        Role::Primary { flush_external } => {
            c.primary(flush_external)?;
            "primary"
        }
        Role::Fault { purge } => {
            c.fault(purge)?;
            "fault"
        }
        Role::Backup { start, purge } => {
            let starter = if start {
                Starter::for_this_node(&s.systemctl)
            } else {
                Starter::Never
            };
            if !c.backup(&starter, purge)? {
                return Ok(StepResult::Unchanged(
                    "conntrackd is not running; not started on STOP".into(),
                ));
            }
            "backup"
        }
    };
    t.rec.conntrackd = Some(name.to_string());
    Ok(StepResult::Changed(format!("conntrackd now {name}")))
}

fn conntrackd<'c>(s: &Settings, config: &std::path::Path, stop: Supersede<'c>) -> Conntrackd<'c> {
    Conntrackd {
        prog: s.conntrackd.clone(),
        config: config.to_path_buf(),
        timeout: s.command_timeout,
        stop,
    }
}

fn systemctl(s: &Settings, t: &Turn, verb: &str, units: &[String]) -> anyhow::Result<StepResult> {
    let mut errors = Vec::new();
    for unit in units {
        if let Some(why) = (t.superseded)() {
            bail!("superseded before {verb} {unit}: {why}");
        }
        if let Err(e) = exec::run_ok_until(
            &exec::argv(&[&s.systemctl, verb, unit]),
            None,
            s.command_timeout,
            exec::OUTPUT_CAP,
            t.superseded,
        ) {
            errors.push(format!("{e:#}"));
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(StepResult::Changed(format!("{verb} {}", units.join(" "))))
}

fn commands(
    s: &Settings,
    t: &Turn,
    cmds: &[Vec<String>],
    stop_at_first: bool,
) -> anyhow::Result<StepResult> {
    let mut errors = Vec::new();
    for (n, argv) in cmds.iter().enumerate() {
        if let Some(why) = (t.superseded)() {
            bail!(
                "superseded before command {} of {}: {why}",
                n + 1,
                cmds.len()
            );
        }
        if let Err(e) = exec::run_ok_until(
            argv,
            None,
            s.command_timeout,
            exec::OUTPUT_CAP,
            t.superseded,
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

/// How long a speaker started by the announcement step gets to come up and announce what
/// it was started with, before the step sets the role over it.
const SPEAKER_START: Duration = Duration::from_secs(10);

/// The announcement step: the `[bgp]` speaker's role for this state, in place (read, write
/// what differs, read back; never a restart). A speaker that does not answer is said to be
/// down loudly and started (never on STOP) through its unit; the step then fails until the
/// speaker has a session to announce on.
fn announce(s: &Settings, t: &Turn, target: hakit_bgp::Target) -> anyhow::Result<StepResult> {
    let b = &s
        .bgp
        .as_ref()
        .context("announce is set but the config file has no [bgp] table")?
        .only(&t.inst.announce_prefixes);
    let prefixes = b.prefixes_text();
    let err = match b.ensure(target, t.superseded) {
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
    let Some(unit) = b.unit.as_deref().filter(|_| t.state != State::Stop) else {
        return Err(err);
    };
    let active = hakit_net::systemd::unit_state(&s.systemctl, unit, s.command_timeout)
        .is_ok_and(|u| u.active);
    if active {
        return Err(err);
    }
    error!(
        "{}: the bgp speaker is not running ({unit} inactive; {err:#}): starting it",
        t.inst.name
    );
    exec::run_ok_until(
        &exec::argv(&[&s.systemctl, "start", unit]),
        None,
        s.command_timeout,
        exec::OUTPUT_CAP,
        t.superseded,
    )?;
    // lelastic adds its paths (with the role it was started with) once its API is up:
    // setting the role before that would be overwritten.
    let first = b.prefixes[0];
    let until = Instant::now() + SPEAKER_START;
    while !matches!(b.read(&first, t.superseded), Ok(hakit_bgp::Seen::Path(_)))
        && Instant::now() < until
    {
        if let Some(why) = (t.superseded)() {
            bail!("superseded while {unit} started: {why}");
        }
        thread::sleep(Duration::from_millis(100));
    }
    b.ensure(target, t.superseded)
        .with_context(|| format!("{unit} was started but"))?;
    let up = b
        .sessions(t.superseded)
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
fn start_commit(s: &Settings, config: PathBuf, expect: bool) -> anyhow::Result<Background> {
    let (prog, t0) = (s.conntrackd.clone(), Instant::now());
    Background::retried("conntrackd-commit", s.retries, move |stop| {
        Conntrackd {
            prog: prog.clone(),
            config: config.clone(),
            timeout: COMMIT_CLIENT,
            stop,
        }
        .commit(expect)?;
        Ok(StepResult::Changed(format!(
            "external cache committed to the kernel in {:.1} s",
            t0.elapsed().as_secs_f64()
        )))
    })
}

/// The provider claim: the floating IP claimed through the fip-claim library, on a thread
/// of its own, so the local steps after it (SNAT, conntrackd) do not wait for a network API
/// and the API does not wait for them: in a routed cloud the claim is what brings the
/// return traffic. Retried with backoff until it succeeds, `fip_retry_for` runs out, or a
/// newer state supersedes this one; a refusal (the IP belongs to a node outside the pair)
/// is not retried. Joined before units and user commands run (the loop joins it).
fn start_claim(
    s: &Settings,
    inst: &Instance,
    ip: Option<IpAddr>,
    limit: Duration,
) -> anyhow::Result<Background> {
    let mut cfg = s
        .fip
        .clone()
        .context("fip_claim is set but the config file has no [fip] table with a provider")?;
    cfg.ip = ip;
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

impl Background {
    /// [`Background::spawn`], retried as the loop retries a step in line (`retries`, the
    /// same pauses) until `f` succeeds, fails for the last time or is told to stop.
    fn retried(
        what: &'static str,
        retries: u32,
        mut f: impl FnMut(exec::Stop) -> anyhow::Result<StepResult> + Send + 'static,
    ) -> anyhow::Result<Background> {
        Background::spawn(what, move |stopped| {
            let stop_fn = || {
                stopped
                    .load(Ordering::Relaxed)
                    .then(|| "superseded".to_string())
            };
            let mut attempt = 0;
            loop {
                match f(&stop_fn) {
                    Ok(r) => break r,
                    Err(e) if attempt < retries && stop_fn().is_none() => {
                        attempt += 1;
                        let pause = crate::engine::retry_pause(attempt);
                        warn!("{what}: {e:#}; retry {attempt}/{retries} in {pause:?}");
                        thread::sleep(pause);
                    }
                    Err(e) => break StepResult::Failed(format!("{e:#}")),
                }
            }
        })
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
