//! The tables nat-notify reads: `[notify]` and its `[[notify.instance]]` tables, and the
//! one key of `[check]` its status reads (hakit-core loads the file; the tables live with
//! their user). The two values that are also flags (`unknown_instance`, `unit_action`) are
//! defined with the command line, in hakit-cli.

use std::path::PathBuf;

use hakit_cli::nat_notify::{InstanceArgs, UnitAction, UnknownInstance};
use hakit_core::{
    config::{Cidr, File, Skip},
    HDuration,
};
use hakit_fip::config::Fip;
use serde::Deserialize;

/// What `nat-notify` reads.
pub type NotifyFile<B = Skip> = File<Skip, Notify, CheckTrackFile, Fip, B>;

/// The one key of `[check]` that `nat-notify status` reads: where the uplink monitor writes
/// its verdict (and its heartbeat beside it). Every other key of the table is ignored here.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub struct CheckTrackFile {
    pub track_file: Option<PathBuf>,
}

/// `[notify]`: `nat-notify`, the keepalived notify hook.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// What an event for an instance not configured here does: `ignore` (log, exit 0) or
    /// `fail` (exit 2).
    pub unknown_instance: Option<UnknownInstance>,
    /// How long a hook waits for the instance lock held by an earlier hook.
    pub lock_timeout: Option<HDuration>,
    /// Timeout of each external command (`nft`, `conntrackd`, `systemctl`, user commands).
    pub command_timeout: Option<HDuration>,
    /// Extra attempts for a failed step (bounded, with backoff).
    pub retries: Option<u32>,
    /// Programs, found with `which` unless given as paths.
    pub nft: Option<String>,
    /// `conntrackd` (path or name on PATH).
    pub conntrackd: Option<String>,
    /// `systemctl` (path or name on PATH): units, conntrackd.service and the BGP speaker are started through it.
    pub systemctl: Option<String>,
    /// Prometheus textfile to write after every transition.
    pub textfile: Option<PathBuf>,
    /// keepalived's configuration, read by `status` to learn whether nat-notify is its
    /// notify FIFO script (then a live FIFO reader is required while keepalived runs).
    pub keepalived_config: Option<PathBuf>,
    /// How often the FIFO reader refreshes its heartbeat in the textfile (default 10s): a
    /// reader that died or hangs leaves it stale, and the staleness alert fires.
    pub fifo_heartbeat: Option<HDuration>,
    /// One table per VRRP instance (or sync group) name: `[[notify.instance]]`.
    #[serde(default, rename = "instance")]
    pub instances: Vec<Instance>,
}

/// `[[notify.instance]]`: what one VRRP instance owns and does on each state.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// keepalived's instance (or sync group) name, e.g. `VI_1`.
    pub name: String,
    /// Interface the floating IPs go on (the WAN leg).
    pub interface: Option<String>,
    /// Floating IPs with prefix, e.g. `203.0.113.10/32`.
    #[serde(default)]
    pub floating_ips: Vec<Cidr>,
    /// keepalived's own virtual addresses of this instance: their presence tells which
    /// state keepalived is really in when hooks race (hook mode).
    #[serde(default)]
    pub vrrp_vips: Vec<std::net::IpAddr>,
    /// Rounds of gratuitous ARP / NA for the floating IPs on MASTER [default: 3].
    pub garp_count: Option<u32>,
    /// Time between those rounds [default: 100ms].
    pub garp_interval: Option<HDuration>,
    /// LAN prefix to SNAT to the first IPv4 floating IP; enables the nftables step.
    pub snat_source: Option<Cidr>,
    /// The address the LAN is NATed to when nat-notify does not move it (a BGP-announced
    /// shared IP kept on `lo` of both nodes) [default: the first IPv4 floating IP].
    pub snat_to: Option<std::net::IpAddr>,
    /// nftables table (family ip) hakit keeps its SNAT chain in.
    pub snat_table: Option<String>,
    /// The gateway the LAN's NATed traffic leaves through, when it is not the node's default
    /// one (DigitalOcean's anchor gateway): with the SNAT rule, the MASTER ensures the
    /// policy rules `from snat_source` (main table's specific routes first) and a default
    /// route via this gateway on `interface` in `egress_table`; the node's own traffic keeps
    /// its default route.
    pub egress_gateway: Option<std::net::IpAddr>,
    /// The routing table of that default route [default: 1147].
    pub egress_table: Option<u32>,
    /// conntrackd configuration file; enables the conntrackd steps.
    pub conntrackd_config: Option<PathBuf>,
    /// Units restarted (or started) on MASTER and stopped on BACKUP/FAULT/STOP.
    #[serde(default)]
    pub units: Vec<String>,
    /// `restart` (default) or `start`.
    pub unit_action: Option<UnitAction>,
    /// Commands run in order on MASTER, stopping at the first failure.
    #[serde(default)]
    pub up: Vec<Vec<String>>,
    /// Commands run in order on BACKUP/FAULT/STOP (list them in the order to run,
    /// usually the reverse of `up`); every one is attempted.
    #[serde(default)]
    pub down: Vec<Vec<String>>,
    /// The MASTER steps, group by group in this order (from `commands`, `units`, `address`,
    /// `snat`, `conntrackd`, `bgp`; a group left out does not run). Default: conntrackd's
    /// commit, address (and the provider claim), snat, bgp, conntrackd, units, commands.
    /// Storage: `["commands", "units", "address"]` promotes and mounts before the service
    /// starts, and adds the service address last.
    pub master_steps: Option<Vec<StepName>>,
    /// The BACKUP steps (and FAULT's and STOP's, before their own subsets), group by group
    /// in this order. Default: bgp, commands, units, address, snat, conntrackd. Storage:
    /// `["address", "units", "commands"]` stops the service before unmounting and demoting.
    pub backup_steps: Option<Vec<StepName>>,
    /// Steps that run on FAULT, from `commands`, `units`, `address`, `snat`, `conntrackd`.
    pub fault_steps: Option<Vec<StepName>>,
    /// Steps that run on STOP (same names).
    pub stop_steps: Option<Vec<StepName>>,
    /// Claim the floating IP at the provider on MASTER (and re-claim on
    /// MASTER_RX_LOWER_PRI), with the `[fip]` table's settings.
    pub fip_claim: Option<bool>,
    /// The address to claim, if not `[fip]`'s `ip`.
    pub fip_ip: Option<std::net::IpAddr>,
    /// How long the claim is retried (with backoff) before the step fails [default: 5m].
    pub fip_retry_for: Option<HDuration>,
    /// Set the role of the `[bgp]` speaker's announcement: primary on MASTER, secondary
    /// on BACKUP (FAULT and STOP as `[bgp]` says), in place.
    pub announce: Option<bool>,
    /// The `[bgp]` prefixes this instance's role moves [default: all of them]. A pair that
    /// shares several addresses with a primary each (per-IP active/standby: two instances
    /// in opposite roles) names each instance's own; no prefix may belong to two
    /// instances.
    #[serde(default)]
    pub announce_prefixes: Vec<hakit_core::config::Cidr>,
}

