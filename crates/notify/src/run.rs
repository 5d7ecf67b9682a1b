//! nat-notify's run: the configuration layers resolved (file, environment, flags) and
//! validated (exit 2, one line, nothing changed), then the mode the command line asks
//! for, handed to [`crate::app`] (one state, the FIFO reader), [`crate::status`] or
//! [`crate::effects::dry_run`].

use std::{path::PathBuf, time::Duration};

use hakit_cli::nat_notify::{Cli, Cmd, Generic, UnknownInstance, IDENT};
use hakit_core::{config::pick, runtime::DEFAULT_DIR, usage_error, Exit, HDuration};

use crate::{
    app,
    config::{self, Instance, NotifyFile},
    engine::Settings,
    event::{self, State},
    runtime::Runtime,
    status, validate,
};

/// Runs what the command line asks: a state from keepalived (hook, generic or FIFO form),
/// `status`, or a dry run.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    let file: NotifyFile<hakit_bgp::Config> = cli.common.init(IDENT)?;
    let (g, n, fip) = (file.general, file.notify, file.fip);
    let monitor_track_file = file.check.track_file;
    let bgp = (file.bgp != hakit_bgp::Config::default())
        .then(|| hakit_bgp::Speaker::new(&file.bgp).map_err(usage_error))
        .transpose()?;
    let secs = |d: Option<HDuration>, f: Option<HDuration>, default: u64| {
        pick(d, f, HDuration(Duration::from_secs(default))).get()
    };
    let policy = pick(
        cli.settings.unknown_instance,
        n.unknown_instance,
        UnknownInstance::Ignore,
    );
    let explicit = cli.instance.instance.clone();
    // The event first: a malformed one is the more precise error.
    let event = match &cli.cmd {
        Cmd::Instance(a) => Some(generic("INSTANCE", a)?),
        Cmd::Group(a) => Some(generic("GROUP", a)?),
        _ => None,
    };
    let instances = config::apply(cli.instance, n.instances);
    if instances.is_empty() {
        return Err(usage_error("no instance configured: add [[notify.instance]] to the config file, or give --instance and --interface/--floating-ip"));
    }
    let retries = pick(cli.settings.retries, n.retries, 2);
    if retries > validate::MAX_RETRIES {
        let most = validate::MAX_RETRIES;
        return Err(usage_error(format!("retries is at most {most}")));
    }
    for i in &instances {
        validate::instance(i).map_err(usage_error)?;
        with_tables(i, fip.provider.is_some(), bgp.as_ref()).map_err(usage_error)?;
    }
    announced_once(&instances).map_err(usage_error)?;
    // The runtime directory is created only once every usage check has passed, and only by
    // a command that records something (not status, not --dry-run).
    if let Some(p) = &g.pair {
        hakit_core::metrics::check_pair(p).map_err(usage_error)?;
    }
    let heartbeat = secs(None, n.fifo_heartbeat, 10);
    if heartbeat < Duration::from_millis(100) {
        return Err(usage_error("fifo_heartbeat is at least 100ms"));
    }
    let mut settings = Settings {
        runtime: Runtime::at(&pick(
            cli.settings.runtime_dir,
            g.runtime_dir,
            PathBuf::from(DEFAULT_DIR),
        )),
        lock_timeout: secs(cli.settings.lock_timeout, n.lock_timeout, 30),
        command_timeout: secs(cli.settings.command_timeout, n.command_timeout, 10),
        retries,
        nft: pick(cli.settings.nft, n.nft, "nft".into()),
        conntrackd: pick(cli.settings.conntrackd, n.conntrackd, "conntrackd".into()),
        systemctl: pick(cli.settings.systemctl, n.systemctl, "systemctl".into()),
        textfile: cli
            .settings
            .textfile
            .or(n.textfile)
            .or_else(|| g.textfile_dir.map(|d| d.join("hakit_nat_notify.prom"))),
        keepalived_config: n
            .keepalived_config
            .unwrap_or_else(|| PathBuf::from("/etc/keepalived/keepalived.conf")),
        fip: fip.provider.is_some().then_some(fip),
        bgp,
        pair: g.pair.clone(),
        heartbeat: None,
        monitor_track_file,
    };
    let (name, state) = match cli.cmd {
        Cmd::Status => return show_status(&settings, &instances, explicit.as_deref(), cli.json),
        Cmd::Fifo { path } => {
            app::check_fifo(&path)?;
            settings.heartbeat = Some(heartbeat);
            create_runtime(&settings.runtime)?;
            return app::fifo(&settings, &instances, policy, &path);
        }
        Cmd::Instance(_) | Cmd::Group(_) => {
            event.ok_or_else(|| usage_error("event arguments missing"))?
        }
        Cmd::Master => (explicit, State::Master),
        Cmd::Backup => (explicit, State::Backup),
        Cmd::Fault => (explicit, State::Fault),
        Cmd::Stop { all: true } => {
            return stop_all(&settings, &instances, cli.dry_run, cli.json);
        }
        Cmd::Stop { all: false } => (explicit, State::Stop),
        Cmd::MasterRxLowerPri => (explicit, State::MasterRxLowerPri),
    };
    let name = match name {
        Some(n) => n,
        None if instances.len() == 1 => instances[0].name.clone(),
        None => {
            return Err(usage_error(
                "several instances are configured: say which with --instance NAME",
            ))
        }
    };
    let Some(inst) = app::find(&instances, &name, policy)? else {
        return Ok(Exit::Ok);
    };
    let report = if cli.dry_run {
        dry_run(&settings, &instances, inst, state)?
    } else {
        create_runtime(&settings.runtime)?;
        app::hook(&settings, &instances, inst, state)?
    };
    if cli.json {
        hakit_core::outln!("{}", serde_json::to_string(&report)?);
    } else if cli.dry_run {
        print_dry_run(&report, state);
    }
    Ok(app::exit_of(&report))
}

