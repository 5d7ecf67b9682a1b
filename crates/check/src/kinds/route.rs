//! `route`: the kernel routes a prefix (the default route unless told) by that prefix's own
//! route, optionally out of an interface or via a gateway.
//!
//! The kernel is asked for the route it uses for one address of the prefix
//! (`RTM_GETROUTE` with `RTM_F_FIB_MATCH`, [`Netlink::route_to`]), never for the table: a
//! BGP-fed gateway holds a million routes, and a dump of them in the monitor's real-time
//! loop runs past its `RLIMIT_RTTIME`. The prefix's first address is asked, then its last
//! (a more specific route may cover one end); the default route is asked at addresses no
//! routing table carries (240.0.0.1 and 255.255.255.254, reserved by RFC 1112 section 4;
//! 3fff:fff:ffff:ffff::1, documentation, RFC 9637, and 100::1, discard-only, RFC 6666).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{bail, Context};
use hakit_core::config::Cidr;
use hakit_net::{Netlink, Route as KernelRoute};

use super::{Class, Cx, Def, Key, Kind, Reader, Ty};

pub const KIND: Def = Def {
    name: "route",
    about: "The kernel routes the prefix (the default route unless told) by that route, out of the interface or via the gateway if given (one route lookup, whatever the table's size).",
    keys: &[
        Key { name: "target", ty: Ty::Text("prefix"), doc: "The route's prefix [default: 0.0.0.0/0]." },
        Key { name: "interface", ty: Ty::Text("string"), doc: "The route goes out of this interface." },
        Key { name: "gateway", ty: Ty::Text("IP address"), doc: "The route goes via this gateway." },
    ],
    args: &["target"],
    build,
};

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    Ok(Box::new(Route {
        prefix: r
            .string("target")?
            .as_deref()
            .unwrap_or("0.0.0.0/0")
            .parse()?,
        dev: r.string("interface")?,
        gateway: r.ip("gateway")?,
    }))
}

#[derive(Debug)]
struct Route {
    prefix: Cidr,
    dev: Option<String>,
    gateway: Option<IpAddr>,
}

impl Kind for Route {
    fn detail(&self) -> String {
        self.prefix.to_string()
    }

    fn class(&self) -> Class {
        Class::Kernel
    }

    fn run(&self, cx: &mut Cx<'_>) -> anyhow::Result<String> {
        let (prefix, dev, gateway) = (self.prefix, &self.dev, self.gateway);
        let nl = cx.session.netlink()?;
        let oif = match dev {
            Some(d) => Some(
                nl.link_by_name(d)?
                    .with_context(|| format!("interface {d} does not exist"))?
                    .index,
            ),
            None => None,
        };
        let mut used: Option<(IpAddr, KernelRoute)> = None;
        let mut found = None;
        for at in lookups(prefix) {
            match nl.route_to(at)? {
                Some(r) if is(&r, prefix) => {
                    found = Some(r);
                    break;
                }
                Some(r) => used = used.or(Some((at, r))),
                None => {}
            }
        }
        let want = || {
            format!(
                "{prefix}{}{}",
                dev.as_ref().map_or(String::new(), |d| format!(" dev {d}")),
                gateway.map_or(String::new(), |g| format!(" via {g}"))
            )
        };
        let Some(r) = found else {
            match used {
                Some((at, r)) => bail!(
                    "no route {}: the kernel routes {at} by {}",
                    want(),
                    describe(nl, &r)
                ),
                None => bail!("no route {}", want()),
            }
        };
        let hop = r.nexthops.iter().find(|h| {
            oif.is_none_or(|i| h.oif == Some(i)) && gateway.is_none_or(|g| h.gateway == Some(g))
        });
        match hop {
            Some(_) => Ok(format!("route {}", describe(nl, &r))),
            None => bail!("no route {}: it is {}", want(), describe(nl, &r)),
        }
    }
}

/// Where the kernel is asked (see the module's documentation).
fn lookups(prefix: Cidr) -> Vec<IpAddr> {
    if prefix.prefix == 0 {
        return match prefix.addr {
            IpAddr::V4(_) => vec![
                Ipv4Addr::new(240, 0, 0, 1).into(),
                Ipv4Addr::new(255, 255, 255, 254).into(),
            ],
            IpAddr::V6(_) => vec![
                Ipv6Addr::new(0x3fff, 0xfff, 0xffff, 0xffff, 0, 0, 0, 1).into(),
                Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 1).into(),
            ],
        };
    }
    let (first, last) = prefix.bounds();
    if first == last {
        vec![first]
    } else {
        vec![first, last]
    }
}

/// Whether the kernel's route `r` is the prefix's own.
fn is(r: &KernelRoute, prefix: Cidr) -> bool {
    r.dst_len == prefix.prefix
        && (prefix.prefix == 0 || r.dst.is_some_and(|d| d == prefix.bounds().0))
}

/// `198.51.100.0/24 via 203.0.113.9 dev eth0`, each next hop of a multipath route.
fn describe(nl: &Netlink, r: &KernelRoute) -> String {
    let dst = match r.dst {
        Some(d) if r.dst_len > 0 => format!("{d}/{}", r.dst_len),
        _ => "default".into(),
    };
    let hops: Vec<String> = r
        .nexthops
        .iter()
        .map(|h| {
            let mut s = String::new();
            if let Some(g) = h.gateway {
                s.push_str(&format!(" via {g}"));
            }
            if let Some(i) = h.oif {
                s.push_str(&format!(" dev {}", link_name(nl, i)));
            }
            s
        })
        .collect();
    let table = if r.table == 254 {
        String::new()
    } else {
        format!(" table {}", r.table)
    };
    format!("{dst}{}{table}", hops.join(" nexthop"))
}

/// An interface's name for messages (its index when the name cannot be read).
fn link_name(nl: &Netlink, index: u32) -> String {
    nl.link_by_index(index)
        .ok()
        .flatten()
        .map_or_else(|| format!("#{index}"), |l| l.name)
}
