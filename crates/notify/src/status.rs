//! `nat-notify status`: the look an operator takes at a gateway during an incident, in
//! one command: recorded role, floating IPs, SNAT rule, default route, units, conntrackd.
//! Inconsistencies (a floating IP on a BACKUP, no SNAT rule on a MASTER, a transition that
//! did not converge) are listed as problems and make the exit code 1.
//!
//! Split brain is looked for from this node's side alone, the way an operator would: for
//! every VRRP address this node holds, an ARP probe asks who else answers for it (another
//! MASTER does); and with a provider claim configured, the provider is asked (read only)
//! who it routes the floating IP to, which must be this node exactly when it is MASTER.

use std::{net::IpAddr, time::Duration};

use serde::Serialize;

use crate::config::Instance;
use hakit_net::Netlink;

use hakit_net::nft::Snat;

use crate::{conntrackd::Conntrackd, engine::Settings, event::State};

/// A problem line of `nat-notify status`: `format!`, marked so that the test below can
/// hold every one of them to [`PROBLEMS`], which nat-notify-status(8) lists.
macro_rules! problem {
    ($($arg:tt)*) => {{
        #[allow(clippy::useless_format)]
        let line = format!($($arg)*);
        line
    }};
}

/// Every problem `nat-notify status` can report (as its format string: `{…}` is filled in),
/// with what it means; nat-notify-status(8) lists them.
pub const PROBLEMS: &[(&str, &str)] = &[
    (
        "uplink monitor: the heartbeat file is not a heartbeat",
        "ha-check monitor's heartbeat file holds something else: hakit-monitor.service is not the writer (systemctl status hakit-monitor)",
    ),
    (
        "uplink monitor: heartbeat {:.1} s old (pid {pid}): dead or hung, keepalived demotes this node",
        "the monitor stopped refreshing its heartbeat; chk_hakit_monitor fails and lowers the priority (journalctl -u hakit-monitor)",
    ),
    (
        "uplink monitor: unhealthy: {}",
        "the monitor's probes fail (listed): the track file says 1 and keepalived holds this node in FAULT",
    ),
    (
        "keepalived is MASTER (holds {}) but nat-notify recorded {recorded}: its notify hook did not run or failed (journalctl -t nat-notify; does the notify FIFO's directory exist?)",
        "keepalived took the role but the transition was never applied: no SNAT, no floating IP",
    ),
    (
        "nat-notify recorded MASTER but keepalived does not hold {}: keepalived is not MASTER",
        "the last applied transition is stale: keepalived's BACKUP/FAULT event did not arrive",
    ),
    (
        "MASTER with {} = {}: this node does not route the LAN (apply /etc/sysctl.d/90-hakit.conf)",
        "forwarding is off on the MASTER: the LAN's traffic stops here",
    ),
    (
        "MASTER without its floating IP {}",
        "the address step did not run or the address was removed since",
    ),
    (
        "floating IP {} present on a node that is {st}",
        "a BACKUP still answers for the floating IP: traffic may arrive at the wrong node",
    ),
    (
        "cannot read nftables: {e:#}",
        "the SNAT check could not run (nft missing or failing)",
    ),
    (
        "MASTER without its SNAT rule",
        "the MASTER forwards without translating: the fail-closed rule drops all LAN egress (nat-notify master puts it back)",
    ),
    (
        "MASTER without a route out: no default route and none via {}",
        "the MASTER has nowhere to send the LAN's traffic",
    ),
    (
        "last transition to {} did not converge (no step failed: it was left unfinished)",
        "the hook was killed or superseded and nothing finished it",
    ),
    (
        "last transition to {} did not converge: {}",
        "steps failed (listed with their errors): the node is half-applied until the next event or nat-notify STATE",
    ),
    (
        "conntrackd does not answer: {e:#}",
        "conntrackd is down or hung: flows are not synchronised to the peer",
    ),
    (
        "split brain: VRRP address {vip} is also answered by {} on {} (another MASTER)",
        "another node answers ARP for this node's VRRP address: both are MASTER",
    ),
    (
        "cannot probe {vip} on {}: {e:#}",
        "the split-brain ARP probe could not run",
    ),
    (
        "split brain or unfinished claim: this node ({}) is MASTER but the provider routes {ip} to {owner}",
        "the provider sends the floating IP's traffic elsewhere: the claim failed or another node took it",
    ),
    (
        "the provider routes {ip} to this node ({}), which is not MASTER",
        "traffic arrives at a BACKUP: the MASTER's claim has not happened",
    ),
    (
        "cannot ask the provider who owns {ip}: {e:#}",
        "the provider API did not answer (token, network, rate limit)",
    ),
    (
        "MASTER but the {} speaker announces {text}: traffic is routed to the peer (or nowhere)",
        "the BGP announcement does not follow the role",
    ),
    (
        "{st} but the {} speaker announces {text}: the route servers send traffic here",
        "a node that is not MASTER still attracts the traffic",
    ),
    (
        "{st} should announce {} but the {} speaker announces {text}",
        "the speaker's announcement differs from the one this role commands",
    ),
    (
        "the bgp speaker does not answer: {e:#}",
        "gobgpd, FRR or BIRD is down or its control socket is unreachable",
    ),
    (
        "no BGP session established ({} configured): nothing this node announces reaches the route servers",
        "every session to the route servers is down",
    ),
    (
        "cannot list the bgp sessions: {e:#}",
        "the speaker's session list could not be read",
    ),
    (
        "keepalived runs with nat-notify as its notify FIFO script ({}) but no nat-notify FIFO reader is alive: no event is applied (journalctl -u keepalived)",
        "keepalived's events go nowhere: the next failover will not be applied",
    ),
    (
        "the nat-notify FIFO reader (pid {replaced}) runs a binary that has since been replaced (an upgrade): restart keepalived while this node is BACKUP (on the MASTER: ha-check drain first)",
        "events are applied by the old version until keepalived restarts",
    ),
];