/// Names of the optional step groups on FAULT/STOP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepName {
    Commands,
    Units,
    Address,
    Snat,
    Conntrackd,
    /// The BGP announcement's role.
    Bgp,
}

/// Lays a single instance given by flags over the file's instances (the one of the same
/// name, the only one, or a new `VI_1`).
pub fn apply(args: InstanceArgs, mut all: Vec<Instance>) -> Vec<Instance> {
    if !args.any() {
        return all;
    }
    let name = args
        .instance
        .clone()
        .or_else(|| (all.len() == 1).then(|| all[0].name.clone()))
        .unwrap_or_else(|| "VI_1".into());
    let pos = all.iter().position(|i| i.name == name).unwrap_or_else(|| {
        all.push(Instance {
            name: name.clone(),
            ..Instance::default()
        });
        all.len() - 1
    });
    let i = &mut all[pos];
    i.interface = args.interface.or(i.interface.take());
    if !args.floating_ips.is_empty() {
        i.floating_ips = args.floating_ips;
    }
    if !args.vrrp_vips.is_empty() {
        i.vrrp_vips = args.vrrp_vips;
    }
    i.snat_source = args.snat_source.or(i.snat_source);
    i.conntrackd_config = args.conntrackd_config.or(i.conntrackd_config.take());
    if !args.units.is_empty() {
        i.units = args.units;
    }
    i.unit_action = args.unit_action.or(i.unit_action);
    i.garp_count = args.garp_count.or(i.garp_count);
    i.garp_interval = args.garp_interval.or(i.garp_interval);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use hakit_core::config::parse;

    #[test]
    fn notify_instances_parse() {
        let f: NotifyFile = parse(
            r#"
[notify]
unknown_instance = "fail"
command_timeout = "5s"

[[notify.instance]]
name = "VI_1"
interface = "eth1"
floating_ips = ["203.0.113.10/32", "2001:db8::10"]
vrrp_vips = ["198.51.100.1"]
snat_source = "198.51.100.0/24"
conntrackd_config = "/etc/conntrackd/conntrackd.conf"
units = ["lelastic"]
up = [["drbdadm", "primary", "r0"], ["mount", "/dev/drbd0", "/srv"]]
down = [["umount", "/srv"], ["drbdadm", "secondary", "r0"]]
fault_steps = ["address", "conntrackd"]
"#,
        )
        .unwrap();
        let n = &f.notify;
        assert_eq!(n.unknown_instance, Some(UnknownInstance::Fail));
        let i = &n.instances[0];
        assert_eq!(i.floating_ips[1].to_string(), "2001:db8::10/128");
        assert_eq!(i.up[1], ["mount", "/dev/drbd0", "/srv"]);
        assert_eq!(
            i.fault_steps.as_deref(),
            Some(&[StepName::Address, StepName::Conntrackd][..])
        );
        let err = parse::<NotifyFile>("[[notify.instance]]\nname = \"x\"\nfloating_ip = []\n")
            .unwrap_err();
        assert!(err.contains("unknown field `floating_ip`"), "{err}");
        let err =
            parse::<NotifyFile>("[[notify.instance]]\nname = \"x\"\nfault_steps = [\"fip\"]\n")
                .unwrap_err();
        assert!(err.contains("unknown variant `fip`"), "{err}");
    }
}
