//! An egress gateway by policy routing: what a NAT gateway's LAN traffic needs where the
//! provider translates only traffic that leaves through a gateway other than the node's
//! default one (DigitalOcean's anchor gateway: a Reserved IP translates only the anchor
//! address, and only for traffic sent via the anchor gateway; the node's own traffic, its
//! provider API calls included, must keep the default gateway, or a BACKUP could never
//! claim the address).
//!
//! Two rules and one route, as `ip` would write them (the first is wg-quick's idiom):
//!
//! ```text
//! ip rule add pref 1147 from SOURCE lookup main suppress_prefixlength 0
//! ip rule add pref 1148 from SOURCE lookup TABLE
//! ip route replace default via GATEWAY dev DEV table TABLE
//! ```
//!
//! The first keeps every specific route of the main table (the LAN itself, the sync link,
//! the peer: keepalived's unicast adverts from the LAN address) and refuses only its
//! default route to SOURCE; the second sends what is left, the LAN's internet traffic, via
//! GATEWAY. A FIB rule message is an `rtmsg` in all but name (linux/fib_rules.h: family,
//! dst_len, src_len, tos, table, two reserved bytes, action, flags), and its attribute
//! numbers for source, priority and table are RTA_SRC, RTA_PRIORITY and RTA_TABLE's.

use std::net::IpAddr;

use anyhow::Context;
use hakit_core::config::Cidr;
use neli::{
    consts::{
        nl::NlmF,
        rtnl::{Rta, Rtm, RtmF, Rtn, Rtprot},
    },
    rtnl::{Rtattr, Rtmsg},
    types::{Buffer, RtBuffer},
};
use serde::Serialize;

use crate::netlink::{errno_of, family, ip_bytes, rta, rtmsg, Change, Netlink};

/// The main routing table (linux/rtnetlink.h `RT_TABLE_MAIN`).
const MAIN: u32 = 254;
/// `FRA_SUPPRESS_PREFIXLEN` (linux/fib_rules.h): neli has no name for 14 but RTA_MP_ALGO's.
const SUPPRESS_PREFIXLEN: Rta = Rta::MpAlgo;
/// The rules' priorities: before the main table's rule (32766), after the local one (0).
pub const RULE_PREF: u32 = 1147;

/// LAN traffic from `source` leaves via `gateway` out of link `oif`, from routing `table`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Egress {
    #[serde(serialize_with = "text")]
    pub source: Cidr,
    pub gateway: IpAddr,
    pub oif: u32,
    pub table: u32,
}

