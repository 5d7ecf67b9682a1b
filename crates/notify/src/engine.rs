//! One transition of one instance: the ordered, idempotent steps.
//!
//! This file is the loop (order, retries, supersession, background steps, the record);
//! what each step does is behind [`Host`] ([`crate::effects::Stepper`]: the step resolved
//! by [`crate::action`], then applied, for real by [`crate::steps`]), what runs in which
//! order is [`crate::plan`]. The loop's behaviours are unit-tested
//! against a recording host below, without root.
//!
//! Order on MASTER (each step optional by configuration):
//! 1. conntrackd commit (`-c`) of the external cache, if there is one, started on its own
//!    thread: conntrackd answers when the commit is done (19 s for a million flows), and
//!    nothing of the data plane waits for it;
//! 2. floating IPs onto the WAN interface (netlink);
//! 3. GARP/NA: the first round synchronously, the rest on a thread so later steps do not
//!    wait for the interval;
//! 4. the provider claim through the fip-claim library (`fip_claim = true`), started on its
//!    own thread and retried until done or superseded: in a routed cloud it is what brings
//!    the return traffic, so it must not wait behind the local steps, nor they behind it;
//! 5. the SNAT rule (nft);
//! 6. the `[bgp]` speaker's announcement set to primary, in place (`announce = true`: where
//!    the provider routes by BGP, as Linode does, this is what moves the traffic; after the
//!    SNAT rule, so the traffic it attracts finds it; existing flows find their entries as
//!    a commit proceeds, as they do when keepalived moves the VIP);
//! 7. conntrackd flush/resync/bulk (after the commit has ended: `-f`, `-R`, `-B`);
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
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use crate::config::Instance;
use hakit_core::debug;
use log::{error, info, warn};

use crate::{
    event::State,
    plan::{plan, Step},
    report::{Ended, Report, StepReport, StepResult},
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
    pub fip: Option<hakit_fip::config::Fip>,
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

/// Check run before each step: `Some(reason)` stops the transition as superseded.
pub type Supersede<'a> = &'a dyn Fn() -> Option<String>;

/// What the loop tells a step about the transition it belongs to.
pub struct Turn<'a> {
    pub inst: &'a Instance,
    /// The state this transition runs (on STOP nothing is started: keepalived, and often
    /// the node, is going down).
    pub state: State,
    /// The previous transition converged to this same state: steps whose effect cannot be
    /// observed (conntrackd, units, commands) are not repeated.
    pub same: bool,
    pub prev: &'a Recorded,
    /// The record being written (a step notes the conntrackd role it commanded).
    pub rec: &'a mut Recorded,
    /// A re-assertion (MASTER_RX_LOWER_PRI): announce again even when nothing changed.
    pub force_garp: bool,
    pub superseded: Supersede<'a>,
}

/// Every effect of a transition on the node and beyond: the one seam between the loop
/// and the world. [`crate::effects::Stepper`] resolves each step and applies its action
/// (for real: [`crate::steps::Real`]); the tests' host below records and fails on demand.
pub trait Host {
    /// Runs `step` once: done in line, or started in the background (the provider claim:
    /// a network API must not hold up the local data plane, nor it the API; conntrackd's
    /// commit of a large cache). The loop retries a retriable failure.
    fn run(&mut self, step: Step, t: &mut Turn) -> anyhow::Result<Ran>;
    /// Waits for what the steps left running that has no result of its own (later GARP
    /// rounds), at the end of the transition.
    fn settle(&mut self, t: &Turn);
}

/// What running a step did: its result, or a handle to it running in the background.
pub enum Ran {
    Done(StepResult),
    Started(Box<dyn Pending>),
}

/// A step running in the background.
pub trait Pending {
    /// Its result, if it arrives within `wait`.
    fn wait(&mut self, wait: Duration) -> Option<StepResult>;
    /// Asks it to stop retrying (a newer state superseded this transition).
    fn stop(&mut self);
}

/// A background step started by the loop: when, and its handle.
struct Started {
    step: Step,
    at: Instant,
    pending: Box<dyn Pending>,
}

