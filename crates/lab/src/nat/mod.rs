//! The failover lab: a full HA NAT gateway pair in namespaces, for `make demo`, `make
//! chaos` and the failover benchmarks.
//!
//! ```text
//!  client 198.51.100.50 ── brlan ──┬─ eth1 a 198.51.100.2 ─ eth0 203.0.113.2 ─┬─ brwan ── inet 203.0.113.254
//!  (default via VIP .1)            │    sync0 192.0.2.1                       │         (stream/echo server;
//!                                  │       │ conntrackd FTFW                  │          FIP/32 routed by the
//!                                  └─ eth1 b 198.51.100.3 ─ eth0 203.0.113.3 ─┤          provider)
//!                                       sync0 192.0.2.2                       └── cloud 203.0.113.253
//!                                                                                 (fake provider API)
//! ```
//!
//! Each node runs keepalived (VRRP v3 on the LAN leg, VIP 198.51.100.1), `nat-notify` on
//! keepalived's notify FIFO, `ha-check` as the `vrrp_script` (uplink ping and WAN link),
//! the shipped strict nftables ruleset and sysctl file, and conntrackd (the shipped
//! template) on the sync link. The floating IP 203.0.113.10 is routed by the fake provider:
//! the "internet" reaches it through whichever node the provider says owns it, so a
//! failover is only complete when `nat-notify` has claimed it through the fip-claim library.

use std::{
    fs,
    net::IpAddr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use anyhow::{bail, Context};
use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

mod converge;
mod measure;
pub mod table;
mod watch;

pub use crate::syslog::Syslog;
use crate::{bgp, conntrackd, keepalived, keepalived::Keepalived, wait_until, Lab, Ns};
pub use measure::{Measured, Traffic};
pub use watch::Watch;

pub const VIP: &str = "198.51.100.1";
pub const FIP: &str = bgp::SHARED;
pub const SERVER: &str = "203.0.113.254";
pub const CLOUD: &str = "203.0.113.253";
pub const CLIENT: &str = "198.51.100.50";

pub use crate::now_unix;

/// How the pair is configured.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Where `nat-notify` and `ha-check` are.
    pub bin_dir: PathBuf,
    /// Where `hakit-fake-cloud` and `hakit-lab-traffic` are.
    pub lab_bin_dir: PathBuf,
    /// VRRP advertisement interval, seconds ("0.02" is the shipped fast profile).
    pub advert_int: String,
    /// keepalived's `down_timer_adverts`: adverts missed before the backup takes over (the
    /// shipped profile: 6, so that 2% loss on the VRRP path cannot take a pair down).
    pub down_timer_adverts: Option<u32>,
    /// VRRP priorities of a and b (the standard profile: 150 and 100; the L2 fast one: 254
    /// and 253, so the backup's skew time is ~0).
    pub priorities: [u8; 2],
    /// keepalived's `preempt_delay` (seconds); `None` with `nopreempt` false: preempt at once.
    pub preempt_delay: Option<u32>,
    pub nopreempt: bool,
    /// conntrackd's external cache (`DisableExternalCache off`): the backup keeps the peer's
    /// state in conntrackd and commits it on MASTER; without it the kernel table is warm.
    pub external_cache: bool,
    /// The baseline hook instead of nat-notify: conntrack-tools' primary-backup.sh, `ip addr`,
    /// `arping`, `nft` and `curl` against the provider, as keepalived per-state hooks.
    pub shell_hook: bool,
    /// Linode as it routes: the shared IP on `lo` of both nodes, announced by a BGP speaker
    /// on each to an FRR route server in `inet` ([`crate::bgp`]); no provider call moves it.
    pub bgp: Option<bgp::Opts>,
    /// Uplink health by `ha-check monitor` and keepalived's `track_file` (the shipped
    /// profile) instead of `ha-check` as a 1-second `vrrp_script`.
    pub monitor: bool,
    /// The seed design's health check instead of ha-check: `ha-check.sh` (ping the gateway
    /// once, `-W 1`) as a vrrp_script with interval 2, fall 2.
    pub seed_check: bool,
    /// Bare metal as it routes (the L2 profiles): the floating IP is on-link on the WAN
    /// segment and the upstream learns who holds it by ARP (nat-notify's gratuitous ARP
    /// after it adds the address), as in examples/bare-metal; no provider moves a route
    /// and nat-notify claims nothing.
    pub l2: bool,
}

/// An address beyond the upstream gateway (on `inet`'s loopback): the monitor's
/// "external target", routed through the gateway by a host route on each node.
pub const EXTERNAL: &str = "192.0.2.200";
/// A second host beyond the gateway: the shipped profiles want at least two (a quorum
/// group, any one answering is enough).
pub const EXTERNAL2: &str = "192.0.2.201";
/// Both, as one prefix (the nodes' host route, a filter that silences both).
pub const EXTERNALS: &str = "192.0.2.200/31";

