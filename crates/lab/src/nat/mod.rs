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
mod files;
mod measure;
pub mod second;
pub mod table;
mod watch;
mod world;

pub use crate::syslog::Syslog;
use crate::{bgp, conntrackd, keepalived, keepalived::Keepalived, wait_until, Lab, Ns};
use files::{hakit_toml, keepalived_conf, load_ruleset, sysctl_file, Hooks, TomlFor};
pub use measure::{Measured, Traffic};
pub use watch::Watch;
use world::{gateway_speaker, world};

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
    /// Active-active ([`second`]): a second instance, VI_2, in the opposite roles, with its
    /// own VIP, floating IP and client; conntrackd's external cache on, PurgeTimeout 5 s.
    /// With `l2` (its floating IP is found by ARP).
    pub active_active: bool,
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
            active_active: false,
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
    /// VI_2's client (active-active).
    pub client2: Option<Ns>,
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
        let client2 = second::client(&mut lab, &opts)?;
        let mut lan = vec![(&a, "eth1"), (&b, "eth1"), (&client, "eth0")];
        lan.extend(client2.iter().map(|c| (c, "eth0")));
        lab.bridge(&sw, "brlan", &lan)?;
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
        if let Some(c) = &client2 {
            second::client_addresses(c)?;
        }
        inet.ip(&["addr", "add", &format!("{SERVER}/24"), "dev", "eth0"])?;
        cloud.ip(&["addr", "add", &format!("{CLOUD}/24"), "dev", "eth0"])?;

        let syslog = Syslog::listen(&d.join("syslog.sock"))?;
        let (control, cloud_log) = world(&mut lab, &opts, &fake, &traffic, &cloud, &inet)?;

        let sysctl = sysctl_file(&d)?;
        let mut nodes = Vec::new();
        let [prio_a, prio_b] = opts.priorities;
        for (ns, id, prio) in [(&a, 1u64, prio_a), (&b, 2, prio_b)] {
            let role = ns.name.rsplit('-').next().unwrap_or("x").to_string();
            let host = id + 1;
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
            let (speaker_script, daemon) = match opts.bgp {
                Some(b) => gateway_speaker(&mut lab, ns, &role, id, (&wan, &wan6), b)?,
                None => (None, None),
            };
            load_ruleset(ns, &d, &role, id)?;

            let ctd = conntrackd::start_with(
                &mut lab,
                ns,
                &role,
                &format!("192.0.2.{id}"),
                &format!("192.0.2.{}", 3 - id),
                "sync0",
                |c| second::conntrackd_conf(&opts, c),
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
            fs::write(&config, second::hakit_toml(&opts, toml, &ctd.conf))?;
            let cfg = config.to_string_lossy().to_string();
            let (kconf, track_file) = keepalived_conf(
                &opts,
                &Hooks {
                    role: &role,
                    id,
                    prio,
                    d: &d,
                    run: &run,
                    cfg: &cfg,
                    ctd_conf: &ctd.conf,
                    nat_notify: &nat_notify,
                    ha_check: &ha_check,
                },
            )?;
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
            client2,
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
        if nat.opts.active_active {
            nat.wait_second(1, Duration::from_secs(20))?;
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
