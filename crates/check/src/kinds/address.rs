//! `address`: an address is on an interface (or, with `absent`, is not).

use std::net::IpAddr;

use anyhow::{bail, Context};

use super::{Class, Cx, Def, Key, Kind, Reader, Ty};

pub const KIND: Def = Def {
    name: "address",
    about: "The address is on the interface (or, with absent, is not).",
    keys: &[
        Key {
            name: "target",
            ty: Ty::Text("IP address"),
            doc: "The address (required).",
        },
        Key {
            name: "interface",
            ty: Ty::Text("string"),
            doc: "The interface (required).",
        },
        Key {
            name: "absent",
            ty: Ty::Bool,
            doc: "Pass when the address is not there [default: false].",
        },
    ],
    args: &["target"],
    build,
};

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    let dev = r.need("interface")?;
    let target = r.need("target")?;
    Ok(Box::new(Address {
        ip: target
            .parse()
            .map_err(|_| format!("address probe: {target:?} is not an IP address"))?,
        target,
        dev,
        absent: r.bool("absent")?.unwrap_or(false),
    }))
}

#[derive(Debug)]
struct Address {
    target: String,
    dev: String,
    ip: IpAddr,
    absent: bool,
}

impl Kind for Address {
    fn detail(&self) -> String {
        self.target.clone()
    }

    fn class(&self) -> Class {
        Class::Kernel
    }

    fn run(&self, cx: &mut Cx<'_>) -> anyhow::Result<String> {
        let (dev, ip) = (&self.dev, self.ip);
        let nl = cx.session.netlink()?;
        let l = nl
            .link_by_name(dev)?
            .with_context(|| format!("interface {dev} does not exist"))?;
        let present = nl.addresses(Some(l.index))?.iter().any(|a| a.addr == ip);
        match (present, self.absent) {
            (true, false) => Ok(format!("{ip} on {dev}")),
            (false, true) => Ok(format!("{ip} not on {dev}")),
            (true, true) => bail!("{ip} is on {dev}, expected absent"),
            (false, false) => bail!("{ip} is not on {dev}"),
        }
    }
}
