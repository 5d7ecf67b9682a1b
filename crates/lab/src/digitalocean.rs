//! DigitalOcean, modelled from DigitalOcean's documentation and driven by the API state
//! that fip-claim changes (hakit's fake, held to DigitalOcean's OpenAPI document by Prism
//! in `tests/fip_claim_specs.rs`): the pair runs the DigitalOcean example exactly as
//! `hakit-setup` renders it from one values file.
//!
//! ```text
//!  client .50 ┐ brlan (the VPC:            ┌ eth0 a 203.0.113.2 (public) + .18 (anchor) ┐
//!  a eth1 .2 ─┤ multicast dropped)          │                                            ├ brwan ┬ pgw .1 ── inet: server .254,
//!  b eth1 .3 ─┘                             └ eth0 b 203.0.113.3 (public) + .19 (anchor) ┘       └ agw .17 ─ API .253, targets
//!             sync0 a 192.0.2.1 ──── sync0 b 192.0.2.2                                             (the Reserved IP .100 via agw)
//! ```
//!
//! The rules, each from DigitalOcean's documentation (`../shared/PROVIDER-NETWORKS.md`,
//! section 2; the anchor network is 10.x/16 there, a documentation range here):
//! 1. **A Reserved IP reaches a droplet only through its anchor IP** ("Find information
//!    about Droplet anchor IPs": traffic between a Reserved IP and a Droplet flows through
//!    the anchor IP, an address on eth0, reachable only by its Droplet and by the Reserved
//!    IP assigned to it): the anchor gateway translates the Reserved IP to the anchor of the
//!    droplet the API assigned it to, and nothing else reaches an anchor.
//! 2. **Traffic leaves with the Reserved IP only from the anchor IP, through the anchor
//!    gateway** (the Reserved IP how-to "Send Outbound Traffic Over a Reserved IP"): the
//!    anchor gateway translates the owner's anchor to the Reserved IP and drops every other
//!    source; the public gateway forwards the droplets' public addresses only.
//! 3. **Traffic not matching a Droplet's IP or MAC address is restricted** (Droplet limits;
//!    glossary, multicast): a frame from a droplet's MAC with another droplet's address is
//!    dropped at both gateways, so a connection established through one droplet cannot
//!    leave through the other (the example's README says so).
//! 4. **Multicast is restricted**: the VPC drops it (VRRP is unicast in the example). The
//!    VPC is otherwise modelled as one L2 segment, so the LAN VIP moves by GARP
//!    (**unconfirmed**: DigitalOcean documents a Droplet as a VPC gateway, but not whether
//!    an address no Droplet was given is delivered; PROVIDER-NETWORKS.md §2).
//! 5. Assign and unassign by API; one Reserved IP per droplet.
//!
//! The API's latency is modelled as zero (`--instant`): its actions finish at once.

use std::path::Path;

use anyhow::Context;

use crate::{
    example::{bin, nft_stdin, FakeCloud, Modelled, Pair},
    Lab,
};

/// The Reserved IP.
pub const FIP: &str = "203.0.113.100";
pub const SERVER: &str = "203.0.113.254";
/// The fake DigitalOcean API (and metadata service), beyond the public gateway.
const API: &str = "203.0.113.253";
const PUBLIC: [&str; 2] = ["203.0.113.2", "203.0.113.3"];
const ANCHORS: [&str; 2] = ["203.0.113.18", "203.0.113.19"];

/// The values file a user writes for this network (the DigitalOcean example's, with the
/// model's addresses): rendered by `hakit-setup` for each node.
pub const PAIR_VALUES: &str = "PROFILE=digitalocean
WAN_IF=eth0
LAN_IF=eth1
SYNC_IF=sync0
LAN_VIP=198.51.100.1/24
LAN_NET=198.51.100.0/24
FIP=203.0.113.100
UPSTREAM_GW=203.0.113.1
CHECK_TARGETS=203.0.113.200 203.0.113.201
ADMIN_NET=203.0.113.0/24
A_NAME=gw-a
A_LAN=198.51.100.2
A_SYNC=192.0.2.1
A_WAN_IP=203.0.113.18
A_EGRESS_GW=203.0.113.17
B_NAME=gw-b
B_LAN=198.51.100.3
B_SYNC=192.0.2.2
B_WAN_IP=203.0.113.19
B_EGRESS_GW=203.0.113.17
A_ID=1
B_ID=2
";