fn text<S: serde::Serializer>(v: &Cidr, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// A table an egress may use: not unspec (0) nor the kernel's own (253 default, 254 main,
/// 255 local).
pub fn usable_table(t: u32) -> bool {
    t != 0 && !(253..=255).contains(&t)
}

fn u32_attr(ty: Rta, v: u32) -> anyhow::Result<Rtattr<Rta, Buffer>> {
    rta(ty, v.to_ne_bytes().to_vec())
}

/// The rule `pref PREF from SOURCE lookup TABLE [suppress_prefixlength 0]` (its action,
/// FR_ACT_TO_TBL, has RTN_UNICAST's number).
fn rule(source: Cidr, table: u32, pref: u32, suppress: bool) -> anyhow::Result<Rtmsg> {
    let mut attrs = RtBuffer::new();
    if source.prefix > 0 {
        attrs.push(rta(Rta::Src, ip_bytes(source.addr))?);
    }
    attrs.push(u32_attr(Rta::Priority, pref)?);
    attrs.push(u32_attr(Rta::Table, table)?);
    if suppress {
        attrs.push(u32_attr(SUPPRESS_PREFIXLEN, 0)?);
    }
    let v4 = source.addr.is_ipv4();
    rtmsg(
        family(v4),
        0,
        source.prefix,
        Rtprot::Unspec,
        Rtn::Unicast,
        RtmF::empty(),
        attrs,
    )
}

/// The default route of `table`: via (gateway, link) to add it; without, any (to delete).
fn default_route(v4: bool, table: u32, via: Option<(IpAddr, u32)>) -> anyhow::Result<Rtmsg> {
    let mut attrs = RtBuffer::new();
    attrs.push(u32_attr(Rta::Table, table)?);
    // A delete matches on what it names: no gateway, link or protocol (0) is any.
    let mut protocol = Rtprot::Unspec;
    if let Some((gateway, oif)) = via {
        attrs.push(rta(Rta::Gateway, ip_bytes(gateway))?);
        attrs.push(u32_attr(Rta::Oif, oif)?);
        protocol = Rtprot::Static;
    }
    rtmsg(
        family(v4),
        0,
        0,
        protocol,
        Rtn::Unicast,
        RtmF::empty(),
        attrs,
    )
}

/// A dump request (of one table's routes with `table`, else of the rules).
fn dump(v4: bool, table: Option<u32>) -> anyhow::Result<Rtmsg> {
    let mut attrs = RtBuffer::new();
    if let Some(t) = table {
        attrs.push(u32_attr(Rta::Table, t)?);
    }
    rtmsg(
        family(v4),
        0,
        0,
        Rtprot::Unspec,
        Rtn::Unspec,
        RtmF::empty(),
        attrs,
    )
}

impl Netlink {
    /// Ensures the two rules and the route; [`Change::AlreadyThere`] when all three were
    /// there as asked (a route with another gateway or link is replaced).
    pub fn ensure_egress(&self, e: &Egress) -> anyhow::Result<Change> {
        anyhow::ensure!(
            e.source.addr.is_ipv4() == e.gateway.is_ipv4(),
            "egress: {} and gateway {} are not of one family",
            e.source,
            e.gateway
        );
        let mut changed = false;
        for (table, pref, suppress) in [(MAIN, RULE_PREF, true), (e.table, RULE_PREF + 1, false)] {
            let msg = rule(e.source, table, pref, suppress)?;
            match self.request(Rtm::Newrule, NlmF::CREATE | NlmF::EXCL, msg, |_: &Rtmsg| {
                Some(())
            }) {
                Ok(_) => changed = true,
                Err(err) if errno_of(&err) == Some(nix::libc::EEXIST) => {}
                Err(err) => {
                    return Err(err).with_context(|| {
                        format!("add the rule pref {pref} from {} lookup {table}", e.source)
                    })
                }
            }
        }
        let what = || format!("default via {} in table {}", e.gateway, e.table);
        let there = self.egress_route(e.table, e.source.addr.is_ipv4())?;
        if there.as_ref() != Some(&(e.gateway, e.oif)) {
            let msg = default_route(e.gateway.is_ipv4(), e.table, Some((e.gateway, e.oif)))?;
            self.request(
                Rtm::Newroute,
                NlmF::CREATE | NlmF::REPLACE,
                msg,
                |_: &Rtmsg| Some(()),
            )
            .with_context(|| format!("add the route {}", what()))?;
            changed = true;
        }
        Ok(if changed {
            Change::Applied
        } else {
            Change::AlreadyThere
        })
    }

    /// Removes the rules and the route; [`Change::AlreadyThere`] when none was there.
    pub fn remove_egress(&self, e: &Egress) -> anyhow::Result<Change> {
        let mut changed = false;
        for (table, pref, suppress) in [(e.table, RULE_PREF + 1, false), (MAIN, RULE_PREF, true)] {
            let msg = rule(e.source, table, pref, suppress)?;
            match self.request(Rtm::Delrule, NlmF::empty(), msg, |_: &Rtmsg| Some(())) {
                Ok(_) => changed = true,
                Err(err) if errno_of(&err) == Some(nix::libc::ENOENT) => {}
                Err(err) => {
                    return Err(err).with_context(|| {
                        format!(
                            "delete the rule pref {pref} from {} lookup {table}",
                            e.source
                        )
                    })
                }
            }
        }
        if self
            .egress_route(e.table, e.source.addr.is_ipv4())?
            .is_some()
        {
            // Whatever its gateway or link: the table is the egress's own.
            let msg = default_route(e.source.addr.is_ipv4(), e.table, None)?;
            match self.request(Rtm::Delroute, NlmF::empty(), msg, |_: &Rtmsg| Some(())) {
                Ok(_) => changed = true,
                Err(err) if errno_of(&err) == Some(nix::libc::ESRCH) => {}
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("delete the default route of table {}", e.table))
                }
            }
        }
        Ok(if changed {
            Change::Applied
        } else {
            Change::AlreadyThere
        })
    }

    /// The default route of `table` (gateway, link), if it has a unicast one. A dump of
    /// that table only (strict checking filters by RTA_TABLE), never of the main table.
    pub fn egress_route(&self, table: u32, v4: bool) -> anyhow::Result<Option<(IpAddr, u32)>> {
        let msg = dump(v4, Some(table))?;
        let routes = match self.request(Rtm::Getroute, NlmF::DUMP, msg, crate::netlink::parse_route)
        {
            Ok(r) => r,
            // The kernel has no such table yet (IPv4 says so; IPv6 answers nothing).
            Err(err) if errno_of(&err) == Some(nix::libc::ENOENT) => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("dump routing table {table}")),
        };
        Ok(routes
            .into_iter()
            .filter(|r| r.table == table && r.dst_len == 0)
            .find_map(|r| {
                let n = r.nexthops.first()?;
                Some((n.gateway?, n.oif?))
            }))
    }

    /// Whether both rules of `source`'s egress through `table` are in place.
    pub fn egress_rules(&self, source: Cidr, table: u32) -> anyhow::Result<bool> {
        let msg = dump(source.addr.is_ipv4(), None)?;
        let rules = self
            .request(Rtm::Getrule, NlmF::DUMP, msg, |r: &Rtmsg| {
                let h = r.rtattrs().get_attr_handle();
                let src = h
                    .get_attribute(Rta::Src)
                    .and_then(|a| crate::netlink::ip_from_bytes(a.rta_payload().as_ref()));
                Some((
                    src,
                    *r.rtm_src_len(),
                    h.get_attr_payload_as::<u32>(Rta::Priority).ok(),
                    h.get_attr_payload_as::<u32>(Rta::Table).ok(),
                ))
            })
            .context("dump the routing rules")?;
        let has = |pref: u32, t: u32| {
            rules.iter().any(|(src, len, p, tab)| {
                *src == Some(source.addr)
                    && *len == source.prefix
                    && *p == Some(pref)
                    && *tab == Some(t)
            })
        };
        Ok(has(RULE_PREF, MAIN) && has(RULE_PREF + 1, table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_own_tables_are_refused() {
        for t in [0, 253, 254, 255] {
            assert!(!usable_table(t), "{t}");
        }
        for t in [1, 100, 252, 256, 1147, u32::MAX] {
            assert!(usable_table(t), "{t}");
        }
    }
}

#[cfg(test)]
mod root_tests {
    use super::*;

    fn ip(ns: &str, args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(["-n", ns])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "ip {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// In a namespace of its own: the rules and the route appear, a forwarded LAN packet is
    /// routed via the egress gateway while the node's own traffic keeps the default one,
    /// a second ensure changes nothing, and remove leaves nothing behind.
    #[test]
    #[ignore = "needs root (network namespaces): make integration"]
    fn egress_routes_the_lan_only_and_comes_off_cleanly() {
        let ns = format!("hakit-egress-{}", std::process::id());
        assert!(std::process::Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap()
            .success());
        struct Gone(String);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", &self.0])
                    .status();
            }
        }
        let _gone = Gone(ns.clone());
        for args in [
            &[
                "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
            ][..],
            &[
                "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
            ],
            &["link", "set", "eth0", "up"],
            &["link", "set", "eth0p", "up"],
            &["link", "set", "eth1", "up"],
            &["link", "set", "eth1p", "up"],
            &["addr", "add", "203.0.113.2/28", "dev", "eth0"],
            &["addr", "add", "203.0.113.18/28", "dev", "eth0"],
            &["addr", "add", "198.51.100.2/24", "dev", "eth1"],
            &["route", "add", "default", "via", "203.0.113.1"],
        ] {
            ip(&ns, args);
        }
        // A gateway forwards (without it the kernel has no route for a forwarded packet).
        assert!(std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_forward=1"
            ])
            .status()
            .unwrap()
            .success());
        let f = nix::fcntl::open(
            format!("/run/netns/{ns}").as_str(),
            nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        // A thread of its own enters the namespace (setns is per thread).
        let ns2 = ns.clone();
        std::thread::spawn(move || {
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let nl = Netlink::open().unwrap();
            let eth0 = nl.link_by_name("eth0").unwrap().unwrap();
            let e = Egress {
                source: "198.51.100.0/24".parse().unwrap(),
                gateway: "203.0.113.17".parse().unwrap(),
                oif: eth0.index,
                table: 1147,
            };
            assert!(!nl.egress_rules(e.source, e.table).unwrap());
            assert_eq!(nl.ensure_egress(&e).unwrap(), Change::Applied);
            assert!(nl.egress_rules(e.source, e.table).unwrap());
            assert_eq!(
                nl.egress_route(1147, true).unwrap(),
                Some((e.gateway, eth0.index))
            );
            assert_eq!(nl.ensure_egress(&e).unwrap(), Change::AlreadyThere);
            let rules = ip(&ns2, &["rule", "show"]);
            assert!(
                rules.contains("1147:\tfrom 198.51.100.0/24 lookup main suppress_prefixlength 0"),
                "{rules}"
            );
            assert!(
                rules.contains("1148:\tfrom 198.51.100.0/24 lookup 1147"),
                "{rules}"
            );
            // A LAN host's packet for the internet, forwarded: via the egress gateway.
            let lan = ip(
                &ns2,
                &[
                    "route",
                    "get",
                    "192.0.2.200",
                    "from",
                    "198.51.100.50",
                    "iif",
                    "eth1",
                ],
            );
            assert!(lan.contains("via 203.0.113.17 dev eth0"), "{lan}");
            // The node's own traffic, even from its LAN address to the LAN: the main table.
            let own = ip(&ns2, &["route", "get", "192.0.2.200"]);
            assert!(own.contains("via 203.0.113.1 dev eth0"), "{own}");
            let lan_local = ip(
                &ns2,
                &["route", "get", "198.51.100.3", "from", "198.51.100.2"],
            );
            assert!(lan_local.contains("dev eth1"), "{lan_local}");
            // Another gateway is replaced, not added beside.
            let moved = Egress {
                gateway: "203.0.113.19".parse().unwrap(),
                ..e
            };
            assert_eq!(nl.ensure_egress(&moved).unwrap(), Change::Applied);
            assert_eq!(
                nl.egress_route(1147, true).unwrap(),
                Some((moved.gateway, eth0.index))
            );
            // Somebody points the table elsewhere: remove still takes it off.
            ip(
                &ns2,
                &[
                    "route",
                    "replace",
                    "default",
                    "via",
                    "203.0.113.1",
                    "table",
                    "1147",
                ],
            );
            assert_eq!(nl.remove_egress(&moved).unwrap(), Change::Applied);
            assert_eq!(nl.remove_egress(&moved).unwrap(), Change::AlreadyThere);
            assert!(!nl.egress_rules(e.source, e.table).unwrap());
            assert_eq!(nl.egress_route(1147, true).unwrap(), None);
            let rules = ip(&ns2, &["rule", "show"]);
            assert!(!rules.contains("198.51.100.0/24"), "{rules}");
        })
        .join()
        .unwrap();
    }
}
