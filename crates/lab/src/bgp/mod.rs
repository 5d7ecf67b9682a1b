//! Linode's routing, run for real: a route server on Debian's FRR and, on each gateway, the
//! speaker Linode users run (GoBGP configured exactly as lelastic configures it, FRR as
//! in Linode's FRR guide, or BIRD 2 with the same timers and hakit's roles file).
//!
//! ```text
//!  gateway a: lo 203.0.113.10/32 (the shared IP, on both nodes)      inet: FRR route server AS 65000
//!    gobgpd AS 65001 (lelastic's config) ── eth0 2001:db8:ff::2 ──┐       2001:db8:ff::254
//!  gateway b                                                      ├── IPv6 eBGP, IPv4 routes with an
//!    gobgpd AS 65001                    ── eth0 2001:db8:ff::3 ──┘   extended next hop; the best
//!                                                                    path goes into inet's kernel
//! ```
//!
//! The route server emulates Linode's: it accepts only the shared prefixes (an IPv4
//! address and two IPv6 ranges, a /64 and a /56), and only from
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

mod conf;
pub use conf::{
    frr_gateway_conf, lelastic_conf, lelastic_script, route_server_conf, HOLD_S, PRIMARY, RANGES6,
    RS, RS_DOWN, SECONDARY, SHARED,
};

/// The speaker on the gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// Debian's gobgpd with lelastic's configuration.
    Gobgp,
    /// FRR's bgpd, as in Linode's FRR guide.
    Frr,
    /// BIRD 2 (Debian's bird2), the roles in the file hakit writes.
    Bird,
}

impl Speaker {
    pub fn name(self) -> &'static str {
        match self {
            Speaker::Gobgp => "lelastic's GoBGP",
            Speaker::Frr => "FRR",
            Speaker::Bird => "BIRD 2",
        }
    }
}

/// A gateway's running speaker: which, and its files (FRR's vty directory, BIRD's
/// directory with its control socket and roles file, the lab directory for lelastic).
#[derive(Debug, Clone)]
pub struct Daemon {
    pub speaker: Speaker,
    pub dir: PathBuf,
    /// The PID files of its processes (a SIGKILL takes them all).
    pub pidfiles: Vec<PathBuf>,
}

impl Daemon {
    /// Runs the speaker's own tool against this instance: `gobgp ARGS`, `vtysh
    /// --vty_socket DIR -c ARG…`, `birdc -s DIR/bird.ctl -v ARGS`.
    fn tool(&self, ns: &Ns, args: &[&str]) -> Option<String> {
        let d = self.dir.to_string_lossy().to_string();
        let sock = self.dir.join("bird.ctl").to_string_lossy().to_string();
        let mut argv: Vec<&str> = match self.speaker {
            Speaker::Gobgp => vec!["gobgp"],
            Speaker::Frr => vec!["vtysh", "--vty_socket", &d],
            Speaker::Bird => vec!["birdc", "-s", &sock, "-v"],
        };
        for a in args {
            if self.speaker == Speaker::Frr {
                argv.push("-c");
            }
            argv.push(a);
        }
        let out = crate::run(&mut ns.command(&argv), Duration::from_secs(10)).ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// What the speaker originates for `prefix`, read with its own tool.
    pub fn seen(&self, ns: &Ns, prefix: &str) -> Option<hakit_bgp::Seen> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        match self.speaker {
            Speaker::Gobgp => self
                .tool(ns, &["global", "rib", "-a", family, prefix, "-j"])
                .and_then(|o| hakit_bgp::parse_gobgp_rib(&o, prefix).ok()),
            Speaker::Frr => self
                .tool(ns, &[&format!("show bgp {family} unicast {prefix} json")])
                .and_then(|o| hakit_bgp::parse_frr_prefix(&o).ok()),
            Speaker::Bird => self
                .tool(
                    ns,
                    &[
                        "show",
                        "route",
                        "protocol",
                        if prefix.contains(':') {
                            "hakit6"
                        } else {
                            "hakit4"
                        },
                        "where",
                        "net",
                        "=",
                        prefix,
                        "all",
                    ],
                )
                .and_then(|o| hakit_bgp::parse_bird_route(&o, prefix).ok()),
        }
    }