/// The VPC, the two gateways and the internet beyond, with the pair, client, server and API.
pub struct DoCloud {
    pub pair: Pair,
    cloud: FakeCloud,
}

impl DoCloud {
    /// Builds the network, renders the DigitalOcean example for both nodes with
    /// `hakit-setup` from `values` and starts everything.
    pub fn up(bin_dir: &Path, lab_bin_dir: &Path, values: &str) -> anyhow::Result<DoCloud> {
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
        let pgw = lab.ns("pgw")?;
        let agw = lab.ns("agw")?;
        let inet = lab.ns("inet")?;
        lab.bridge(
            &sw,
            "brlan",
            &[(&a, "eth1"), (&b, "eth1"), (&client, "eth0")],
        )?;
        lab.bridge(
            &sw,
            "brwan",
            &[(&a, "eth0"), (&b, "eth0"), (&pgw, "dc"), (&agw, "dc")],
        )?;
        lab.veth(&a, "sync0", &b, "sync0")?;
        // Rule 4: the VPC carries no multicast.
        nft_stdin(
            &sw,
            "table bridge do_vpc {\n chain forwarded { type filter hook forward priority 0; ip daddr 224.0.0.0/4 drop; }\n}\n",
        )?;
        for (i, n) in [&a, &b].iter().enumerate() {
            for (addr, dev) in [
                (format!("{}/28", PUBLIC[i]), "eth0"),
                (format!("{}/28", ANCHORS[i]), "eth0"),
                (format!("198.51.100.{}/24", i + 2), "eth1"),
                (format!("192.0.2.{}/24", i + 1), "sync0"),
            ] {
                n.ip(&["addr", "add", &addr, "dev", dev])?;
            }
        }
        client.ip(&["addr", "add", "198.51.100.50/24", "dev", "eth0"])?;
        client.ip(&["route", "add", "default", "via", "198.51.100.1"])?;

        gateways(&mut lab, &a, &b, &pgw, &agw, &inet)?;

        lab.spawn(&inet, "server", &[&traffic_bin, "server", SERVER])?;
        let (node_a, node_b) = (format!("1={}", PUBLIC[0]), format!("2={}", PUBLIC[1]));
        let (anchor_a, anchor_b) = (format!("1={}", ANCHORS[0]), format!("2={}", ANCHORS[1]));
        let cloud = FakeCloud::start(
            &mut lab,
            &inet,
            &fake,
            "digitalocean",
            API,
            &[
                "--ip",
                FIP,
                "--owner",
                "1",
                "--node",
                &node_a,
                "--node",
                &node_b,
                "--anchor",
                &anchor_a,
                "--anchor",
                &anchor_b,
                "--edge-ns",
                &agw.name,
            ],
        )?;
        let (nodes, syslog) = cloud.render_pair(
            &mut lab,
            bin_dir,
            [&a, &b],
            values,
            "/etc/hakit/do.token",
            API,
            "v2",
            "203.0.113.1",
        )?;
        Ok(DoCloud {
            pair: Pair {
                lab,
                client,
                inet,
                nodes,
                syslog,
                traffic_bin,
                server: SERVER,
            },
            cloud,
        })
    }
}