/// How long the split-brain ARP probe listens for other holders of a VRRP address.
const ARP_WAIT: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Serialize)]
pub struct FloatingIp {
    pub ip: String,
    pub present: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceStatus {
    pub instance: String,
    pub recorded_state: Option<State>,
    pub converged: bool,
    pub generation: u64,
    pub last_transition_unix: f64,
    pub floating_ips: Vec<FloatingIp>,
    pub snat_present: Option<bool>,
    pub default_route: Option<String>,
    pub units: Vec<(String, String)>,
    pub conntrackd: Option<String>,
    /// Other MACs answering ARP for a VRRP address this node holds.
    pub vip_also_held_by: Vec<String>,
    /// The node the provider routes the floating IP to (with a provider claim configured).
    pub provider_owner: Option<String>,
    /// The `[bgp]` speaker's announcement of each prefix (with `announce = true`).
    pub bgp_announcement: Option<String>,
    /// Its sessions, "N/M established (peer state, ...)".
    pub bgp_sessions: Option<String>,
    /// `ha-check monitor`'s verdict (`[check] track_file`) and the age of its heartbeat.
    pub uplink_monitor: Option<String>,
    pub problems: Vec<String>,
}

/// The uplink monitor as `ha-check monitor` left it in `FILE.heartbeat`: a line for the
/// status, and the problem it shows, if any.
pub fn uplink_monitor(track_file: &std::path::Path) -> (String, Option<String>) {
    let hb = hakit_core::heartbeat::path(track_file);
    let text =
        match hakit_core::runtime::read_file(&hb, 64 << 10, hakit_core::runtime::Trust::Config) {
            Ok(t) => t,
            Err(e) => {
                let p = format!(
                    "uplink monitor: no heartbeat ({e:#}); is hakit-monitor.service running?"
                );
                return ("no heartbeat".into(), Some(p));
            }
        };
    // The fields of hakit_core::heartbeat::Heartbeat, read loosely (a Value costs this
    // binary less than a second deserializer).
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (Some(at), Some(pid)) = (v["at_ms"].as_u64(), v["pid"].as_u64()) else {
        return (
            "unreadable heartbeat".into(),
            Some(problem!(
                "uplink monitor: the heartbeat file is not a heartbeat"
            )),
        );
    };
    let age = now.saturating_sub(at);
    let since = now.saturating_sub(v["since_ms"].as_u64().unwrap_or(at)) as f64 / 1000.0;
    let failing: Vec<&str> = v["failing"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str()).collect())
        .unwrap_or_default();
    let verdict = match v["healthy"].as_bool() {
        _ if v["drained"].is_string() => format!(
            "DRAINED ({}) for {since:.1} s: the role stays with the peer until ha-check undrain",
            v["drained"].as_str().unwrap_or_default()
        ),
        Some(true) => format!("healthy for {since:.1} s"),
        Some(false) => format!("UNHEALTHY for {since:.1} s: {}", failing.join("; ")),
        None => "no verdict yet".into(),
    };
    let line = format!(
        "{verdict} (heartbeat {:.1} s old, pid {pid})",
        age as f64 / 1000.0
    );
    let problem = if age > hakit_core::heartbeat::STALE.as_millis() as u64 {
        Some(problem!(
            "uplink monitor: heartbeat {:.1} s old (pid {pid}): dead or hung, keepalived demotes this node",
            age as f64 / 1000.0
        ))
    } else if v["drained"].is_string() {
        None
    } else if v["healthy"].as_bool() == Some(false) {
        Some(problem!(
            "uplink monitor: unhealthy: {}",
            failing.join("; ")
        ))
    } else {
        None
    };
    (line, problem)
}

