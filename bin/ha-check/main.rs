//! `ha-check`: keepalived's `vrrp_script` for a NAT gateway. Thin main: parse, build the
//! probes, hand over to `hakit_check`, map the verdict to an exit code.

use std::{
    net::IpAddr,
    path::PathBuf,
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use clap::{Args, Parser, Subcommand};
use hakit_check::{
    probe::{self, Checked, Tools},
    runner::{self, Verdict},
    watch::{self, Method, Watch},
};
use hakit_core::{
    cli::{self, Common},
    config::{pick, CheckFile, Cidr, Group, Probe, ProbeKind},
    metrics::{Kind, Textfile},
    runtime::{self, DEFAULT_DIR},
    usage_error, Exit, HDuration,
};
use log::{info, warn};

const IDENT: &str = "ha-check";
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Health checks for keepalived's vrrp_script: many probes, in parallel, one deadline.
///
/// With no command, runs the probes of [[check.probe]] in the config file, in parallel,
/// under one deadline (80% of the vrrp_script interval unless --deadline says otherwise),
/// and judges them by [[check.group]] quorums: "at least 1 of these 3 external targets
/// answers" AND "the gateway answers" AND "the SNAT rule is present". Exit 0 healthy,
/// 1 unhealthy. A single probe can also be run from a shell during an incident, e.g.
/// `ha-check icmp 192.0.2.1 -i eth0`. `ha-check watch` watches a peer for clouds without
/// VRRP and runs a takeover command when it dies.
#[derive(Debug, Parser)]
#[command(name = IDENT, version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,

    /// vrrp_script interval; the deadline defaults to 80% of it [default: 1s]
    #[arg(long, env = "HAKIT_CHECK_INTERVAL", value_name = "DUR")]
    interval: Option<HDuration>,
    /// Overall deadline for all probes [default: 80% of the interval]
    #[arg(long, env = "HAKIT_CHECK_DEADLINE", value_name = "DUR")]
    deadline: Option<HDuration>,
    /// Prometheus textfile written after every run
    #[arg(long, env = "HAKIT_CHECK_TEXTFILE", value_name = "PATH")]
    textfile: Option<PathBuf>,
    /// Runtime directory (state for logging once per change) [default: /run/hakit]
    #[arg(long, env = "HAKIT_RUNTIME_DIR", value_name = "DIR")]
    runtime_dir: Option<PathBuf>,
    /// Print every probe with its result and latency as JSON
    #[arg(long, global = true)]
    json: bool,

    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args, Clone, Default)]
