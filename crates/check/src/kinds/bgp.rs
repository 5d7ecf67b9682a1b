//! `bgp`: the local BGP speaker (`[bgp]`) has its sessions and announces the address
//! with the role's community.

use std::{net::IpAddr, time::Duration};

use anyhow::{bail, Context};

use super::{Cx, Def, Key, Kind, Reader, Ty};
use crate::tools::Tools;

pub const KIND: Def = Def {
    name: "bgp",
    about: "The [bgp] speaker has its sessions established and announces the address.",
    keys: &[
        Key {
            name: "target",
            ty: Ty::Text("IP address"),
            doc: "Check that this address's prefix is announced (with either role's community unless community is given).",
        },
        Key {
            name: "sessions",
            ty: Ty::Int,
            doc: "Sessions that must be established [default: all].",
        },
        Key {
            name: "community",
            ty: Ty::Text("string"),
            doc: "The community the announcement must carry, e.g. \"65000:1\".",
        },
    ],
    args: &["target"],
    build,
};

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    Ok(Box::new(Bgp {
        ip: r.ip("target")?,
        sessions: r.int("sessions")?,
        community: match r.string("community")? {
            Some(c) => Some(c.parse().map_err(|e| format!("bgp probe: {e}"))?),
            None => None,
        },
    }))
}

#[derive(Debug)]
struct Bgp {
    ip: Option<IpAddr>,
    sessions: Option<usize>,
    community: Option<hakit_bgp::Community>,
}

impl Kind for Bgp {
    fn detail(&self) -> String {
        self.ip.map_or("sessions".into(), |i| i.to_string())
    }

    fn needs(&self, tools: &Tools) -> Result<(), String> {
        match tools.bgp {
            Some(_) => Ok(()),
            None => Err("a bgp probe needs a [bgp] table (speaker, prefixes)".into()),
        }
    }

    fn run(&self, cx: &mut Cx<'_>) -> anyhow::Result<String> {
        bgp(self.ip, self.sessions, self.community, cx.timeout, cx.tools)
    }
}

/// The bgp probe: at least `min` sessions established (default all), and `ip`'s prefix
/// announced with `community` (default: with either role's community).
fn bgp(
    ip: Option<IpAddr>,
    min: Option<usize>,
    community: Option<hakit_bgp::Community>,
    timeout: Duration,
    tools: &Tools,
) -> anyhow::Result<String> {
    let mut sp = tools
        .bgp
        .clone()
        .context("the bgp probe needs a [bgp] table")?;
    sp.timeout = sp.timeout.min(timeout);
    let sessions = sp.sessions(&hakit_core::exec::never)?;
    let up = sessions.iter().filter(|s| s.established).count();
    let need = min.unwrap_or(sessions.len()).max(1);
    let list = sessions
        .iter()
        .map(|s| format!("{} {}", s.peer, s.state))
        .collect::<Vec<_>>()
        .join(", ");
    if up < need {
        bail!(
            "{up} of {} session(s) established, {need} needed ({list})",
            sessions.len()
        );
    }
    let mut out = format!("{up} of {} session(s) established", sessions.len());
    if let Some(ip) = ip {
        let (prefix, seen) = sp.read_ip(ip, &hakit_core::exec::never)?;
        let ok = match (community, &seen) {
            (Some(c), hakit_bgp::Seen::Path(cs)) => cs.contains(&c),
            (None, _) => sp.role_of(&seen).is_some(),
            _ => false,
        };
        let what = sp.describe(&seen);
        if !ok {
            bail!(
                "{prefix} is {what}{}",
                community.map_or(String::new(), |c| format!(", expected {c}"))
            );
        }
        out.push_str(&format!("; {prefix} {what}"));
    }
    Ok(out)
}
