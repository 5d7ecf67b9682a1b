//! `fip-owner`: the provider's holder of the floating IP matches this node's role, read
//! through the fip-claim library (read-only), the answer cached in the runtime directory.
//! The role is nat-notify's newest intent for an instance with a live keepalived (as the
//! monitors tell each other, [`crate::roles::vrrp_roles`]): a MASTER must hold the address,
//! a BACKUP must not (a healthy BACKUP is healthy). Where no role is known (no keepalived
//! hook has run here), owning it is what passes.

use std::{net::IpAddr, time::Duration};

use anyhow::{bail, Context};

use super::{Class, Cx, Def, Key, Kind, Reader, Ty};
use crate::tools::Tools;

pub const KIND: Def = Def {
    name: "fip-owner",
    about: "The provider's holder of the floating IP matches this node's role (settings from [fip]): a MASTER holds it, a BACKUP does not; the monitor leaves it out.",
    keys: &[
        Key { name: "target", ty: Ty::Text("IP address"), doc: "The floating IP [default: [fip] ip]." },
        Key {
            name: "cache",
            ty: Ty::Text("duration"),
            doc: "How long a provider's answer is reused [default: 30s].",
        },
    ],
    args: &["target"],
    build,
};

fn build(r: &Reader) -> Result<Box<dyn Kind>, String> {
    Ok(Box::new(FipOwner {
        ip: r.ip("target")?,
        cache: r.duration("cache")?.unwrap_or(Duration::from_secs(30)),
    }))
}

#[derive(Debug)]
struct FipOwner {
    ip: Option<IpAddr>,
    cache: Duration,
}

impl Kind for FipOwner {
    fn detail(&self) -> String {
        self.ip.map_or("configured".into(), |i| i.to_string())
    }

    fn class(&self) -> Class {
        Class::Provider
    }

    fn run(&self, cx: &mut Cx<'_>) -> anyhow::Result<String> {
        fip_owner(self.ip, self.cache, cx.timeout, cx.tools)
    }
}

/// Whether this node owns the floating IP at the provider: a read-only check through the
/// fip-claim library, reused for `cache` from a file in the runtime directory.
fn fip_owner(
    ip: Option<IpAddr>,
    cache: Duration,
    timeout: Duration,
    tools: &Tools,
) -> anyhow::Result<String> {
    let mut cfg = tools
        .fip
        .clone()
        .context("fip-owner probe: no [fip] table (provider, ip, ...) in the config file")?;
    cfg.ip = ip.or(cfg.ip);
    let key = cfg
        .ip
        .map_or_else(
            || cfg.allocation_id.clone().unwrap_or_else(|| "fip".into()),
            |i| i.to_string(),
        )
        .replace([':', '/'], "_");
    let path = tools
        .cache_dir
        .join(format!("ha-check.fip-owner.{key}.json"));
    let now = hakit_core::clock::unix_secs();
    // A cache in a directory another user can write could claim ownership: it is trusted
    // (and written) only in a private one.
    let private = hakit_core::runtime::ensure_private_dir(&tools.cache_dir).is_ok();
    let cached: Option<serde_json::Value> = private
        .then(|| {
            hakit_core::runtime::read_file(&path, 64 << 10, hakit_core::runtime::Trust::Config).ok()
        })
        .flatten()
        .and_then(|t| serde_json::from_str(&t).ok());
    let fresh = cached.filter(|c| {
        c["at"]
            .as_f64()
            .is_some_and(|at| now - at < cache.as_secs_f64() && now >= at)
    });
    let (owned, detail, age) = match fresh {
        Some(c) => (
            c["owned"].as_bool().unwrap_or(false),
            c["detail"].as_str().unwrap_or_default().to_string(),
            now - c["at"].as_f64().unwrap_or(now),
        ),
        None => {
            cfg.deadline = Some(hakit_core::HDuration(timeout));
            cfg.timeout = Some(hakit_core::HDuration(
                cfg.timeout.map_or(timeout, |t| t.get().min(timeout)),
            ));
            cfg.attempts = Some(cfg.attempts.unwrap_or(2).min(2));
            let out = hakit_fip::run(&cfg, hakit_fip::model::Mode::Check, false, false)?;
            let detail = format!(
                "{} {} by this node ({}), held by {}",
                out.provider,
                out.ip.map_or("?".into(), |i| i.to_string()),
                out.this_node,
                out.owner_before.as_deref().unwrap_or("nobody")
            );
            let rec = serde_json::json!({"at": now, "owned": out.owned, "detail": detail});
            if private {
                let _ = hakit_core::runtime::write_atomic(&path, rec.to_string().as_bytes(), 0o644);
            }
            (out.owned, detail, 0.0)
        }
    };
    let src = if age > 0.0 {
        format!(" (cached {age:.0}s ago)")
    } else {
        String::new()
    };
    let roles = crate::roles::vrrp_roles(&tools.cache_dir, &tools.keepalived_pid);
    let master = (!roles.is_empty()).then(|| roles.iter().any(|r| r.up == Some(true)));
    match (master, owned) {
        (Some(true) | None, true) => Ok(format!("owned: {detail}{src}")),
        (Some(true) | None, false) => bail!("NOT owned: {detail}{src}"),
        (Some(false), false) => Ok(format!("not owned, as a BACKUP: {detail}{src}")),
        (Some(false), true) => bail!(
            "owned, but this node is not MASTER (split brain or an unfinished release): {detail}{src}"
        ),
    }
}
