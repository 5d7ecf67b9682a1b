//! An AWS VPC, modelled from AWS's own documentation and driven by what EC2 (moto) says:
//! the pair runs the AWS example exactly as `hakit-setup` renders it from one values file,
//! and traffic moves only when fip-claim's API calls put the VPC in the right state.
//!
//! ```text
//!               LAN subnet 198.51.100.0/26           WAN subnet 198.51.100.64/26
//!  client .50 ─┬─ brlan ─┬─ eth1 a .10 ── a ── eth0 .74 ─┬─ brwan ─┬─ wan0 .65 ┐
//!  (default    │         └─ eth1 b .11 ── b ── eth0 .75 ─┘         │ EC2 .70   │ vpc: the VPC
//!   via .1)    └─ lan0 .1 (the VPC router) ─────────────────────────────────────┤ router, the
//!                         sync0 a .138 ──── sync0 b .139                      │ IGW, EC2
//!                                                                   igw0 203.0.113.1
//!                                                                         │
//!                                                         inet 203.0.113.254 (server)
//! ```
//!
//! The rules, each from the provider's documentation (`../shared/PROVIDER-NETWORKS.md`,
//! section 1, with the sources it resolves):
//! 1. **A route names one ENI, and the packet arrives on that ENI's interface.** The LAN
//!    subnet's route table sends `0.0.0.0/0` to whatever EC2 says the table targets: the
//!    VPC router forwards to that ENI's private address on its own subnet, so a route to a
//!    node's WAN ENI delivers LAN traffic on the node's WAN interface. A route naming only an
//!    instance with several ENIs is a blackhole (`CreateRoute` `InstanceId` needs exactly one
//!    attached ENI: EC2 API Reference, CreateRoute; Amazon VPC UG, VPC_Route_Tables.md).
//! 2. **The source/destination check is a flag of each ENI** (EC2 UG, using-eni.md; the NAT
//!    instance guide turns it off on each ENI that forwards, VPC_NAT_Instance.md): a frame
//!    from a node's ENI whose source is not that ENI's address, or to it whose destination
//!    is not, is dropped while EC2 says the ENI's check is on.
//! 3. **The internet gateway translates one to one, and only mapped addresses** ("To enable
//!    communication over the internet for IPv4, your instance must have a public IPv4
//!    address or an Elastic IP address that's associated with a private IPv4 address on
//!    your instance ... The internet gateway logically provides the one-to-one NAT":
//!    Amazon VPC UG, VPC_Internet_Gateway.md): outbound, a private source with an Elastic
//!    IP association becomes that Elastic IP, any other private source is dropped; inbound,
//!    the Elastic IP becomes the associated private address. Stateless, as the gateway keeps
//!    no flow state that could outlive an association.
//! 4. **No multicast or broadcast forwarding in a subnet** (Amazon VPC UG, subnet-sizing.md:
//!    "We do not support broadcast in a VPC"; multicast only through a multicast-enabled
//!    transit gateway): IPv4 to 224.0.0.0/4 is dropped on both subnets, so VRRP works only
//!    by unicast. (ARP still crosses the model's bridges: the fabric's own answers, which
//!    this model does not imitate, would give the same addresses.)
//! 5. **Reserved addresses**: the first four and the last of each subnet are AWS's
//!    (subnet-sizing.md): the VPC router is `.1` of each subnet; no node, VIP or client
//!    uses `.0`-`.3`.
//! 6. **A secondary private address reaches the ENI that holds it**, and keeps its Elastic IP
//!    association when it is reassigned (EC2 UG, MultipleIP.md): the VPC router sends it to
//!    the holding ENI's primary address. moto 5.2 keeps neither the association's private
//!    address nor a reassignment; tests/aws/moto_server.py adds both as AWS documents them.
//! 7. **The EC2 API is reached inside the VPC** (an interface VPC endpoint, 198.51.100.70
//!    here): the standby has no public IPv4 (with a second ENI attached, a node that loses
//!    the Elastic IP gets no new public address: Amazon VPC UG, vpc-eips.md; EC2 UG,
//!    using-eni.md), so through the internet gateway it could never claim the address.
//!
//! The model polls EC2 (moto) every 20 ms and applies what it reads to the namespaces; the
//! provider's own API latency is modelled as zero. IMDSv2 is served per node (by the
//! address it calls from) with the IDs and MACs moto gave the ENIs.