    /// The speaker's BGP sessions, read with its own tool.
    pub fn sessions(&self, ns: &Ns) -> Option<Vec<hakit_bgp::Session>> {
        match self.speaker {
            Speaker::Gobgp => self
                .tool(ns, &["neighbor", "-j"])
                .and_then(|o| hakit_bgp::parse_gobgp_neighbors(&o).ok()),
            Speaker::Frr => self
                .tool(ns, &["show bgp neighbors json"])
                .and_then(|o| hakit_bgp::parse_frr_neighbors(&o).ok()),
            Speaker::Bird => self
                .tool(ns, &["show", "protocols"])
                .map(|o| hakit_bgp::parse_bird_protocols(&o)),
        }
    }

    /// The `[bgp]` lines of nat-notify's configuration: the speaker and how to reach it,
    /// the shared prefixes (the lab's shared IPv4 address and IPv6 ranges).
    pub fn hakit_conf(&self) -> String {
        let prefixes = std::iter::once(format!("{SHARED}/32"))
            .chain(RANGES6.iter().map(|r| r.to_string()))
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let speaker = match self.speaker {
            Speaker::Frr => format!(
                "speaker = \"frr\"\nfrr_asn = 65001\nfrr_vty_socket = \"{}\"\n",
                self.dir.display()
            ),
            Speaker::Bird => format!(
                "speaker = \"bird\"\nbird_roles_file = \"{}\"\nbird_socket = \"{}\"\n",
                self.dir.join("hakit-roles.conf").display(),
                self.dir.join("bird.ctl").display()
            ),
            // lelastic's unit, started through (the lab's) systemctl when dead.
            Speaker::Gobgp => "speaker = \"gobgp\"\nunit = \"lelastic.service\"\n".to_string(),
        };
        format!("{speaker}prefixes = [{prefixes}]\n")
    }
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

impl Frr {
    /// This instance as a gateway's speaker.
    pub fn daemon(&self) -> Daemon {
        Daemon {
            speaker: Speaker::Frr,
            dir: self.dir.clone(),
            pidfiles: vec![self.dir.join("bgpd.pid"), self.dir.join("zebra.pid")],
        }
    }
}

/// Starts BIRD 2 in `ns` as a gateway's speaker (foreground, killed with the lab): one
/// session to the route server with lelastic's timers, IPv4 over IPv6 with an extended
/// next hop and IPv6, exporting hakit's static protocols only. The roles file is kept across
/// restarts (as on disk); the first start announces `shared` as secondary.
pub fn start_bird(
    lab: &mut Lab,
    ns: &Ns,
    name: &str,
    router_id: &str,
    shared: &str,
) -> anyhow::Result<Daemon> {
    let dir = lab.dir().join(format!("bird-{name}"));
    fs::create_dir_all(&dir)?;
    let (sock, pid, roles) = (
        dir.join("bird.ctl"),
        dir.join("bird.pid"),
        dir.join("hakit-roles.conf"),
    );
    let _ = fs::remove_file(&sock);
    if !roles.exists() {
        let mut first = vec![(format!("{shared}/32"), hakit_bgp::SECONDARY)];
        first.extend(
            RANGES6
                .iter()
                .map(|r| (r.to_string(), hakit_bgp::SECONDARY)),
        );
        fs::write(&roles, hakit_bgp::bird_roles(&first))?;
    }
    let conf = dir.join("bird.conf");
    fs::write(
        &conf,
        format!(
            r#"router id {router_id};
protocol device {{}}
include "{roles}";
protocol bgp rs1 {{
	local as 65001;
	neighbor {RS} as 65000;
	multihop 16;
	hold time 9;
	keepalive time 3;
	connect retry time 5;
	ipv4 {{
		extended next hop on;
		import none;
		export where proto = "hakit4";
	}};
	ipv6 {{
		import none;
		export where proto = "hakit6";
	}};
}}
"#,
            roles = roles.display()
        ),
    )?;
    let (c, s, p) = (
        conf.to_string_lossy().to_string(),
        sock.to_string_lossy().to_string(),
        pid.to_string_lossy().to_string(),
    );
    // A configuration BIRD refuses is an error here, with BIRD's line, not a missing session.
    crate::run_ok(&mut ns.command(&["bird", "-p", "-c", &c]))?;
    lab.spawn(
        ns,
        &format!("{name}-bird"),
        &["bird", "-f", "-c", &c, "-s", &s, "-P", &p],
    )?;
    crate::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        sock.exists()
    })
    .with_context(|| format!("BIRD in {} did not start", ns.name))?;
    Ok(Daemon {
        speaker: Speaker::Bird,
        dir,
        pidfiles: vec![pid],
    })
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