impl Opts {
    pub fn new(bin_dir: &Path) -> Opts {
        Opts {
            bin_dir: bin_dir.to_path_buf(),
            lab_bin_dir: bin_dir.to_path_buf(),
            advert_int: "0.02".into(),
            down_timer_adverts: Some(6),
            priorities: [150, 100],
            preempt_delay: Some(1),
            nopreempt: false,
            external_cache: false,
            shell_hook: false,
            bgp: None,
            monitor: false,
            seed_check: false,
            l2: false,
        }
    }

    /// The L2 fast profile as hakit-setup renders it (PROFILE_SPEED=fast): VRRPv3 adverts
    /// every 10 ms, master down after 4 missed, priorities 254/253 (skew time ~0).
    pub fn fast_profile(&mut self) {
        self.advert_int = "0.01".into();
        self.down_timer_adverts = Some(4);
        self.priorities = [254, 253];
    }
}

/// One gateway.
pub struct Node {
    pub ns: Ns,
    pub role: String,
    /// Provider ID.
    pub id: u64,
    pub priority: u8,
    pub wan: String,
    pub lan: String,
    pub config: PathBuf,
    pub run: PathBuf,
    pub keepalived_conf: String,
    pub keepalived: Option<Keepalived>,
    pub conntrackd: conntrackd::Conntrackd,
    /// BGP mode: the WAN's IPv6 address (the next hop the route server sees), lelastic's
    /// control script (GoBGP) and the node's speaker.
    pub wan6: String,
    /// BGP mode: eth0's link-local address (FRR's speaker sends it as the next hop).
    pub wan_ll: String,
    pub speaker_script: Option<PathBuf>,
    pub daemon: Option<bgp::Daemon>,
    starts: u32,
    stopping: Option<u32>,
    /// Monitor profile: the running `ha-check monitor`, its track file and its starts.
    pub monitor: Option<u32>,
    pub track_file: PathBuf,
    monitor_starts: u32,
}

/// The whole pair with its client, server and provider.
pub struct NatLab {
    pub lab: Lab,
    pub opts: Opts,
    pub client: Ns,
    pub inet: Ns,
    pub cloud: Ns,
    pub nodes: Vec<Node>,
    pub syslog: Syslog,
    pub control: PathBuf,
    cloud_log: PathBuf,
    /// BGP mode: the shared IPv6 ranges that follow VI_1 (all of them, unless a scenario
    /// gives some to another instance).
    pub moved6: Vec<&'static str>,
}

/// What [`hakit_toml`] needs of a node.
struct TomlFor<'a> {
    id: u64,
    role: &'a str,
    run: &'a Path,
    sock: &'a Path,
    ctd: &'a Path,
    token: &'a Path,
    d: &'a Path,
    systemctl: &'a str,
    speaker_script: Option<&'a Path>,
    daemon: Option<&'a bgp::Daemon>,
}

