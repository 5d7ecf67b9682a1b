//! Hetzner Cloud, modelled from Hetzner's documentation and driven by the API state that
//! fip-claim changes (hakit's fake, held to Hetzner's OpenAPI document by Prism in
//! `tests/fip_claim_specs.rs`): the pair runs the Hetzner example exactly as `hakit-setup`
//! renders it from one values file.
//!
//! ```text
//!  client .50/32 ── hc ┐                       ┌─ eth0 a 203.0.113.2 ─┐
//!                      ├ hnet: the network's   │                      ├─ brwan ── inet: gateway .1,
//!  a eth1 .2/32 ─── ha ┤ gateway 198.51.100.1, ├─ eth0 b 203.0.113.3 ─┘  server .254, API .253,
//!  b eth1 .3/32 ─── hb ┘ its routes            │                         the Floating IP's route
//!                      sync0 a 192.0.2.1 ──── sync0 b 192.0.2.2
//! ```
//!
//! The rules, each from Hetzner's documentation (`../shared/PROVIDER-NETWORKS.md`, section 3):
//! 1. **A Cloud Network is routed**: "servers are not directly connected"; a server reaches
//!    others only through the network's gateway, the first address of its range, which
//!    forwards (Hetzner, Networks architecture). Each server here has a point-to-point link
//!    to the gateway and answers only for its own address.
//! 2. **Only addresses Hetzner allocated are delivered** (Networks FAQ; the API's
//!    `alias_ips`): the gateway routes each server's address to it and nothing else of the
//!    network's range, so a VIP moved by GARP reaches nobody.
//! 3. **Network routes steer the rest** (the API's `add_route` / `delete_route`; Hetzner's
//!    NAT tutorial: `0.0.0.0/0` to the NAT server, clients `default via` the network's
//!    gateway): the gateway's default route follows the network's `0.0.0.0/0` route as the
//!    API holds it, a blackhole without one.
//! 4. **A Floating IP arrives only at the server it is assigned to, and only if configured
//!    there** (the API's Floating IP documentation: "You must configure them inside your
//!    operation system"): the public side routes it to its server's address.
//! 5. No multicast crosses the gateway (it routes; VRRP is unicast in the example).
//!
//! The API's latency is modelled as zero (`--instant`): its actions finish at once.

use std::path::Path;

use anyhow::Context;

use crate::{
    example::{bin, FakeCloud, Modelled, Pair},
    Lab,
};

pub const FIP: &str = "203.0.113.10";
pub const SERVER: &str = "203.0.113.254";
/// The fake Hetzner API (and metadata service), on the public side.
const API: &str = "203.0.113.253";
/// The network's gateway: the first address of its range.
const NET_GW: &str = "198.51.100.1";
const LANS: [&str; 2] = ["198.51.100.2", "198.51.100.3"];

/// The values file a user writes for this network (the Hetzner example's, with the
/// model's addresses): rendered by `hakit-setup` for each node.
pub const PAIR_VALUES: &str = "PROFILE=hetzner
WAN_IF=eth0
LAN_IF=eth1
SYNC_IF=sync0
LAN_VIP=198.51.100.9/32
LAN_NET=198.51.100.0/24
FIP=203.0.113.10
UPSTREAM_GW=203.0.113.1
CHECK_TARGETS=203.0.113.80 203.0.113.81
ADMIN_NET=203.0.113.0/24
A_NAME=gw-a
A_LAN=198.51.100.2
A_SYNC=192.0.2.1
B_NAME=gw-b
B_LAN=198.51.100.3
B_SYNC=192.0.2.2
A_ID=1
B_ID=2
FIP_ID=7
NETWORK_ID=9
";

/// The Cloud Network with its pair, client, server and API.
pub struct HCloud {
    pub pair: Pair,
    pub hnet: crate::Ns,
    cloud: FakeCloud,
}