/// Looks at every configured instance.
pub fn status(s: &Settings, instances: &[Instance]) -> anyhow::Result<Vec<InstanceStatus>> {
    let nl = Netlink::open()?;
    let addrs = nl.addresses(None)?;
    let links = nl.links()?;
    // One route lookup each, never a dump of the table (a BGP-fed gateway holds a million
    // routes): the default route is what the kernel uses for an address no table carries
    // (240.0.0.1, reserved, RFC 1112 section 4).
    let default_route = nl
        .route_to(IpAddr::from([240, 0, 0, 1]))?
        .filter(|r| r.dst_len == 0)
        .and_then(|r| r.nexthops.first().copied())
        .map(|h| {
            let dev = h
                .oif
                .and_then(|i| links.iter().find(|l| l.index == i))
                .map_or("?", |l| l.name.as_str());
            match h.gateway {
                Some(g) => format!("via {g} dev {dev}"),
                None => format!("dev {dev}"),
            }
        });
    let fifo_problem = fifo_reader_problem(&s.keepalived_config);
    let mut out = Vec::new();
    for inst in instances {
        let rec = s.runtime.recorded(&inst.name)?;
        let mut problems = Vec::new();
        problems.extend(fifo_problem.clone());
        // keepalived's own view: it holds an instance's VRRP addresses exactly while MASTER.
        let keepalived_master = crate::supersede::vips_held(&nl, &inst.vrrp_vips);
        let recorded = rec.state.map_or("nothing".to_string(), |s| s.to_string());
        match keepalived_master {
            Some(true) if rec.state != Some(State::Master) => problems.push(problem!(
                "keepalived is MASTER (holds {}) but nat-notify recorded {recorded}: its notify hook did not run or failed (journalctl -t nat-notify; does the notify FIFO's directory exist?)",
                join(&inst.vrrp_vips)
            )),
            Some(false) if rec.state == Some(State::Master) => problems.push(problem!(
                "nat-notify recorded MASTER but keepalived does not hold {}: keepalived is not MASTER",
                join(&inst.vrrp_vips)
            )),
            _ => {}
        }
        let fips: Vec<FloatingIp> = inst
            .floating_ips
            .iter()
            .map(|c| FloatingIp {
                ip: c.to_string(),
                present: addrs.iter().any(|a| a.addr == c.addr),
            })
            .collect();
        let master = rec.state == Some(State::Master);
        if master || keepalived_master == Some(true) {
            for (key, v6) in [
                ("net/ipv4/ip_forward", false),
                ("net/ipv6/conf/all/forwarding", true),
            ] {
                let wanted = inst.floating_ips.iter().any(|c| c.addr.is_ipv6() == v6) || !v6;
                let value = std::fs::read_to_string(format!("/proc/sys/{key}"))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default();
                if wanted && value != "1" {
                    problems.push(problem!(
                        "MASTER with {} = {}: this node does not route the LAN (apply /etc/sysctl.d/90-hakit.conf)",
                        key.replace('/', "."),
                        if value.is_empty() { "?" } else { &value }
                    ));
                }
            }
        }
        for f in &fips {
            if master && !f.present {
                problems.push(problem!("MASTER without its floating IP {}", f.ip));
            }
            if !master && f.present {
                let st = rec
                    .state
                    .map_or("no recorded state".to_string(), |s| s.to_string());
                problems.push(problem!(
                    "floating IP {} present on a node that is {st}",
                    f.ip
                ));
            }
        }
        let snat_present = match (inst.snat_source, crate::plan::snat_to(inst)) {
            (Some(source), Some(to)) => {
                let n = Snat {
                    nft: s.nft.clone(),
                    table: inst.snat_table.clone().unwrap_or_else(|| "hakit".into()),
                    instance: inst.name.clone(),
                    source,
                    to,
                    oifname: inst.interface.clone().unwrap_or_default(),
                    timeout: s.command_timeout,
                    stop: &hakit_core::exec::never,
                };
                match n.present() {
                    Ok(p) => Some(p),
                    Err(e) => {
                        problems.push(problem!("cannot read nftables: {e:#}"));
                        None
                    }
                }
            }
            _ => None,
        };
        if master && snat_present == Some(false) {
            problems.push(problem!("MASTER without its SNAT rule"));
        }
        // The WAN is reachable the way the node routes: by a default route, or, where the
        // upstream is directly connected, by a route out of the instance's WAN interface.
        let wan = inst
            .interface
            .as_deref()
            .and_then(|dev| links.iter().find(|l| l.name == dev))
            .map(|l| l.index);
        let routed_out_of_wan = wan.is_some_and(|i| {
            // A directly connected upstream: the kernel routes one of the WAN's own IPv4
            // networks out of the WAN.
            addrs
                .iter()
                .filter(|a| a.index == i && a.addr.is_ipv4())
                .any(|a| {
                    let net = hakit_core::config::Cidr {
                        addr: a.addr,
                        prefix: a.prefix,
                    };
                    nl.route_to(net.bounds().0).ok().flatten().is_some_and(|r| {
                        r.dst_len > 0 && r.nexthops.iter().any(|h| h.oif == Some(i))
                    })
                })
        });
        if master && default_route.is_none() && !routed_out_of_wan {
            problems.push(problem!(
                "MASTER without a route out: no default route and none via {}",
                inst.interface.as_deref().unwrap_or("its interface")
            ));
        }
        if let (Some(state), false, false) = (rec.state, rec.converged, rec.superseded) {
            // Which of that state's steps failed, and why (the record keeps every step's
            // last result; only this state's plan counts).
            let failed: Vec<String> = crate::plan::plan(state, inst)
                .iter()
                .filter_map(|step| {
                    let r = rec.steps.get(step.name())?;
                    (!r.ok).then(|| format!("{} failed: {}", step.name(), r.detail))
                })
                .collect();
            problems.push(if failed.is_empty() {
                problem!(
                    "last transition to {} did not converge (no step failed: it was left unfinished)",
                    state.as_str()
                )
            } else {
                problem!(
                    "last transition to {} did not converge: {}",
                    state.as_str(),
                    failed.join("; ")
                )
            });
        }
        let units = inst
            .units
            .iter()
            .map(|u| {
                let st = hakit_net::systemd::unit_state(&s.systemctl, u, s.command_timeout)
                    .map_or_else(|e| format!("unknown ({e:#})"), |u| u.word);
                (u.clone(), st)
            })
            .collect();
        let conntrackd = inst.conntrackd_config.as_ref().map(|c| {
            let ct = Conntrackd {
                prog: s.conntrackd.clone(),
                config: c.clone(),
                timeout: s.command_timeout,
                stop: &hakit_core::exec::never,
            };
            match ct.stats() {
                Ok(text) => text
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(300)
                    .collect(),
                Err(e) => {
                    problems.push(problem!("conntrackd does not answer: {e:#}"));
                    "not running".into()
                }
            }
        });
        let mut vip_also_held_by = Vec::new();
        for vip in &inst.vrrp_vips {
            let IpAddr::V4(v4) = vip else { continue };
            let Some(held) = addrs.iter().find(|a| a.addr == *vip) else {
                continue;
            };
            let Some(link) = links.iter().find(|l| l.index == held.index) else {
                continue;
            };
            match hakit_net::garp::arp_claimants(link, *v4, ARP_WAIT) {
                Ok(macs) if !macs.is_empty() => {
                    let macs: Vec<String> = macs.iter().map(|m| m.to_string()).collect();
                    problems.push(problem!(
                        "split brain: VRRP address {vip} is also answered by {} on {} (another MASTER)",
                        macs.join(", "),
                        link.name
                    ));
                    vip_also_held_by.extend(macs);
                }
                Ok(_) => {}
                Err(e) => problems.push(problem!("cannot probe {vip} on {}: {e:#}", link.name)),
            }
        }
        let mut provider_owner = None;
        if let (Some(true), Some(fip)) = (inst.fip_claim, &s.fip) {
            let mut cfg = fip.clone();
            cfg.ip = inst.fip_ip.or(cfg.ip);
            let ip = cfg
                .ip
                .map_or("the floating IP".to_string(), |i| i.to_string());
            match hakit_fip::run(&cfg, hakit_fip::model::Mode::Check, false, false) {
                Ok(o) => {
                    let owner = o.owner_before.clone().unwrap_or_else(|| "nobody".into());
                    if master && !o.owned {
                        problems.push(problem!(
                            "split brain or unfinished claim: this node ({}) is MASTER but the provider routes {ip} to {owner}",
                            o.this_node
                        ));
                    } else if !master && o.owned {
                        problems.push(problem!(
                            "the provider routes {ip} to this node ({}), which is not MASTER",
                            o.this_node
                        ));
                    }
                    provider_owner = Some(owner);
                }
                Err(e) => problems.push(problem!("cannot ask the provider who owns {ip}: {e:#}")),
            }
        }
        let (bgp_announcement, bgp_sessions) = match (inst.announce, &s.bgp) {
            (Some(true), Some(b)) => bgp_status(b, rec.state, &mut problems),
            _ => (None, None),
        };
        let uplink_monitor = s.monitor_track_file.as_deref().map(|t| {
            let (line, problem) = uplink_monitor(t);
            problems.extend(problem);
            line
        });
        out.push(InstanceStatus {
            bgp_announcement,
            bgp_sessions,
            uplink_monitor,
            vip_also_held_by,
            provider_owner,
            instance: inst.name.clone(),
            recorded_state: rec.state,
            converged: rec.converged,
            generation: rec.generation,
            last_transition_unix: rec.at_unix,
            floating_ips: fips,
            snat_present,
            default_route: default_route.clone(),
            units,
            conntrackd,
            problems,
        });
    }
    Ok(out)
}

