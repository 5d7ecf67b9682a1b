//! Linode's routing, run for real: a route server on Debian's FRR and, on each gateway, the
//! speaker Linode users run (GoBGP configured exactly as lelastic configures it, or FRR as
//! in Linode's FRR guide).
//!
//! ```text
//!  gateway a: lo 203.0.113.10/32 (the shared IP, on both nodes)      inet: FRR route server AS 65000
//!    gobgpd AS 65001 (lelastic's config) ── eth0 2001:db8:ff::2 ──┐       2001:db8:ff::254
//!  gateway b                                                      ├── IPv6 eBGP, IPv4 routes with an
//!    gobgpd AS 65001                    ── eth0 2001:db8:ff::3 ──┘   extended next hop; the best
//!                                                                    path goes into inet's kernel
//! ```
//!
//! The route server emulates Linode's: it accepts only the shared prefix, and only from
//! the two Linodes of the share set; `65000:1` (primary) gets local preference 200 over
//! `65000:2` (secondary) at 100; between equal paths FRR keeps the one already selected
//! (its default for eBGP: no `bestpath compare-routerid`), Linode's "same role: no
//! failback"; nothing is advertised back to the Linodes. lelastic's gobgpd also lists a
//! second route server that never answers (one of Linode's four in maintenance), so
//! session quorum is exercised.
//!
//! lelastic itself is GoBGP v3 as a library with this configuration plus one `AddPath` per
//! address found on `lo` at start; the lab runs Debian's `gobgpd` with the same
//! configuration and adds the same paths with the `gobgp` CLI once its API answers
//! (`speaker.sh`), so a restart costs what lelastic's does (GoBGP's 5–9 s before its first
//! connect).

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context};

use crate::{Lab, Ns};

pub const RS: &str = "2001:db8:ff::254";
/// A second route server in lelastic's neighbor list that never answers.
pub const RS_DOWN: &str = "2001:db8:ff::253";
pub const PRIMARY: &str = "65000:1";
pub const SECONDARY: &str = "65000:2";
/// lelastic's hold time (keepalive 3 s): a crashed speaker's path stays this long.
pub const HOLD_S: f64 = 9.0;

/// The speaker on the gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// Debian's gobgpd with lelastic's configuration.
    Gobgp,
    /// FRR's bgpd, as in Linode's FRR guide.
    Frr,
}

/// How a failover changes the announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// hakit: nat-notify's announcement step rewrites the community in place.
    InPlace,
    /// Linode's keepalived guide: restart lelastic on MASTER, stop it on BACKUP (each node
    /// keeps the role it was configured with: a primary, b secondary).
    RestartOnMaster,
    /// The seed design: restart lelastic with `-primary` on MASTER, `-secondary` on BACKUP.
    RestartSwapped,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::InPlace => "hakit: community rewritten in place",
            Method::RestartOnMaster => "Linode guide: restart lelastic on MASTER, stop on BACKUP",
            Method::RestartSwapped => "seed design: restart lelastic with swapped roles",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub speaker: Speaker,
    pub method: Method,
}

/// An FRR instance's files (its own vty socket directory, so `vtysh --vty_socket`).
#[derive(Debug, Clone)]
pub struct Frr {
    pub dir: PathBuf,
}