/// A node's hakit.toml: the instance, the provider (or the BGP speaker) and the uplink
/// check as the NAT lab runs it.
fn hakit_toml(opts: &Opts, n: &TomlFor) -> String {
    let TomlFor {
        id,
        role,
        run,
        sock,
        ctd,
        token,
        d,
        systemctl,
        speaker_script,
        daemon,
    } = n;
    let id = *id;
    // The peer's last octet on the LAN (a is .2, b is .3).
    let peer = 4 - id;
    let (instance, fip) = match opts.bgp {
        None => (
            format!(
                r#"floating_ips = ["{FIP}/32"]
garp_count = 2
garp_interval = "20ms"
{claim}"#,
                claim = if opts.l2 {
                    ""
                } else {
                    "fip_claim = true\nfip_retry_for = \"60s\"\n"
                }
            ),
            format!(
                r#"provider = "hetzner"
endpoint_url = "http://{CLOUD}:8080/v1""#
            ),
        ),
        Some(b) => {
            let script = speaker_script
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string());
            let mine = if id == 1 { "primary" } else { "secondary" };
            let announce = match b.method {
                bgp::Method::InPlace => "announce = true\n".to_string(),
                bgp::Method::RestartOnMaster => format!(
                    "up = [[\"{script}\", \"restart\", \"{mine}\"]]\ndown = [[\"{script}\", \"stop\"]]\n"
                ),
                bgp::Method::RestartSwapped => format!(
                    "up = [[\"{script}\", \"restart\", \"primary\"]]\ndown = [[\"{script}\", \"restart\", \"secondary\"]]\n"
                ),
            };
            let speaker = daemon.map_or(String::new(), |d| d.hakit_conf());
            (
                format!("snat_to = \"{FIP}\"\n{announce}"),
                format!(
                    "provider = \"linode\"\nendpoint_url = \"http://{CLOUD}:8080/v4\"\n\n[bgp]\n{speaker}"
                ),
            )
        }
    };
    format!(
        r#"[general]
runtime_dir = "{run}"
syslog_socket = "{sock}"

[notify]
command_timeout = "5s"
{systemctl}
[[notify.instance]]
name = "VI_1"
interface = "eth0"
vrrp_vips = ["{VIP}"]
snat_source = "198.51.100.0/24"
conntrackd_config = "{ctd}"
{instance}
[fip]
ip = "{FIP}"
instance_id = "{id}"
peers = ["{other}"]
metadata_url = "http://{CLOUD}:8080"
token_file = "{token}"
timeout = "1s"
deadline = "3s"
{fip}

[check]
deadline = "150ms"
{check}"#,
        check = if opts.monitor {
            format!(
                r#"track_file = "{track}"
textfile = "{track}.prom"
[check.peer]
bind = "192.0.2.{id}"
address = "192.0.2.{other}"
keepalived_pid_file = "{ka_pid}"
vrrp_address = "198.51.100.{peer}"

# The upstream gateway, by ICMP and at layer 2, every 20 ms (the defaults): one group,
# either answering is enough (as the shipped profiles).
[[check.group]]
name = "gateway"
min = 1

[[check.probe]]
kind = "icmp"
name = "gateway"
target = "{SERVER}"
interface = "eth0"
group = "gateway"

[[check.probe]]
kind = "neighbour"
name = "gateway-arp"
target = "{SERVER}"
interface = "eth0"
group = "gateway"

# Beyond the gateway: two hosts, any one answering is enough.
[[check.probe]]
kind = "icmp"
name = "external"
target = "{EXTERNAL}"
group = "external"

[[check.probe]]
kind = "icmp"
name = "external-2"
target = "{EXTERNAL2}"
group = "external"

[[check.group]]
name = "external"
min = 1

# The kernel's view, re-checked on every netlink event.
[[check.probe]]
kind = "link"
interface = "eth0"

[[check.probe]]
kind = "route"
target = "0.0.0.0/0"
interface = "eth0"
"#,
                track = run.join("monitor").join("uplink").display(),
                other = 3 - id,
                // A link to the running keepalived's pid file (each start
                // has its own: start_keepalived points the link at it).
                ka_pid = d.join(format!("{role}.keepalived.pid")).display(),
            )
        } else {
            format!(
                r#"
[[check.probe]]
kind = "icmp"
name = "uplink"
target = "{SERVER}"
interface = "eth0"

[[check.probe]]
kind = "link"
interface = "eth0"
"#
            )
        },
        run = run.display(),
        sock = sock.display(),
        ctd = ctd.display(),
        other = 3 - id,
        token = token.display(),
    )
}

fn bin(dir: &Path, name: &str) -> anyhow::Result<String> {
    let p = dir.join(name);
    if !p.is_file() {
        bail!("{} is not built", p.display());
    }
    Ok(fs::canonicalize(&p)?.to_string_lossy().to_string())
}

