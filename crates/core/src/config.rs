//! The configuration file shared by all hakit binaries.
//!
//! One TOML file (default `/etc/hakit/hakit.toml`, `--config PATH` or `HAKIT_CONFIG`),
//! one table per binary plus `[general]`. Every key is also a flag and an environment
//! variable (`HAKIT_<TABLE>_<KEY>`); the precedence is flag > env > file > default. Flags
//! and env are resolved by clap (`env = …` on each argument, no clap default), the file and
//! the default by [`pick`], so each binary states its precedence in one line per key.
//!
//! Every table is `deny_unknown_fields`: a typo such as `cuont = 3` is a configuration
//! error naming the key and its line, never a silently ignored setting. Each binary parses
//! the whole file, so a typo in another binary's table is caught by whichever runs first.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use crate::{duration::HDuration, exit::usage_error};

/// Where the file is looked for when neither `--config` nor `HAKIT_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/hakit/hakit.toml";

/// The whole file. Absent tables are empty.
///
/// Each binary reads the tables it uses with their types and the others' as
/// [`Skip`], so a binary links only its own tables' parsers (garp-burst must stay under
/// 1 MiB). Unknown *tables* are refused by every binary; unknown keys inside a table are
/// refused by the binaries that read that table.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File<G = Garp, N = Notify, C = Skip, F = Fip, B = Skip> {
    #[serde(default)]
    pub general: General,
    #[serde(default)]
    pub garp: G,
    #[serde(default)]
    pub notify: N,
    /// `[check]`: its types live in `hakit-check`, which owns them.
    #[serde(default)]
    pub check: C,
    #[serde(default)]
    pub fip: F,
    /// `[bgp]`: the local BGP speaker (its type lives in `hakit-bgp`, which owns it).
    #[serde(default)]
    pub bgp: B,
}

/// A table another binary reads: accepted as is, checked by that binary.
pub type Skip = serde::de::IgnoredAny;

/// What `garp-burst` reads.
pub type GarpFile = File<Garp, Skip, Skip, Skip>;
/// What `nat-notify` reads.
pub type NotifyFile<B = Skip> = File<Skip, Notify, CheckTrackFile, Fip, B>;

/// The one key of `[check]` that `nat-notify status` reads: where the uplink monitor writes
/// its verdict (and its heartbeat beside it). Every other key of the table is ignored here.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
pub struct CheckTrackFile {
    pub track_file: Option<PathBuf>,
}
/// What `fip-claim` reads.
pub type FipFile<B = Skip> = File<Skip, Skip, Skip, Fip, B>;

/// A configuration view with the shared `[general]` table.
pub trait ConfigFile: for<'de> Deserialize<'de> + Default {
    fn general(&self) -> &General;
}

impl<G, N, C, F, B> ConfigFile for File<G, N, C, F, B>
where
    B: for<'de> Deserialize<'de> + Default,
    G: for<'de> Deserialize<'de> + Default,
    N: for<'de> Deserialize<'de> + Default,
    C: for<'de> Deserialize<'de> + Default,
    F: for<'de> Deserialize<'de> + Default,
{
    fn general(&self) -> &General {
        &self.general
    }
}

/// `[general]`: settings every binary shares.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct General {
    /// Datagram socket of the system logger (`HAKIT_SYSLOG_SOCKET`, default `/dev/log`).
    pub syslog_socket: Option<PathBuf>,
    /// Runtime directory for locks and recorded state (`HAKIT_RUNTIME_DIR`, default `/run/hakit`).
    pub runtime_dir: Option<PathBuf>,
    /// Directory of the Prometheus node_exporter textfile collector (`HAKIT_TEXTFILE_DIR`).
    pub textfile_dir: Option<PathBuf>,
    /// The pair's name, on every metric as `pair="…"` (alerts count MASTERs per pair).
    pub pair: Option<String>,
}