impl HCloud {
    /// Builds the network, renders the Hetzner example for both nodes with `hakit-setup`
    /// from `values` and starts everything.
    pub fn up(bin_dir: &Path, lab_bin_dir: &Path, values: &str) -> anyhow::Result<HCloud> {
        for tool in ["keepalived", "conntrackd", "nft", "ip"] {
            crate::which(tool)
                .with_context(|| format!("{tool} is not installed (make deps installs it)"))?;
        }
        let traffic_bin = bin(lab_bin_dir, "hakit-lab-traffic")?;
        let fake = bin(lab_bin_dir, "hakit-fake-cloud")?;
        let mut lab = Lab::new()?;
        let sw = lab.ns("sw")?;
        let a = lab.ns("a")?;
        let b = lab.ns("b")?;
        let client = lab.ns("client")?;
        let hnet = lab.ns("hnet")?;
        let inet = lab.ns("inet")?;
        lab.bridge(&sw, "brwan", &[(&a, "eth0"), (&b, "eth0"), (&inet, "eth0")])?;
        lab.veth(&a, "sync0", &b, "sync0")?;
        // Rules 1 and 2: a point-to-point link from each server to the gateway, which
        // routes each allocated address to its server and nothing else of the range.
        for (ns, ifname, port, addr) in [
            (&a, "eth1", "ha", LANS[0]),
            (&b, "eth1", "hb", LANS[1]),
            (&client, "eth0", "hc", "198.51.100.50"),
        ] {
            lab.veth(&hnet, port, ns, ifname)?;
            hnet.ip(&["addr", "add", &format!("{NET_GW}/32"), "dev", port])?;
            hnet.ip(&["route", "add", &format!("{addr}/32"), "dev", port])?;
            ns.ip(&["addr", "add", &format!("{addr}/32"), "dev", ifname])?;
            ns.ip(&["route", "add", &format!("{NET_GW}/32"), "dev", ifname])?;
            // The gateway answers ARP for its own address only: a server that ARPs for
            // another host of the network gets no answer, as on Hetzner.
            crate::run_ok(&mut hnet.command(&[
                "sysctl",
                "-q",
                "-w",
                &format!("net.ipv4.conf.{port}.rp_filter=0"),
            ]))?;
        }
        hnet.ip(&["route", "add", "blackhole", "198.51.100.0/24"])?;
        hnet.ip(&["route", "add", "blackhole", "default"])?;
        crate::run_ok(&mut hnet.command(&[
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.all.send_redirects=0",
        ]))?;
        for n in [&a, &b] {
            n.ip(&[
                "route",
                "add",
                "198.51.100.0/24",
                "via",
                NET_GW,
                "metric",
                "100",
            ])?;
        }
        // The LAN's hosts route through the network's gateway (Hetzner's tutorial).
        client.ip(&["route", "add", "default", "via", NET_GW])?;

        // The public side: the upstream gateway, the server, hosts a health check asks,
        // the API; the Floating IP routed to its server by the API's state.
        for addr in [
            "203.0.113.1/24",
            &format!("{SERVER}/24"),
            &format!("{API}/24"),
        ] {
            inet.ip(&["addr", "add", addr, "dev", "eth0"])?;
        }
        for t in ["203.0.113.80/32", "203.0.113.81/32"] {
            inet.ip(&["addr", "add", t, "dev", "lo"])?;
        }
        crate::run_ok(&mut inet.command(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))?;
        for (i, n) in [&a, &b].iter().enumerate() {
            n.ip(&[
                "addr",
                "add",
                &format!("203.0.113.{}/24", i + 2),
                "dev",
                "eth0",
            ])?;
            n.ip(&[
                "addr",
                "add",
                &format!("192.0.2.{}/24", i + 1),
                "dev",
                "sync0",
            ])?;
        }
        lab.spawn(&inet, "server", &[&traffic_bin, "server", SERVER])?;
        let route = format!("0.0.0.0/0={}", LANS[0]);
        let cloud = FakeCloud::start(
            &mut lab,
            &inet,
            &fake,
            "hetzner",
            API,
            &[
                "--ip",
                FIP,
                "--owner",
                "1",
                "--node",
                "1=203.0.113.2",
                "--node",
                "2=203.0.113.3",
                "--route-ns",
                &inet.name,
                "--network-ns",
                &hnet.name,
                "--net-route",
                &route,
            ],
        )?;
        let (nodes, syslog) = cloud.render_pair(
            &mut lab,
            bin_dir,
            [&a, &b],
            values,
            "/etc/hakit/hcloud.token",
            API,
            "v1",
            "203.0.113.1",
        )?;
        Ok(HCloud {
            pair: Pair {
                lab,
                client,
                inet,
                nodes,
                syslog,
                traffic_bin,
                server: SERVER,
            },
            hnet,
            cloud,
        })
    }

    /// The network gateway's default route: the address it forwards the LAN's egress to.
    fn egress(&self) -> Option<String> {
        let out = self
            .hnet
            .exec(&["ip", "-4", "route", "show", "default"])
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut words = text.split_whitespace();
        words.find(|w| *w == "via")?;
        words.next().map(str::to_string)
    }
}

impl Modelled for HCloud {
    fn pair(&self) -> &Pair {
        &self.pair
    }
    fn pair_mut(&mut self) -> &mut Pair {
        &mut self.pair
    }
    fn points_at(&self, i: usize) -> bool {
        self.cloud.owner_is(i) && self.egress().as_deref() == Some(LANS[i])
    }
    fn applied(&self) -> Vec<String> {
        self.cloud.posts()
    }
}

impl Drop for HCloud {
    fn drop(&mut self) {
        self.pair.lab.teardown();
    }
}
