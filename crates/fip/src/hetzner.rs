//! Hetzner Cloud Floating IPs: `POST /floating_ips/{id}/actions/assign {"server": id}`,
//! then poll the action until it is no longer `running`. Action errors `locked`,
//! `conflict` and `rate_limit_exceeded` are retried. The Floating IP is found by ID or by
//! address; this server's ID comes from the metadata service unless given.

use std::{net::IpAddr, thread, time::Duration};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::{
    http::{retry_status, Client, Request, Response},
    model::{refuse_third_owner, Mode, Report},
    rest::{api, json, Token},
};

pub const API: &str = "https://api.hetzner.cloud/v1";
pub const METADATA: &str = "http://169.254.169.254";

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub ip: Option<IpAddr>,
    pub floating_ip_id: Option<u64>,
    pub server_id: Option<u64>,
    pub peers: Vec<String>,
    pub api_url: Option<String>,
    pub metadata_url: Option<String>,
    pub force: bool,
    pub dry_run: bool,
}

fn retry(r: &Response) -> bool {
    retry_status(r)
        || (r.status == 409 || r.status == 423)
            && ["\"locked\"", "\"conflict\"", "\"rate_limit_exceeded\""]
                .iter()
                .any(|c| r.body.contains(c))
}

pub fn run(client: &Client, token: &Token, o: &Options, mode: Mode) -> anyhow::Result<Report> {
    let base = o.api_url.clone().unwrap_or_else(|| API.to_string());
    let me = match o.server_id {
        Some(id) => id,
        None => {
            let m = o
                .metadata_url
                .as_deref()
                .unwrap_or(METADATA)
                .trim_end_matches('/');
            let r = client.send(
                &Request::new(
                    "GET",
                    format!("{m}/hetzner/v1/metadata/instance-id"),
                    "metadata instance-id",
                )
                .metadata(),
                retry_status,
            )?;
            r.body.trim().parse().with_context(|| {
                format!(
                    "hetzner metadata: instance-id {:?} is not a number",
                    r.body.trim()
                )
            })?
        }
    };
    // One Floating IP by ID: read first (when the ID is given), and read back after the assign.
    let read = |id: u64| {
        json(
            client,
            "hetzner",
            &api(
                "GET",
                &base,
                &format!("/floating_ips/{id}"),
                "GET /floating_ips/{id}",
                token,
            ),
            retry,
        )
    };
    let fip: Value = match (o.floating_ip_id, o.ip) {
        (Some(id), _) => read(id)?["floating_ip"].clone(),
        (None, Some(ip)) => {
            // Every page (the API returns at most 50 a page; a project with more used to
            // say "no Floating IP" for one beyond the first page). An IPv6 Floating IP is a
            // /64: the address configured on the node (…::1) is found by containment.
            let mut page = 1u64;
            loop {
                let list = json(
                    client,
                    "hetzner",
                    &api(
                        "GET",
                        &base,
                        &format!("/floating_ips?page={page}&per_page=50"),
                        "GET /floating_ips",
                        token,
                    ),
                    retry,
                )?;
                if let Some(f) = list["floating_ips"].as_array().and_then(|a| {
                    a.iter()
                        .find(|f| f["ip"].as_str().is_some_and(|n| contains(n, ip)))
                }) {
                    break f.clone();
                }
                match list["meta"]["pagination"]["next_page"].as_u64() {
                    Some(next) if next > page && page < 1000 => page = next,
                    _ => bail!("hetzner: no Floating IP {ip} in this project"),
                }
            }
        }
        (None, None) => bail!("hetzner: give the Floating IP (--ip) or its ID (--floating-ip-id)"),
    };
    let id = fip["id"]
        .as_u64()
        .context("hetzner: Floating IP without id")?;
    let holder = fip["server"].as_u64();
    let mut out = Report {
        provider: "hetzner".into(),
        ip: fip["ip"]
            .as_str()
            .and_then(|s| s.split('/').next())
            .and_then(|s| s.parse().ok())
            .or(o.ip),
        this_node: me.to_string(),
        owner_before: holder.map(|h| h.to_string()),
        owned: holder == Some(me),
        ..Report::default()
    };
    if mode == Mode::Check || holder == Some(me) {
        out.already_converged = holder == Some(me);
        out.calls = client.calls();
        return Ok(out);
    }
    if mode == Mode::Release {
        bail!("hetzner: --release is not supported; claim it from the other node");
    }
    let holder_s = holder.map(|h| h.to_string());
    refuse_third_owner(
        "hetzner",
        &format!("Floating IP {id}"),
        holder_s.as_deref(),
        &me.to_string(),
        &o.peers,
        o.force,
    )?;
    let req = api(
        "POST",
        &base,
        &format!("/floating_ips/{id}/actions/assign"),
        "POST /floating_ips/{id}/actions/assign",
        token,
    )
    .header("Content-Type", "application/json")
    .body(json!({"server": me}).to_string());
    if o.dry_run {
        out.planned.push(req.shown());
        out.changed
            .push(format!("assign Floating IP {id} to server {me}"));
        out.calls = client.calls();
        return Ok(out);
    }
    // An assign still running (a retry after a timeout, or nat-notify's next attempt) is
    // followed, not started twice.
    let running = json(
        client,
        "hetzner",
        &api(
            "GET",
            &base,
            &format!("/floating_ips/{id}/actions?status=running"),
            "GET /floating_ips/{id}/actions",
            token,
        ),
        retry,
    )?;
    let to_me = |x: &Value| {
        x["resources"].as_array().is_some_and(|r| {
            r.iter()
                .any(|r| r["type"] == "server" && r["id"].as_u64() == Some(me))
        })
    };
    let pending = running["actions"].as_array().and_then(|a| {
        a.iter()
            .find(|x| x["command"] == "assign_floating_ip" && x["status"] == "running" && to_me(x))
            .and_then(|x| x["id"].as_u64())
    });
    let (mut action_id, mut status) = match pending {
        Some(a) => {
            log::info!(
                "hetzner: assign action {a} of Floating IP {id} is still running: following it"
            );
            (a, "running".to_string())
        }
        None => {
            let action = json(client, "hetzner", &req, retry)?["action"].clone();
            (
                action["id"]
                    .as_u64()
                    .context("hetzner: assign returned no action")?,
                action["status"].as_str().unwrap_or("running").to_string(),
            )
        }
    };
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(200);
    let mut attempts = 0;
    while status == "running" {
        // Backed off (200 ms doubling to 2 s), and never past the deadline: then the error
        // says what is pending, not which transport attempt did not happen.
        if client.time_left() <= pause {
            bail!(
                "hetzner: assign action {action_id} of Floating IP {id} still running after {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(2));
        let a = json(
            client,
            "hetzner",
            &api(
                "GET",
                &base,
                &format!("/actions/{action_id}"),
                "GET /actions/{id}",
                token,
            ),
            retry,
        )?["action"]
            .clone();
        status = a["status"].as_str().unwrap_or("running").to_string();
        match status.as_str() {
            "running" => continue,
            "error" => {
                let code = a["error"]["code"].as_str().unwrap_or("?").to_string();
                if ["locked", "conflict", "rate_limit_exceeded"].contains(&code.as_str())
                    && attempts < 3
                {
                    attempts += 1;
                    action_id = json(client, "hetzner", &req, retry)?["action"]["id"]
                        .as_u64()
                        .context("hetzner: assign returned no action")?;
                    status = "running".into();
                    continue;
                }
                bail!(
                    "hetzner assign action {action_id}: error {code}: {}",
                    crate::rest::clip(a["error"]["message"].as_str().unwrap_or("?"))
                );
            }
            _ => {}
        }
    }
    let after = read(id)?;
    if after["floating_ip"]["server"].as_u64() != Some(me) {
        bail!(
            "hetzner: read-back: Floating IP {id} is on server {}, not {me}",
            after["floating_ip"]["server"]
        );
    }
    out.owned = true;
    out.changed
        .push(format!("assigned Floating IP {id} to server {me}"));
    out.calls = client.calls();
    Ok(out)
}

/// Whether the Floating IP `net` (an address, or a network with a prefix as IPv6 Floating
/// IPs are: `2001:db8::/64`) is or contains `ip`.
fn contains(net: &str, ip: IpAddr) -> bool {
    let (addr, len) = match net.split_once('/') {
        Some((a, l)) => (a, l.parse::<u32>().ok()),
        None => (net, None),
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (addr, ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let l = len.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - l).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let l = len.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - l).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floating_ips_match_by_containment() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(contains("2001:db8:1::/64", ip("2001:db8:1::1")));
        assert!(contains("2001:db8:1::/64", ip("2001:db8:1::")));
        assert!(!contains("2001:db8:1::/64", ip("2001:db8:2::1")));
        assert!(contains("203.0.113.10", ip("203.0.113.10")));
        assert!(!contains("203.0.113.10", ip("203.0.113.11")));
        assert!(!contains("203.0.113.10", ip("2001:db8::1")));
    }
}