struct Bind {
    /// Send from this interface
    #[arg(short, long, value_name = "DEV")]
    interface: Option<String>,
    /// Send from this source address
    #[arg(long, value_name = "ADDR")]
    source: Option<IpAddr>,
    /// Probe timeout [default: the deadline]
    #[arg(long, value_name = "DUR")]
    timeout: Option<HDuration>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// ICMP/ICMPv6 echo to TARGET
    Icmp {
        target: String,
        #[arg(short, long, value_name = "N")]
        count: Option<u32>,
        #[command(flatten)]
        bind: Bind,
    },
    /// GET URL and expect a status
    Http {
        url: String,
        /// Expected status [default: 204]
        #[arg(long, value_name = "CODE")]
        status: Option<u16>,
        /// Extra CA certificate (PEM) for https
        #[arg(long, value_name = "PATH")]
        ca_file: Option<PathBuf>,
        #[command(flatten)]
        bind: Bind,
    },
    /// TCP connect to HOST:PORT
    Tcp {
        target: String,
        #[command(flatten)]
        bind: Bind,
    },
    /// Interface exists, is up and has carrier
    Link { interface: String },
    /// ADDR is (or with --absent, is not) on the interface
    Address {
        address: String,
        #[arg(short, long, value_name = "DEV")]
        interface: String,
        #[arg(long)]
        absent: bool,
    },
    /// A route for PREFIX (default 0.0.0.0/0) exists, optionally via DEV/GATEWAY
    Route {
        prefix: Option<String>,
        #[arg(short, long, value_name = "DEV")]
        interface: Option<String>,
        #[arg(long, value_name = "GATEWAY")]
        via: Option<IpAddr>,
    },
    /// The SNAT rule from the LAN prefix to the floating IP is in nftables
    NftRule {
        #[arg(long, value_name = "CIDR")]
        snat_source: Cidr,
        #[arg(long, value_name = "ADDR")]
        to: IpAddr,
    },
    /// nf_conntrack_count / nf_conntrack_max below a fraction
    Conntrack {
        #[arg(long, value_name = "FRACTION")]
        max_usage: Option<f64>,
    },
    /// Sysctls have the expected values (KEY=VALUE ...)
    Sysctl {
        #[arg(required = true)]
        expect: Vec<String>,
    },
    /// A systemd unit is active, or a process is alive by pidfile or name
    Service {
        #[arg(long)]
        unit: Option<String>,
        #[arg(long)]
        pidfile: Option<PathBuf>,
        #[arg(long)]
        process: Option<String>,
    },
    /// A DRBD resource has the expected role, connection and disk state
    Drbd {
        resource: String,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        connection: Option<String>,
        #[arg(long)]
        disk: Option<String>,
    },
    /// This node owns the floating IP at the provider ([fip] table; read-only, cached)
    FipOwner {
        /// The floating IP [default: ip in [fip]]
        ip: Option<String>,
        /// Reuse a provider answer this long [default: 30s]
        #[arg(long, value_name = "DUR")]
        cache: Option<HDuration>,
    },
    /// Watch a peer (clouds without VRRP); after --fall failures run CMD until it succeeds
    Watch {
        #[arg(long, value_name = "ADDR")]
        peer: IpAddr,
        #[arg(long, value_enum, default_value = "icmp")]
        method: Method,
        /// Port for tcp/ssh [default: 22]
        #[arg(long, default_value_t = 22)]
        port: u16,
        #[arg(long, default_value = "1s", value_name = "DUR")]
        interval: HDuration,
        /// Probe timeout [default: 80% of the interval]
        #[arg(long, value_name = "DUR")]
        probe_timeout: Option<HDuration>,
        #[arg(long, default_value_t = 3)]
        fall: u32,
        #[arg(long, default_value_t = 2)]
        rise: u32,
        /// Timeout of each CMD run
        #[arg(long, default_value = "60s", value_name = "DUR")]
        command_timeout: HDuration,
        /// Stop after N probes (for testing a configuration)
        #[arg(long, value_name = "N")]
        max_probes: Option<u64>,
        /// The takeover command, e.g. -- fip-claim --force ...
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

const AFTER_HELP: &str = "\
keepalived.conf:
  vrrp_script chk_gateway {
      script \"/usr/sbin/ha-check --interval 1s\"
      interval 1
      timeout 2
      fall 2
      rise 2
      weight -30
  }

Exit codes:
  0  healthy (watch: stopped by a signal or --max-probes)
  1  unhealthy
  2  usage or configuration error (also logged: keepalived hides output)";

fn adhoc(cmd: Cmd) -> Result<Probe, Exit> {
    let mut p = Probe::default();
    let bind = |p: &mut Probe, b: Bind| {
        p.interface = b.interface;
        p.source = b.source;
        p.timeout = b.timeout;
    };
    match cmd {
        Cmd::Icmp {
            target,
            count,
            bind: b,
        } => {
            p.kind = Some(ProbeKind::Icmp);
            p.target = Some(target);
            p.count = count;
            bind(&mut p, b);
        }
        Cmd::Http {
            url,
            status,
            ca_file,
            bind: b,
        } => {
            p.kind = Some(ProbeKind::Http);
            p.url = Some(url);
            p.status = status;
            p.ca_file = ca_file;
            bind(&mut p, b);
        }
        Cmd::Tcp { target, bind: b } => {
            p.kind = Some(ProbeKind::Tcp);
            p.target = Some(target);
            bind(&mut p, b);
        }
        Cmd::Link { interface } => {
            p.kind = Some(ProbeKind::Link);
            p.interface = Some(interface);
        }
        Cmd::Address {
            address,
            interface,
            absent,
        } => {
            p.kind = Some(ProbeKind::Address);
            p.target = Some(address);
            p.interface = Some(interface);
            p.absent = absent.then_some(true);
        }
        Cmd::Route {
            prefix,
            interface,
            via,
        } => {
            p.kind = Some(ProbeKind::Route);
            p.target = prefix;
            p.interface = interface;
            p.gateway = via;
        }
        Cmd::NftRule { snat_source, to } => {
            p.kind = Some(ProbeKind::NftRule);
            p.snat_source = Some(snat_source);
            p.to = Some(to);
        }
        Cmd::Conntrack { max_usage } => {
            p.kind = Some(ProbeKind::Conntrack);
            p.max_usage = max_usage;
        }
        Cmd::Sysctl { expect } => {
            p.kind = Some(ProbeKind::Sysctl);
            p.expect = expect;
        }
        Cmd::Service {
            unit,
            pidfile,
            process,
        } => {
            p.kind = Some(ProbeKind::Service);
            p.unit = unit;
            p.pidfile = pidfile;
            p.process = process;
        }
        Cmd::Drbd {
            resource,
            role,
            connection,
            disk,
        } => {
            p.kind = Some(ProbeKind::Drbd);
            p.resource = Some(resource);
            p.role = role;
            p.connection = connection;
            p.disk = disk;
        }
        Cmd::FipOwner { ip, cache } => {
            p.kind = Some(ProbeKind::FipOwner);
            p.target = ip;
            p.cache = cache;
        }
        Cmd::Watch { .. } => return Err(Exit::Usage),
    }
    Ok(p)
}

fn run(cli: Cli) -> anyhow::Result<Exit> {
    let file: CheckFile = cli.common.init(IDENT)?;
    let c = file.check;
    let interval = pick(cli.interval, c.interval, HDuration(DEFAULT_INTERVAL)).get();
    let deadline = pick(cli.deadline, c.deadline, HDuration(interval * 4 / 5)).get();
    if deadline.is_zero() {
        return Err(usage_error("the deadline must be longer than 0"));
    }
    if let Some(Cmd::Watch {
        peer,
        method,
        port,
        interval,
        probe_timeout,
        fall,
        rise,
        command_timeout,
        max_probes,
        command,
    }) = cli.cmd
    {
        if fall == 0 || rise == 0 || interval.get().is_zero() {
            return Err(usage_error("--fall, --rise and --interval must be above 0"));
        }
        let w = Watch {
            peer,
            method,
            port,
            interval: interval.get(),
            timeout: probe_timeout.map_or(interval.get() * 4 / 5, |t| t.get()),
            fall,
            rise,
            command,
            command_timeout: command_timeout.get(),
            max_probes,
        };
        let stop = Arc::new(AtomicBool::new(false));
        stop_on_signals(stop.clone());
        watch::run(&w, stop)?;
        return Ok(Exit::Ok);
    }
    let adhoc_run = cli.cmd.is_some();
    let (probes, groups): (Vec<Probe>, Vec<Group>) = match cli.cmd {
        Some(cmd) => (
            vec![adhoc(cmd).map_err(|_| usage_error("not a probe"))?],
            Vec::new(),
        ),
        None => (c.probes, c.groups),
    };
    if probes.is_empty() {
        return Err(usage_error("no probes: add [[check.probe]] tables to the config file, or run one, e.g. `ha-check icmp 192.0.2.1`"));
    }
    let mut checked: Vec<Checked> = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        checked.push(
            probe::validate(p, deadline)
                .map_err(|e| usage_error(format!("probe {}: {e}", i + 1)))?,
        );
    }
    for g in &groups {
        if !checked
            .iter()
            .any(|p| p.group.as_deref() == Some(g.name.as_str()))
        {
            return Err(usage_error(format!("group {:?} has no probes", g.name)));
        }
    }
    let rt = pick(
        cli.runtime_dir,
        file.general.runtime_dir,
        PathBuf::from(DEFAULT_DIR),
    );
    let tools = Tools {
        fip: file.fip.provider.is_some().then_some(file.fip),
        cache_dir: rt.clone(),
        ..Tools::default()
    };
    let verdict = runner::run(&checked, &groups, deadline, &tools);
    if adhoc_run {
        // A probe run by hand is logged every time and leaves vrrp_script's state alone.
        let o = &verdict.probes[0];
        info!(
            "{} {}: {}",
            o.name,
            if o.ok { "ok" } else { "FAILED" },
            o.detail
        );
    } else {
        log_on_change(&rt, &verdict);
    }
    let textfile = cli.textfile.or(c.textfile).or_else(|| {
        file.general
            .textfile_dir
            .map(|d| d.join("hakit_ha_check.prom"))
    });
    if let Some(path) = textfile {
        if let Err(e) = metrics(&verdict).write(&path) {
            warn!("metrics textfile: {e:#}");
        }
    }
    if cli.json {
        println!("{}", serde_json::to_string(&verdict)?);
    } else if cli.common.verbose > 0 || std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        for o in &verdict.probes {
            println!(
                "{} {:<28} {:>9.3} ms  {}",
                if o.ok { "ok  " } else { "FAIL" },
                o.name,
                o.ms,
                o.detail
            );
        }
        println!(
            "{} in {:.1} ms (deadline {:.0} ms)",
            if verdict.healthy {
                "healthy"
            } else {
                "UNHEALTHY"
            },
            verdict.ms,
            verdict.deadline_ms
        );
    }
    Ok(if verdict.healthy {
        Exit::Ok
    } else {
        Exit::Failed
    })
}

