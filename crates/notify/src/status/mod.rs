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

mod checks;
use checks::CHECKS;
pub use checks::{FloatingIp, Seen};

/// Every problem `nat-notify status` can report (as its format string: `{…}` is filled in),
/// with what it means; nat-notify-status(8) lists them.
pub const PROBLEMS: &[(&str, &str)] = &[
    (
        "conntrackd's filter names protocols {PROTOCOLS} lacks ({names}): their flows are not synchronised",
        "conntrackd resolves the names of its Protocol Accept filter with getprotobyname(3) and leaves out, with a warning only, those it cannot find: without /etc/protocols (a minimal image: install netbase) it synchronises nothing and every flow is lost at the next failover",
    ),
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
        "uplink monitor: {}",
        "standing down: only the VRRP path is cut (the peer reports MASTER over the sync link, its adverts do not arrive); the track file says 1 until they return: mend the path (a switch port, a rule dropping IP protocol 112)",
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
        "MASTER without its egress route via {} (table {}): the LAN's traffic leaves by the default gateway, where the provider does not translate it",
        "the policy rules or the route of egress_gateway are missing or point elsewhere (nat-notify master puts them back)",
    ),
    (
        "cannot read the routing rules: {e:#}",
        "the egress route check could not run",
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
    use hakit_core::heartbeat::{read, Unread};
    let hb = match read(track_file) {
        Ok(hb) => hb,
        Err(Unread::Missing(e)) => {
            let p = format!("uplink monitor: {e}; is hakit-monitor.service running?");
            return ("no heartbeat".into(), Some(p));
        }
        Err(Unread::NotAHeartbeat(_)) => {
            return (
                "unreadable heartbeat".into(),
                Some(problem!(
                    "uplink monitor: the heartbeat file is not a heartbeat"
                )),
            )
        }
    };
    let now = hakit_core::clock::unix_ms();
    let (age, pid) = (hb.age_ms(now), hb.pid);
    let since = now.saturating_sub(hb.since_ms) as f64 / 1000.0;
    let failing = hb.failing.join("; ");
    let verdict = match (&hb.drained, &hb.standing_down, hb.healthy) {
        (Some(r), _, _) => format!(
            "DRAINED ({}) for {since:.1} s: the role stays with the peer until ha-check undrain",
            one_line(r)
        ),
        (_, Some(why), _) => format!("STANDING DOWN for {since:.1} s: {}", one_line(why)),
        (_, _, Some(true)) => format!("healthy for {since:.1} s"),
        (_, _, Some(false)) => format!("UNHEALTHY for {since:.1} s: {failing}"),
        (_, _, None) => "no verdict yet".into(),
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
    } else if hb.drained.is_some() {
        None
    } else if let Some(why) = &hb.standing_down {
        Some(problem!("uplink monitor: {}", one_line(why)))
    } else if hb.healthy == Some(false) {
        Some(problem!("uplink monitor: unhealthy: {}", failing))
    } else {
        None
    };
    (line, problem)
}

/// A text from a file, as one line of the report (control characters as spaces).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Looks at every configured instance.
pub fn status(s: &Settings, instances: &[Instance]) -> anyhow::Result<Vec<InstanceStatus>> {
    let nl = Netlink::open()?;
    let addrs = nl.addresses(None)?;
    let links = nl.links()?;
    let node = Node {
        default_route: default_route(&nl, &links)?,
        nl: &nl,
        addrs: &addrs,
        links: &links,
    };
    let fifo_problem = fifo_reader_problem(&s.keepalived_config);
    let mut out = Vec::new();
    for inst in instances {
        let mut problems: Vec<String> = fifo_problem.iter().cloned().collect();
        let seen = observe(s, &node, inst, &mut problems)?;
        problems.extend(CHECKS.iter().flat_map(|check| check(inst, &seen)));
        let master = seen.rec.state == Some(State::Master);
        let conntrackd = inst
            .conntrackd_config
            .as_ref()
            .map(|c| conntrackd_line(s, c, &mut problems));
        let vip_also_held_by = split_brain_probe(&node, inst, &mut problems);
        let provider_owner = match (inst.fip_claim, &s.fip) {
            (Some(true), Some(fip)) => provider_owner(inst, fip, master, &mut problems),
            _ => None,
        };
        let (bgp_announcement, bgp_sessions) = match (inst.announce, &s.bgp) {
            (Some(true), Some(b)) => bgp_status(
                &b.only(&inst.announce_prefixes),
                seen.rec.state,
                &mut problems,
            ),
            _ => (None, None),
        };
        let uplink_monitor = s.monitor_track_file.as_deref().map(|t| {
            let (line, problem) = uplink_monitor(t);
            problems.extend(problem);
            line
        });
        let units = inst
            .units
            .iter()
            .map(|u| {
                let st = hakit_net::systemd::unit_state(&s.systemctl, u, s.command_timeout)
                    .map_or_else(|e| format!("unknown ({e:#})"), |u| u.word);
                (u.clone(), st)
            })
            .collect();
        out.push(InstanceStatus {
            bgp_announcement,
            bgp_sessions,
            uplink_monitor,
            vip_also_held_by,
            provider_owner,
            instance: inst.name.clone(),
            recorded_state: seen.rec.state,
            converged: seen.rec.converged,
            generation: seen.rec.generation,
            last_transition_unix: seen.rec.at_unix,
            floating_ips: seen.fips,
            snat_present: seen.snat_present,
            default_route: seen.default_route,
            units,
            conntrackd,
            problems,
        });
    }
    Ok(out)
}

