//! DigitalOcean Reserved IPs and reserved IPv6: `POST /reserved_ips/{ip}/actions` (or
//! `/reserved_ipv6/{ip}/actions`) `{"type":"assign","droplet_id":n}`, then poll the action
//! to `completed` (`/reserved_ips/{ip}/actions/{id}`; the IPv6 resource has no such path, so
//! `/actions/{id}`). This droplet's ID comes from the metadata service (`/metadata/v1/id`)
//! unless given. Every request is checked against DigitalOcean's own OpenAPI document
//! (`tests/fip_claim_specs.rs`, through Prism).
//!
//! A token needs the custom scopes `reserved_ip:read`, `reserved_ip:update`, `droplet:read`
//! (the document: without it the reserved IP's `droplet` is left out, and the holder would
//! look like nobody) and, for reserved IPv6, `actions:read`.

use std::{net::IpAddr, thread, time::Duration};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::{
    http::{retry_status, Client},
    model::Mode,
    provider::{Held, Provider, Shape, Writes},
    rest::{api, json, Token},
};

pub const API: &str = "https://api.digitalocean.com/v2";
pub const METADATA: &str = "http://169.254.169.254";
/// hakit's variable first, then doctl's.
pub const TOKEN_VARS: &[&str] = &["DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"];

/// `{"id":"…","message":"…"}`
pub static SHAPE: Shape = Shape {
    name: "digitalocean",
    errors: |v: &Value| {
        format!(
            "{}: {}",
            v["id"].as_str().unwrap_or("?"),
            v["message"].as_str().unwrap_or("?")
        )
    },
};

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub ip: Option<IpAddr>,
    pub droplet_id: Option<u64>,
    pub api_url: Option<String>,
    pub metadata_url: Option<String>,
}

pub struct DigitalOcean {
    o: Options,
    token: Token,
    ip: IpAddr,
    base: String,
    me: Option<u64>,
}

impl DigitalOcean {
    pub fn new(o: Options, token: Token) -> anyhow::Result<DigitalOcean> {
        let ip = o.ip.context("digitalocean: give the reserved IP (--ip)")?;
        let base = o.api_url.clone().unwrap_or_else(|| API.to_string());
        Ok(DigitalOcean {
            me: o.droplet_id,
            o,
            token,
            ip,
            base,
        })
    }

    /// The API's collection and object key for this address: `reserved_ips`/`reserved_ip`,
    /// or `reserved_ipv6`/`reserved_ipv6`.
    fn resource(&self) -> (&'static str, &'static str) {
        if self.ip.is_ipv6() {
            ("reserved_ipv6", "reserved_ipv6")
        } else {
            ("reserved_ips", "reserved_ip")
        }
    }

    fn get(&self, c: &Client, path: &str, call: &str) -> anyhow::Result<Value> {
        json(
            c,
            &SHAPE,
            &api("GET", &self.base, path, call, &self.token),
            retry_status,
        )
    }
}

impl Provider for DigitalOcean {
    fn shape(&self) -> &'static Shape {
        &SHAPE
    }

    fn me(&mut self, c: &Client) -> anyhow::Result<String> {
        if let Some(id) = self.me {
            return Ok(id.to_string());
        }
        let id = crate::rest::metadata_id(
            c,
            self.o.metadata_url.as_deref().unwrap_or(METADATA),
            "/metadata/v1/id",
            "digitalocean",
            "id",
        )?;
        self.me = Some(id);
        Ok(id.to_string())
    }

    fn read(&mut self, c: &Client, me: &str) -> anyhow::Result<Held> {
        let (ip, (path, key)) = (self.ip, self.resource());
        let info = self.get(c, &format!("/{path}/{ip}"), &format!("GET /{path}/{{ip}}"))?;
        let holder = info[key]["droplet"]["id"].as_u64();
        Ok(Held {
            ip: Some(ip),
            what: ip.to_string(),
            holder: holder.map(|h| h.to_string()),
            mine: holder.is_some_and(|h| h.to_string() == me),
        })
    }

    fn converge(
        &mut self,
        c: &Client,
        me: &str,
        held: &Held,
        _mode: Mode,
        w: &mut Writes,
    ) -> anyhow::Result<()> {
        if held.mine {
            return Ok(());
        }
        let (ip, me_n): (IpAddr, u64) = (self.ip, me.parse()?);
        let (path, _) = self.resource();
        let req = api(
            "POST",
            &self.base,
            &format!("/{path}/{ip}/actions"),
            &format!("POST /{path}/{{ip}}/actions"),
            &self.token,
        )
        .header("Content-Type", "application/json")
        .body(json!({"type": "assign", "droplet_id": me_n}).to_string());
        if !w.begin(&req, format!("assign {ip} to droplet {me}")) {
            return Ok(());
        }
        let action = json(c, &SHAPE, &req, retry_status)?["action"].clone();
        let id = action["id"]
            .as_u64()
            .context("digitalocean: assign returned no action")?;
        let mut status = action["status"]
            .as_str()
            .unwrap_or("in-progress")
            .to_string();
        while status == "in-progress" {
            thread::sleep(Duration::from_millis(200));
            let a = if ip.is_ipv6() {
                self.get(c, &format!("/actions/{id}"), "GET /actions/{id}")?
            } else {
                self.get(
                    c,
                    &format!("/reserved_ips/{ip}/actions/{id}"),
                    "GET /reserved_ips/{ip}/actions/{id}",
                )?
            };
            status = a["action"]["status"]
                .as_str()
                .unwrap_or("in-progress")
                .to_string();
        }
        if status != "completed" {
            bail!("digitalocean assign action {id}: {status}");
        }
        w.made(format!("assigned {ip} to droplet {me}"));
        Ok(())
    }
}
