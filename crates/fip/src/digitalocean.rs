//! DigitalOcean Reserved IPs: `POST /reserved_ips/{ip}/actions {"type":"assign",
//! "droplet_id":n}`, then poll the action to `completed`. This droplet's ID comes from the
//! metadata service (`/metadata/v1/id`) unless given.

use std::{net::IpAddr, thread, time::Duration};

use anyhow::{bail, Context};
use serde_json::json;

use crate::{
    http::{retry_status, Client, Request},
    model::{refuse_third_owner, Mode, Report},
    rest::{api, json, Token},
};

pub const API: &str = "https://api.digitalocean.com/v2";
pub const METADATA: &str = "http://169.254.169.254";

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub ip: Option<IpAddr>,
    pub droplet_id: Option<u64>,
    pub peers: Vec<String>,
    pub api_url: Option<String>,
    pub metadata_url: Option<String>,
    pub force: bool,
    pub dry_run: bool,
}

pub fn run(client: &Client, token: &Token, o: &Options, mode: Mode) -> anyhow::Result<Report> {
    let ip = o.ip.context("digitalocean: give the reserved IP (--ip)")?;
    let base = o.api_url.clone().unwrap_or_else(|| API.to_string());
    let me = match o.droplet_id {
        Some(id) => id,
        None => {
            let m = o
                .metadata_url
                .as_deref()
                .unwrap_or(METADATA)
                .trim_end_matches('/');
            let r = client.send(
                &Request::new("GET", format!("{m}/metadata/v1/id"), "metadata id").metadata(),
                retry_status,
            )?;
            r.body.trim().parse().with_context(|| {
                format!(
                    "digitalocean metadata: id {:?} is not a number",
                    crate::rest::clip(r.body.trim())
                )
            })?
        }
    };
    // The Reserved IP's holder: read first, and read back after the assign.
    let read = || {
        json(
            client,
            "digitalocean",
            &api(
                "GET",
                &base,
                &format!("/reserved_ips/{ip}"),
                "GET /reserved_ips/{ip}",
                token,
            ),
            retry_status,
        )
    };
    let info = read()?;
    let holder = info["reserved_ip"]["droplet"]["id"].as_u64();
    let mut out = Report {
        provider: "digitalocean".into(),
        ip: Some(ip),
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
        bail!("digitalocean: --release is not supported; claim it from the other node");
    }
    let holder_s = holder.map(|h| h.to_string());
    refuse_third_owner(
        "digitalocean",
        &ip.to_string(),
        holder_s.as_deref(),
        &me.to_string(),
        &o.peers,
        o.force,
    )?;
    let req = api(
        "POST",
        &base,
        &format!("/reserved_ips/{ip}/actions"),
        "POST /reserved_ips/{ip}/actions",
        token,
    )
    .header("Content-Type", "application/json")
    .body(json!({"type": "assign", "droplet_id": me}).to_string());
    if o.dry_run {
        out.planned.push(req.shown());
        out.changed.push(format!("assign {ip} to droplet {me}"));
        out.calls = client.calls();
        return Ok(out);
    }
    let action = json(client, "digitalocean", &req, retry_status)?["action"].clone();
    let id = action["id"]
        .as_u64()
        .context("digitalocean: assign returned no action")?;
    let mut status = action["status"]
        .as_str()
        .unwrap_or("in-progress")
        .to_string();
    while status == "in-progress" {
        thread::sleep(Duration::from_millis(200));
        let a = json(
            client,
            "digitalocean",
            &api(
                "GET",
                &base,
                &format!("/reserved_ips/{ip}/actions/{id}"),
                "GET /reserved_ips/{ip}/actions/{id}",
                token,
            ),
            retry_status,
        )?;
        status = a["action"]["status"]
            .as_str()
            .unwrap_or("in-progress")
            .to_string();
    }
    if status != "completed" {
        bail!("digitalocean assign action {id}: {status}");
    }
    let after = read()?;
    if after["reserved_ip"]["droplet"]["id"].as_u64() != Some(me) {
        bail!("digitalocean: read-back: {ip} is not on droplet {me}");
    }
    out.owned = true;
    out.changed.push(format!("assigned {ip} to droplet {me}"));
    out.calls = client.calls();
    Ok(out)
}