use std::{
    fs,
    net::TcpStream,
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::Value;

use crate::{
    example::{bin, nft_stdin, render_and_start, Pair},
    Lab, Ns,
};

mod ec2;
use ec2::{read_ec2, Seen};

pub const CLIENT: &str = "198.51.100.50";
pub const SERVER: &str = "203.0.113.254";
pub const EIP: &str = "203.0.113.10";
/// The WAN ENI's secondary address that carries the Elastic IP and both nodes' SNAT.
pub const SHARED: &str = "198.51.100.80";
/// The interface VPC endpoint where the nodes reach EC2 (moto).
pub const EC2: &str = "198.51.100.70";
const EC2_PORT: u16 = 5000;
/// The VPC router on the WAN subnet; the model's IMDS listens there too.
const WAN_ROUTER: &str = "198.51.100.65";
const IMDS_PORT: u16 = 8081;
const POLL: Duration = Duration::from_millis(20);

/// The values file a user writes for this VPC (the AWS example's, with the model's
/// addresses): rendered by `hakit-setup` for each node.
pub const PAIR_VALUES: &str = "PROFILE=aws
WAN_IF=eth0
LAN_IF=eth1
SYNC_IF=sync0
LAN_VIP=198.51.100.9/26
LAN_NET=198.51.100.0/26
FIP=203.0.113.10
UPSTREAM_GW=198.51.100.65
FIP_PRIVATE=198.51.100.80
ADMIN_NET=203.0.113.0/24
A_NAME=gw-a
A_LAN=198.51.100.10
A_SYNC=198.51.100.138
B_NAME=gw-b
B_LAN=198.51.100.11
B_SYNC=198.51.100.139
";

/// The VPC with its pair, client, server and EC2.
pub struct Vpc {
    /// The pair, its client and the server beyond the internet gateway.
    pub pair: Pair,
    pub vpc: Ns,
    /// moto's world: instance, ENI IDs and MACs, the LAN route table (see moto_lab.py setup3).
    pub world: Value,
    /// What the model applied, in order: (seconds since the model started, what).
    pub applied: Arc<Mutex<Vec<(f64, String)>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Vpc {
    /// Builds the VPC, renders the AWS example for both nodes with `hakit-setup` from
    /// `values`, starts everything and waits until node a is MASTER and EC2 says so.
    pub fn up(bin_dir: &Path, lab_bin_dir: &Path, values: &str) -> anyhow::Result<Vpc> {
        for tool in [
            "keepalived",
            "conntrackd",
            "nft",
            "ip",
            "moto_server",
            "python3",
        ] {
            crate::which(tool)
                .with_context(|| format!("{tool} is not installed (make deps installs it)"))?;
        }
        let traffic_bin = bin(lab_bin_dir, "hakit-lab-traffic")?;
        let mut lab = Lab::new()?;
        let d = lab.dir().to_path_buf();
        let sw = lab.ns("sw")?;
        let a = lab.ns("a")?;
        let b = lab.ns("b")?;
        let client = lab.ns("client")?;
        let vpc = lab.ns("vpc")?;
        let inet = lab.ns("inet")?;
        lab.bridge(
            &sw,
            "brlan",
            &[
                (&a, "eth1"),
                (&b, "eth1"),
                (&client, "eth0"),
                (&vpc, "lan0"),
            ],
        )?;
        lab.bridge(&sw, "brwan", &[(&a, "eth0"), (&b, "eth0"), (&vpc, "wan0")])?;
        lab.veth(&a, "sync0", &b, "sync0")?;
        lab.veth(&vpc, "igw0", &inet, "eth0")?;
        client.ip(&["addr", "add", &format!("{CLIENT}/26"), "dev", "eth0"])?;
        client.ip(&["route", "add", "default", "via", "198.51.100.1"])?;
        inet.ip(&["addr", "add", &format!("{SERVER}/24"), "dev", "eth0"])?;
        inet.ip(&["route", "add", &format!("{EIP}/32"), "via", "203.0.113.1"])?;
        lab.spawn(&inet, "server", &[&traffic_bin, "server", SERVER])?;
        // Hosts on the internet a health check could ask.
        for t in ["192.0.2.80/32", "192.0.2.81/32"] {
            inet.ip(&["addr", "add", t, "dev", "lo"])?;
        }
        router(&vpc)?;
        Fabric::lab(&sw).apply_empty()?;

        // EC2, as moto, at the VPC endpoint; the world set up with boto3 (moto's client).
        // moto with the secondary-IP semantics AWS documents (tests/aws/moto_server.py).
        let moto_url = EC2_URL.to_string();
        let moto = moto_argv()?;
        lab.spawn(
            &vpc,
            "moto",
            &moto.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
        crate::wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
            vpc.within(|| Ok(TcpStream::connect((EC2, EC2_PORT)).is_ok()))
                .unwrap_or(false)
        })
        .context("moto did not start")?;
        let world = ec2_world(&vpc, &moto_url)?;
        let w = |k: &str| world[k].as_str().unwrap_or_default().to_string();

        // Each node's interfaces carry the MACs EC2 gave its ENIs (IMDS answers by MAC).
        for (ns, role) in [(&a, "primary"), (&b, "secondary")] {
            for (ifname, eni, base) in [
                ("eth0", "wan", 64),
                ("eth1", "lan", 0),
                ("sync0", "sync", 128),
            ] {
                let mac = w(&format!("{role}_{eni}_mac"));
                let host = if role == "primary" { 10 } else { 11 };
                ns.ip(&["link", "set", ifname, "down"])?;
                ns.ip(&["link", "set", ifname, "address", &mac])?;
                ns.ip(&[
                    "addr",
                    "add",
                    &format!("198.51.100.{}/26", base + host),
                    "dev",
                    ifname,
                ])?;
                ns.ip(&["link", "set", ifname, "up"])?;
            }
        }

        let stop = Arc::new(AtomicBool::new(false));
        let applied = Arc::new(Mutex::new(Vec::new()));
        let threads = serve(
            &vpc,
            Fabric::lab(&sw),
            &world,
            stop.clone(),
            applied.clone(),
        )?;

        let syslog = crate::syslog::Syslog::listen(&d.join("syslog.sock"))?;
        // The instance IDs EC2 gave, as the user copies them from the console.
        let values_path = d.join("pair.values");
        fs::write(
            &values_path,
            format!("{values}A_ID={}\nB_ID={}\n", w("primary"), w("secondary")),
        )?;
        let mut nodes = Vec::new();
        for (ns, role, inst) in [(&a, "a", w("primary")), (&b, "b", w("secondary"))] {
            let fip = format!(
                "endpoint_url = \"{moto_url}\"\nmetadata_url = \"http://{WAN_ROUTER}:{IMDS_PORT}\"\n"
            );
            let mut node = render_and_start(
                &mut lab,
                bin_dir,
                ns,
                role,
                &values_path,
                &fip,
                WAN_ROUTER,
                &[],
                &syslog,
            )?;
            node.instance = inst;
            nodes.push(node);
        }
        Ok(Vpc {
            pair: Pair {
                lab,
                client,
                inet,
                nodes,
                syslog,
                traffic_bin,
                server: SERVER,
            },
            vpc,
            world,
            applied,
            stop,
            threads,
        })
    }

    /// EC2's state as moto's own client reads it (moto_lab.py state): the Elastic IP's
    /// ENI and the LAN table's default route target.
    pub fn ec2_state(&self) -> anyhow::Result<Value> {
        let script = fs::canonicalize("tests/aws/moto_lab.py")?;
        let alloc = self.world["allocation"].as_str().unwrap_or_default();
        let out = self
            .vpc
            .command(&[
                &crate::python3(),
                &script.to_string_lossy(),
                "state",
                &format!("http://{EC2}:{EC2_PORT}"),
                alloc,
            ])
            .output()?;
        anyhow::ensure!(out.status.success(), "moto_lab.py state failed");
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// Whether EC2 points the Elastic IP and the LAN route at node `role` ("primary" or
    /// "secondary"): its WAN ENI and its LAN ENI.
    pub fn ec2_points_at(&self, role: &str) -> bool {
        let Ok(st) = self.ec2_state() else {
            return false;
        };
        let table = self.world["tables"][0].as_str().unwrap_or_default();
        st["eni"] == self.world[format!("{role}_wan_eni")]
            && st["routes"][table] == self.world[format!("{role}_lan_eni")]
    }
}

impl crate::example::Modelled for Vpc {
    fn pair(&self) -> &Pair {
        &self.pair
    }
    fn pair_mut(&mut self) -> &mut Pair {
        &mut self.pair
    }
    fn points_at(&self, i: usize) -> bool {
        self.ec2_points_at(if i == 0 { "primary" } else { "secondary" })
    }
    fn applied(&self) -> Vec<String> {
        self.applied
            .lock()
            .map(|a| a.iter().map(|(t, l)| format!("{t:.3} {l}")).collect())
            .unwrap_or_default()
    }
}

impl Drop for Vpc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.pair.lab.teardown();
    }
}

