//! Hetzner Cloud Floating IPs: `POST /floating_ips/{id}/actions/assign {"server": id}`,
//! then poll the action until it is no longer `running`. Action errors `locked`,
//! `conflict` and `rate_limit_exceeded` are retried. The Floating IP is found by ID or by
//! address; this server's ID comes from the metadata service unless given.

use std::{net::IpAddr, thread, time::Duration};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::{
    http::{retry_status, Client, Response},
    model::Mode,
    provider::{Held, Provider, Shape, Writes},
    rest::{api, json, Token},
};

pub const API: &str = "https://api.hetzner.cloud/v1";
pub const METADATA: &str = "http://169.254.169.254";
/// hcloud's variable.
pub const TOKEN_VARS: &[&str] = &["HCLOUD_TOKEN"];

/// `{"error":{"code":"…","message":"…"}}`
pub static SHAPE: Shape = Shape {
    name: "hetzner",
    errors: |v: &Value| {
        format!(
            "{}: {}",
            v["error"]["code"].as_str().unwrap_or("?"),
            v["error"]["message"].as_str().unwrap_or("?")
        )
    },
};

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub ip: Option<IpAddr>,
    pub floating_ip_id: Option<u64>,
    pub server_id: Option<u64>,
    pub api_url: Option<String>,
    pub metadata_url: Option<String>,
    /// The Cloud Network routes that follow the Floating IP.
    pub network: Option<NetworkRoutes>,
}

/// A Cloud Network's routes pointed at this node with the Floating IP: a Cloud Network is
/// routed (servers reach each other through its gateway, the first address of its range;
/// Hetzner, Networks architecture), so the LAN's egress follows a network route
/// (`destination` via `gateway`, Hetzner's NAT tutorial), not a VIP.
#[derive(Debug, Clone)]
pub struct NetworkRoutes {
    pub id: u64,
    /// This node's address on the network: the routes' gateway.
    pub via: std::net::Ipv4Addr,
    /// The peers' addresses: a route through one of them is taken.
    pub peers: Vec<std::net::Ipv4Addr>,
    pub destinations: Vec<String>,
}

fn retry(r: &Response) -> bool {
    retry_status(r)
        || (r.status == 409 || r.status == 423)
            && ["\"locked\"", "\"conflict\"", "\"rate_limit_exceeded\""]
                .iter()
                .any(|c| r.body.contains(c))
}

pub struct Hetzner {
    o: Options,
    token: Token,
    base: String,
    me: Option<u64>,
    /// The Floating IP's ID, once found (by ID or by address).
    id: Option<u64>,
}

impl Hetzner {
    pub fn new(o: Options, token: Token) -> anyhow::Result<Hetzner> {
        if o.floating_ip_id.is_none() && o.ip.is_none() {
            bail!("hetzner: give the Floating IP (--ip) or its ID (--floating-ip-id)");
        }
        Ok(Hetzner {
            base: o.api_url.clone().unwrap_or_else(|| API.to_string()),
            me: o.server_id,
            id: o.floating_ip_id,
            o,
            token,
        })
    }

    fn get(&self, c: &Client, path: &str, call: &str) -> anyhow::Result<Value> {
        json(
            c,
            &SHAPE,
            &api("GET", &self.base, path, call, &self.token),
            retry,
        )
    }

    /// The Floating IP: by ID, else by address through every page (the API returns at most
    /// 50 a page; a project with more used to say "no Floating IP" for one beyond the first
    /// page). An IPv6 Floating IP is a /64: the address configured on the node (…::1) is
    /// found by containment.
    fn floating_ip(&self, c: &Client) -> anyhow::Result<Value> {
        if let Some(id) = self.id {
            return Ok(
                self.get(c, &format!("/floating_ips/{id}"), "GET /floating_ips/{id}")?
                    ["floating_ip"]
                    .clone(),
            );
        }
        let ip = self.o.ip.context("hetzner: no Floating IP address")?;
        let mut page = 1u64;
        loop {
            let list = self.get(
                c,
                &format!("/floating_ips?page={page}&per_page=50"),
                "GET /floating_ips",
            )?;
            if let Some(f) = list["floating_ips"].as_array().and_then(|a| {
                a.iter()
                    .find(|f| f["ip"].as_str().is_some_and(|n| contains(n, ip)))
            }) {
                return Ok(f.clone());
            }
            match list["meta"]["pagination"]["next_page"].as_u64() {
                Some(next) if next > page && page < 1000 => page = next,
                _ => bail!("hetzner: no Floating IP {ip} in this project"),
            }
        }
    }
}

