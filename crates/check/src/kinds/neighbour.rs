//! `neighbour`: the upstream gateway answers at layer 2 (ARP for IPv4, neighbour
//! solicitation for IPv6), for a gateway that rate-limits or filters ICMP.

use std::net::IpAddr;

use anyhow::Context;

use super::{Class, Cx, Def, Key, Kind, Reader, Ty};
use crate::tools::{Asked, Session};

pub const KIND: Def = Def {
    name: "neighbour",
    about: "The host answers ARP (IPv4) or neighbour solicitation (IPv6) on the interface.",
    keys: &[
        Key {
            name: "target",
            ty: Ty::Text("IP address"),
            doc: "The neighbour, the upstream gateway (required).",
        },
        Key {
            name: "interface",
            ty: Ty::Text("string"),
            doc: "The interface it is on (required).",
        },
    ],
    args: &["target"],
    build,
};

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    Ok(Box::new(Neighbour {
        target: r.ip("target")?.ok_or("neighbour probe needs `target`")?,
        dev: r.need("interface")?,
    }))
}

#[derive(Debug)]
struct Neighbour {
    target: IpAddr,
    dev: String,
}

impl Kind for Neighbour {
    fn detail(&self) -> String {
        self.target.to_string()
    }

    fn class(&self) -> Class {
        Class::Asked
    }

    fn run(&self, cx: &mut Cx<'_>) -> anyhow::Result<String> {
        super::ask_and_wait(self, cx)
    }

    fn ask(&self, session: &mut Session) -> anyhow::Result<Option<hakit_net::icmp::Round>> {
        if session.asker.is_none() {
            let nl = hakit_net::Netlink::open()?;
            let l = nl
                .link_by_name(&self.dev)?
                .with_context(|| format!("interface {} does not exist", self.dev))?;
            session.asker = Some(hakit_net::neighbour::Asker::open(&nl, &l, self.target)?);
        }
        let sent = session.asker.as_ref().context("no packet socket")?.send();
        if sent.is_err() {
            // The link went away or changed: a new socket next time.
            session.asker = None;
        }
        sent?;
        Ok(None)
    }

    fn answer(
        &self,
        session: &mut Session,
        asked: &Asked,
        late: bool,
    ) -> Option<anyhow::Result<String>> {
        let target = self.target;
        match session.asker.as_ref().and_then(|a| a.read()) {
            Some(mac) => Some(Ok(format!(
                "{target} is at {mac} ({:.3} ms)",
                asked.start.elapsed().as_secs_f64() * 1000.0
            ))),
            None if !late => None,
            None => Some(Err(anyhow::anyhow!(
                "{target} did not answer {} on {} within {:?}",
                if target.is_ipv4() {
                    "ARP"
                } else {
                    "neighbour solicitation"
                },
                self.dev,
                asked.timeout
            ))),
        }
    }
}