impl Frr {
    /// vtysh against this instance.
    pub fn vtysh(&self, ns: &Ns, cmds: &[&str]) -> anyhow::Result<String> {
        let d = self.dir.to_string_lossy().to_string();
        let mut argv = vec!["vtysh", "--vty_socket", d.as_str()];
        for c in cmds {
            argv.push("-c");
            argv.push(c);
        }
        let out = crate::run(&mut ns.command(&argv), Duration::from_secs(10))?;
        if !out.status.success() {
            bail!(
                "vtysh {cmds:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }
}

/// Starts zebra and bgpd in `ns` with `conf` (foreground, killed with the lab).
pub fn start_frr(
    lab: &mut Lab,
    ns: &Ns,
    name: &str,
    conf: &str,
    bgp_port: u16,
) -> anyhow::Result<Frr> {
    let dir = lab.dir().join(format!("frr-{name}"));
    fs::create_dir_all(&dir)?;
    // A restart: the previous instance's sockets and PID files go first.
    for f in [
        "zebra.vty",
        "bgpd.vty",
        "zserv.api",
        "zebra.pid",
        "bgpd.pid",
    ] {
        let _ = fs::remove_file(dir.join(f));
    }
    let conf_path = dir.join("frr.conf");
    fs::write(&conf_path, conf)?;
    // FRR drops to its own user: its files must be its own.
    let chown = |p: &Path| {
        crate::run_ok(std::process::Command::new("chown").args([
            "-R",
            "frr:frr",
            &p.to_string_lossy(),
        ]))
    };
    chown(&dir)?;
    let (d, c) = (
        dir.to_string_lossy().to_string(),
        conf_path.to_string_lossy().to_string(),
    );
    let zsock = format!("{d}/zserv.api");
    for daemon in ["zebra", "bgpd"] {
        let prog = format!("/usr/lib/frr/{daemon}");
        let pid = format!("{d}/{daemon}.pid");
        let port = bgp_port.to_string();
        let mut argv = vec![
            prog.as_str(),
            "-u",
            "frr",
            "-g",
            "frr",
            "-f",
            &c,
            "-i",
            &pid,
            "-z",
            &zsock,
            "--vty_socket",
            &d,
            "-A",
            "127.0.0.1",
        ];
        if daemon == "bgpd" {
            argv.extend(["-p", &port]);
        }
        lab.spawn(ns, &format!("{name}-{daemon}"), &argv)?;
        let sock = dir.join(format!("{daemon}.vty"));
        crate::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            sock.exists()
        })
        .with_context(|| format!("FRR {daemon} in {} did not start", ns.name))?;
    }
    Ok(Frr { dir })
}

/// The route server's configuration (see the module docs).
pub fn route_server_conf(shared: &str, linodes: &[&str]) -> String {
    let mut c = format!(
        "frr defaults traditional
hostname rs
ip prefix-list shared seq 5 permit {shared}/32
bgp community-list standard primary permit {PRIMARY}
bgp community-list standard secondary permit {SECONDARY}
route-map from-linode permit 10
 match community primary
 set local-preference 200
route-map from-linode permit 20
 match community secondary
 set local-preference 100
route-map to-linode deny 10
router bgp 65000
 bgp router-id 203.0.113.254
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor linodes peer-group
 neighbor linodes remote-as 65001
 neighbor linodes capability extended-nexthop
 neighbor linodes timers 3 9
 neighbor linodes timers connect 5
 neighbor linodes ebgp-multihop 16
"
    );
    for l in linodes {
        c.push_str(&format!(" neighbor {l} peer-group linodes\n"));
    }
    c.push_str(
        " address-family ipv4 unicast
  neighbor linodes activate
  neighbor linodes prefix-list shared in
  neighbor linodes route-map from-linode in
  neighbor linodes route-map to-linode out
 exit-address-family
",
    );
    c
}

/// lelastic's GoBGP configuration (client.go: AS 65001, router id 10.0.0.1, no listening
/// port, route servers AS 65000 with eBGP multihop 16, connect retry 5 s, hold 9 s,
/// keepalive 3 s, IPv4 and IPv6 unicast, import rejected, export accepted).
pub fn lelastic_conf() -> String {
    let mut c =
        String::from("[global.config]\n  as = 65001\n  router-id = \"10.0.0.1\"\n  port = -1\n");
    for rs in [RS, RS_DOWN] {
        c.push_str(&format!(
            r#"[[neighbors]]
  [neighbors.config]
    neighbor-address = "{rs}"
    peer-as = 65000
    description = "route server"
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = 16
  [neighbors.timers.config]
    connect-retry = 5
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
  [neighbors.apply-policy.config]
    default-import-policy = "reject-route"
    default-export-policy = "accept-route"
"#
        ));
    }
    c
}

/// `speaker.sh start|stop|restart [primary|secondary]`: lelastic's life cycle in a lab
/// namespace (what `systemctl start/stop/restart lelastic` does on a Linode). gobgpd runs
/// in its own session (it outlives the hook that started it), its PID in `pidfile`.
pub fn lelastic_script(dir: &Path, role: &str, shared: &str) -> anyhow::Result<PathBuf> {
    let conf = dir.join(format!("{role}-gobgpd.toml"));
    fs::write(&conf, lelastic_conf())?;
    let script = dir.join(format!("{role}-speaker.sh"));
    let pidfile = dir.join(format!("{role}-gobgpd.pid"));
    let log = dir.join(format!("{role}-gobgpd.log"));
    fs::write(
        &script,
        format!(
            r#"#!/bin/sh
# lelastic in the lab: gobgpd with lelastic's configuration; the addresses on lo announced
# once, at start, with the community of the role given (lelastic -primary / -secondary).
PID={pid}
stop() {{
    # systemctl stop: SIGTERM (gobgpd closes its sessions), SIGKILL after 5 s.
    [ -s "$PID" ] || return 0
    p=$(cat "$PID"); kill "$p" 2>/dev/null
    i=0
    while kill -0 "$p" 2>/dev/null; do
        i=$((i+1)); [ $i -eq 500 ] && kill -9 "$p" 2>/dev/null; sleep 0.01
    done
    rm -f "$PID"
}}
start() {{
    case "$1" in primary) c={PRIMARY} ;; *) c={SECONDARY} ;; esac
    setsid gobgpd -f {conf} --api-hosts 127.0.0.1:50051 -p >>{log} 2>&1 </dev/null &
    echo $! > "$PID"
    i=0
    until gobgp global >/dev/null 2>&1; do
        i=$((i+1)); [ $i -gt 500 ] && exit 1; sleep 0.01
    done
    gobgp global rib add -a ipv4 {shared}/32 origin incomplete community "$c"
}}
case "$1" in
start) start "$2" ;;
stop) stop ;;
restart) stop; start "$2" ;;
*) exit 2 ;;
esac
"#,
            pid = pidfile.display(),
            conf = conf.display(),
            log = log.display(),
        ),
    )?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    Ok(script)
}