/// The transition loop, on any [`Host`].
pub fn run(
    host: &mut dyn Host,
    s: &Settings,
    inst: &Instance,
    state: State,
    gen: u64,
    superseded: Supersede,
) -> anyhow::Result<Report> {
    let start = Instant::now();
    let mut report = Report {
        instance: inst.name.clone(),
        state,
        generation: gen,
        outcome: Ended::Converged,
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
            report.outcome = Ended::Superseded;
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
        report.outcome = Ended::Superseded;
        report.reason = Some(why);
        return Ok(report);
    }
    let prev = s.runtime.recorded(&inst.name).unwrap_or_default();
    if state == State::MasterRxLowerPri {
        if let Some(why) = nothing_to_reassert(s, inst, &prev) {
            report.reason = Some(why.into());
            return Ok(report);
        }
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

    let mut turn = Turn {
        inst,
        state,
        same,
        prev: &prev,
        rec: &mut rec,
        force_garp: state == State::MasterRxLowerPri,
        superseded,
    };
    let failed = run_steps(host, s, &mut turn, &mut report);
    host.settle(&turn);
    report.already_converged = same
        && report.outcome == Ended::Converged
        && !failed
        && report
            .steps
            .iter()
            .all(|r| !matches!(r.result, StepResult::Changed(_)));
    if failed && report.outcome == Ended::Converged {
        report.outcome = Ended::Failed;
    }
    rec.converged = report.outcome == Ended::Converged;
    rec.superseded = report.outcome == Ended::Superseded;
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
    log_outcome(inst, target, &report);
    Ok(report)
}

/// Why a MASTER_RX_LOWER_PRI has nothing to re-assert, if so: the node is not MASTER
/// (recorded, or by the newest state keepalived asked for: a BACKUP hook that registered
/// but has not run yet makes this node BACKUP), or it re-asserted moments ago.
fn nothing_to_reassert(s: &Settings, inst: &Instance, prev: &Recorded) -> Option<&'static str> {
    // The intent log is read from disk only here, not on every hook.
    let asked = s
        .runtime
        .newer_intents(&inst.name, 0)
        .ok()
        .and_then(|i| {
            i.into_iter()
                .rev()
                .find(|i| i.state != State::MasterRxLowerPri)
        })
        .map(|i| i.state);
    if prev.state != Some(State::Master) || asked.is_some_and(|a| a != State::Master) {
        info!(
            "{}: MASTER_RX_LOWER_PRI while recorded as {}: nothing to re-assert",
            inst.name,
            asked.or(prev.state).map_or("nothing", State::as_str)
        );
        return Some("not MASTER");
    }
    if prev.converged
        && (0.0..REASSERT_EVERY.as_secs_f64()).contains(&(now_unix() - prev.reasserted_unix))
    {
        debug!(
            "{}: MASTER_RX_LOWER_PRI within {REASSERT_EVERY:?} of the last one: already re-asserted",
            inst.name
        );
        return Some("re-asserted moments ago");
    }
    None
}