/// The shared IP on `lo`, as Linode documents, and an address of each shared range (FRR
/// originates a network only while it can route it; lelastic announces what is on `lo`).
pub fn shared_on_lo(ns: &Ns, shared: &str) -> anyhow::Result<()> {
    ns.ip(&["addr", "add", &format!("{shared}/32"), "dev", "lo"])?;
    for r in RANGES6 {
        ns.ip(&["addr", "add", &r.replacen("::/", "::1/", 1), "dev", "lo"])?;
    }
    Ok(())
}

/// Starts a gateway's speaker: lelastic (started as `first`: its control script comes
/// back), FRR as in Linode's FRR guide, or BIRD with hakit's roles file.
pub fn start_gateway(
    lab: &mut Lab,
    ns: &Ns,
    dir: &Path,
    role: &str,
    wan: &str,
    speaker: Speaker,
    first: &str,
) -> anyhow::Result<(Option<PathBuf>, Daemon)> {
    let shared = SHARED;
    Ok(match speaker {
        Speaker::Gobgp => {
            let (sc, d) = start_lelastic(ns, dir, role, shared, first)?;
            (Some(sc), d)
        }
        Speaker::Frr => (
            None,
            start_frr(lab, ns, role, &frr_gateway_conf(wan, shared), 0)?.daemon(),
        ),
        Speaker::Bird => (None, start_bird(lab, ns, role, wan, shared)?),
    })
}

/// Starts lelastic (its script's `start ROLE`) on a gateway: the script and the daemon.
pub fn start_lelastic(
    ns: &Ns,
    dir: &Path,
    role: &str,
    shared: &str,
    first: &str,
) -> anyhow::Result<(PathBuf, Daemon)> {
    let sc = lelastic_script(dir, role, shared)?;
    crate::run_ok(&mut ns.command(&[&sc.to_string_lossy(), "start", first]))?;
    let d = Daemon {
        speaker: Speaker::Gobgp,
        dir: dir.to_path_buf(),
        pidfiles: vec![dir.join(format!("{role}-gobgpd.pid"))],
    };
    Ok((sc, d))
}

/// The role `seen` says ("primary", "secondary", "withdrawn"; "unreadable" for none).
pub fn role_name(seen: Option<hakit_bgp::Seen>) -> String {
    match seen {
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
        // `ip route show` does not take the family from the prefix: IPv4 unless told.
        &mut inet.command(&[
            "ip",
            if prefix.contains(':') { "-6" } else { "-4" },
            "-j",
            "route",
            "show",
            prefix,
        ]),
        Duration::from_secs(5),
    )
    .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    // The kernel uses the lowest metric; the lab's unreachable fallback has no next hop.
    let best = v
        .as_array()?
        .iter()
        .min_by_key(|r| r["metric"].as_u64().unwrap_or(0))?;
    let hop = |h: &serde_json::Value| {
        h["via"]["host"]
            .as_str()
            .or(h["gateway"].as_str())
            .map(str::to_string)
    };
    // Two equal best paths (two primaries) are a multipath route: "hop1,hop2".
    match best["nexthops"].as_array() {
        Some(hops) => Some(hops.iter().filter_map(hop).collect::<Vec<_>>().join(",")),
        None => hop(best),
    }
}

/// The route server's next hop for one prefix, sampled from a thread every few
/// milliseconds (`ip -j route`, ~3 ms a read): each change with its Unix time.
pub struct RouteWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(f64, Option<String>)>>,
}

impl RouteWatch {
    pub fn start(inet: &Ns, prefix: &'static str) -> RouteWatch {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, inet) = (stop.clone(), inet.clone());
        let handle = std::thread::spawn(move || {
            let mut seen: Vec<(f64, Option<String>)> = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let via = routed_via(&inet, prefix);
                if seen.last().is_none_or(|(_, v)| *v != via) {
                    seen.push((crate::now_unix(), via));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            seen
        });
        RouteWatch { stop, handle }
    }

    /// Stops sampling: every next hop seen, in order, with when it was first seen.
    pub fn finish(self) -> Vec<(f64, Option<String>)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
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