/// The node as read once for every instance: its addresses, links and default route.
struct Node<'a> {
    nl: &'a Netlink,
    addrs: &'a [hakit_net::IfAddr],
    links: &'a [hakit_net::Link],
    default_route: Option<String>,
}

/// The default route, "via GATEWAY dev DEV" or "dev DEV". One route lookup, never a dump
/// of the table (a BGP-fed gateway holds a million routes): the default route is what the
/// kernel uses for an address no table carries (240.0.0.1, reserved, RFC 1112 section 4).
fn default_route(nl: &Netlink, links: &[hakit_net::Link]) -> anyhow::Result<Option<String>> {
    Ok(nl
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
        }))
}

fn observe(
    s: &Settings,
    node: &Node,
    inst: &Instance,
    problems: &mut Vec<String>,
) -> anyhow::Result<Seen> {
    let rec = s.runtime.recorded(&inst.name)?;
    let sysctl = |key: &str| hakit_core::sysctl::read(key).unwrap_or_default();
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
    let wan = inst
        .interface
        .as_deref()
        .and_then(|dev| node.links.iter().find(|l| l.name == dev))
        .map(|l| l.index);
    let routed_out_of_wan = wan.is_some_and(|i| {
        node.addrs
            .iter()
            .filter(|a| a.index == i && a.addr.is_ipv4())
            .any(|a| {
                let net = hakit_core::config::Cidr {
                    addr: a.addr,
                    prefix: a.prefix,
                };
                node.nl
                    .route_to(net.bounds().0)
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.dst_len > 0 && r.nexthops.iter().any(|h| h.oif == Some(i)))
            })
    });
    let egress_present = match (inst.egress_gateway, inst.snat_source, wan) {
        (Some(gw), Some(source), Some(oif)) => {
            let table = inst.egress_table.unwrap_or(crate::action::EGRESS_TABLE);
            let read = node.nl.egress_rules(source, table).and_then(|rules| {
                Ok(rules && node.nl.egress_route(table, gw.is_ipv4())? == Some((gw, oif)))
            });
            match read {
                Ok(p) => Some(p),
                Err(e) => {
                    problems.push(problem!("cannot read the routing rules: {e:#}"));
                    None
                }
            }
        }
        // The interface is gone: the address and route checks say so.
        (Some(_), Some(_), None) => Some(false),
        _ => None,
    };
    Ok(Seen {
        // From the dump status took once, not a dump per instance.
        keepalived_master: crate::supersede::vips_on(node.addrs, &inst.vrrp_vips),
        fips: inst
            .floating_ips
            .iter()
            .map(|c| FloatingIp {
                ip: c.to_string(),
                present: node.addrs.iter().any(|a| a.addr == c.addr),
            })
            .collect(),
        ip_forward: sysctl("net.ipv4.ip_forward"),
        ipv6_forwarding: sysctl("net.ipv6.conf.all.forwarding"),
        snat_present,
        default_route: node.default_route.clone(),
        routed_out_of_wan,
        egress_present,
        rec,
    })
}

/// Where getprotobyname(3), and so conntrackd's filter, finds protocol names.
const PROTOCOLS: &str = "/etc/protocols";

/// conntrackd's statistics in one line, or "not running" (a problem).
fn conntrackd_line(s: &Settings, config: &std::path::Path, problems: &mut Vec<String>) -> String {
    let ct = Conntrackd {
        prog: s.conntrackd.clone(),
        config: config.to_path_buf(),
        timeout: s.command_timeout,
        stop: &hakit_core::exec::never,
    };
    // A filter naming protocols this node cannot resolve syncs none of their flows, while
    // conntrackd runs and answers as if all were well.
    let conf = std::fs::read_to_string(config).unwrap_or_default();
    let protocols = std::fs::read_to_string(PROTOCOLS).unwrap_or_default();
    let unknown = crate::conntrackd::unknown_filter_protocols(&conf, &protocols);
    if !unknown.is_empty() {
        let names = unknown.join(", ");
        problems.push(problem!(
            "conntrackd's filter names protocols {PROTOCOLS} lacks ({names}): their flows are not synchronised"
        ));
    }
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
}