/// `stop --all`: STOP for every configured instance in turn, each whole (one failing does
/// not keep the others' addresses and rules in place); the worst exit code.
fn stop_all(
    settings: &Settings,
    instances: &[Instance],
    dry: bool,
    json: bool,
) -> anyhow::Result<Exit> {
    if !dry {
        create_runtime(&settings.runtime)?;
        if !keepalived_alive() {
            release_vips(instances);
        }
    }
    // A failed instance outweighs a partial (superseded) one, which outweighs success.
    let rank = |e: Exit| match e {
        Exit::Ok => 0,
        Exit::Partial => 1,
        Exit::Failed | Exit::Usage => 2,
    };
    let mut worst = Exit::Ok;
    for inst in instances {
        let report = if dry {
            dry_run(settings, instances, inst, State::Stop)?
        } else {
            app::hook(settings, instances, inst, State::Stop)?
        };
        if json {
            hakit_core::outln!("{}", serde_json::to_string(&report)?);
        } else if dry {
            print_dry_run(&report, State::Stop);
        }
        let this = app::exit_of(&report);
        if rank(this) > rank(worst) {
            worst = this;
        }
    }
    Ok(worst)
}

/// Whether a keepalived process runs (in this PID namespace).
fn keepalived_alive() -> bool {
    hakit_core::procs::find_comm("keepalived").is_some()
}

/// keepalived removes its VIPs when it stops, but one that was killed leaves them on the
/// interface: the LAN would then have two gateways answering for the same address, and
/// STOP would be refused as stale (keepalived's VIPs say MASTER). With no keepalived left,
/// the instances' `vrrp_vips` still held here are removed first, each said in the log.
fn release_vips(instances: &[Instance]) {
    let dump = hakit_net::Netlink::open().and_then(|nl| nl.addresses(None).map(|a| (nl, a)));
    let (nl, addrs) = match dump {
        Ok(d) => d,
        Err(e) => return log::warn!("cannot look for keepalived's leftover VIPs: {e:#}"),
    };
    for inst in instances {
        for a in addrs.iter().filter(|a| inst.vrrp_vips.contains(&a.addr)) {
            let dev = nl
                .link_by_index(a.index)
                .ok()
                .flatten()
                .map_or_else(|| format!("index {}", a.index), |l| l.name);
            match nl.del_address(a.index, a.addr, a.prefix) {
                Ok(_) => log::warn!(
                    "{}: keepalived is gone and left its VIP {}/{} on {dev}: removed",
                    inst.name,
                    a.addr,
                    a.prefix
                ),
                Err(e) => log::warn!(
                    "{}: keepalived is gone and left its VIP {}: cannot remove it: {e:#}",
                    inst.name,
                    a.addr
                ),
            }
        }
    }
}

/// What an instance needs beside it: the `[bgp]` table to announce, the `[fip]` table to
/// claim, an interface for its floating IPs (exit 2 at load, not exit 1 at the first MASTER).
fn with_tables(i: &Instance, fip: bool, bgp: Option<&hakit_bgp::Speaker>) -> Result<(), String> {
    let name = &i.name;
    if i.announce == Some(true) && bgp.is_none() {
        return Err(format!(
            "instance {name}: announce = true needs a [bgp] table (speaker, prefixes)"
        ));
    }
    if !i.announce_prefixes.is_empty() && i.announce != Some(true) {
        return Err(format!(
            "instance {name}: announce_prefixes without announce = true"
        ));
    }
    let foreign = bgp.and_then(|b| {
        let p = i
            .announce_prefixes
            .iter()
            .find(|p| !b.prefixes.contains(p))?;
        Some((p, b.prefixes_text()))
    });
    if let Some((p, all)) = foreign {
        return Err(format!(
            "instance {name}: announce_prefixes: {p} is not in [bgp] prefixes ({all})"
        ));
    }
    if i.fip_claim == Some(true) && !fip {
        return Err(format!(
            "instance {name}: fip_claim = true needs a [fip] table with a provider"
        ));
    }
    if !i.floating_ips.is_empty() && i.interface.is_none() {
        return Err(format!("instance {name}: floating_ips need an interface"));
    }
    Ok(())
}

