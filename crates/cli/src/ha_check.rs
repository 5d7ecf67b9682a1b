//! ha-check's command line. Kept apart from main so `hakit-docgen` can render the man
//! page and shell completions from the very same clap definitions.

use std::{net::IpAddr, path::PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use hakit_core::{cli::Common, HDuration};

pub const IDENT: &str = "ha-check";
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
#[command(name = IDENT, version = hakit_core::version!(), after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Option<Cmd>,

    /// vrrp_script interval; the deadline defaults to 80% of it [default: 1s]
    #[arg(long, env = "HAKIT_CHECK_INTERVAL", value_name = "DUR")]
    pub interval: Option<HDuration>,
    /// Overall deadline for all probes [default: 80% of the interval]
    #[arg(long, env = "HAKIT_CHECK_DEADLINE", value_name = "DUR")]
    pub deadline: Option<HDuration>,
    /// Prometheus textfile written after every run
    #[arg(long, env = "HAKIT_CHECK_TEXTFILE", value_name = "PATH")]
    pub textfile: Option<PathBuf>,
    /// nftables table whose named counters also go into the textfile, e.g. "inet hakit_filter"
    #[arg(long, env = "HAKIT_CHECK_NFT_COUNTERS", value_name = "FAMILY NAME")]
    pub nft_counters: Option<String>,
    /// Runtime directory (state for logging once per change) [default: /run/hakit]
    #[arg(long, env = "HAKIT_RUNTIME_DIR", value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// Print every probe with its result and latency as JSON
    #[arg(long, global = true)]
    pub json: bool,

    #[command(flatten)]
    pub common: Common,
}

/// The modes. Each probe kind's shortcut (`ha-check icmp 192.0.2.1 -i eth0`,
/// `ha-check dns …`) is added to these by `hakit_check::shortcut`, generated from the kind's
/// definition, so that this crate needs no list of kinds.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the configured probes continuously; write keepalived's track_file on every change
    ///
    /// Each probe runs at its own `interval` (20ms for icmp and neighbour, 1s for most
    /// others) with `fall`/`rise` hysteresis and the [[check.group]] quorums; link, address
    /// and route probes also re-run the moment the kernel reports a change. The track file
    /// gets 0 (healthy) or 1 on every change of verdict; FILE.heartbeat is refreshed every
    /// 250ms for `ha-check monitor-alive`. Runs until SIGTERM.
    Monitor {
        /// keepalived's track_file [default: track_file in [check]]
        #[arg(long, value_name = "PATH")]
        track_file: Option<PathBuf>,
        /// How often the Prometheus textfile is rewritten (and on every change)
        #[arg(long, default_value = "5s", value_name = "DUR")]
        textfile_interval: HDuration,
        /// Stop after this long (for testing a configuration)
        #[arg(long, value_name = "DUR")]
        duration: Option<HDuration>,
        /// Real-time priority (SCHED_RR), 0 for none [default: monitor_rt_priority in
        /// [check], else 10]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=99))]
        rt_priority: Option<u8>,
    },
    /// Exit 0 if `ha-check monitor` is alive: its heartbeat is fresh and its process exists
    ///
    /// keepalived runs this as a vrrp_script with a negative weight, so a dead or hung
    /// monitor demotes the node instead of leaving a stale "healthy" track file trusted.
    MonitorAlive {
        /// keepalived's track_file [default: track_file in [check]]
        #[arg(long, value_name = "PATH")]
        track_file: Option<PathBuf>,
        /// The oldest heartbeat accepted
        #[arg(long, default_value = "2s", value_name = "DUR")]
        max_age: HDuration,
    },
    /// Drain this node for maintenance: the monitor gives the role away (track file 1,
    /// keepalived FAULT) and keeps it away, across reboots, until `ha-check undrain`
    ///
    /// Writes `drain_file` ([check], default /var/lib/hakit/drain) with REASON; the running
    /// monitor reads it within a heartbeat (250 ms). `nat-notify status` shows the reason.
    Drain {
        /// Why, shown by `nat-notify status` and in the monitor's log
        #[arg(value_name = "REASON")]
        reason: Vec<String>,
    },
    /// End a drain: the monitor's verdict decides again (keepalived may take the role back)
    Undrain,
    /// Watch a peer (clouds without VRRP); after --fall failures run CMD until it succeeds
    Watch {
        /// The primary's address [default: watch_peer in [check]; there is no other default]
        #[arg(long, env = "HAKIT_WATCH_PEER", value_name = "ADDR")]
        peer: Option<IpAddr>,
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

pub const AFTER_HELP: &str = "\
keepalived.conf (as hakit-setup renders keepalived/*.conf.in):
  # ha-check monitor (hakit-monitor.service): keepalived acts on the file at once
  track_file hakit_uplink {
      file /run/hakit-monitor/uplink
      weight 0            # non-zero: FAULT
      init_file 1         # FAULT until the monitor has a verdict
  }
  vrrp_script chk_hakit_monitor {
      script \"/usr/sbin/ha-check --config /etc/hakit/hakit.toml monitor-alive\"
      interval 1
      timeout 1
      fall 2
      rise 1
      weight -60          # a dead monitor demotes the node
  }
  # or, for keepalived without track_file, every probe once a second:
  vrrp_script chk_hakit {
      script \"/usr/sbin/ha-check --config /etc/hakit/hakit.toml --interval 1s\"
      interval 1
      timeout 1
      fall 2
      rise 2
      weight -60
  }

Exit codes:
  0  healthy (watch, monitor: stopped by a signal, --max-probes or --duration;
     monitor-alive: the monitor is alive)
  1  unhealthy
  2  usage or configuration error (also logged: keepalived hides output)";

/// How the peer is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    Icmp,
    Tcp,
    /// A TCP connect plus the SSH version banner (`SSH-`).
    Ssh,
}

impl Method {
    /// The name as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Icmp => "icmp",
            Method::Tcp => "tcp",
            Method::Ssh => "ssh",
        }
    }
}
