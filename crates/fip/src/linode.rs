//! Linode: IP Sharing (with lelastic announcing the shared address).
//!
//! `POST /networking/ips/share` *replaces* a Linode's whole shared set, so the request
//! always carries the union of what the Linode already shares (IPv4 addresses and IPv6
//! ranges) and the floating IP: sending the floating IP alone would silently unshare the
//! rest. `--release` sends the set minus the floating IP. `--assign` moves the address
//! instead (`POST /networking/ips/assign`). This node's ID comes from the metadata service
//! (`PUT /v1/token`, then `GET /v1/instance`) unless given.

use std::net::IpAddr;

use anyhow::Context;
use serde_json::{json, Value};

use crate::{
    http::{retry_status, Client, Request},
    model::Mode,
    provider::{Checked, Held, Provider, Shape, Writes},
    rest::{api, json, Token},
};

pub const API: &str = "https://api.linode.com/v4";
pub const METADATA: &str = "http://169.254.169.254";
/// hakit's variable first, then linode-cli's.
pub const TOKEN_VARS: &[&str] = &["LINODE_TOKEN", "LINODE_CLI_TOKEN"];

/// `{"errors":[{"reason":"…","field":"…"}]}`
pub static SHAPE: Shape = Shape {
    name: "linode",
    errors: |v: &Value| {
        v["errors"]
            .as_array()
            .map(|es| {
                es.iter()
                    .map(|e| match e["field"].as_str() {
                        Some(f) => format!("{} ({f})", e["reason"].as_str().unwrap_or("?")),
                        None => e["reason"].as_str().unwrap_or("?").to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_else(|| v.to_string().chars().take(120).collect())
    },
};

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub ip: Option<IpAddr>,
    pub linode_id: Option<u64>,
    pub assign: bool,
    pub api_url: Option<String>,
    pub metadata_url: Option<String>,
    /// The local BGP speaker announcing the address (lelastic/FRR): `--check` is "this node
    /// announces it as primary and shares it", not "the API lists it".
    pub speaker: Option<hakit_bgp::Speaker>,
}

fn own_id(client: &Client, base: &str) -> anyhow::Result<u64> {
    let base = base.trim_end_matches('/');
    let req = Request::new("PUT", format!("{base}/v1/token"), "metadata PUT /v1/token")
        .metadata("linode")
        .header("Metadata-Token-Expiry-Seconds", "300");
    let t = client.send(&req, retry_status)?;
    if t.status != 200 {
        return Err(crate::http::metadata_hint(
            &req,
            anyhow::anyhow!("HTTP {}", t.status),
        ));
    }
    let req = Request::new(
        "GET",
        format!("{base}/v1/instance"),
        "metadata GET /v1/instance",
    )
    .metadata("linode")
    .secret("Metadata-Token", t.body.trim().to_string())
    .header("Accept", "application/json");
    let r = client.send(&req, retry_status)?;
    if r.status != 200 {
        return Err(crate::http::metadata_hint(
            &req,
            anyhow::anyhow!("HTTP {}", r.status),
        ));
    }
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

pub struct Linode {
    o: Options,
    token: Token,
    ip: IpAddr,
    base: String,
    me: Option<u64>,
    /// What this Linode shared at the last read (a share request carries the union).
    shared: Vec<String>,
}

impl Linode {
    pub fn new(o: Options, token: Token) -> anyhow::Result<Linode> {
        let ip = o.ip.context("linode: give the floating IP (--ip)")?;
        Ok(Linode {
            base: o.api_url.clone().unwrap_or_else(|| API.to_string()),
            me: o.linode_id,
            o,
            token,
            ip,
            shared: Vec::new(),
        })
    }

    fn get(&self, c: &Client, path: &str, call: &str) -> anyhow::Result<Value> {
        json(
            c,
            &SHAPE,
            &api("GET", &self.base, path, call, &self.token),
            retry_status,
        )
    }

    /// The Linode the address is assigned to.
    fn holder(&self, c: &Client) -> anyhow::Result<Option<u64>> {
        Ok(self.get(
            c,
            &format!("/networking/ips/{}", self.ip),
            "GET /networking/ips/{address}",
        )?["linode_id"]
            .as_u64())
    }

    /// What this Linode shares now.
    fn shared_now(&self, c: &Client, me: &str) -> anyhow::Result<Vec<String>> {
        Ok(shared_set(&self.get(
            c,
            &format!("/linode/instances/{me}/ips"),
            "GET /linode/instances/{id}/ips",
        )?))
    }

    fn post(&self, path: &str, call: &str, body: &Value) -> Request {
        api("POST", &self.base, path, call, &self.token)
            .header("Content-Type", "application/json")
            .body(body.to_string())
    }
}

impl Provider for Linode {
    fn shape(&self) -> &'static Shape {
        &SHAPE
    }

    fn me(&mut self, c: &Client) -> anyhow::Result<String> {
        if let Some(id) = self.me {
            return Ok(id.to_string());
        }
        let id = own_id(c, self.o.metadata_url.as_deref().unwrap_or(METADATA))?;
        self.me = Some(id);
        Ok(id.to_string())
    }

    /// With a BGP speaker, IP Sharing only authorises; the route servers follow the
    /// announcement. The role is read first (local, no API): a node that does not announce
    /// primary does not get the traffic, whatever the API says.
    /// Read-only: this node's role (the speaker's announced role, where there is one; else
    /// the holder and the share set), and whether each peer has the address too.
    fn check(&mut self, c: &Client, me: &str, peers: &[String]) -> anyhow::Result<Option<Checked>> {
        let ip_s = self.ip.to_string();
        let holder = self.holder(c)?.map(|h| h.to_string());
        let mut peers_have = std::collections::BTreeMap::new();
        for p in peers {
            let has =
                holder.as_deref() == Some(p.as_str()) || self.shared_now(c, p)?.contains(&ip_s);
            peers_have.insert(p.clone(), has);
        }
        let on_me = holder.as_deref() == Some(me) || self.shared_now(c, me)?.contains(&ip_s);
        let (owned, announced) = match &self.o.speaker {
            Some(sp) => {
                let (_, seen) = sp
                    .read_ip(self.ip, &hakit_core::exec::never)
                    .context("linode")?;
                let primary = sp.is(&seen, hakit_bgp::Target::Announce(hakit_bgp::Role::Primary));
                (primary && on_me, Some(sp.describe(&seen)))
            }
            None => (on_me, None),
        };
        Ok(Some(Checked {
            ip: Some(self.ip),
            holder,
            owned,
            announced,
            peers_have: (!peers.is_empty()).then_some(peers_have),
        }))
    }

    fn read(&mut self, c: &Client, me: &str) -> anyhow::Result<Held> {
        let holder = self.holder(c)?;
        self.shared = self.shared_now(c, me)?;
        let ip_s = self.ip.to_string();
        Ok(Held {
            ip: Some(self.ip),
            what: ip_s.clone(),
            holder: holder.map(|h| h.to_string()),
            mine: holder.is_some_and(|h| h.to_string() == me) || self.shared.contains(&ip_s),
        })
    }

    fn no_release(&self) -> Option<&'static str> {
        None
    }

    fn converge(
        &mut self,
        c: &Client,
        me: &str,
        held: &Held,
        mode: Mode,
        w: &mut Writes,
    ) -> anyhow::Result<()> {
        let (ip, ip_s) = (self.ip, self.ip.to_string());
        let me_n: u64 = me.parse()?;
        let shared = &self.shared;
        let (req, what) = match mode {
            Mode::Release if !shared.contains(&ip_s) => return Ok(()),
            Mode::Release => {
                let rest: Vec<&String> = shared.iter().filter(|s| **s != ip_s).collect();
                (
                    self.post(
                        "/networking/ips/share",
                        "POST /networking/ips/share",
                        &json!({"linode_id": me_n, "ips": rest}),
                    ),
                    format!("unshared {ip} from {me}"),
                )
            }
            _ if held.mine => return Ok(()),
            _ if self.o.assign => {
                let inst = self.get(
                    c,
                    &format!("/linode/instances/{me}"),
                    "GET /linode/instances/{id}",
                )?;
                let region = inst["region"]
                    .as_str()
                    .context("linode: instance has no region")?
                    .to_string();
                (
                    self.post(
                        "/networking/ips/assign",
                        "POST /networking/ips/assign",
                        &json!({"region": region, "assignments": [{"address": ip_s, "linode_id": me_n}]}),
                    ),
                    format!("assigned {ip} to {me}"),
                )
            }
            _ => {
                // The union: a share request replaces the whole set.
                let mut union = shared.clone();
                union.push(ip_s.clone());
                (
                    self.post(
                        "/networking/ips/share",
                        "POST /networking/ips/share",
                        &json!({"linode_id": me_n, "ips": union}),
                    ),
                    format!("shared {ip} to {me} (with {} already shared)", shared.len()),
                )
            }
        };
        w.json(c, &SHAPE, &req, retry_status, what)?;
        Ok(())
    }
}
