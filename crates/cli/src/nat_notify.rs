//! nat-notify's command line. Kept apart from main so `hakit-docgen` can render the man
//! page and shell completions from the very same clap definitions.

use std::{net::IpAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};
use hakit_core::{cli::Common, config::Cidr, HDuration};
use serde::Deserialize;

pub const IDENT: &str = "nat-notify";

/// keepalived's notify hook for an HA NAT gateway: flap-safe and idempotent.
///
/// On MASTER: conntrackd commit, floating IPs onto the WAN interface, gratuitous ARPs,
/// the SNAT rule, conntrackd resync, units and `up` commands. On BACKUP/STOP: the
/// reverse. On FAULT: the configured subset. Whatever order racing hooks run in, the node
/// ends in the state keepalived reported last.
///
/// Instances are configured in [[notify.instance]] tables of the config file; a single
/// instance can also be given with flags (--instance, --interface, --floating-ip, ...).
#[derive(Debug, Parser)]
#[command(name = IDENT, version = hakit_core::version!(), after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,

    /// Print the steps it would take and change nothing
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Print the transition (or status) report as JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,

    #[command(flatten)]
    pub settings: SettingArgs,

    #[command(flatten)]
    pub instance: InstanceArgs,

    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Become MASTER (notify_master)
    Master,
    /// Become BACKUP (notify_backup)
    Backup,
    /// Enter FAULT (notify_fault)
    Fault,
    /// keepalived is stopping (notify_stop)
    ///
    /// With --all, every configured instance: what hakit's keepalived.service drop-in runs
    /// after keepalived's main process ends for any reason (ExecStopPost). A killed keepalived
    /// (OOM, a crash, SIGKILL) sends no notify_stop and leaves its VIPs on the LAN interface:
    /// this node would keep answering for them and for its floating IPs beside the peer.
    /// When no keepalived process is left, --all first removes the instances' vrrp_vips
    /// still held here (each said in the log). After a graceful stop it changes nothing.
    Stop {
        /// Every configured instance, one after another (the worst exit code)
        #[arg(long, conflicts_with = "instance")]
        all: bool,
    },
    /// A MASTER heard a lower-priority advert: re-announce and re-claim
    MasterRxLowerPri,
    /// Generic notify: keepalived appends INSTANCE NAME STATE PRIORITY
    #[command(name = "INSTANCE", hide = true)]
    Instance(Generic),
    /// Generic notify for a sync group: GROUP NAME STATE PRIORITY
    #[command(name = "GROUP", hide = true)]
    Group(Generic),
    /// notify_fifo_script: read keepalived's FIFO (path appended by keepalived) until EOF
    Fifo {
        /// The FIFO keepalived writes to
        path: PathBuf,
    },
    /// Show the node's state per instance; exit 1 if it is inconsistent
    ///
    /// Per instance: the state nat-notify recorded and keepalived's, the floating IPs,
    /// the SNAT rule, the route out, units, conntrackd, the provider's owner of the IP and
    /// the BGP announcement where configured, the uplink monitor's verdict or drain; then
    /// every problem found, one line each (the man page lists them all).
    #[command(after_help = STATUS_EXIT)]
    Status,
}

#[derive(Debug, Args)]
pub struct Generic {
    pub name: String,
    pub state: String,
    pub priority: Option<String>,
}

#[derive(Debug, Args)]
pub struct SettingArgs {
    /// Runtime directory for locks and recorded state [default: /run/hakit]
    #[arg(long, env = "HAKIT_RUNTIME_DIR", value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// What an unconfigured instance does: ignore (exit 0) or fail (exit 2) [default: ignore]
    #[arg(long, env = "HAKIT_NOTIFY_UNKNOWN_INSTANCE", value_name = "POLICY")]
    pub unknown_instance: Option<UnknownInstance>,
    /// How long to wait for an earlier transition of the instance [default: 30s]
    #[arg(long, env = "HAKIT_NOTIFY_LOCK_TIMEOUT", value_name = "DUR")]
    pub lock_timeout: Option<HDuration>,
    /// Timeout of each external command [default: 10s]
    #[arg(long, env = "HAKIT_NOTIFY_COMMAND_TIMEOUT", value_name = "DUR")]
    pub command_timeout: Option<HDuration>,
    /// Extra attempts for a failed step [default: 2]
    #[arg(long, env = "HAKIT_NOTIFY_RETRIES", value_name = "N")]
    pub retries: Option<u32>,
    /// nft program [default: nft]
    #[arg(long, env = "HAKIT_NOTIFY_NFT", value_name = "PROG")]
    pub nft: Option<String>,
    /// conntrackd program [default: conntrackd]
    #[arg(long, env = "HAKIT_NOTIFY_CONNTRACKD", value_name = "PROG")]
    pub conntrackd: Option<String>,
    /// Service manager program [default: systemctl]
    #[arg(long, env = "HAKIT_NOTIFY_SYSTEMCTL", value_name = "PROG")]
    pub systemctl: Option<String>,
    /// Prometheus textfile written after each transition
    #[arg(long, env = "HAKIT_NOTIFY_TEXTFILE", value_name = "PATH")]
    pub textfile: Option<PathBuf>,
}