impl Provider for Hetzner {
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
            "/hetzner/v1/metadata/instance-id",
            "hetzner",
            "instance-id",
        )?;
        self.me = Some(id);
        Ok(id.to_string())
    }

    fn read(&mut self, c: &Client, me: &str) -> anyhow::Result<Held> {
        let fip = self.floating_ip(c)?;
        let id = fip["id"]
            .as_u64()
            .context("hetzner: Floating IP without id")?;
        self.id = Some(id);
        let holder = fip["server"].as_u64();
        Ok(Held {
            ip: fip["ip"]
                .as_str()
                .and_then(|s| s.split('/').next())
                .and_then(|s| s.parse().ok())
                .or(self.o.ip),
            what: format!("Floating IP {id}"),
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
        if !held.mine {
            self.assign(c, me, w)?;
        }
        if let Some(n) = self.o.network.clone() {
            self.routes(c, &n, w)?;
        }
        Ok(())
    }
}

impl Hetzner {
    /// The network's routes to each destination through this node: a route through a peer
    /// is deleted and added again through this node (the API has no update; each change is
    /// an action that must finish before the next, or the network answers `conflict`).
    fn routes(&self, c: &Client, n: &NetworkRoutes, w: &mut Writes) -> anyhow::Result<()> {
        let net = self.get(c, &format!("/networks/{}", n.id), "GET /networks/{id}")?;
        let routes = net["network"]["routes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let via = n.via.to_string();
        for dest in &n.destinations {
            let now = routes
                .iter()
                .find(|r| r["destination"].as_str() == Some(dest.as_str()))
                .and_then(|r| r["gateway"].as_str().map(str::to_string));
            match now.as_deref() {
                Some(g) if g == via => continue,
                Some(g) if !n.peers.iter().any(|p| p.to_string() == g) => bail!(
                    "hetzner: network {} routes {dest} through {g}, which is neither this node ({via}) nor a peer (peer_lan_ips): refusing to take it",
                    n.id
                ),
                Some(g) => self.route_action(c, n.id, "delete_route", dest, g, w)?,
                None => {}
            }
            self.route_action(c, n.id, "add_route", dest, &via, w)?;
        }
        Ok(())
    }

    /// One route action, followed until it finished.
    fn route_action(
        &self,
        c: &Client,
        net: u64,
        what: &str,
        dest: &str,
        gateway: &str,
        w: &mut Writes,
    ) -> anyhow::Result<()> {
        let req = api(
            "POST",
            &self.base,
            &format!("/networks/{net}/actions/{what}"),
            &format!("POST /networks/{{id}}/actions/{what}"),
            &self.token,
        )
        .header("Content-Type", "application/json")
        .body(json!({"destination": dest, "gateway": gateway}).to_string());
        let text = format!("{what} {dest} via {gateway} on network {net}");
        if !w.begin(&req, text.clone()) {
            return Ok(());
        }
        let action = json(c, &SHAPE, &req, retry)?["action"].clone();
        let id = action["id"]
            .as_u64()
            .with_context(|| format!("hetzner: {what} returned no action"))?;
        self.follow(
            c,
            &req,
            id,
            action["status"].as_str().unwrap_or("running"),
            (what, &format!(" ({dest} via {gateway} on network {net})")),
        )?;
        w.made(text);
        Ok(())
    }

    /// Polls action `id` (started by `req`) until it is no longer running: backed off
    /// (200 ms doubling to 2 s) and never past the deadline, when the error says what is
    /// pending, not which transport attempt did not happen. An action that ends in
    /// `locked`, `conflict` or `rate_limit_exceeded` is started again (three times at most);
    /// any other error is this call's.
    fn follow(
        &self,
        c: &Client,
        req: &crate::http::Request,
        id: u64,
        status: &str,
        (what, of): (&str, &str),
    ) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(200);
        let (mut id, mut status, mut attempts) = (id, status.to_string(), 0);
        while status == "running" {
            if c.time_left() <= pause {
                bail!(
                    "hetzner: {what} action {id}{of} still running after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
            let a = self.get(c, &format!("/actions/{id}"), "GET /actions/{id}")?["action"].clone();
            status = a["status"].as_str().unwrap_or("running").to_string();
            if status != "error" {
                continue;
            }
            let code = a["error"]["code"].as_str().unwrap_or("?").to_string();
            if ["locked", "conflict", "rate_limit_exceeded"].contains(&code.as_str())
                && attempts < 3
            {
                attempts += 1;
                id = json(c, &SHAPE, req, retry)?["action"]["id"]
                    .as_u64()
                    .with_context(|| format!("hetzner: {what} returned no action"))?;
                status = "running".into();
                continue;
            }
            bail!(
                "hetzner {what} action {id}{of}: error {code}: {}",
                crate::rest::clip(a["error"]["message"].as_str().unwrap_or("?"))
            );
        }
        Ok(())
    }

    /// The Floating IP assigned to this server, its action followed.
    fn assign(&self, c: &Client, me: &str, w: &mut Writes) -> anyhow::Result<()> {
        let id = self.id.context("hetzner: Floating IP not read")?;
        let me_n: u64 = me.parse()?;
        let req = api(
            "POST",
            &self.base,
            &format!("/floating_ips/{id}/actions/assign"),
            "POST /floating_ips/{id}/actions/assign",
            &self.token,
        )
        .header("Content-Type", "application/json")
        .body(json!({"server": me_n}).to_string());
        if !w.begin(&req, format!("assign Floating IP {id} to server {me}")) {
            return Ok(());
        }
        // An assign still running (a retry after a timeout, or nat-notify's next attempt) is
        // followed, not started twice.
        let running = self.get(
            c,
            &format!("/floating_ips/{id}/actions?status=running"),
            "GET /floating_ips/{id}/actions",
        )?;
        let to_me = |x: &Value| {
            x["resources"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|r| r["type"] == "server" && r["id"].as_u64() == Some(me_n))
            })
        };
        let pending = running["actions"].as_array().and_then(|a| {
            a.iter()
                .find(|x| {
                    x["command"] == "assign_floating_ip" && x["status"] == "running" && to_me(x)
                })
                .and_then(|x| x["id"].as_u64())
        });
        let (action_id, status) = match pending {
            Some(a) => {
                log::info!(
                    "hetzner: assign action {a} of Floating IP {id} is still running: following it"
                );
                (a, "running".to_string())
            }
            None => {
                let action = json(c, &SHAPE, &req, retry)?["action"].clone();
                (
                    action["id"]
                        .as_u64()
                        .context("hetzner: assign returned no action")?,
                    action["status"].as_str().unwrap_or("running").to_string(),
                )
            }
        };
        let of = format!(" of Floating IP {id}");
        self.follow(c, &req, action_id, &status, ("assign", &of))?;
        w.made(format!("assigned Floating IP {id} to server {me}"));
        Ok(())
    }
}

/// Whether the Floating IP `net` (an address, or a network with a prefix as IPv6 Floating
/// IPs are: `2001:db8::/64`) is or contains `ip`; an answer that is neither contains nothing.
fn contains(net: &str, ip: IpAddr) -> bool {
    net.parse::<hakit_core::config::Cidr>()
        .is_ok_and(|c| c.contains(ip))
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