/// The VPC router, the internet gateway and the EC2 endpoint in namespace `vpc`, whose
/// ports `lan0` (the LAN subnet), `wan0` (the WAN subnet) and `igw0` (towards the internet)
/// exist: rules 1, 3 and 5's addresses, and the gateway's one-to-one translation (empty
/// until the model reads an association).
pub fn router(vpc: &Ns) -> anyhow::Result<()> {
    for (ifname, addr) in [
        ("lan0", "198.51.100.1/26"),
        ("wan0", "198.51.100.65/26"),
        ("wan0", "198.51.100.70/26"),
        ("igw0", "203.0.113.1/24"),
    ] {
        vpc.ip(&["addr", "add", addr, "dev", ifname])?;
    }
    crate::run_ok(&mut vpc.command(&[
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
        "net.ipv4.conf.all.send_redirects=0",
        "net.ipv4.conf.lan0.send_redirects=0",
        "net.ipv4.conf.wan0.send_redirects=0",
    ]))?;
    // Rule 1: the LAN subnet's route table, consulted for what enters from the LAN.
    vpc.ip(&["rule", "add", "iif", "lan0", "lookup", "100", "pref", "100"])?;
    for (net, dev) in [("198.51.100.0/26", "lan0"), ("198.51.100.64/26", "wan0")] {
        vpc.ip(&["route", "add", net, "dev", dev, "table", "100"])?;
    }
    vpc.ip(&["route", "add", "blackhole", "default", "table", "100"])?;
    // The WAN (public) subnet's table: 0.0.0.0/0 to the internet gateway.
    vpc.ip(&["route", "add", "default", "via", SERVER, "dev", "igw0"])?;
    nft_stdin(vpc, IGW_TABLE)?;
    Ok(())
}

