//! `nft-rule`: the SNAT rule nat-notify installs is in the ruleset.

use std::net::IpAddr;

use anyhow::bail;
use hakit_core::config::Cidr;

use super::{Class, Cx, Def, Key, Kind, Reader, Ty};

pub const KIND: Def = Def {
    name: "nft-rule",
    about: "The ruleset has a SNAT rule from the source network to the address.",
    keys: &[
        Key {
            name: "snat_source",
            ty: Ty::Text("prefix"),
            doc: "The network translated (required).",
        },
        Key {
            name: "to",
            ty: Ty::Text("IP address"),
            doc: "The address it is translated to (required).",
        },
    ],
    args: &[],
    build,
};

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    Ok(Box::new(NftRule {
        source: r
            .parse("snat_source", "a prefix")?
            .ok_or("nft-rule probe needs `snat_source`")?,
        to: r.ip("to")?.ok_or("nft-rule probe needs `to`")?,
    }))
}

#[derive(Debug)]
struct NftRule {
    source: Cidr,
    to: IpAddr,
}

impl Kind for NftRule {
    fn detail(&self) -> String {
        format!("{}->{}", self.source, self.to)
    }

    fn class(&self) -> Class {
        Class::Ruleset
    }

    fn run(&self, cx: &mut Cx<'_>) -> anyhow::Result<String> {
        let (source, to) = (self.source, self.to);
        let rules = hakit_net::nft::parse_ruleset(cx.tools.ruleset(cx.timeout)?)?;
        if rules.iter().any(|r| r.translates(source, to)) {
            Ok(format!("SNAT {source} -> {to} present"))
        } else {
            bail!("no SNAT rule {source} -> {to}")
        }
    }
}