/// Logs the verdict when it differs from the last run's (kept in the runtime directory),
/// so a 1-second vrrp_script does not flood syslog.
fn log_on_change(dir: &std::path::Path, v: &Verdict) {
    let failing: Vec<String> = v
        .probes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| format!("{}: {}", o.name, o.detail))
        .collect();
    let key: Vec<&str> = v
        .probes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| o.name.as_str())
        .collect();
    let now = format!("{}|{}", v.healthy, key.join(","));
    let path = dir.join("ha-check.last");
    let before = std::fs::read_to_string(&path).unwrap_or_default();
    if before == now {
        log::debug!(
            "unchanged: {}",
            if v.healthy { "healthy" } else { "unhealthy" }
        );
        return;
    }
    if v.healthy {
        info!("healthy: {} probe(s) pass", v.probes.len());
    } else {
        warn!("UNHEALTHY: {}", failing.join("; "));
    }
    if runtime::ensure_dir(dir).is_ok() {
        let _ = runtime::write_atomic(&path, now.as_bytes(), 0o644);
    }
}

fn metrics(v: &Verdict) -> Textfile {
    let mut t = Textfile::new();
    t.add(
        "hakit_ha_check_healthy",
        Kind::Gauge,
        "1 if the last run was healthy.",
        &[],
        f64::from(u8::from(v.healthy)),
    );
    t.add(
        "hakit_ha_check_run_duration_seconds",
        Kind::Gauge,
        "Duration of the last run.",
        &[],
        v.ms / 1000.0,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    t.add(
        "hakit_ha_check_last_run_timestamp_seconds",
        Kind::Gauge,
        "Unix time of the last run.",
        &[],
        now,
    );
    for o in &v.probes {
        let labels = [("probe", o.name.as_str()), ("kind", o.kind)];
        t.add(
            "hakit_ha_check_probe_up",
            Kind::Gauge,
            "1 if the probe passed in the last run.",
            &labels,
            f64::from(u8::from(o.ok)),
        );
        t.add(
            "hakit_ha_check_probe_latency_seconds",
            Kind::Gauge,
            "Probe duration in the last run.",
            &labels,
            o.ms / 1000.0,
        );
    }
    for g in &v.groups {
        t.add(
            "hakit_ha_check_group_passed",
            Kind::Gauge,
            "Probes of the group that passed.",
            &[("group", g.name.as_str())],
            g.passed as f64,
        );
    }
    t
}

/// SIGTERM/SIGINT set `stop`; the watch loop checks it between probes.
fn stop_on_signals(stop: Arc<AtomicBool>) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    // Blocked in this thread before any other starts, so every thread inherits the mask
    // and the signals wait for the thread below.
    if set.thread_block().is_err() {
        return;
    }
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            info!("{sig} received: stopping");
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
}

#[global_allocator]
static ALLOC: hakit_core::alloc::Arena = hakit_core::alloc::Arena;

fn main() -> std::process::ExitCode {
    let cli: Cli = cli::parse(IDENT);
    cli::finish(IDENT, run(cli))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