/// `[garp]`: defaults for `garp-burst` and for the GARP step of `nat-notify`.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Garp {
    /// Interface the frames go out of (the WAN leg).
    pub interface: Option<String>,
    /// Addresses to announce: gratuitous ARP for IPv4, unsolicited neighbour advertisements for IPv6.
    pub ips: Option<Vec<IpAddr>>,
    /// Rounds of frames to send [default: 3].
    pub count: Option<u32>,
    /// Time between rounds [default: 100ms].
    pub interval: Option<HDuration>,
    /// Send ARP replies instead of requests (some switches only learn from replies).
    pub reply: Option<bool>,
}

/// A cloud provider of floating IPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Aws,
    Linode,
    Hetzner,
    Digitalocean,
}

/// `[fip]`: `fip-claim` (and the provider step and probe that reuse it). Tokens are never
/// keys here: they come from the provider's environment variable or `token_file` (0600).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fip {
    /// The cloud: `aws`, `linode`, `hetzner` or `digitalocean`.
    pub provider: Option<Provider>,
    /// The floating / elastic / reserved IP to claim.
    pub ip: Option<std::net::IpAddr>,
    /// aws: the Elastic IP's allocation ID (instead of `ip`).
    pub allocation_id: Option<String>,
    /// hetzner: the Floating IP's ID (instead of `ip`).
    pub floating_ip_id: Option<u64>,
    /// This node's instance, Linode, server or droplet ID [default: from the metadata service].
    pub instance_id: Option<String>,
    /// aws: associate with this network interface instead of the instance.
    pub eni: Option<String>,
    /// aws: the region [default: from the metadata service].
    pub region: Option<String>,
    /// The other node(s) of the pair by ID: an IP they hold may be taken; one held by anyone else is refused unless --force.
    #[serde(default)]
    pub peers: Vec<String>,
    /// aws: route destinations moved to this node when they target a peer [default: 0.0.0.0/0 and ::/0].
    #[serde(default)]
    pub route_destinations: Vec<String>,
    /// linode: move the address (`/networking/ips/assign`) instead of IP Sharing.
    pub assign: Option<bool>,
    /// The provider API's base URL [default: the provider's public endpoint].
    pub endpoint_url: Option<String>,
    /// The metadata service's base URL [default: http://169.254.169.254]; never reached through a proxy.
    pub metadata_url: Option<String>,
    /// Extra CA certificate file (PEM) trusted beside the system bundle.
    pub ca_file: Option<PathBuf>,
    /// File holding the API token (mode 0600; refused if others can read it).
    pub token_file: Option<PathBuf>,
    /// Connect and read timeout of each request [default: 3s].
    pub timeout: Option<HDuration>,
    /// Overall deadline of a run, retries included [default: 30s].
    pub deadline: Option<HDuration>,
    /// Attempts per request for retriable failures [default: 5].
    pub attempts: Option<u32>,
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

/// See [`Notify::unknown_instance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UnknownInstance {
    Ignore,
    Fail,
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
}

/// See [`Instance::unit_action`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UnitAction {
    Restart,
    Start,
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