/// FRR on a gateway as in Linode's FRR guide: the shared address under `network` with the
/// role's route-map, one neighbour per route server.
pub fn frr_gateway_conf(router_id: &str, shared: &str) -> String {
    format!(
        "frr defaults traditional
hostname gw
route-map primary permit 10
 set community {PRIMARY}
route-map secondary permit 10
 set community {SECONDARY}
router bgp 65001
 bgp router-id {router_id}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor {RS} remote-as 65000
 neighbor {RS} capability extended-nexthop
 neighbor {RS} timers 3 9
 neighbor {RS} timers connect 5
 neighbor {RS} ebgp-multihop 16
 address-family ipv4 unicast
  network {shared}/32 route-map secondary
  neighbor {RS} activate
 exit-address-family
"
    )
}

/// The role node `ns` announces for `prefix` ("primary", "secondary", "withdrawn"), read
/// with the speaker's own tool.
pub fn announced(ns: &Ns, speaker: Speaker, frr: Option<&Frr>, prefix: &str) -> String {
    let out = match (speaker, frr) {
        (Speaker::Frr, Some(f)) => f
            .vtysh(ns, &[&format!("show bgp ipv4 unicast {prefix} json")])
            .ok()
            .and_then(|o| hakit_bgp::parse_frr_prefix(&o).ok()),
        _ => crate::run(
            &mut ns.command(&["gobgp", "global", "rib", "-a", "ipv4", prefix, "-j"]),
            Duration::from_secs(5),
        )
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| hakit_bgp::parse_gobgp_rib(&String::from_utf8_lossy(&o.stdout), prefix).ok()),
    };
    match out {
        None => "unreadable".into(),
        Some(hakit_bgp::Seen::Absent) => "withdrawn".into(),
        Some(hakit_bgp::Seen::Path(c)) => {
            if c.contains(&hakit_bgp::PRIMARY) {
                "primary".into()
            } else if c.contains(&hakit_bgp::SECONDARY) {
                "secondary".into()
            } else {
                "no role".into()
            }
        }
    }
}

/// The next hop the route server's kernel uses for `prefix` (`ip -j route`): the IPv6
/// address of the gateway whose path is best.
pub fn routed_via(inet: &Ns, prefix: &str) -> Option<String> {
    let out = crate::run(
        &mut inet.command(&["ip", "-j", "route", "show", prefix]),
        Duration::from_secs(5),
    )
    .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    // The kernel uses the lowest metric; the lab's unreachable fallback has no next hop.
    let best = v
        .as_array()?
        .iter()
        .min_by_key(|r| r["metric"].as_u64().unwrap_or(0))?;
    best["via"]["host"]
        .as_str()
        .or(best["gateway"].as_str())
        .map(str::to_string)
}

/// `ifname`'s EUI-64 link-local address in `ns` (what the kernel derives from its MAC).
pub fn link_local(ns: &Ns, ifname: &str) -> String {
    let Ok(m) = ns.mac(ifname) else {
        return String::new();
    };
    let m = m.0;
    let ip = std::net::Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    );
    ip.to_string()
}

/// systemctl as far as the announcement step uses it, for lelastic's unit in a lab without
/// systemd: `is-active [--quiet] UNIT` (gobgpd's PID alive) and `start UNIT` (the speaker
/// script's start, as secondary: what lelastic.service would run). Every call is logged.
pub fn systemctl_script(dir: &Path, role: &str, speaker: &Path) -> anyhow::Result<PathBuf> {
    let script = dir.join(format!("{role}-systemctl.sh"));
    let pidfile = dir.join(format!("{role}-gobgpd.pid"));
    let log = dir.join(format!("{role}-systemctl.log"));
    fs::write(
        &script,
        format!(
            r#"#!/bin/sh
echo "$*" >> {log}
[ "$2" = "--quiet" ] && {{ quiet=1; shift; }}
case "$1" in
is-active)
    if [ -s {pid} ] && kill -0 "$(cat {pid})" 2>/dev/null; then
        [ -n "$quiet" ] || echo active; exit 0
    fi
    [ -n "$quiet" ] || echo inactive; exit 3 ;;
start) exec {speaker} start secondary ;;
*) echo "lab systemctl: $1 not supported" >&2; exit 1 ;;
esac
"#,
            log = log.display(),
            pid = pidfile.display(),
            speaker = speaker.display(),
        ),
    )?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    Ok(script)
}