/// moto's EC2 (tests/aws/moto_server.py) as argv, to run in the VPC's namespace.
pub fn moto_argv() -> anyhow::Result<Vec<String>> {
    let moto_py = fs::canonicalize("tests/aws/moto_server.py")
        .context("tests/aws/moto_server.py (run from the source tree)")?;
    Ok(vec![
        crate::python3(),
        moto_py.to_string_lossy().to_string(),
        "-H".into(),
        EC2.into(),
        "-p".into(),
        EC2_PORT.to_string(),
    ])
}

/// The AWS example's world in moto (moto_lab.py setup3): both instances with their WAN, LAN
/// and sync ENIs, the LAN table's default route to the primary's LAN ENI, the Elastic IP
/// on the shared secondary address of its WAN ENI.
pub fn ec2_world(vpc: &Ns, moto_url: &str) -> anyhow::Result<Value> {
    let script = fs::canonicalize("tests/aws/moto_lab.py")
        .context("tests/aws/moto_lab.py (run from the source tree)")?;
    let out = vpc
        .command(&[
            &crate::python3(),
            &script.to_string_lossy(),
            "setup3",
            moto_url,
            EIP,
            SHARED,
        ])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "moto_lab.py setup3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The EC2 endpoint's URL (`EC2`:`EC2_PORT`) and the model's metadata service (IMDSv2, per
/// node, at the WAN router `WAN_ROUTER`:`IMDS_PORT`).
pub const EC2_URL: &str = "http://198.51.100.70:5000";
pub const IMDS_URL: &str = "http://198.51.100.65:8081";

/// The metadata service and the model, on threads, for a VPC built elsewhere.
pub fn serve(
    vpc: &Ns,
    fabric: Fabric,
    world: &Value,
    stop: Arc<AtomicBool>,
    applied: Arc<Mutex<Vec<(f64, String)>>>,
) -> anyhow::Result<Vec<thread::JoinHandle<()>>> {
    Ok(vec![
        crate::imds::serve(vpc, (WAN_ROUTER, IMDS_PORT), world, stop.clone())?,
        model(vpc, fabric, world, EC2_URL, stop, applied)?,
    ])
}

/// Rule 3, the internet gateway: stateless one-to-one NAT between private addresses with
/// an Elastic IP association and those Elastic IPs (the maps the model fills), everything
/// else from the VPC dropped on its way out.
const IGW_TABLE: &str = "table ip hakit_igw {
    map public { type ipv4_addr : ipv4_addr; }
    map private { type ipv4_addr : ipv4_addr; }
    chain inbound {
        type filter hook prerouting priority -300; policy accept;
        iifname \"igw0\" ip daddr set ip daddr map @private
        iifname \"igw0\" ip daddr 203.0.113.0/24 ip daddr != 203.0.113.1 drop
    }
    chain outbound {
        type filter hook postrouting priority 300; policy accept;
        oifname \"igw0\" ip saddr set ip saddr map @public
        oifname \"igw0\" ip saddr 198.51.100.0/24 drop
    }
}
";