/// The announcement's role against the recorded state: a MASTER must announce primary,
/// any other state must not; and the speaker must have a session to announce on.
fn bgp_status(
    b: &hakit_bgp::Speaker,
    state: Option<State>,
    problems: &mut Vec<String>,
) -> (Option<String>, Option<String>) {
    let announcement = match b.current(&hakit_core::exec::never) {
        Ok((role, text)) => {
            let want = state.map(|st| crate::plan::announce_target(b, st));
            let primary = hakit_bgp::Target::Announce(hakit_bgp::Role::Primary);
            match (state, role) {
                (Some(State::Master), r) if r != Some(primary) => problems.push(problem!(
                    "MASTER but the {} speaker announces {text}: traffic is routed to the peer (or nowhere)",
                    b.kind_name()
                )),
                (Some(st), Some(r)) if st != State::Master && r == primary => problems.push(problem!(
                    "{st} but the {} speaker announces {text}: the route servers send traffic here",
                    b.kind_name()
                )),
                (Some(st), r) if want.is_some() && r != want && st != State::Master => {
                    problems.push(problem!(
                        "{st} should announce {} but the {} speaker announces {text}",
                        want.map_or("?".into(), |w| w.to_string()),
                        b.kind_name()
                    ))
                }
                _ => {}
            }
            Some(text)
        }
        Err(e) => {
            problems.push(problem!("the bgp speaker does not answer: {e:#}"));
            None
        }
    };
    let sessions = match b.sessions(&hakit_core::exec::never) {
        Ok(list) => {
            let up = list.iter().filter(|s| s.established).count();
            if up == 0 {
                problems.push(problem!(
                    "no BGP session established ({} configured): nothing this node announces reaches the route servers",
                    list.len()
                ));
            }
            let detail = list
                .iter()
                .map(|s| format!("{} {}", s.peer, s.state))
                .collect::<Vec<_>>()
                .join(", ");
            Some(format!("{up}/{} established ({detail})", list.len()))
        }
        Err(e) => {
            if announcement.is_some() {
                problems.push(problem!("cannot list the bgp sessions: {e:#}"));
            }
            None
        }
    };
    (announcement, sessions)
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// When keepalived's configuration names nat-notify as its notify FIFO script and
/// keepalived runs, a nat-notify FIFO reader must be alive: without one, no event is
/// applied while keepalived looks healthy (a FIFO whose directory does not exist is the
/// classic way to get there).
fn fifo_reader_problem(keepalived_config: &std::path::Path) -> Option<String> {
    let conf = std::fs::read_to_string(keepalived_config).ok()?;
    let wants_reader = conf.lines().any(|l| {
        let l = l.split(['#', '!']).next().unwrap_or("").trim();
        l.starts_with("vrrp_notify_fifo_script") || l.starts_with("notify_fifo_script")
    } && l.contains("nat-notify") && l.contains("fifo"));
    if !wants_reader {
        return None;
    }
    let procs = processes();
    if !procs
        .iter()
        .any(|(_, argv)| basename(argv.first()) == "keepalived")
    {
        return None;
    }
    let readers: Vec<u32> = procs
        .iter()
        .filter(|(_, argv)| {
            basename(argv.first()) == "nat-notify" && argv.iter().skip(1).any(|a| a == "fifo")
        })
        .map(|(pid, _)| *pid)
        .collect();
    if readers.is_empty() {
        return Some(problem!(
            "keepalived runs with nat-notify as its notify FIFO script ({}) but no nat-notify FIFO reader is alive: no event is applied (journalctl -u keepalived)",
            keepalived_config.display()
        ));
    }
    // An upgrade replaces the binary under a running reader, which goes on applying the
    // previous version's code until keepalived restarts it (the package never restarts
    // keepalived: on the MASTER that is a failover).
    let replaced = readers.iter().find(|pid| {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .is_ok_and(|exe| exe.to_string_lossy().ends_with(" (deleted)"))
    })?;
    Some(problem!(
        "the nat-notify FIFO reader (pid {replaced}) runs a binary that has since been replaced (an upgrade): restart keepalived while this node is BACKUP (on the MASTER: ha-check drain first)"
    ))
}

fn basename(arg: Option<&String>) -> &str {
    arg.map_or("", |a| a.rsplit('/').next().unwrap_or(a))
}

/// Every process's PID and argv (from /proc; kernel threads and vanished processes skipped).
fn processes() -> Vec<(u32, Vec<String>)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let c = std::fs::read(e.path().join("cmdline")).ok()?;
            let argv: Vec<String> = c
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (!argv.is_empty()).then_some((pid, argv))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    /// Every problem this file reports is listed in [`super::PROBLEMS`] (and so in
    /// nat-notify-status(8)), and every listed one is still reported: the problem lines
    /// are the format strings of the `problem!` calls above.
    #[test]
    fn every_problem_is_listed_and_every_listed_one_exists() {
        let src = include_str!("status.rs");
        let code = &src[..src.find("#[cfg(test)]").unwrap()];
        let mut found = Vec::new();
        let mut rest = &code[code.find("macro_rules! problem").unwrap() + 20..];
        while let Some(at) = rest.find("problem!(") {
            let after = rest[at + 9..].trim_start();
            let lit = after
                .strip_prefix('"')
                .and_then(|a| a.find('"').map(|end| &a[..end]))
                .unwrap_or_else(|| panic!("problem! without a literal: {}", &after[..40]));
            found.push(lit.to_string());
            rest = &rest[at + 9..];
        }
        assert!(
            found.len() >= 20,
            "only {} problem! calls found",
            found.len()
        );
        for unmarked in ["problems.push(format!", "problems.push(\""] {
            assert!(
                !code.contains(unmarked),
                "a problem without problem!: {unmarked}"
            );
        }
        for lit in &found {
            assert!(
                super::PROBLEMS.iter().any(|(p, _)| p == lit),
                "a problem not in PROBLEMS (nor in the man page): {lit}"
            );
        }
        for (p, why) in super::PROBLEMS {
            assert!(!why.is_empty(), "{p}: no explanation");
            assert!(
                found.iter().any(|f| f == p),
                "PROBLEMS lists {p:?}, which nothing reports"
            );
        }
    }
}