/// Runs the plan's steps in order (retrying, starting the background ones, joining them
/// where a later step waits), then joins what is still running; returns whether a step
/// failed. Stops at the first check that finds the transition superseded.
fn run_steps(host: &mut dyn Host, s: &Settings, turn: &mut Turn, report: &mut Report) -> bool {
    let (inst, state, superseded) = (turn.inst, turn.state, turn.superseded);
    let gen = report.generation;
    let mut background: Vec<Started> = Vec::new();
    let mut failed = false;
    for step in plan(state, inst) {
        if let Some(why) = superseded() {
            info!(
                "{} {state} (generation {gen}) superseded before {}: {why}",
                inst.name,
                step.name()
            );
            report.outcome = Ended::Superseded;
            report.reason = Some(why);
            break;
        }
        // Units (lelastic announcing the route) and user commands come after the provider
        // has the address: they wait for the claim; conntrackd's flush and resync wait for
        // its commit (and only for that).
        let (now, later): (Vec<Started>, Vec<Started>) =
            background.drain(..).partition(|b| step.waits_for(b.step));
        background = later;
        failed |= join(now, turn, report);
        let t = Instant::now();
        let mut attempt = 0;
        let result = loop {
            match host.run(step, turn) {
                Ok(Ran::Done(r)) => break Some(r),
                Ok(Ran::Started(pending)) => {
                    background.push(Started {
                        step,
                        at: t,
                        pending,
                    });
                    break None;
                }
                Err(e) if step.retriable() && attempt < s.retries && superseded().is_none() => {
                    attempt += 1;
                    let pause = retry_pause(attempt);
                    warn!(
                        "{} {}: {e:#}; retry {attempt}/{} in {pause:?}",
                        inst.name,
                        step.name(),
                        s.retries
                    );
                    thread::sleep(pause);
                }
                Err(e) => break Some(StepResult::Failed(format!("{e:#}"))),
            }
        };
        let Some(result) = result else {
            // Its place in the report, filled in when it is joined.
            let running = StepResult::Planned("running".into());
            report.steps.push(StepReport::new(step, running, 0.0));
            continue;
        };
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        failed |= record_step(turn, report, step, result, ms);
    }
    failed |= join(background, turn, report);
    // A last step stopped because a newer state arrived is superseded, not failed.
    if failed && report.outcome == Ended::Converged {
        if let Some(why) = superseded() {
            report.outcome = Ended::Superseded;
            report.reason = Some(why);
        }
    }
    failed
}

fn log_outcome(inst: &Instance, target: State, report: &Report) {
    match report.outcome {
        Ended::Converged if report.already_converged => {
            info!(
                "{} already converged as {target}: nothing changed ({:.1} ms)",
                inst.name, report.ms
            )
        }
        Ended::Converged => info!("{} converged to {target} in {:.1} ms", inst.name, report.ms),
        Ended::Failed => error!(
            "{} did not converge to {target}: see the failed steps above",
            inst.name
        ),
        _ => {}
    }
}

