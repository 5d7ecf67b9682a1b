//! `icmp`: ICMP or ICMPv6 echo to a host (the upstream gateway, a target beyond it).

use std::net::IpAddr;

use anyhow::Context;

use super::{Class, Cx, Def, Key, Kind, Reader, Ty};
use crate::tools::{Asked, Session};

pub const KIND: Def = Def {
    name: "icmp",
    about: "ICMP or ICMPv6 echo: the host answers.",
    keys: &[
        Key {
            name: "target",
            ty: Ty::Text("IP address"),
            doc: "The host to ping (required).",
        },
        Key {
            name: "interface",
            ty: Ty::Text("string"),
            doc: "Bind to this interface (the WAN).",
        },
        Key {
            name: "source",
            ty: Ty::Text("IP address"),
            doc: "Source address to bind.",
        },
        Key {
            name: "count",
            ty: Ty::Int,
            doc: "Echo requests per run, 1 to 100 [default: 1]; one reply passes.",
        },
    ],
    args: &["target"],
    build,
};

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    Ok(Box::new(Icmp {
        target: r.ip("target")?.ok_or("icmp probe needs `target`")?,
        iface: r.string("interface")?,
        source: r.ip("source")?,
        count: r.int::<u32>("count")?.unwrap_or(1).clamp(1, 100),
    }))
}

#[derive(Debug)]
struct Icmp {
    target: IpAddr,
    iface: Option<String>,
    source: Option<IpAddr>,
    count: u32,
}

impl Kind for Icmp {
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
        if session.pinger.is_none() {
            session.pinger = Some(hakit_net::icmp::Pinger::open(
                self.target,
                self.iface.as_deref(),
                self.source,
            )?);
        }
        let sent = session
            .pinger
            .as_ref()
            .context("no ICMP socket")?
            .send(self.count);
        if sent.is_err() {
            // A new socket next time: the interface may have gone and come back.
            session.pinger = None;
        }
        Ok(Some(sent?))
    }

    fn answer(
        &self,
        session: &mut Session,
        asked: &Asked,
        late: bool,
    ) -> Option<anyhow::Result<String>> {
        let read = match (session.pinger.as_ref(), asked.round.as_ref()) {
            (Some(p), Some(round)) => p.read(round),
            _ => Err(anyhow::anyhow!("no ICMP socket")),
        };
        let target = self.target;
        match read {
            Ok(Some(rtt)) => Some(Ok(format!(
                "reply from {target} in {:.3} ms",
                rtt.as_secs_f64() * 1000.0
            ))),
            Ok(None) if !late => None,
            r => {
                // A new socket next time: the interface may have gone and come back.
                session.pinger = None;
                Some(Err(r.err().unwrap_or_else(|| {
                    anyhow::anyhow!("no echo reply from {target} within {:?}", asked.timeout)
                })))
            }
        }
    }
}
