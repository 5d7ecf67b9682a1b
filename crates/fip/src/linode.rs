//! Linode: IP Sharing (with lelastic announcing the shared address).
//!
//! `POST /networking/ips/share` *replaces* a Linode's whole shared set, so the request
//! always carries the union of what the Linode already shares (IPv4 addresses and IPv6
//! ranges) and the floating IP: sending the floating IP alone would silently unshare the
//! rest. `--release` sends the set minus the floating IP. `--assign` moves the address
//! instead (`POST /networking/ips/assign`). This node's ID comes from the metadata service
//! (`PUT /v1/token`, then `GET /v1/instance`) unless given.

use std::net::IpAddr;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::{
    http::{retry_status, Client, Request},
    model::{refuse_third_owner, Mode, Report},
    rest::{api, json, Token},
};

pub const API: &str = "https://api.linode.com/v4";
pub const METADATA: &str = "http://169.254.169.254";

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub ip: Option<IpAddr>,
    pub linode_id: Option<u64>,
    pub peers: Vec<String>,
    pub assign: bool,
    pub api_url: Option<String>,
    pub metadata_url: Option<String>,
    pub force: bool,
    pub dry_run: bool,
    /// The local BGP speaker announcing the address (lelastic/FRR): `--check` is "this node
    /// announces it as primary and shares it", not "the API lists it".
    pub speaker: Option<hakit_bgp::Speaker>,
}

fn own_id(client: &Client, base: &str) -> anyhow::Result<u64> {
    let base = base.trim_end_matches('/');
    let t = client.send(
        &Request::new("PUT", format!("{base}/v1/token"), "metadata PUT /v1/token")
            .metadata()
            .header("Metadata-Token-Expiry-Seconds", "300"),
        retry_status,
    )?;
    if t.status != 200 {
        bail!("linode metadata PUT /v1/token: HTTP {}", t.status);
    }
    let r = client.send(
        &Request::new(
            "GET",
            format!("{base}/v1/instance"),
            "metadata GET /v1/instance",
        )
        .metadata()
        .secret("Metadata-Token", t.body.trim().to_string())
        .header("Accept", "application/json"),
        retry_status,
    )?;
    let v: Value =
        serde_json::from_str(&r.body).context("linode metadata GET /v1/instance: not JSON")?;
    v["id"]
        .as_u64()
        .context("linode metadata: instance has no id")
}

/// The addresses a Linode shares now: IPv4 `ipv4.shared[].address` and IPv6 shared ranges
/// (public for the fuzz harness: provider JSON is outside input).
pub fn shared_set(ips: &Value) -> Vec<String> {
    let mut out: Vec<String> = ips["ipv4"]["shared"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["address"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(ranges) = ips["ipv6"]["global"].as_array() {
        for r in ranges {
            // A range shared here (routed to another Linode). The share call takes ranges
            // without their prefix length ("omit /56 and /64", per the API spec).
            if let Some(range) = r["range"].as_str() {
                if r["route_target"].is_null() {
                    out.push(range.split('/').next().unwrap_or(range).to_string());
                }
            }
        }
    }
    out
}

/// The two reads a claim makes, before and after a write.
struct Reads<'a> {
    client: &'a Client,
    base: &'a str,
    token: &'a Token,
    ip: IpAddr,
    me: u64,
}

impl Reads<'_> {
    /// The Linode the address is assigned to.
    fn holder(&self) -> anyhow::Result<Option<u64>> {
        let req = api(
            "GET",
            self.base,
            &format!("/networking/ips/{}", self.ip),
            "GET /networking/ips/{address}",
            self.token,
        );
        Ok(json(self.client, "linode", &req, retry_status)?["linode_id"].as_u64())
    }

    /// What this Linode shares now.
    fn shared(&self) -> anyhow::Result<Vec<String>> {
        let req = api(
            "GET",
            self.base,
            &format!("/linode/instances/{}/ips", self.me),
            "GET /linode/instances/{id}/ips",
            self.token,
        );
        Ok(shared_set(&json(
            self.client,
            "linode",
            &req,
            retry_status,
        )?))
    }
}

