//! `conntrack`: the connection-tracking table is not nearly full (a full table drops new
//! connections, which looks like a dead gateway from the LAN).

use anyhow::{bail, Context};

use super::{Cx, Def, Key, Kind, Reader, Ty};

pub const KIND: Def = Def {
    name: "conntrack",
    about: "The conntrack table is used below the limit (nf_conntrack_count / nf_conntrack_max).",
    keys: &[Key {
        name: "max_usage",
        ty: Ty::Number,
        doc: "The highest share in use that passes, in (0, 1] [default: 0.9].",
    }],
    args: &[],
    build,
};

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    let max = r.float("max_usage")?.unwrap_or(0.9);
    if !(0.0..=1.0).contains(&max) || max == 0.0 {
        return Err(format!("conntrack probe: max_usage {max} is not in (0, 1]"));
    }
    Ok(Box::new(Conntrack { max }))
}

#[derive(Debug)]
struct Conntrack {
    max: f64,
}

impl Kind for Conntrack {
    fn detail(&self) -> String {
        "usage".into()
    }

    fn run(&self, _cx: &mut Cx<'_>) -> anyhow::Result<String> {
        let read = |f: &str| -> anyhow::Result<f64> {
            hakit_core::sysctl::read_parts(&["net", "netfilter", f])
                .context("is nf_conntrack loaded?")?
                .parse::<f64>()
                .with_context(|| format!("parse net.netfilter.{f}"))
        };
        let (count, limit) = (read("nf_conntrack_count")?, read("nf_conntrack_max")?);
        let usage = if limit > 0.0 { count / limit } else { 1.0 };
        if usage >= self.max {
            bail!(
                "conntrack table {count}/{limit} = {:.1}% used, limit {:.1}%",
                usage * 100.0,
                self.max * 100.0
            );
        }
        Ok(format!(
            "conntrack {count}/{limit} = {:.1}% used",
            usage * 100.0
        ))
    }
}