/// Logs a step's result and records it in the state file and the report; returns whether
/// it failed.
fn record_step(t: &mut Turn, report: &mut Report, step: Step, result: StepResult, ms: f64) -> bool {
    let (name, state) = (&t.inst.name, t.state);
    let failed = matches!(result, StepResult::Failed(_));
    match &result {
        StepResult::Changed(d) => info!("{name} {state}: {}: {d}", step.name()),
        StepResult::Failed(d) => {
            error!("{name} {state}: {} failed: {d}", step.name());
            *t.rec
                .step_failures_total
                .entry(step.name().to_string())
                .or_default() += 1;
        }
        StepResult::Unchanged(d) | StepResult::Skipped(d) => {
            debug!("{name} {state}: {}: {d}", step.name())
        }
        StepResult::Planned(_) => {}
    }
    t.rec.steps.insert(
        step.name().to_string(),
        StepRecord {
            ok: !failed,
            detail: detail(&result),
            seconds: ms / 1000.0,
            skipped: matches!(result, StepResult::Skipped(_)),
        },
    );
    let entry = StepReport::new(step, result, ms);
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

/// The pause before retry `attempt` (1, 2, ...) of a failed step: 100 ms doubling, at most
/// 3.2 s.
pub(crate) fn retry_pause(attempt: u32) -> Duration {
    Duration::from_millis(50 << attempt.min(6))
}

/// Waits for the background steps started so far and records their results, telling them
/// to stop retrying as soon as a newer state supersedes this transition; returns whether
/// one failed. A result is taken the moment it arrives; the supersession check (a netlink
/// dump and a file read) runs only while one is still waiting, every 100 ms.
fn join(background: Vec<Started>, t: &mut Turn, report: &mut Report) -> bool {
    let mut failed = false;
    for mut b in background {
        let mut stopped = false;
        let result = loop {
            if let Some(r) = b.pending.wait(Duration::from_millis(100)) {
                break r;
            }
            if !stopped && (t.superseded)().is_some() {
                b.pending.stop();
                stopped = true;
            }
        };
        let ms = b.at.elapsed().as_secs_f64() * 1000.0;
        failed |= record_step(t, report, b.step, result, ms);
    }
    failed
}

#[cfg(test)]
mod tests {
    //! The loop against a recording host: order, retries, supersession, "already
    //! converged", the FAULT and STOP subsets, the claim in the background and joined
    //! before units. No root, no network, no child process.

    use std::{
        cell::{Cell, RefCell},
        collections::HashMap,
        rc::Rc,
    };

    use crate::config::StepName;

    use super::*;

    type Log = Rc<RefCell<Vec<String>>>;

    /// How the fake provider claim behaves.
    #[derive(Clone, Copy)]
    enum Claim {
        /// Answers after this many waits.
        After(u32),
        /// Never answers until told to stop; then says it was superseded.
        UntilStopped,
    }

    struct Fake {
        log: Log,
        /// Fail this step this many times (then succeed).
        fail: HashMap<Step, u32>,
        claim: Claim,
        /// conntrackd's commit runs in the background (an external cache to commit).
        commit_background: bool,
        /// `Turn::same` as each step saw it.
        same: Vec<bool>,
    }

    impl Fake {
        fn new(log: &Log) -> Fake {
            Fake {
                log: log.clone(),
                fail: HashMap::new(),
                claim: Claim::After(3),
                commit_background: false,
                same: Vec::new(),
            }
        }
    }

    impl Host for Fake {
        fn run(&mut self, step: Step, t: &mut Turn) -> anyhow::Result<Ran> {
            let background = match step {
                Step::Fip if t.inst.fip_claim == Some(true) => Some(("fip_claim", self.claim)),
                Step::ConntrackdCommit if self.commit_background => {
                    Some(("conntrackd_commit", Claim::After(1)))
                }
                _ => None,
            };
            if let Some((name, claim)) = background {
                self.log.borrow_mut().push(format!("start {name}"));
                return Ok(Ran::Started(Box::new(FakeClaim {
                    name,
                    log: self.log.clone(),
                    claim,
                    stopped: false,
                })));
            }
            self.log.borrow_mut().push(step.name().to_string());
            self.same.push(t.same);
            if let Some(n) = self.fail.get_mut(&step) {
                if *n > 0 {
                    *n -= 1;
                    anyhow::bail!("{} broke", step.name());
                }
            }
            Ok(Ran::Done(if t.same {
                StepResult::Unchanged("as before".into())
            } else {
                StepResult::Changed("done".into())
            }))
        }

        fn settle(&mut self, _: &Turn) {
            self.log.borrow_mut().push("settle".into());
        }
    }

    struct FakeClaim {
        name: &'static str,
        log: Log,
        claim: Claim,
        stopped: bool,
    }

    impl Pending for FakeClaim {
        fn wait(&mut self, _: Duration) -> Option<StepResult> {
            match &mut self.claim {
                Claim::After(0) => {
                    self.log
                        .borrow_mut()
                        .push(format!("{} answered", self.name));
                    Some(StepResult::Changed("claimed".into()))
                }
                Claim::After(n) => {
                    *n -= 1;
                    None
                }
                Claim::UntilStopped if self.stopped => {
                    Some(StepResult::Skipped("superseded while claiming".into()))
                }
                Claim::UntilStopped => None,
            }
        }

        fn stop(&mut self) {
            self.log.borrow_mut().push(format!("stop {}", self.name));
            self.stopped = true;
        }
    }

    /// Settings on a fresh runtime directory of this test's own, removed when dropped.
    struct Scratch(Settings, PathBuf);

    impl std::ops::Deref for Scratch {
        type Target = Settings;
        fn deref(&self) -> &Settings {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }

    fn settings(test: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("hakit-engine-test-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Settings {
            runtime: Runtime::open(&dir).unwrap(),
            lock_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
            retries: 2,
            nft: "nft".into(),
            conntrackd: "conntrackd".into(),
            systemctl: "systemctl".into(),
            textfile: None,
            keepalived_config: PathBuf::from("/nonexistent"),
            fip: None,
            bgp: None,
            pair: None,
            heartbeat: None,
            monitor_track_file: None,
        };
        Scratch(s, dir)
    }

    fn instance() -> Instance {
        Instance {
            name: "VI_1".into(),
            fip_claim: Some(true),
            ..Instance::default()
        }
    }

    fn never() -> Option<String> {
        None
    }

    fn names(r: &Report) -> Vec<&'static str> {
        r.steps.iter().map(|s| s.step.name()).collect()
    }

    fn logged(log: &Log) -> Vec<String> {
        log.borrow().clone()
    }

    #[test]
    fn master_runs_in_order_with_the_claim_in_the_background_joined_before_units() {
        let (s, inst, log) = (settings("order"), instance(), Log::default());
        let r = run(&mut Fake::new(&log), &s, &inst, State::Master, 1, &never).unwrap();
        assert_eq!(
            logged(&log),
            [
                "conntrackd_commit",
                "address_add",
                "garp",
                "start fip_claim",
                // The local data plane does not wait for the provider's API ...
                "snat_ensure",
                "bgp_announce",
                "conntrackd_primary",
                // ... units and commands do.
                "fip_claim answered",
                "units_up",
                "commands_up",
                "settle",
            ]
        );
        // The claim keeps its place in the report.
        assert_eq!(
            names(&r),
            plan(State::Master, &inst)
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
        );
        assert!(matches!(r.steps[3].result, StepResult::Changed(ref d) if d == "claimed"));
        assert_eq!(r.outcome, Ended::Converged);
        assert!(!r.already_converged);
        let rec = s.runtime.recorded("VI_1").unwrap();
        assert!(rec.converged && !rec.superseded);
        assert_eq!(rec.state, Some(State::Master));
        assert_eq!(rec.transitions_total.get("MASTER"), Some(&1));
        assert_eq!(rec.steps.len(), 9);
    }

    /// With an external cache, `conntrackd -c` answers only when the commit is done (19 s
    /// for a million flows): it runs in the background, nothing of the data plane waits
    /// for it, and the flush and resync wait for it alone, not for the provider (#35).
    #[test]
    fn the_commit_runs_beside_the_data_plane_and_the_flush_waits_for_it_alone() {
        let (s, inst, log) = (settings("commit"), instance(), Log::default());
        let mut fake = Fake::new(&log);
        fake.commit_background = true;
        let r = run(&mut fake, &s, &inst, State::Master, 1, &never).unwrap();
        assert_eq!(
            logged(&log),
            [
                "start conntrackd_commit",
                "address_add",
                "garp",
                "start fip_claim",
                "snat_ensure",
                "bgp_announce",
                "conntrackd_commit answered",
                "conntrackd_primary",
                "fip_claim answered",
                "units_up",
                "commands_up",
                "settle",
            ]
        );
        assert_eq!(r.steps[0].step, Step::ConntrackdCommit);
        assert!(matches!(r.steps[0].result, StepResult::Changed(_)));
        assert_eq!(r.outcome, Ended::Converged);
    }

    #[test]
    fn a_second_master_changes_nothing_and_says_so() {
        let (s, inst, log) = (settings("again"), instance(), Log::default());
        let mut fake = Fake::new(&log);
        run(&mut fake, &s, &inst, State::Master, 1, &never).unwrap();
        assert!(fake.same.iter().all(|s| !s));
        fake.same.clear();
        let r = run(&mut fake, &s, &inst, State::Master, 2, &never).unwrap();
        assert!(
            fake.same.iter().all(|s| *s),
            "the steps are told it is the same state"
        );
        // The fake claim says "claimed" (Changed) each time: not converged-as-before.
        assert!(!r.already_converged);
        fake.claim = Claim::After(0);
        let mut inst = inst;
        inst.fip_claim = None;
        let r = run(&mut fake, &s, &inst, State::Master, 3, &never).unwrap();
        assert!(r.already_converged);
        assert_eq!(r.outcome, Ended::Converged);
        let rec = s.runtime.recorded("VI_1").unwrap();
        assert_eq!(rec.generation, 3);
        assert_eq!(
            rec.transitions_total.get("MASTER"),
            Some(&2),
            "a transition that changed nothing is not counted"
        );
    }

    #[test]
    fn a_retriable_failure_is_retried_and_a_lasting_one_does_not_stop_the_rest() {
        let (s, inst, log) = (settings("retry"), instance(), Log::default());
        let mut fake = Fake::new(&log);
        fake.fail.insert(Step::SnatEnsure, 1);
        let r = run(&mut fake, &s, &inst, State::Master, 1, &never).unwrap();
        assert_eq!(
            logged(&log).iter().filter(|l| *l == "snat_ensure").count(),
            2
        );
        assert_eq!(r.outcome, Ended::Converged);

        let (s, log) = (settings("retry-fails"), Log::default());
        let mut fake = Fake::new(&log);
        fake.fail.insert(Step::SnatEnsure, 99);
        let r = run(&mut fake, &s, &inst, State::Master, 1, &never).unwrap();
        let log = logged(&log);
        assert_eq!(
            log.iter().filter(|l| *l == "snat_ensure").count(),
            3,
            "{log:?}"
        );
        assert!(
            log.contains(&"commands_up".to_string()),
            "later steps still ran"
        );
        assert_eq!(r.outcome, Ended::Failed);
        let failed = r.steps.iter().find(|x| x.step == Step::SnatEnsure).unwrap();
        assert!(matches!(&failed.result, StepResult::Failed(d) if d == "snat_ensure broke"));
        let rec = s.runtime.recorded("VI_1").unwrap();
        assert!(!rec.converged);
        assert!(!rec.steps["snat_ensure"].ok);
        assert_eq!(rec.step_failures_total.get("snat_ensure"), Some(&1));
    }

    #[test]
    fn user_commands_are_not_retried() {
        let (s, inst, log) = (settings("commands"), instance(), Log::default());
        let mut fake = Fake::new(&log);
        fake.fail.insert(Step::CommandsUp, 1);
        let r = run(&mut fake, &s, &inst, State::Master, 1, &never).unwrap();
        assert_eq!(
            logged(&log).iter().filter(|l| *l == "commands_up").count(),
            1
        );
        assert_eq!(r.outcome, Ended::Failed);
    }

    #[test]
    fn a_newer_state_stops_the_transition_before_its_next_step() {
        let (s, mut inst, log) = (settings("supersede"), instance(), Log::default());
        inst.fip_claim = None;
        let l = log.clone();
        let newer = move || {
            l.borrow()
                .iter()
                .any(|x| x == "address_add")
                .then(|| "a newer BACKUP".to_string())
        };
        let r = run(&mut Fake::new(&log), &s, &inst, State::Master, 1, &newer).unwrap();
        assert_eq!(logged(&log), ["conntrackd_commit", "address_add", "settle"]);
        assert_eq!(r.outcome, Ended::Superseded);
        assert_eq!(r.reason.as_deref(), Some("a newer BACKUP"));
        let rec = s.runtime.recorded("VI_1").unwrap();
        assert!(rec.superseded && !rec.converged);
    }

    #[test]
    fn a_claim_still_running_is_told_to_stop_when_superseded() {
        let (s, inst, log) = (settings("claim-stop"), instance(), Log::default());
        let mut fake = Fake::new(&log);
        fake.claim = Claim::UntilStopped;
        let l = log.clone();
        let newer = move || {
            l.borrow()
                .iter()
                .any(|x| x == "conntrackd_primary")
                .then(|| "a newer BACKUP".to_string())
        };
        let r = run(&mut fake, &s, &inst, State::Master, 1, &newer).unwrap();
        let log = logged(&log);
        assert_eq!(
            &log[log.len() - 2..],
            ["stop fip_claim", "settle"],
            "{log:?}"
        );
        assert!(!log.contains(&"units_up".to_string()));
        assert_eq!(r.outcome, Ended::Superseded);
        let claim = r.steps.iter().find(|x| x.step == Step::Fip).unwrap();
        assert!(matches!(claim.result, StepResult::Skipped(_)));
    }

    #[test]
    fn backup_demotes_the_announcement_first() {
        let (s, inst, log) = (settings("backup"), instance(), Log::default());
        run(&mut Fake::new(&log), &s, &inst, State::Backup, 1, &never).unwrap();
        assert_eq!(
            logged(&log),
            [
                "bgp_announce",
                "commands_down",
                "units_down",
                "address_remove",
                "snat_remove",
                "conntrackd_backup",
                "settle"
            ]
        );
    }

    #[test]
    fn fault_and_stop_run_only_their_configured_subsets() {
        let (s, mut inst, log) = (settings("subsets"), instance(), Log::default());
        inst.fault_steps = Some(vec![StepName::Address]);
        inst.stop_steps = Some(vec![StepName::Snat, StepName::Conntrackd]);
        let mut fake = Fake::new(&log);
        run(&mut fake, &s, &inst, State::Fault, 1, &never).unwrap();
        assert_eq!(logged(&log), ["address_remove", "settle"]);
        log.borrow_mut().clear();
        run(&mut fake, &s, &inst, State::Stop, 2, &never).unwrap();
        assert_eq!(logged(&log), ["snat_remove", "conntrackd_backup", "settle"]);
        // Unset: the whole down sequence, conntrackd to fault (-t) on FAULT.
        inst.fault_steps = None;
        assert_eq!(
            plan(State::Fault, &inst).last(),
            Some(&Step::ConntrackdFault)
        );
        assert_eq!(plan(State::Fault, &inst).len(), 6);
    }

    #[test]
    fn a_reassertion_runs_only_on_a_master_and_at_most_once_a_second() {
        let (s, inst, log) = (settings("reassert"), instance(), Log::default());
        let mut fake = Fake::new(&log);
        run(&mut fake, &s, &inst, State::Backup, 1, &never).unwrap();
        log.borrow_mut().clear();
        let r = run(&mut fake, &s, &inst, State::MasterRxLowerPri, 2, &never).unwrap();
        assert!(logged(&log).is_empty(), "nothing re-asserted on a BACKUP");
        assert_eq!(r.reason.as_deref(), Some("not MASTER"));

        run(&mut fake, &s, &inst, State::Master, 3, &never).unwrap();
        log.borrow_mut().clear();
        let r = run(&mut fake, &s, &inst, State::MasterRxLowerPri, 4, &never).unwrap();
        assert_eq!(names(&r), ["garp", "fip_claim", "bgp_announce"]);
        assert!(fake.same.last() == Some(&true));
        let again = run(&mut fake, &s, &inst, State::MasterRxLowerPri, 5, &never).unwrap();
        assert_eq!(again.reason.as_deref(), Some("re-asserted moments ago"));
        assert!(again.steps.is_empty());
        let rec = s.runtime.recorded("VI_1").unwrap();
        assert_eq!(rec.state, Some(State::Master));
        assert_eq!(rec.transitions_total.get("MASTER"), Some(&1));
    }

    #[test]
    fn an_older_transition_waiting_for_the_lock_gives_way() {
        let (s, inst, log) = (settings("lock"), instance(), Log::default());
        let held = s
            .runtime
            .lock("VI_1", Duration::from_secs(1), &never)
            .unwrap();
        assert!(matches!(held, Ok(Some(_))));
        let asked = Cell::new(0);
        let newer = || {
            asked.set(asked.get() + 1);
            (asked.get() > 2).then(|| "generation 9 is newer".to_string())
        };
        let r = run(&mut Fake::new(&log), &s, &inst, State::Master, 1, &newer).unwrap();
        assert_eq!(r.outcome, Ended::Superseded);
        assert_eq!(r.reason.as_deref(), Some("generation 9 is newer"));
        assert!(logged(&log).is_empty(), "no step ran");
        drop(held);
    }
}
