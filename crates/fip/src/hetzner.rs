//! Hetzner Cloud Floating IPs: `POST /floating_ips/{id}/actions/assign {"server": id}`,
//! then poll the action until it is no longer `running`. Action errors `locked`,
//! `conflict` and `rate_limit_exceeded` are retried. The Floating IP is found by ID or by
//! address; this server's ID comes from the metadata service unless given.

use std::{net::IpAddr, thread, time::Duration};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::{
    http::{retry_status, Client, Request, Response},
    model::{refuse_third_owner, Mode, Outcome},
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

pub fn run(client: &Client, token: &Token, o: &Options, mode: Mode) -> anyhow::Result<Outcome> {
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
                ),
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
            let list = json(
                client,
                "hetzner",
                &api(
                    "GET",
                    &base,
                    "/floating_ips?per_page=50",
                    "GET /floating_ips",
                    token,
                ),
                retry,
            )?;
            list["floating_ips"]
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .find(|f| {
                            f["ip"].as_str().and_then(|s| s.split('/').next())
                                == Some(&ip.to_string())
                        })
                        .cloned()
                })
                .with_context(|| format!("hetzner: no Floating IP {ip} in this project"))?
        }
        (None, None) => bail!("hetzner: give the Floating IP (--ip) or its ID (--floating-ip-id)"),
    };
    let id = fip["id"]
        .as_u64()
        .context("hetzner: Floating IP without id")?;
    let holder = fip["server"].as_u64();
    let mut out = Outcome {
        provider: "hetzner".into(),
        ip: fip["ip"]
            .as_str()
            .and_then(|s| s.split('/').next())
            .and_then(|s| s.parse().ok())
            .or(o.ip),
        this_node: me.to_string(),
        owner_before: holder.map(|h| h.to_string()),
        owned: holder == Some(me),
        ..Outcome::default()
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
    let action = json(client, "hetzner", &req, retry)?["action"].clone();
    let mut action_id = action["id"]
        .as_u64()
        .context("hetzner: assign returned no action")?;
    let mut status = action["status"].as_str().unwrap_or("running").to_string();
    let mut attempts = 0;
    while status == "running" {
        thread::sleep(Duration::from_millis(200));
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
        if status == "error" {
            let code = a["error"]["code"].as_str().unwrap_or("?").to_string();
            if ["locked", "conflict", "rate_limit_exceeded"].contains(&code.as_str())
                && attempts < 3
            {
                attempts += 1;
                let again = json(client, "hetzner", &req, retry)?["action"].clone();
                action_id = again["id"]
                    .as_u64()
                    .context("hetzner: assign returned no action")?;
                status = "running".into();
                continue;
            }
            bail!(
                "hetzner assign action {action_id}: error {code}: {}",
                a["error"]["message"].as_str().unwrap_or("?")
            );
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