/// An address with a prefix length, `203.0.113.10/32` or `2001:db8::10/128`; a bare
/// address means a host prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Whether `ip` falls inside this prefix.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        match (self.addr, ip) {
            (V4(n), V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (V6(n), V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || format!("invalid address/prefix {s:?}: expected e.g. 203.0.113.10/32");
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = a.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Flag-or-env (already merged by clap), then file, then default.
pub fn pick<T>(cli: Option<T>, file: Option<T>, default: T) -> T {
    cli.or(file).unwrap_or(default)
}

/// The largest configuration file read (the annotated example is ~5 KB).
pub const MAX_CONFIG: u64 = 1 << 20;

/// Loads the configuration. `explicit` is `--config`/`HAKIT_CONFIG`: when given, the file
/// must exist; otherwise [`DEFAULT_PATH`] is read if present and an absent file means
/// "all defaults". Every error is a usage error (exit 2) naming the file.
pub fn load<F: ConfigFile>(explicit: Option<&Path>) -> anyhow::Result<F> {
    let (path, required) = match explicit {
        Some(p) => (p, true),
        None => (Path::new(DEFAULT_PATH), false),
    };
    if !required && !path.exists() {
        return Ok(F::default());
    }
    let text = crate::runtime::read_file(path, MAX_CONFIG, crate::runtime::Trust::Config)
        .map_err(|e| usage_error(format!("cannot read {e:#}")))?;
    parse(&text).map_err(|msg| usage_error(format!("config {}:{msg}", path.display())))
}

/// Parses file text; the error is one line, `LINE:COL: message`.
pub fn parse<F: ConfigFile>(text: &str) -> Result<F, String> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
        let msg = e.message().replace('\n', " ");
        format!("{line}:{col}: {}", msg.trim())
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_a_full_file() {
        let f: File = parse(
            r#"
[general]
syslog_socket = "/tmp/log.sock"
runtime_dir = "/tmp/hakit"

[garp]
interface = "eth0"
ips = ["192.0.2.10", "2001:db8::10"]
count = 3
interval = "1.5s"
reply = true
"#,
        )
        .unwrap();
        assert_eq!(
            f.general.syslog_socket,
            Some(PathBuf::from("/tmp/log.sock"))
        );
        assert_eq!(f.garp.count, Some(3));
        assert_eq!(f.garp.interval.unwrap().get(), Duration::from_millis(1500));
        assert_eq!(f.garp.ips.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let err = parse::<File>("[garp]\ninterface = \"eth0\"\ncuont = 3\n").unwrap_err();
        assert!(err.starts_with("3:1:"), "{err}");
        assert!(err.contains("unknown field `cuont`"), "{err}");
        assert!(!err.contains('\n'));
        let err = parse::<File>("[garpp]\n").unwrap_err();
        assert!(err.contains("unknown field `garpp`"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        let err = parse::<File>("[garp]\ninterval = \"200\"\n").unwrap_err();
        assert!(err.contains("invalid duration"), "{err}");
        let err = parse::<File>("[garp]\nips = [\"192.0.2.300\"]\n").unwrap_err();
        assert!(err.starts_with("2:"), "{err}");
    }

    #[test]
    fn notify_instances_parse() {
        let f: File = parse(
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
        let err =
            parse::<File>("[[notify.instance]]\nname = \"x\"\nfloating_ip = []\n").unwrap_err();
        assert!(err.contains("unknown field `floating_ip`"), "{err}");
        let err = parse::<File>("[[notify.instance]]\nname = \"x\"\nfault_steps = [\"fip\"]\n")
            .unwrap_err();
        assert!(err.contains("unknown variant `fip`"), "{err}");
    }

    #[test]
    fn cidr_parses_and_matches() {
        let c: Cidr = "198.51.100.0/24".parse().unwrap();
        assert!(c.contains("198.51.100.77".parse().unwrap()));
        assert!(!c.contains("198.51.101.1".parse().unwrap()));
        assert!("0.0.0.0/0"
            .parse::<Cidr>()
            .unwrap()
            .contains("203.0.113.1".parse().unwrap()));
        for bad in ["198.51.100.0/33", "x/24", "2001:db8::/129", "1.2.3.4/"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn precedence_is_flag_then_file_then_default() {
        assert_eq!(pick(Some(1), Some(2), 3), 1);
        assert_eq!(pick(None, Some(2), 3), 2);
        assert_eq!(pick(None::<u32>, None, 3), 3);
    }

    #[test]
    fn missing_explicit_file_is_a_usage_error() {
        let e = load::<File>(Some(Path::new("/nonexistent/hakit.toml"))).unwrap_err();
        assert_eq!(crate::Exit::of_error(&e), crate::Exit::Usage);
        assert!(format!("{e:#}").contains("/nonexistent/hakit.toml"));
    }
}