/// No prefix is moved by two instances (they would fight over its role): instances that
/// announce either name disjoint `announce_prefixes`, or only one announces.
fn announced_once(instances: &[Instance]) -> Result<(), String> {
    let announcing: Vec<&Instance> = instances
        .iter()
        .filter(|i| i.announce == Some(true))
        .collect();
    for (k, a) in announcing.iter().enumerate() {
        for b in &announcing[k + 1..] {
            let shared = if a.announce_prefixes.is_empty() || b.announce_prefixes.is_empty() {
                Some("every [bgp] prefix".to_string())
            } else {
                a.announce_prefixes
                    .iter()
                    .find(|p| b.announce_prefixes.contains(p))
                    .map(ToString::to_string)
            };
            if let Some(p) = shared {
                return Err(format!(
                    "instances {} and {} both announce {p}: give each its own announce_prefixes",
                    a.name, b.name
                ));
            }
        }
    }
    Ok(())
}

/// What a transition to `state` would do, said and changed nothing. A checker (hakit-setup
/// runs this one): a plan the node cannot carry out is refused (exit 2).
fn dry_run(
    settings: &Settings,
    instances: &[Instance],
    inst: &Instance,
    state: State,
) -> anyhow::Result<crate::report::Report> {
    let nl = hakit_net::Netlink::open()?;
    crate::validate::on_host(inst, &nl).map_err(usage_error)?;
    let tables = crate::action::Tables {
        fip: settings.fip.as_ref(),
        bgp: settings.bgp.as_ref(),
        siblings: settings.runtime.siblings(instances, inst),
    };
    Ok(crate::effects::dry_run(inst, state, tables))
}

/// The dry run as text: each step and what it would do (or why it fails).
fn print_dry_run(report: &crate::report::Report, state: State) {
    hakit_core::outln!("{} {state}: would run, in order:", report.instance);
    for s in &report.steps {
        match &s.result {
            crate::report::StepResult::Planned(d) => {
                hakit_core::outln!("  {:<20} {d}", s.step.name())
            }
            crate::report::StepResult::Failed(d) => {
                hakit_core::outln!("  {:<20} fails: {d}", s.step.name())
            }
            _ => {}
        }
    }
}

/// Creates the runtime directory. One another user could write into is refused (exit 2);
/// one that cannot be created (a full or read-only /run) is only a warning: bookkeeping
/// never keeps the floating IP from moving.
fn create_runtime(rt: &Runtime) -> anyhow::Result<()> {
    match rt.create() {
        Err(e) if Exit::of_error(&e) == Exit::Usage => Err(e),
        Err(e) => {
            log::warn!("{e:#}: going on without recorded state");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

fn generic(kind: &str, a: &Generic) -> anyhow::Result<(Option<String>, State)> {
    let ev =
        event::from_args(kind, &a.name, &a.state, a.priority.as_deref()).map_err(usage_error)?;
    Ok((Some(ev.name), ev.state))
}

fn show_status(
    s: &Settings,
    instances: &[Instance],
    only: Option<&str>,
    json: bool,
) -> anyhow::Result<Exit> {
    let chosen: Vec<Instance> = instances
        .iter()
        .filter(|i| only.is_none_or(|o| o == i.name))
        .cloned()
        .collect();
    if chosen.is_empty() {
        return Err(usage_error(format!(
            "instance {:?} is not configured",
            only.unwrap_or_default()
        )));
    }
    let report = status::status(s, &chosen)?;
    let bad = report.iter().any(|r| !r.problems.is_empty());
    if json {
        hakit_core::outln!(
            "{}",
            serde_json::json!({ "consistent": !bad, "instances": report })
        );
    } else {
        for r in &report {
            let st = r
                .recorded_state
                .map_or("none recorded".to_string(), |s| s.to_string());
            hakit_core::outln!(
                "{}: {st}{} (generation {})",
                r.instance,
                if r.converged { ", converged" } else { "" },
                r.generation
            );
            for f in &r.floating_ips {
                hakit_core::outln!(
                    "  floating IP {:<22} {}",
                    f.ip,
                    if f.present { "present" } else { "absent" }
                );
            }
            if let Some(p) = r.snat_present {
                hakit_core::outln!(
                    "  SNAT rule               {}",
                    if p { "present" } else { "absent" }
                );
            }
            hakit_core::outln!(
                "  default route           {}",
                r.default_route.as_deref().unwrap_or("none")
            );
            for (u, st) in &r.units {
                hakit_core::outln!("  unit {u:<18} {st}");
            }
            if let Some(c) = &r.conntrackd {
                hakit_core::outln!("  conntrackd              {c}");
            }
            if let Some(a) = &r.bgp_announcement {
                hakit_core::outln!("  bgp announcement        {a}");
            }
            if let Some(a) = &r.bgp_sessions {
                hakit_core::outln!("  bgp sessions            {a}");
            }
            if let Some(m) = &r.uplink_monitor {
                hakit_core::outln!("  uplink monitor          {m}");
            }
            for p in &r.problems {
                hakit_core::outln!("  PROBLEM: {p}");
            }
        }
    }
    Ok(if bad { Exit::Failed } else { Exit::Ok })
}