/// A single instance from flags; overrides the file's instance of the same name.
#[derive(Debug, Args)]
pub struct InstanceArgs {
    /// Instance the state applies to [default: the only configured instance]
    #[arg(
        long,
        global = true,
        env = "HAKIT_NOTIFY_INSTANCE",
        value_name = "NAME"
    )]
    pub instance: Option<String>,
    /// WAN interface for the floating IPs
    #[arg(long, env = "HAKIT_NOTIFY_INTERFACE", value_name = "DEV")]
    pub interface: Option<String>,
    /// Floating IP with prefix (repeatable), e.g. 203.0.113.10/32
    #[arg(
        long = "floating-ip",
        env = "HAKIT_NOTIFY_FLOATING_IPS",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub floating_ips: Vec<Cidr>,
    /// keepalived's own VIP of the instance (repeatable), used to detect stale hooks
    #[arg(
        long = "vrrp-vip",
        env = "HAKIT_NOTIFY_VRRP_VIPS",
        value_delimiter = ',',
        value_name = "ADDR"
    )]
    pub vrrp_vips: Vec<IpAddr>,
    /// LAN prefix to SNAT to the floating IP
    #[arg(long, env = "HAKIT_NOTIFY_SNAT_SOURCE", value_name = "CIDR")]
    pub snat_source: Option<Cidr>,
    /// conntrackd configuration file (enables the conntrackd steps)
    #[arg(long, env = "HAKIT_NOTIFY_CONNTRACKD_CONFIG", value_name = "PATH")]
    pub conntrackd_config: Option<PathBuf>,
    /// Unit restarted on MASTER, stopped on BACKUP (repeatable)
    #[arg(
        long = "unit",
        env = "HAKIT_NOTIFY_UNITS",
        value_delimiter = ',',
        value_name = "UNIT"
    )]
    pub units: Vec<String>,
    /// Start units instead of restarting them
    #[arg(long, value_name = "ACTION")]
    pub unit_action: Option<UnitAction>,
    /// GARP rounds after taking the floating IPs [default: 3]
    #[arg(long, env = "HAKIT_NOTIFY_GARP_COUNT", value_name = "N")]
    pub garp_count: Option<u32>,
    /// Time between GARP rounds [default: 100ms]
    #[arg(long, env = "HAKIT_NOTIFY_GARP_INTERVAL", value_name = "DUR")]
    pub garp_interval: Option<HDuration>,
}
/// What an event for an unconfigured instance does (`--unknown-instance`, `[notify]
/// unknown_instance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UnknownInstance {
    Ignore,
    Fail,
}

/// How units start on MASTER (`--unit-action`, `[[notify.instance]] unit_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UnitAction {
    Restart,
    Start,
}

pub const AFTER_HELP: &str = "\
keepalived.conf, three ways (snippets in keepalived/):
  vrrp_notify_fifo /run/keepalived/vrrp_notify.fifo
  vrrp_notify_fifo_script \"/usr/sbin/nat-notify --config /etc/hakit/hakit.toml fifo\"
      recommended (global_defs): events arrive in order
  notify \"/usr/sbin/nat-notify --config /etc/hakit/hakit.toml\"
      keepalived appends INSTANCE NAME STATE PRIORITY
  notify_master \"/usr/sbin/nat-notify --config /etc/hakit/hakit.toml master --instance VI_1\"
      also notify_backup, notify_fault, notify_stop

Exit codes:
  0  converged (or nothing to do, or unknown instance ignored)
  1  a step failed: the node did not fully converge (status: node inconsistent)
  2  usage or configuration error, nothing changed
  3  superseded by a newer state before finishing; the newer hook converges
  fifo mode runs until keepalived closes the FIFO, then exits 0; each event's outcome
  is logged (a failed event never stops the reader)";

const STATUS_EXIT: &str = "\
Exit codes:
  0  every instance is consistent (no problem line)
  1  at least one problem: the node is inconsistent (each printed, also with --json)
  2  usage or configuration error";

impl InstanceArgs {
    pub fn any(&self) -> bool {
        self.interface.is_some()
            || !self.floating_ips.is_empty()
            || !self.vrrp_vips.is_empty()
            || self.snat_source.is_some()
            || self.conntrackd_config.is_some()
            || !self.units.is_empty()
            || self.unit_action.is_some()
            || self.garp_count.is_some()
            || self.garp_interval.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_notify_arguments_parse() {
        let c = Cli::try_parse_from(["nat-notify", "INSTANCE", "VI_1", "MASTER", "110"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Instance(ref g) if g.name == "VI_1" && g.state == "MASTER"));
        let c = Cli::try_parse_from(["nat-notify", "fifo", "/run/k.fifo"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Fifo { .. }));
    }
}
