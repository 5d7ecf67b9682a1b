//! What `nat-notify status` judges: one instance as observed ([`Seen`]), and the checks
//! that find its problems, each a pure function of it (unit-tested on recorded
//! observations, without root).

use std::net::IpAddr;

use serde::Serialize;

use crate::{config::Instance, event::State, runtime::Recorded};

#[derive(Debug, Clone, Serialize)]
pub struct FloatingIp {
    pub ip: String,
    pub present: bool,
}

/// One instance as `status` observed it: what the [`CHECKS`] judge, each reading only
/// this (so each is unit-tested on a recorded observation, without root).
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// What nat-notify recorded of its last transition.
    pub rec: Recorded,
    /// keepalived holds the instance's VRRP addresses (it does exactly while MASTER);
    /// `None` without VRRP addresses to tell by.
    pub keepalived_master: Option<bool>,
    pub fips: Vec<FloatingIp>,
    /// `net.ipv4.ip_forward` and `net.ipv6.conf.all.forwarding` ("" if unreadable).
    pub ip_forward: String,
    pub ipv6_forwarding: String,
    /// The SNAT rule is in nftables (`None`: no SNAT configured, or nft unreadable).
    pub snat_present: Option<bool>,
    pub default_route: Option<String>,
    /// The kernel routes one of the WAN interface's own IPv4 networks out of it (a
    /// directly connected upstream needs no default route).
    pub routed_out_of_wan: bool,
    /// egress_gateway's rules and route are in place as configured (`None`: no egress
    /// gateway configured, or the rules unreadable).
    pub egress_present: Option<bool>,
}

/// A check: the problems it finds in an observed instance.
pub(super) type Check = fn(&Instance, &Seen) -> Vec<String>;

/// What `status` judges, in the order the problems are listed.
pub(super) const CHECKS: &[Check] = &[
    vrrp_view,
    forwarding,
    floating_ips,
    snat_rule,
    route_out,
    egress_route,
    convergence,
];

/// keepalived's view against nat-notify's record.
pub(super) fn vrrp_view(inst: &Instance, seen: &Seen) -> Vec<String> {
    let recorded = seen
        .rec
        .state
        .map_or("nothing".to_string(), |s| s.to_string());
    let master = seen.rec.state == Some(State::Master);
    match seen.keepalived_master {
        Some(true) if !master => vec![problem!(
            "keepalived is MASTER (holds {}) but nat-notify recorded {recorded}: its notify hook did not run or failed (journalctl -t nat-notify; does the notify FIFO's directory exist?)",
            join(&inst.vrrp_vips)
        )],
        Some(false) if master => vec![problem!(
            "nat-notify recorded MASTER but keepalived does not hold {}: keepalived is not MASTER",
            join(&inst.vrrp_vips)
        )],
        _ => Vec::new(),
    }
}

/// A MASTER (recorded, or by keepalived's view) forwards: IPv4 always, IPv6 when it has
/// an IPv6 floating IP.
pub(super) fn forwarding(inst: &Instance, seen: &Seen) -> Vec<String> {
    if seen.rec.state != Some(State::Master) && seen.keepalived_master != Some(true) {
        return Vec::new();
    }
    let v6 = inst.floating_ips.iter().any(|c| c.addr.is_ipv6());
    [
        ("net.ipv4.ip_forward", &seen.ip_forward, true),
        ("net.ipv6.conf.all.forwarding", &seen.ipv6_forwarding, v6),
    ]
    .into_iter()
    .filter(|(_, value, wanted)| *wanted && value.as_str() != "1")
    .map(|(key, value, _)| {
        problem!(
            "MASTER with {} = {}: this node does not route the LAN (apply /etc/sysctl.d/90-hakit.conf)",
            key,
            if value.is_empty() { "?" } else { value }
        )
    })
    .collect()
}

/// The floating IPs are on the MASTER and nowhere else.
pub(super) fn floating_ips(_: &Instance, seen: &Seen) -> Vec<String> {
    let master = seen.rec.state == Some(State::Master);
    let mut out = Vec::new();
    for f in &seen.fips {
        if master && !f.present {
            out.push(problem!("MASTER without its floating IP {}", f.ip));
        }
        if !master && f.present {
            let st = seen
                .rec
                .state
                .map_or("no recorded state".to_string(), |s| s.to_string());
            out.push(problem!(
                "floating IP {} present on a node that is {st}",
                f.ip
            ));
        }
    }
    out
}

pub(super) fn snat_rule(_: &Instance, seen: &Seen) -> Vec<String> {
    if seen.rec.state == Some(State::Master) && seen.snat_present == Some(false) {
        vec![problem!("MASTER without its SNAT rule")]
    } else {
        Vec::new()
    }
}

/// The WAN is reachable the way the node routes: by a default route, or, where the
/// upstream is directly connected, by a route out of the instance's WAN interface.
pub(super) fn route_out(inst: &Instance, seen: &Seen) -> Vec<String> {
    if seen.rec.state == Some(State::Master)
        && seen.default_route.is_none()
        && !seen.routed_out_of_wan
    {
        vec![problem!(
            "MASTER without a route out: no default route and none via {}",
            inst.interface.as_deref().unwrap_or("its interface")
        )]
    } else {
        Vec::new()
    }
}

/// The LAN's traffic leaves by the egress gateway on a MASTER that has one configured.
pub(super) fn egress_route(inst: &Instance, seen: &Seen) -> Vec<String> {
    match inst.egress_gateway {
        Some(gw) if seen.rec.state == Some(State::Master) && seen.egress_present == Some(false) => {
            vec![problem!(
                "MASTER without its egress route via {} (table {}): the LAN's traffic leaves by the default gateway, where the provider does not translate it",
                gw,
                inst.egress_table.unwrap_or(crate::action::EGRESS_TABLE)
            )]
        }
        _ => Vec::new(),
    }
}

/// The last transition converged; if not, which of that state's steps failed and why
/// (the record keeps every step's last result; only this state's plan counts).
pub(super) fn convergence(inst: &Instance, seen: &Seen) -> Vec<String> {
    let rec = &seen.rec;
    let (Some(state), false, false) = (rec.state, rec.converged, rec.superseded) else {
        return Vec::new();
    };
    let failed: Vec<String> = crate::plan::plan(state, inst)
        .iter()
        .filter_map(|step| {
            let r = rec.steps.get(step.name())?;
            (!r.ok).then(|| format!("{} failed: {}", step.name(), r.detail))
        })
        .collect();
    vec![if failed.is_empty() {
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
    }]
}

/// Addresses, comma-separated.
pub(super) fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