/// Rules 2 and 4 in the fabric (the bridges): each node ENI's source/destination check
/// (a frame from or to a node's port must carry one of its ENI's addresses while the check
/// is on), and no multicast. `ports`: (bridge port, check on, the ENI's addresses).
fn fabric_table(ports: &[(&str, bool, Vec<String>)]) -> String {
    let mut rules = String::from("        ip daddr 224.0.0.0/4 drop\n");
    for (port, on, ips) in ports {
        if !on || ips.is_empty() {
            continue;
        }
        let set = ips.join(", ");
        rules.push_str(&format!(
            "        iifname \"{port}\" ip saddr != {{ {set} }} drop\n        oifname \"{port}\" ip daddr != {{ {set} }} drop\n"
        ));
    }
    format!(
        "table bridge hakit_vpc {{}}\ndelete table bridge hakit_vpc\ntable bridge hakit_vpc {{\n    chain forward {{\n        type filter hook forward priority 0; policy accept;\n{rules}    }}\n}}\n"
    )
}

/// The subnets' switches (namespaces holding the bridges) and their ports: each port's
/// interface name and the ENI behind it (moto_lab.py setup3's names, e.g. primary_lan_eni).
pub struct Fabric {
    pub switches: Vec<Ns>,
    pub ports: Vec<(String, String)>,
}

impl Fabric {
    /// The chaos lab's: both subnets' bridges in one namespace, ports named by `Lab::bridge`.
    fn lab(sw: &Ns) -> Fabric {
        Fabric {
            switches: vec![sw.clone()],
            ports: [
                ("brlana", "primary_lan_eni"),
                ("brlanb", "secondary_lan_eni"),
                ("brwana", "primary_wan_eni"),
                ("brwanb", "secondary_wan_eni"),
            ]
            .map(|(p, k)| (p.to_string(), k.to_string()))
            .to_vec(),
        }
    }

    /// Every switch's table before EC2 was read: rule 4 (no multicast) only.
    pub fn apply_empty(&self) -> anyhow::Result<()> {
        self.apply(None, &Value::Null)
    }