/// For every VRRP address this node holds, an ARP probe: who else answers for it (another
/// MASTER does). Returns their MACs.
fn split_brain_probe(node: &Node, inst: &Instance, problems: &mut Vec<String>) -> Vec<String> {
    let mut others = Vec::new();
    for vip in &inst.vrrp_vips {
        let IpAddr::V4(v4) = vip else { continue };
        let Some(held) = node.addrs.iter().find(|a| a.addr == *vip) else {
            continue;
        };
        let Some(link) = node.links.iter().find(|l| l.index == held.index) else {
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
                others.extend(macs);
            }
            Ok(_) => {}
            Err(e) => problems.push(problem!("cannot probe {vip} on {}: {e:#}", link.name)),
        }
    }
    others
}

/// Who the provider routes the floating IP to (read only), which must be this node
/// exactly when it is MASTER.
fn provider_owner(
    inst: &Instance,
    fip: &hakit_fip::config::Fip,
    master: bool,
    problems: &mut Vec<String>,
) -> Option<String> {
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
            Some(owner)
        }
        Err(e) => {
            problems.push(problem!("cannot ask the provider who owns {ip}: {e:#}"));
            None
        }
    }
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
    let procs = hakit_core::procs::with_argv();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Recorded, StepRecord};
    use checks::*;

    /// The monitor's heartbeat as status reads it: drained is no problem (asked for),
    /// standing down is (the VRRP path needs mending), unhealthy is.
    #[test]
    fn the_monitors_heartbeat_says_what_it_is_doing() {
        let dir = std::env::temp_dir().join(format!("hakit-status-hb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let track = dir.join("uplink");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let beat = |extra: &str| {
            std::fs::write(
                hakit_core::heartbeat::path(&track),
                format!(r#"{{"pid":1,"at_ms":{now},"healthy":false,"since_ms":{now},"failing":[],"probes":2{extra}}}"#),
            )
            .unwrap();
            uplink_monitor(&track)
        };
        let (line, problem) = beat(r#","standing_down":"the VRRP path is cut: no advert""#);
        assert!(line.starts_with("STANDING DOWN for"), "{line}");
        assert_eq!(
            problem.as_deref(),
            Some("uplink monitor: the VRRP path is cut: no advert")
        );
        let (line, problem) = beat(r#","drained":"kernel upgrade""#);
        assert!(line.starts_with("DRAINED (kernel upgrade)"), "{line}");
        assert_eq!(problem, None);
        let (_, problem) = beat("");
        assert_eq!(problem.as_deref(), Some("uplink monitor: unhealthy: "));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn inst() -> Instance {
        Instance {
            vrrp_vips: vec!["198.51.100.1".parse().unwrap()],
            ..crate::action::tests::inst()
        }
    }

    /// A converged MASTER that holds everything: no check finds a problem.
    fn healthy_master() -> Seen {
        Seen {
            rec: Recorded {
                state: Some(State::Master),
                converged: true,
                ..Recorded::default()
            },
            keepalived_master: Some(true),
            fips: vec![FloatingIp {
                ip: "203.0.113.10/32".into(),
                present: true,
            }],
            ip_forward: "1".into(),
            ipv6_forwarding: "0".into(),
            snat_present: Some(true),
            default_route: Some("via 203.0.113.1 dev eth0".into()),
            routed_out_of_wan: true,
            egress_present: None,
        }
    }

    fn problems(seen: &Seen) -> Vec<String> {
        CHECKS.iter().flat_map(|c| c(&inst(), seen)).collect()
    }

    #[test]
    fn a_healthy_master_and_a_healthy_backup_have_no_problem() {
        assert_eq!(problems(&healthy_master()), Vec::<String>::new());
        let mut backup = healthy_master();
        backup.rec.state = Some(State::Backup);
        backup.keepalived_master = Some(false);
        backup.fips[0].present = false;
        backup.snat_present = Some(false);
        backup.default_route = None;
        backup.ip_forward = "0".into();
        assert_eq!(problems(&backup), Vec::<String>::new());
    }

    #[test]
    fn keepalived_and_the_record_disagreeing_is_a_problem_both_ways() {
        let mut s = healthy_master();
        s.rec.state = Some(State::Backup);
        s.fips[0].present = false;
        let p = vrrp_view(&inst(), &s);
        assert!(
            p[0].starts_with(
                "keepalived is MASTER (holds 198.51.100.1) but nat-notify recorded BACKUP"
            ),
            "{p:?}"
        );
        let mut s = healthy_master();
        s.keepalived_master = Some(false);
        assert!(vrrp_view(&inst(), &s)[0].contains("keepalived is not MASTER"));
        s.keepalived_master = None;
        assert!(
            vrrp_view(&inst(), &s).is_empty(),
            "no VRRP address: nothing to tell by"
        );
    }

    #[test]
    fn a_master_that_does_not_forward_is_a_problem() {
        let mut s = healthy_master();
        s.ip_forward = "0".into();
        assert_eq!(
            forwarding(&inst(), &s),
            ["MASTER with net.ipv4.ip_forward = 0: this node does not route the LAN (apply /etc/sysctl.d/90-hakit.conf)"]
        );
        s.ip_forward = String::new();
        assert!(forwarding(&inst(), &s)[0].contains("= ?"));
        // IPv6 forwarding matters only with an IPv6 floating IP.
        let mut v6 = inst();
        v6.floating_ips.push("2001:db8::10/128".parse().unwrap());
        let s = healthy_master();
        assert!(forwarding(&inst(), &s).is_empty());
        assert!(forwarding(&v6, &s)[0].contains("net.ipv6.conf.all.forwarding = 0"));
    }

    #[test]
    fn floating_ips_belong_on_the_master_alone() {
        let mut s = healthy_master();
        s.fips[0].present = false;
        assert_eq!(
            floating_ips(&inst(), &s),
            ["MASTER without its floating IP 203.0.113.10/32"]
        );
        let mut s = healthy_master();
        s.rec.state = Some(State::Backup);
        assert_eq!(
            floating_ips(&inst(), &s),
            ["floating IP 203.0.113.10/32 present on a node that is BACKUP"]
        );
        s.rec.state = None;
        assert!(floating_ips(&inst(), &s)[0].ends_with("no recorded state"));
    }

    #[test]
    fn a_master_without_its_egress_route_is_a_problem() {
        let mut i = inst();
        let mut s = healthy_master();
        s.egress_present = Some(false);
        assert!(egress_route(&i, &s).is_empty(), "none configured");
        i.egress_gateway = Some("203.0.113.17".parse().unwrap());
        assert_eq!(
            egress_route(&i, &s),
            ["MASTER without its egress route via 203.0.113.17 (table 1147): the LAN's traffic leaves by the default gateway, where the provider does not translate it"]
        );
        s.egress_present = None;
        assert!(egress_route(&i, &s).is_empty(), "unknown is not absent");
        s.egress_present = Some(true);
        assert!(egress_route(&i, &s).is_empty());
        let mut backup = s.clone();
        backup.rec.state = Some(State::Backup);
        backup.egress_present = Some(false);
        assert!(egress_route(&i, &backup).is_empty(), "a BACKUP needs none");
    }

    #[test]
    fn a_master_without_snat_or_a_route_out_is_a_problem() {
        let mut s = healthy_master();
        s.snat_present = Some(false);
        assert_eq!(snat_rule(&inst(), &s), ["MASTER without its SNAT rule"]);
        s.snat_present = None;
        assert!(snat_rule(&inst(), &s).is_empty(), "unknown is not absent");
        let mut s = healthy_master();
        s.default_route = None;
        assert!(
            route_out(&inst(), &s).is_empty(),
            "a directly connected upstream"
        );
        s.routed_out_of_wan = false;
        assert_eq!(
            route_out(&inst(), &s),
            ["MASTER without a route out: no default route and none via eth0"]
        );
    }

    #[test]
    fn an_unconverged_transition_names_its_failed_steps() {
        let mut s = healthy_master();
        s.rec.converged = false;
        assert!(convergence(&inst(), &s)[0].contains("left unfinished"));
        s.rec.steps.insert(
            "snat_ensure".into(),
            StepRecord {
                ok: false,
                detail: "nft: no such table".into(),
                seconds: 0.0,
                skipped: false,
            },
        );
        assert_eq!(
            convergence(&inst(), &s),
            ["last transition to MASTER did not converge: snat_ensure failed: nft: no such table"]
        );
        s.rec.superseded = true;
        assert!(
            convergence(&inst(), &s).is_empty(),
            "a superseded one is the newer one's"
        );
    }
    /// Every problem this module reports (mod.rs and checks.rs) is listed in [`super::PROBLEMS`] (and so in
    /// nat-notify-status(8)), and every listed one is still reported: the problem lines
    /// are the format strings of the `problem!` calls above.
    #[test]
    fn every_problem_is_listed_and_every_listed_one_exists() {
        let src = include_str!("mod.rs");
        let code = format!(
            "{}{}",
            &src[..src.find("#[cfg(test)]").unwrap()],
            include_str!("checks.rs")
        );
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