/// DigitalOcean's two gateways and the internet beyond them, with rules 1 to 3: `pgw` the
/// public gateway (.1), `agw` the anchor gateway (.17); `dc` on the droplets' side, `ext`
/// towards the internet.
fn gateways(
    lab: &mut Lab,
    a: &crate::Ns,
    b: &crate::Ns,
    pgw: &crate::Ns,
    agw: &crate::Ns,
    inet: &crate::Ns,
) -> anyhow::Result<()> {
    lab.veth(pgw, "ext", inet, "p0")?;
    lab.veth(agw, "ext", inet, "a0")?;
    for (ns, args) in [
        (pgw, &["addr", "add", "203.0.113.1/28", "dev", "dc"][..]),
        (pgw, &["addr", "add", "203.0.113.33/30", "dev", "ext"]),
        (pgw, &["route", "add", "default", "via", "203.0.113.34"]),
        (agw, &["addr", "add", "203.0.113.17/28", "dev", "dc"]),
        (agw, &["addr", "add", "203.0.113.37/30", "dev", "ext"]),
        (agw, &["route", "add", "default", "via", "203.0.113.38"]),
        (inet, &["addr", "add", "203.0.113.34/30", "dev", "p0"]),
        (inet, &["addr", "add", "203.0.113.38/30", "dev", "a0"]),
        // The droplets' public addresses behind the public gateway, the Reserved IP
        // behind the anchor gateway; the anchor network is routed from nowhere.
        (
            inet,
            &["route", "add", "203.0.113.0/28", "via", "203.0.113.33"],
        ),
        (
            inet,
            &["route", "add", &format!("{FIP}/32"), "via", "203.0.113.37"],
        ),
    ] {
        ns.ip(args)?;
    }
    for addr in [SERVER, API, "203.0.113.200", "203.0.113.201"] {
        inet.ip(&["addr", "add", &format!("{addr}/32"), "dev", "lo"])?;
    }
    for ns in [pgw, agw, inet] {
        crate::run_ok(&mut ns.command(&[
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ]))?;
    }
    // Rule 3: each droplet's frames carry its own addresses only.
    let mac = |n: &crate::Ns| -> anyhow::Result<String> {
        let out = n.exec(&["cat", "/sys/class/net/eth0/address"])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let macs = [mac(a)?, mac(b)?];
    let spoof = |own: &[&str; 2]| {
        (0..2)
            .map(|i| format!("ether saddr {} ip saddr != {} drop;", macs[i], own[i]))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // Rule 2, public side: only the droplets' public addresses leave through pgw.
    nft_stdin(
        pgw,
        &format!(
            "table ip do_public {{\n chain frames {{ type filter hook prerouting priority raw; iifname \"dc\" {} }}\n chain forwarded {{ type filter hook forward priority filter; policy drop; iifname \"dc\" oifname \"ext\" ip saddr {{ {}, {} }} accept; iifname \"ext\" oifname \"dc\" ip daddr {{ {}, {} }} accept; }}\n}}\n",
            spoof(&PUBLIC),
            PUBLIC[0],
            PUBLIC[1],
            PUBLIC[0],
            PUBLIC[1]
        ),
    )?;
    // Rules 1 and 2, anchor side: what the Reserved IP's translation (the fake's
    // do_reserved table, following the API's owner) did not touch goes nowhere.
    nft_stdin(
        agw,
        &format!(
            "table ip do_anchor {{\n chain frames {{ type filter hook prerouting priority raw; iifname \"dc\" {} }}\n chain leaving {{ type filter hook postrouting priority srcnat + 1; ct status snat accept; ct status dnat accept; drop; }}\n}}\n",
            spoof(&ANCHORS)
        ),
    )?;
    Ok(())
}

impl Modelled for DoCloud {
    fn pair(&self) -> &Pair {
        &self.pair
    }
    fn pair_mut(&mut self) -> &mut Pair {
        &mut self.pair
    }
    fn points_at(&self, i: usize) -> bool {
        self.cloud.owner_is(i)
    }
    fn applied(&self) -> Vec<String> {
        self.cloud.posts()
    }
    /// Rule 3: a flow keeps the anchor of the droplet that opened it.
    fn keeps_established(&self) -> bool {
        false
    }
}

impl Drop for DoCloud {
    fn drop(&mut self) {
        self.pair.lab.teardown();
    }
}