pub fn run(client: &Client, token: &Token, o: &Options, mode: Mode) -> anyhow::Result<Report> {
    let ip = o.ip.context("linode: give the floating IP (--ip)")?;
    let base = o.api_url.clone().unwrap_or_else(|| API.to_string());
    let me = match o.linode_id {
        Some(id) => id,
        None => own_id(client, o.metadata_url.as_deref().unwrap_or(METADATA))?,
    };
    let mut out = Report {
        provider: "linode".into(),
        ip: Some(ip),
        this_node: me.to_string(),
        ..Report::default()
    };
    let read = Reads {
        client,
        base: &base,
        token,
        ip,
        me,
    };
    if let (Mode::Check, Some(sp)) = (mode, &o.speaker) {
        // IP Sharing only authorises; the route servers follow the announcement. The role
        // is read first (local, no API): a node that does not announce primary does not
        // get the traffic, whatever the API says.
        let (_, seen) = sp.read_ip(ip).context("linode")?;
        out.announced = Some(sp.describe(&seen));
        if !sp.is(&seen, hakit_bgp::Target::Announce(hakit_bgp::Role::Primary)) {
            out.calls = client.calls();
            return Ok(out);
        }
        let shared = read.shared()?;
        out.owned = shared.contains(&ip.to_string()) || read.holder()? == Some(me);
        out.already_converged = out.owned;
        out.calls = client.calls();
        return Ok(out);
    }
    let holder = read.holder()?;
    out.owner_before = holder.map(|h| h.to_string());
    let shared = read.shared()?;
    let ip_s = ip.to_string();
    let mine = holder == Some(me) || shared.contains(&ip_s);
    out.owned = mine;
    if mode == Mode::Check {
        out.already_converged = mine;
        out.calls = client.calls();
        return Ok(out);
    }
    if mode == Mode::Claim {
        let holder_s = holder.map(|h| h.to_string());
        refuse_third_owner(
            "linode",
            &ip.to_string(),
            holder_s.as_deref(),
            &me.to_string(),
            &o.peers,
            o.force,
        )?;
    }
    let (req, what) = match mode {
        Mode::Release if !shared.contains(&ip_s) => (None, String::new()),
        Mode::Release => {
            let rest: Vec<&String> = shared.iter().filter(|s| **s != ip_s).collect();
            (
                Some(
                    api(
                        "POST",
                        &base,
                        "/networking/ips/share",
                        "POST /networking/ips/share",
                        token,
                    )
                    .header("Content-Type", "application/json")
                    .body(json!({"linode_id": me, "ips": rest}).to_string()),
                ),
                format!("unshared {ip} from {me}"),
            )
        }
        _ if mine => (None, String::new()),
        _ if o.assign => {
            let inst = json(
                client,
                "linode",
                &api(
                    "GET",
                    &base,
                    &format!("/linode/instances/{me}"),
                    "GET /linode/instances/{id}",
                    token,
                ),
                retry_status,
            )?;
            let region = inst["region"]
                .as_str()
                .context("linode: instance has no region")?
                .to_string();
            let body =
                json!({"region": region, "assignments": [{"address": ip_s, "linode_id": me}]});
            (
                Some(
                    api(
                        "POST",
                        &base,
                        "/networking/ips/assign",
                        "POST /networking/ips/assign",
                        token,
                    )
                    .header("Content-Type", "application/json")
                    .body(body.to_string()),
                ),
                format!("assigned {ip} to {me}"),
            )
        }
        _ => {
            let mut union = shared.clone();
            union.push(ip_s.clone());
            let body = json!({"linode_id": me, "ips": union});
            (
                Some(
                    api(
                        "POST",
                        &base,
                        "/networking/ips/share",
                        "POST /networking/ips/share",
                        token,
                    )
                    .header("Content-Type", "application/json")
                    .body(body.to_string()),
                ),
                format!("shared {ip} to {me} (with {} already shared)", shared.len()),
            )
        }
    };
    let Some(req) = req else {
        out.already_converged = true;
        out.calls = client.calls();
        return Ok(out);
    };
    if o.dry_run {
        out.planned.push(req.shown());
        out.changed.push(what);
        out.calls = client.calls();
        return Ok(out);
    }
    json(client, "linode", &req, retry_status)?;
    // Read back.
    let now = read.shared()?.contains(&ip_s) || read.holder()? == Some(me);
    if (mode == Mode::Release) == now {
        bail!("linode: read-back after {what}: the change is not visible");
    }
    out.owned = now;
    out.changed.push(what);
    out.calls = client.calls();
    Ok(out)
}
