//! `route`: a route is in the main table (the default route by default), optionally out of
//! an interface or via a gateway.

use std::net::IpAddr;

use anyhow::{bail, Context};
use hakit_core::config::Cidr;
use hakit_net::Netlink;

use super::{Class, Cx, Def, Key, Kind, Reader};

pub const KIND: Def = Def {
    name: "route",
    about: "The route is there (the default route unless told), out of the interface or via the gateway if given.",
    keys: &[
        Key { name: "target", ty: "prefix", doc: "The route's prefix [default: 0.0.0.0/0]." },
        Key { name: "interface", ty: "string", doc: "The route goes out of this interface." },
        Key { name: "gateway", ty: "IP address", doc: "The route goes via this gateway." },
    ],
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
        let routes = nl.routes()?;
        let want_v4 = prefix.addr.is_ipv4();
        let found = routes.iter().find(|r| {
            let dst_ok = r.dst_len == prefix.prefix
                && r.dst.map_or(prefix.prefix == 0, |d| d == prefix.addr)
                && r.dst.is_none_or(|d| d.is_ipv4() == want_v4)
                && r.gateway.is_none_or(|g| g.is_ipv4() == want_v4 || !want_v4);
            dst_ok
                && oif.is_none_or(|i| r.oif == Some(i))
                && gateway.is_none_or(|g| r.gateway == Some(g))
        });
        match found {
            Some(r) => Ok(format!(
                "route {prefix}{}{}",
                r.gateway.map_or(String::new(), |g| format!(" via {g}")),
                match (dev, r.oif) {
                    (Some(d), _) => format!(" dev {d}"),
                    (None, Some(i)) => format!(" dev {}", link_name(nl, i)),
                    (None, None) => String::new(),
                }
            )),
            None => bail!(
                "no route {prefix}{}{}",
                dev.as_ref().map_or(String::new(), |d| format!(" dev {d}")),
                gateway.map_or(String::new(), |g| format!(" via {g}"))
            ),
        }
    }
}

/// An interface's name for messages (its index when the name cannot be read).
fn link_name(nl: &Netlink, index: u32) -> String {
    nl.links()
        .ok()
        .and_then(|l| l.into_iter().find(|l| l.index == index))
        .map_or_else(|| format!("#{index}"), |l| l.name)
}