impl NatLab {
    /// Builds the topology, starts everything and waits until node a is a converged MASTER
    /// that owns the floating IP at the provider.
    pub fn up(opts: Opts) -> anyhow::Result<NatLab> {
        for tool in ["keepalived", "conntrackd", "nft", "sysctl", "ip"] {
            crate::which(tool)
                .with_context(|| format!("{tool} is not installed (make deps installs it)"))?;
        }
        let nat_notify = bin(&opts.bin_dir, "nat-notify")?;
        let ha_check = bin(&opts.bin_dir, "ha-check")?;
        let fake = bin(&opts.lab_bin_dir, "hakit-fake-cloud")?;
        let traffic = bin(&opts.lab_bin_dir, "hakit-lab-traffic")?;
        let mut lab = Lab::new()?;
        let d = lab.dir().to_path_buf();
        let sw = lab.ns("sw")?;
        let a = lab.ns("a")?;
        let b = lab.ns("b")?;
        let client = lab.ns("client")?;
        let inet = lab.ns("inet")?;
        let cloud = lab.ns("cloud")?;
        lab.bridge(
            &sw,
            "brlan",
            &[(&a, "eth1"), (&b, "eth1"), (&client, "eth0")],
        )?;
        lab.bridge(
            &sw,
            "brwan",
            &[
                (&a, "eth0"),
                (&b, "eth0"),
                (&inet, "eth0"),
                (&cloud, "eth0"),
            ],
        )?;
        lab.veth(&a, "sync0", &b, "sync0")?;
        client.ip(&["addr", "add", &format!("{CLIENT}/24"), "dev", "eth0"])?;
        client.ip(&["route", "add", "default", "via", VIP])?;
        inet.ip(&["addr", "add", &format!("{SERVER}/24"), "dev", "eth0"])?;
        cloud.ip(&["addr", "add", &format!("{CLOUD}/24"), "dev", "eth0"])?;

        let syslog = Syslog::listen(&d.join("syslog.sock"))?;
        let control = d.join("cloud");
        lab.tmpfs(&control)?;
        let cloud_log = d.join("cloud-requests.log");
        let (control_s, log_s) = (
            control.to_string_lossy().to_string(),
            cloud_log.to_string_lossy().to_string(),
        );
        let mut cloud_argv = vec![
            fake.as_str(),
            "--ip",
            FIP,
            "--owner",
            "1",
            "--node",
            "1=203.0.113.2",
            "--node",
            "2=203.0.113.3",
            "--instant",
            "--control-dir",
            &control_s,
            "--log",
            &log_s,
        ];
        let listen = format!("{CLOUD}:8080");
        cloud_argv.insert(1, &listen);
        if opts.bgp.is_some() {
            // Linode: the API only authorises (IP Sharing); the route server routes.
            cloud_argv.extend(["--provider", "linode"]);
        } else if opts.l2 {
            // Nothing routes the floating IP: it is on-link here, found by ARP.
            cloud_argv.extend(["--provider", "hetzner"]);
        } else {
            cloud_argv.extend(["--provider", "hetzner", "--route-ns", &inet.name]);
        }
        lab.spawn(&cloud, "cloud", &cloud_argv)?;
        if opts.bgp.is_some() {
            inet.ip(&[
                "addr",
                "add",
                &format!("{}/64", bgp::RS),
                "dev",
                "eth0",
                "nodad",
            ])?;
            // The shared IP sits in the WAN prefix and both gateways hold it on lo: were it
            // on-link here, the "internet" would ARP for it whenever no BGP path exists and
            // reach a gateway no route server chose. Only the upper half is on-link (plus
            // the gateways' own addresses): no path means no traffic, as on Linode.
            inet.ip(&["addr", "del", &format!("{SERVER}/24"), "dev", "eth0"])?;
            inet.ip(&["addr", "add", &format!("{SERVER}/25"), "dev", "eth0"])?;
            for gw in ["203.0.113.2", "203.0.113.3"] {
                inet.ip(&["route", "add", &format!("{gw}/32"), "dev", "eth0"])?;
            }
            let conf = bgp::route_server_conf(FIP, &["2001:db8:ff::2", "2001:db8:ff::3"]);
            bgp::start_frr(&mut lab, &inet, "rs", &conf, 179)?;
        }
        lab.spawn(&inet, "server", &[&traffic, "server", SERVER])?;
        if opts.monitor {
            inet.ip(&["addr", "add", &format!("{EXTERNAL}/32"), "dev", "lo"])?;
            inet.ip(&["addr", "add", &format!("{EXTERNAL2}/32"), "dev", "lo"])?;
        }

        let sysctl = d.join("hakit-sysctl.conf");
        fs::write(
            &sysctl,
            include_str!("../../../../keepalived/sysctl.d/90-hakit.conf.in")
                .replace("@WAN_IF@", "eth0")
                .replace("@CONNTRACK_MAX@", "262144")
                .lines()
                .filter(|l| !l.contains("nf_conntrack_max"))
                .collect::<Vec<_>>()
                .join("\n"),
        )?;
        let mut nodes = Vec::new();
        let [prio_a, prio_b] = opts.priorities;
        for (ns, id, prio) in [(&a, 1u64, prio_a), (&b, 2, prio_b)] {
            let role = ns.name.rsplit('-').next().unwrap_or("x").to_string();
            let host = id + 1;
            let peer = 3 - id + 1;
            let (wan, lan) = (format!("203.0.113.{host}"), format!("198.51.100.{host}"));
            ns.ip(&["addr", "add", &format!("{wan}/24"), "dev", "eth0"])?;
            ns.ip(&["addr", "add", &format!("{lan}/24"), "dev", "eth1"])?;
            ns.ip(&["addr", "add", &format!("192.0.2.{id}/24"), "dev", "sync0"])?;
            ns.ip(&["route", "add", "default", "via", SERVER])?;
            if opts.monitor {
                ns.ip(&["route", "add", EXTERNALS, "via", SERVER])?;
            }
            crate::run_ok(&mut ns.command(&["sysctl", "-q", "-p", &sysctl.to_string_lossy()]))?;
            let wan6 = format!("2001:db8:ff::{host}");
            let (mut speaker_script, mut daemon) = (None, None);
            if let Some(b) = opts.bgp {
                // The route server's FRR sends router advertisements (extended next hop):
                // the gateway keeps the one static address the route server peers with.
                crate::run_ok(&mut ns.command(&[
                    "sysctl",
                    "-q",
                    "-w",
                    "net.ipv6.conf.eth0.autoconf=0",
                    "net.ipv6.conf.eth0.accept_ra=0",
                    // A static address survives a link bounce, as networkd restores it.
                    "net.ipv6.conf.eth0.keep_addr_on_down=1",
                ]))?;
                ns.ip(&["addr", "add", &format!("{wan6}/64"), "dev", "eth0", "nodad"])?;
                bgp::shared_on_lo(ns, FIP)?;
                let first = match b.method {
                    bgp::Method::RestartOnMaster if id == 1 => "primary",
                    _ => "secondary",
                };
                let (sc, dm) = bgp::start_gateway(&mut lab, ns, &d, &role, &wan, b.speaker, first)?;
                (speaker_script, daemon) = (sc, Some(dm));
            }
            let rules = crate::nftables_ruleset(&[
                ("WAN_IF", "eth0"),
                ("LAN_IF", "eth1"),
                ("SYNC_IF", "sync0"),
                ("LAN_NET", "198.51.100.0/24"),
                ("FIP", FIP),
                ("PEER_LAN", &format!("198.51.100.{peer}")),
                ("PEER_SYNC", &format!("192.0.2.{}", 3 - id)),
                ("ADMIN_NET", "192.0.2.0/24"),
            ]);
            let rules_path = d.join(format!("{role}.nft"));
            fs::write(&rules_path, rules)?;
            crate::run_ok(&mut ns.command(&["nft", "-f", &rules_path.to_string_lossy()]))?;

            let ctd = conntrackd::start_with(
                &mut lab,
                ns,
                &role,
                &format!("192.0.2.{id}"),
                &format!("192.0.2.{}", 3 - id),
                "sync0",
                |c| {
                    if opts.external_cache {
                        c.replace("DisableExternalCache on", "DisableExternalCache off")
                    } else {
                        c
                    }
                },
            )?;
            // As /run on a node: a tmpfs (nat-notify's runtime directory, the monitor's
            // track file and heartbeat).
            let run = d.join(format!("{role}-run"));
            lab.tmpfs(&run)?;
            let config = d.join(format!("{role}.hakit.toml"));
            let token = d.join(format!("{role}.token"));
            fs::write(&token, "fake-token\n")?;
            fs::set_permissions(&token, fs::Permissions::from_mode(0o600))?;
            let systemctl = match &speaker_script {
                Some(sc) => format!(
                    "systemctl = \"{}\"\n",
                    bgp::systemctl_script(&d, &role, sc)?.display()
                ),
                None => String::new(),
            };
            let toml = hakit_toml(
                &opts,
                &TomlFor {
                    id,
                    role: &role,
                    run: &run,
                    sock: &syslog.path,
                    ctd: &ctd.conf,
                    token: &token,
                    d: &d,
                    systemctl: &systemctl,
                    speaker_script: speaker_script.as_deref(),
                    daemon: daemon.as_ref(),
                },
            );
            fs::write(&config, toml)?;
            let cfg = config.to_string_lossy().to_string();
            let fifo = d.join(format!("{role}.vrrp.fifo"));
            let (global, hooks) = if opts.shell_hook {
                let hook = d.join(format!("{role}-hook.sh"));
                fs::write(&hook, shell_hook(id, &ctd.conf))?;
                fs::set_permissions(&hook, fs::Permissions::from_mode(0o755))?;
                let h = hook.display();
                (
                    String::new(),
                    format!(
                        "    notify_master \"{h} primary\"\n    notify_backup \"{h} backup\"\n    notify_fault \"{h} backup\"\n    notify_stop \"{h} backup\"\n"
                    ),
                )
            } else {
                (
                    format!(
                        "    vrrp_notify_fifo {}\n    vrrp_notify_fifo_script \"{nat_notify} --config {cfg} fifo\"\n",
                        fifo.display()
                    ),
                    String::new(),
                )
            };
            let preempt = match (opts.nopreempt, opts.preempt_delay) {
                (true, _) => "    nopreempt\n".to_string(),
                (false, Some(s)) => format!("    preempt_delay {s}\n"),
                (false, None) => String::new(),
            };
            let track_file = run.join("monitor").join("uplink");
            // As shipped: keepalived real-time by inheritance (its unit's drop-in, here
            // chrt: see start_keepalived), not vrrp_rt_priority, which breaks reloads.
            let (scripts, extra) = if opts.monitor {
                // As the shipped templates wire it: the verdict by track_file (weight 0:
                // FAULT at once), the monitor's heartbeat by a vrrp_script that demotes.
                (
                    format!(
                        "track_file hakit_uplink {{\n    file {tf}\n    weight 0\n    init_file 1\n}}\nvrrp_script chk_hakit_monitor {{\n    script \"{ha_check} --config {cfg} monitor-alive\"\n    interval 1\n    timeout 1\n    fall 2\n    rise 1\n    weight -60\n}}\n",
                        tf = track_file.display()
                    ),
                    format!(
                        "{hooks}{preempt}    track_file {{\n        hakit_uplink\n    }}\n    track_script {{\n        chk_hakit_monitor\n    }}\n"
                    ),
                )
            } else if opts.seed_check {
                let sh = d.join(format!("{role}-ha-check.sh"));
                fs::write(
                    &sh,
                    format!("#!/bin/sh\n# The seed design's check: the uplink answers one ping.\nexec ping -c 1 -W 1 -I eth0 {SERVER} >/dev/null 2>&1\n"),
                )?;
                fs::set_permissions(&sh, fs::Permissions::from_mode(0o755))?;
                (
                    format!(
                        "vrrp_script chk_gateway {{\n    script \"{}\"\n    interval 2\n    timeout 2\n    fall 2\n    rise 2\n    weight -60\n}}\n",
                        sh.display()
                    ),
                    format!("{hooks}{preempt}    track_script {{\n        chk_gateway\n    }}\n"),
                )
            } else {
                (
                    format!(
                        "vrrp_script chk_gateway {{\n    script \"{ha_check} --config {cfg}\"\n    interval 1\n    timeout 1\n    fall 2\n    rise 2\n    weight -60\n}}\n"
                    ),
                    format!("{hooks}{preempt}    track_script {{\n        chk_gateway\n    }}\n"),
                )
            };
            let kconf = keepalived::Vrrp {
                router_id: &role,
                iface: "eth1",
                priority: prio,
                advert_int: &opts.advert_int,
                vip: &format!("{VIP}/24"),
                extra: &match opts.down_timer_adverts {
                    Some(n) => format!("    down_timer_adverts {n}\n{extra}"),
                    None => extra.clone(),
                },
                global: &global,
                scripts: &scripts,
            }
            .render();
            nodes.push(Node {
                ns: ns.clone(),
                role,
                id,
                priority: prio,
                wan,
                lan,
                config,
                run,
                keepalived_conf: kconf,
                keepalived: None,
                conntrackd: ctd,
                wan_ll: if opts.bgp.is_some() {
                    bgp::link_local(ns, "eth0")
                } else {
                    String::new()
                },
                wan6,
                speaker_script,
                daemon,
                starts: 0,
                stopping: None,
                monitor: None,
                track_file,
                monitor_starts: 0,
            });
        }
        let mut nat = NatLab {
            lab,
            opts,
            client,
            inet,
            cloud,
            nodes,
            syslog,
            control,
            cloud_log,
            moved6: bgp::RANGES6.to_vec(),
        };
        crate::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            nat.owner().is_some()
        })
        .context("the fake provider did not start")?;
        if nat.opts.bgp.is_some() {
            // GoBGP waits 5-9 s before its first connect.
            for i in 0..2 {
                nat.wait_session(i, Duration::from_secs(30))?;
            }
        }
        if nat.opts.monitor {
            // Before keepalived, as the unit orders it.
            for i in 0..2 {
                nat.start_monitor(i)?;
            }
        }
        nat.start_keepalived(0)?;
        nat.start_keepalived(1)?;
        if let Err(e) = nat.wait_converged(0, Duration::from_secs(20)) {
            bail!(
                "lab start: node a never became the converged MASTER: {e:#}\nhook log:\n{}",
                nat.syslog_tail(20)
            );
        }
        Ok(nat)
    }

    /// Starts (or restarts) keepalived on node `i`.
    pub fn start_keepalived(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(pid) = self.nodes[i].stopping.take() {
            self.lab
                .signal_and_wait(pid, Signal::SIGTERM, Duration::from_secs(10));
        }
        let n = &mut self.nodes[i];
        n.starts += 1;
        let name = format!("{}{}", n.role, n.starts);
        let k = keepalived::start_with(
            &mut self.lab,
            &n.ns,
            &name,
            &n.keepalived_conf,
            self.opts.monitor,
        )?;
        k.wait_ready(Duration::from_secs(10))?;
        // The monitor's [check.peer] keepalived_pid_file: one name for every start.
        let link = self.lab.dir().join(format!("{}.keepalived.pid", n.role));
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&k.pid_file, &link)
            .with_context(|| format!("link {}", link.display()))?;
        n.keepalived = Some(k);
        Ok(())
    }

    /// Starts `ha-check monitor` on node `i` (as hakit-monitor.service does: its track
    /// file's directory created first) and waits for its first verdict.
    pub fn start_monitor(&mut self, i: usize) -> anyhow::Result<()> {
        let ha_check = bin(&self.opts.bin_dir, "ha-check")?;
        let n = &mut self.nodes[i];
        if let Some(dir) = n.track_file.parent() {
            fs::create_dir_all(dir)?;
        }
        n.monitor_starts += 1;
        let log = format!("{}-monitor{}", n.role, n.monitor_starts);
        let cfg = n.config.to_string_lossy().to_string();
        let pid = self
            .lab
            .spawn(&n.ns, &log, &[&ha_check, "--config", &cfg, "monitor"])?;
        n.monitor = Some(pid);
        let hb = hakit_core::heartbeat::path(&n.track_file);
        crate::wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
            fs::read_to_string(&hb).is_ok_and(|t| {
                t.contains(&format!("\"pid\":{pid},")) && !t.contains("\"healthy\":null")
            })
        })
        .with_context(|| format!("the monitor on {} gave no verdict", n.role))?;
        Ok(())
    }

    /// SIGKILL to node `i`'s monitor (no restart until [`NatLab::start_monitor`]).
    pub fn kill_monitor(&mut self, i: usize) {
        if let Some(pid) = self.nodes[i].monitor.take() {
            self.lab
                .signal_and_wait(pid, Signal::SIGKILL, Duration::from_secs(5));
        }
    }

    /// The value in node `i`'s track file ("0", "1"; "" when absent).
    pub fn track_value(&self, i: usize) -> String {
        fs::read_to_string(&self.nodes[i].track_file)
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Graceful stop of keepalived on node `i` (SIGTERM), without waiting: keepalived
    /// hands over at once but takes about a second to exit; [`NatLab::start_keepalived`]
    /// waits for that.
    pub fn stop_keepalived(&mut self, i: usize) {
        if let Some(k) = self.nodes[i].keepalived.take() {
            k.stop();
            self.nodes[i].stopping = Some(k.pid);
        }
    }

    /// A crash of node `i`: every link down, then SIGKILL to both keepalived processes (and
    /// in BGP mode the speaker).
    pub fn crash(&mut self, i: usize) -> anyhow::Result<()> {
        // Power lost: the links go first, the LAN leg first, so that the VRRP adverts and
        // the forwarding stop at the same instant (were keepalived killed first, the node
        // would forward for a few ms past its last advert and flatter the blackout), and a
        // dying BGP speaker's kernel cannot send a FIN that would tell the route server.
        for l in ["eth1", "eth0", "sync0"] {
            self.nodes[i].ns.ip(&["link", "set", l, "down"])?;
        }
        if let Some(k) = self.nodes[i].keepalived.take() {
            k.crash();
            self.lab
                .signal_and_wait(k.pid, Signal::SIGKILL, Duration::from_secs(5));
        }
        if self.opts.bgp.is_some() {
            self.kill_speaker(i);
        }
        Ok(())
    }

    /// Brings node `i`'s links back up (after [`NatLab::crash`]).
    pub fn links_up(&self, i: usize) -> anyhow::Result<()> {
        let ns = &self.nodes[i].ns;
        for l in ["eth0", "eth1", "sync0"] {
            ns.ip(&["link", "set", l, "up"])?;
        }
        // The default route went with the link.
        let _ = ns.ip(&["route", "replace", "default", "via", SERVER]);
        Ok(())
    }

    /// Who owns the floating IP at the provider (node ID).
    pub fn owner(&self) -> Option<u64> {
        fs::read_to_string(self.control.join("owner"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Index of the node with provider ID `id`.
    pub fn by_id(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Declares the provider's API down for `secs` from now.
    pub fn api_outage(&self, secs: f64) -> anyhow::Result<()> {
        fs::write(
            self.control.join("outage_until"),
            format!("{}\n", now_unix() + secs),
        )?;
        Ok(())
    }

    /// The provider's request log: (method and path) lines so far.
    pub fn cloud_requests(&self) -> Vec<String> {
        fs::read_to_string(&self.cloud_log)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// The next hop the "internet" uses for the floating IP.
    /// L2: the MAC the upstream's ARP entry for the floating IP names (none while it has
    /// no usable entry).
    pub fn fip_neighbour(&self) -> Option<hakit_net::Mac> {
        let fip: IpAddr = FIP.parse().ok()?;
        self.inet
            .netlink(|nl| {
                Ok(nl.neighbours(None)?.into_iter().find_map(|e| {
                    let usable = !matches!(e.state.as_str(), "failed" | "incomplete");
                    (e.addr == fip && usable).then_some(e.mac).flatten()
                }))
            })
            .ok()
            .flatten()
    }

    pub fn fip_route_via(&self) -> Option<IpAddr> {
        let fip: IpAddr = FIP.parse().ok()?;
        self.inet
            .netlink(|nl| {
                Ok(nl
                    .route_to(fip)?
                    .filter(|r| r.dst == Some(fip) && r.dst_len == 32)
                    .and_then(|r| r.nexthops.first().and_then(|h| h.gateway)))
            })
            .ok()
            .flatten()
    }

    /// BGP mode: kills node `i`'s speaker (SIGKILL: no NOTIFICATION reaches the route
    /// server, which keeps the path until its hold timer expires).
    pub fn kill_speaker(&mut self, i: usize) {
        let n = &self.nodes[i];
        let pidfiles = n.daemon.as_ref().map_or(Vec::new(), |d| d.pidfiles.clone());
        for p in pidfiles {
            if let Some(pid) = fs::read_to_string(&p)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                let proc = PathBuf::from(format!("/proc/{pid}"));
                wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
                    fs::read_to_string(proc.join("stat")).map_or(true, |s| s.contains(") Z "))
                });
            }
        }
    }

    /// BGP mode: starts node `i`'s speaker again, as a reboot would: lelastic as `role`,
    /// FRR with frr.conf's role (secondary: the one set through vtysh is lost), BIRD with
    /// the roles file hakit last wrote.
    pub fn start_speaker(&mut self, i: usize, role: &str) -> anyhow::Result<()> {
        let n = &self.nodes[i];
        let Some(speaker) = n.daemon.as_ref().map(|d| d.speaker) else {
            return Ok(());
        };
        if let Some(sc) = &n.speaker_script {
            crate::run_ok(&mut n.ns.command(&[&sc.to_string_lossy(), "restart", role]))?;
            return Ok(());
        }
        self.kill_speaker(i);
        let n = &self.nodes[i];
        let (ns, r, wan, d) = (
            n.ns.clone(),
            n.role.clone(),
            n.wan.clone(),
            self.lab.dir().to_path_buf(),
        );
        let (_, d) = bgp::start_gateway(&mut self.lab, &ns, &d, &r, &wan, speaker, role)?;
        self.nodes[i].daemon = Some(d);
        Ok(())
    }

    /// `nat-notify status --json` on node `i`: (exit code, parsed report).
    pub fn status(&self, i: usize) -> anyhow::Result<(i32, serde_json::Value)> {
        let n = &self.nodes[i];
        let nat_notify = bin(&self.opts.bin_dir, "nat-notify")?;
        let cfg = n.config.to_string_lossy().to_string();
        let out = crate::run(
            &mut n
                .ns
                .command(&[&nat_notify, "--config", &cfg, "status", "--json"]),
            Duration::from_secs(30),
        )?;
        let v = serde_json::from_slice(&out.stdout).with_context(|| {
            format!(
                "nat-notify status on {}: {}",
                n.role,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        Ok((out.status.code().unwrap_or(-1), v))
    }

    /// Sends `sig` to every keepalived on node `i` (for flapping tests).
    pub fn signal_keepalived(&self, i: usize, sig: Signal) {
        if let Some(k) = &self.nodes[i].keepalived {
            let _ = kill(Pid::from_raw(k.pid as i32), sig);
        }
    }

    /// The last `n` lines the hooks logged, for failure messages.
    pub fn syslog_tail(&self, n: usize) -> String {
        let l = self.syslog.since(0.0);
        l[l.len().saturating_sub(n)..]
            .iter()
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn dir(&self) -> &Path {
        self.lab.dir()
    }
}

impl Node {
    /// A rule SNATing the LAN to the floating IP is present: the shipped ruleset's static
    /// one (on both nodes, so no new flow can leave un-NATed while nat-notify is still on
    /// its way) or nat-notify's own (comment `hakit:VI_1`), which it adds if the static one
    /// is missing.
    pub fn snat(&self) -> bool {
        self.ns
            .exec(&["nft", "list", "chain", "ip", "hakit", "postrouting"])
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("snat to {FIP}")))
            .unwrap_or(false)
    }

    /// nat-notify's recorded state for VI_1.
    pub fn recorded(&self) -> serde_json::Value {
        fs::read(self.run.join("VI_1.state"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// keepalived's view: MASTER holds the VIP.
    pub fn has_vip(&self) -> bool {
        VIP.parse()
            .ok()
            .and_then(|v| self.ns.has_addr("eth1", v).ok())
            .unwrap_or(false)
    }

    pub fn has_fip(&self) -> bool {
        FIP.parse()
            .ok()
            .and_then(|v| self.ns.has_addr("eth0", v).ok())
            .unwrap_or(false)
    }
}

/// The baseline: what people run today as keepalived hooks.
fn shell_hook(id: u64, ctd_conf: &Path) -> String {
    let arping = crate::which("arping").map_or("arping".into(), |p| p.display().to_string());
    format!(
        r#"#!/bin/sh
# Baseline hook: conntrack-tools' primary-backup.sh, ip addr, arping, nft, curl.
CTD=/usr/share/doc/conntrackd/examples/sync/primary-backup.sh
case "$1" in
primary)
    sed -e 's#^CONNTRACKD_CONFIG=.*#CONNTRACKD_CONFIG={ctd}#' "$CTD" | sh -s primary
    ip addr add {FIP}/32 dev eth0 2>/dev/null
    {arping} -U -c 1 -I eth0 {FIP} >/dev/null 2>&1 &
    nft add rule ip hakit postrouting ip saddr 198.51.100.0/24 oifname eth0 snat to {FIP} comment '"hakit:VI_1"'
    curl -s -m 3 -X POST -H 'Authorization: Bearer fake-token' -H 'Content-Type: application/json' \
        -d '{{"server":{id}}}' http://{CLOUD}:8080/v1/floating_ips/7/actions/assign >/dev/null
    ;;
backup)
    ip addr del {FIP}/32 dev eth0 2>/dev/null
    for h in $(nft -a list chain ip hakit postrouting | sed -n 's/.*"hakit:VI_1".*handle \([0-9]*\)/\1/p'); do
        nft delete rule ip hakit postrouting handle "$h"
    done
    sed -e 's#^CONNTRACKD_CONFIG=.*#CONNTRACKD_CONFIG={ctd}#' "$CTD" | sh -s backup
    ;;
esac
exit 0
"#,
        ctd = ctd_conf.display()
    )
}