    /// Every switch's table: rules 2 and 4 for the ENIs as EC2 says they are.
    fn apply(&self, seen: Option<&Seen>, world: &Value) -> anyhow::Result<()> {
        let ports: Vec<(&str, bool, Vec<String>)> = match seen {
            None => Vec::new(),
            Some(seen) => self
                .ports
                .iter()
                .map(|(port, key)| {
                    let eni = world[key.as_str()].as_str().unwrap_or_default();
                    let (on, ips) = seen.enis.get(eni).cloned().unwrap_or((true, Vec::new()));
                    (port.as_str(), on, ips)
                })
                .collect(),
        };
        let table = fabric_table(&ports);
        for sw in &self.switches {
            nft_stdin(sw, &table)?;
        }
        Ok(())
    }
}

/// The model: polls EC2 and applies each change to the namespaces.
pub fn model(
    vpc: &Ns,
    fabric: Fabric,
    world: &Value,
    moto_url: &str,
    stop: Arc<AtomicBool>,
    applied: Arc<Mutex<Vec<(f64, String)>>>,
) -> anyhow::Result<thread::JoinHandle<()>> {
    let (vpc, world) = (vpc.clone(), world.clone());
    let host = moto_url.trim_start_matches("http://").to_string();
    let t0 = Instant::now();
    Ok(thread::spawn(move || {
        if let Err(e) = vpc.enter() {
            eprintln!("vpc model: {e:#}");
            return;
        }
        let mut last = Seen {
            lan_default: Some("unset".into()),
            ..Seen::default()
        };
        while !stop.load(Ordering::Relaxed) {
            match read_ec2(&host, &world) {
                Ok(seen) if seen != last => {
                    let mut log = Vec::new();
                    if seen.lan_default != last.lan_default {
                        let r = match &seen.lan_default {
                            Some(hop) => {
                                vpc.ip(&["route", "replace", "default", "via", hop, "table", "100"])
                            }
                            None => vpc.ip(&[
                                "route",
                                "replace",
                                "blackhole",
                                "default",
                                "table",
                                "100",
                            ]),
                        };
                        log.push(format!("LAN route -> {:?} ({r:?})", seen.lan_default));
                    }
                    if seen.eip_private != last.eip_private {
                        let mut nft = String::from(
                            "flush map ip hakit_igw public\nflush map ip hakit_igw private\n",
                        );
                        if let Some(p) = &seen.eip_private {
                            nft.push_str(&format!(
                                "add element ip hakit_igw public {{ {p} : {EIP} }}\nadd element ip hakit_igw private {{ {EIP} : {p} }}\n"
                            ));
                        }
                        let r = nft_stdin(&vpc, &nft);
                        log.push(format!("Elastic IP -> {:?} ({r:?})", seen.eip_private));
                    }
                    if seen.enis != last.enis {
                        let r = fabric.apply(Some(&seen), &world);
                        log.push(format!(
                            "ENIs (check on, addresses): {:?} ({r:?})",
                            seen.enis.values().collect::<Vec<_>>()
                        ));
                        // A secondary address reaches the ENI that holds it (the VPC's
                        // fabric, not ARP): a host route to that ENI's primary address.
                        for (on_check, ips) in seen.enis.values() {
                            let _ = on_check;
                            let Some((primary, rest)) = ips.split_first() else {
                                continue;
                            };
                            for ip in rest {
                                let r = vpc.ip(&[
                                    "route",
                                    "replace",
                                    &format!("{ip}/32"),
                                    "via",
                                    primary,
                                ]);
                                log.push(format!("{ip} -> {primary} ({r:?})"));
                            }
                        }
                    }
                    let t = t0.elapsed().as_secs_f64();
                    if let Ok(mut a) = applied.lock() {
                        a.extend(log.into_iter().map(|l| (t, l)));
                    }
                    last = seen;
                }
                Ok(_) => {}
                Err(e) => {
                    if let Ok(mut a) = applied.lock() {
                        a.push((
                            t0.elapsed().as_secs_f64(),
                            format!("EC2 read failed: {e:#}"),
                        ));
                    }
                }
            }
            thread::sleep(POLL);
        }
    }))
}
