//! AWS: Elastic IP, route tables and source/dest check through the EC2 Query API, the
//! job natganker did, done read-first and idempotently.
//!
//! Sequence: `DescribeAddresses` → `AssociateAddress` (AllocationId, NetworkInterfaceId or
//! InstanceId, AllowReassociation=true) when the EIP is elsewhere; `DescribeRouteTables`
//! (every page) → `ReplaceRoute` for each route to a configured destination (default
//! 0.0.0.0/0) whose target is the peer instance or its ENI; `DescribeInstanceAttribute`
//! → `ModifyInstanceAttribute SourceDestCheck.Value=false` if the check is still on.
//! With `lan_ip` (a multi-ENI instance: WAN, LAN, sync) the routes target the LAN
//! ENI holding that address, found in `DescribeInstances`, and the check goes off on that
//! ENI (`ModifyNetworkInterfaceAttribute`): the check is a flag of each ENI, and the
//! instance-level call covers only the primary one (EC2 UG, using-eni.md; the NAT instance
//! guide, VPC_NAT_Instance.md, turns it off on each ENI that forwards).
//! After writes, `DescribeAddresses` again to verify. A converged node makes only reads.

use std::net::IpAddr;

use anyhow::{bail, Context};
use log::info;

pub use crate::aws_query::encode;
use crate::aws_query::{error_text, host_of, Imds};
use crate::{
    http::{Client, Request, Response},
    model::{Mode, Partial},
    provider::{Held, Provider, Shape, Writes},
    sigv4::{self, Credentials},
    xml,
};

/// EC2 answers XML (its errors are read by `error_text`); the JSON shape is unused.
pub static SHAPE: Shape = Shape {
    name: "aws",
    errors: |v| v.to_string(),
};

/// EC2 API version of the Query API.
pub const VERSION: &str = "2016-11-15";
/// The link-local instance metadata service.
pub const IMDS: &str = "http://169.254.169.254";

/// How to reach EC2 and who this node is.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub ip: Option<IpAddr>,
    pub allocation_id: Option<String>,
    pub instance_id: Option<String>,
    pub eni: Option<String>,
    /// This node's private IPv4 on the interface the route tables should target (the LAN
    /// ENI of a multi-ENI instance); None: the Elastic IP's interface.
    pub lan_ip: Option<std::net::Ipv4Addr>,
    /// The secondary private IPv4 of the WAN ENI that carries the Elastic IP (and both
    /// nodes' SNAT): moved to this node's ENI, the association with it.
    pub private_ip: Option<std::net::Ipv4Addr>,
    pub region: Option<String>,
    /// Peer instance IDs: routes targeting them (or their ENIs) are moved.
    pub peers: Vec<String>,
    /// Route destinations to move (default 0.0.0.0/0).
    pub destinations: Vec<String>,
    pub endpoint_url: Option<String>,
    pub metadata_url: Option<String>,
}

fn retry(r: &Response) -> bool {
    crate::http::retry_status(r)
        || r.body.contains("<Code>RequestLimitExceeded</Code>")
        || r.body.contains("<Code>Throttling</Code>")
}

struct Ec2<'a> {
    client: &'a Client,
    url: String,
    host: String,
    region: String,
    creds: Credentials,
    dry_run: bool,
    planned: Vec<String>,
}

impl Ec2<'_> {
    fn request(&self, action: &str, params: &[(String, String)]) -> Request {
        let mut body = format!("Action={}&Version={VERSION}", encode(action));
        for (k, v) in params {
            body.push_str(&format!("&{}={}", encode(k), encode(v)));
        }
        let now = hakit_core::clock::since_epoch().as_secs();
        let signed = sigv4::sign(
            &self.creds,
            &self.region,
            "ec2",
            &self.host,
            &sigv4::amz_date(now),
            &body,
        );
        let mut req = Request::new("POST", format!("{}/", self.url), action)
            .header("Content-Type", sigv4::CONTENT_TYPE)
            .header("X-Amz-Date", signed.amz_date.clone())
            .secret("Authorization", signed.authorization.clone())
            .body(body);
        if let Some(t) = signed.security_token {
            req = req.secret("X-Amz-Security-Token", t);
        }
        req
    }

    /// Sends `action`; writes are only planned under --dry-run.
    fn call(
        &mut self,
        action: &str,
        params: &[(String, String)],
        write: bool,
    ) -> anyhow::Result<Option<xml::Node>> {
        let req = self.request(action, params);
        if write && self.dry_run {
            self.planned.push(req.shown());
            return Ok(None);
        }
        let r = self.client.send(&req, retry).context("aws")?;
        if r.status != 200 {
            bail!("aws {action}: {}", error_text(&r));
        }
        let n = xml::parse(&r.body).with_context(|| {
            format!(
                "aws {action}: HTTP {} but the body is not EC2 XML (truncated?)",
                r.status
            )
        })?;
        if n.name != format!("{action}Response") {
            bail!("aws {action}: HTTP {} but the body is <{}>, not <{action}Response> (a proxy page?)", r.status, n.name);
        }
        Ok(Some(n))
    }
}

fn p(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

struct Eip {
    allocation_id: String,
    ip: String,
    instance: Option<String>,
    eni: Option<String>,
    /// The private IPv4 the association maps to.
    private_ip: Option<String>,
}

fn describe_eip(ec2: &mut Ec2, o: &Options) -> anyhow::Result<Eip> {
    let params = match (&o.allocation_id, o.ip) {
        (Some(a), _) => vec![p("AllocationId.1", a)],
        (None, Some(ip)) => vec![
            p("Filter.1.Name", "public-ip"),
            p("Filter.1.Value.1", &ip.to_string()),
        ],
        (None, None) => {
            bail!("aws: give the Elastic IP (--ip) or its allocation ID (--allocation-id)")
        }
    };
    let n = ec2
        .call("DescribeAddresses", &params, false)?
        .context("DescribeAddresses")?;
    let items = n.items("addressesSet");
    let item = items.first().with_context(|| {
        format!(
            "aws DescribeAddresses: {} is not an Elastic IP of this account and region",
            o.ip.map_or_else(
                || o.allocation_id.clone().unwrap_or_default(),
                |i| i.to_string()
            )
        )
    })?;
    Ok(Eip {
        allocation_id: item.get("allocationId").context(
            "aws DescribeAddresses: no allocationId (EC2-Classic addresses are not supported)",
        )?,
        ip: item.get("publicIp").unwrap_or_default(),
        instance: item.get("instanceId"),
        eni: item.get("networkInterfaceId"),
        private_ip: item.get("privateIpAddress"),
    })
}

/// A value given on the command line, or else read from IMDS (opened on first need).
fn need<'a>(
    given: &Option<String>,
    path: &str,
    imds: &mut Option<Imds<'a>>,
    client: &'a Client,
    meta: &str,
) -> anyhow::Result<String> {
    if let Some(v) = given {
        return Ok(v.clone());
    }
    if imds.is_none() {
        *imds = Some(Imds::open(client, meta)?);
    }
    imds.as_ref().context("IMDS")?.get(path)
}

/// The region from the standard variables (`AWS_REGION`, then `AWS_DEFAULT_REGION`, as the
/// AWS CLI and SDKs read them), when it has a region's shape.
fn env_region() -> Option<String> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"].iter().find_map(|k| {
        std::env::var(k)
            .ok()
            .filter(|r| crate::aws_credentials::region_shape(r))
    })
}

/// Who this node is and how to reach EC2: resolved once per session.
struct Who {
    instance: String,
    region: String,
    eni: Option<String>,
    creds: Credentials,
    url: String,
    host: String,
}

/// The EC2 provider: the Elastic IP, the routes that target the pair, the source/dest check.
pub struct Aws {
    o: Options,
    who: Option<Who>,
    /// From the last read.
    eip: Option<Eip>,
    /// This node's VPC and the peers' network interfaces (read before a claim).
    vpc: Option<String>,
    peer_enis: Vec<String>,
    /// With `lan_ip`: this node's ENI holding that address, and whether its
    /// source/destination check is still on (read with the instances, before a claim).
    route_eni: Option<(String, bool)>,
    /// With `private_ip`: whether this node's ENI already holds it.
    private_held: bool,
}

impl Aws {
    pub fn new(o: Options) -> Aws {
        Aws {
            o,
            who: None,
            eip: None,
            vpc: None,
            peer_enis: Vec::new(),
            route_eni: None,
            private_held: false,
        }
    }

    fn ec2<'c>(&self, c: &'c Client, dry_run: bool) -> anyhow::Result<Ec2<'c>> {
        let w = self.who.as_ref().context("aws: this node not resolved")?;
        Ok(Ec2 {
            client: c,
            url: w.url.clone(),
            host: w.host.clone(),
            region: w.region.clone(),
            creds: w.creds.clone(),
            dry_run,
            planned: Vec::new(),
        })
    }

    fn resolve(&self, client: &Client) -> anyhow::Result<Who> {
        let o = &self.o;
        let meta = o.metadata_url.clone().unwrap_or_else(|| IMDS.to_string());
        let mut imds: Option<Imds> = None;
        let instance = need(&o.instance_id, "instance-id", &mut imds, client, &meta)?;
        let region = need(
            &o.region
                .clone()
                .or_else(env_region)
                .or_else(crate::aws_credentials::profile_region),
            "placement/region",
            &mut imds,
            client,
            &meta,
        )?;
        let eni = match &o.eni {
            Some(e) => Some(e.clone()),
            None if o.instance_id.is_none() => {
                let mac = need(&None, "mac", &mut imds, client, &meta)?;
                Some(need(
                    &None,
                    &format!("network/interfaces/macs/{mac}/interface-id"),
                    &mut imds,
                    client,
                    &meta,
                )?)
            }
            None => None,
        };
        let (creds, source) = crate::aws_credentials::Resolver {
            client,
            imds: &mut imds,
            meta: &meta,
            region: &region,
        }
        .resolve()?;
        info!("aws: credentials from {source}");
        let url = o
            .endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://ec2.{region}.amazonaws.com"))
            .trim_end_matches('/')
            .to_string();
        Ok(Who {
            host: host_of(&url),
            instance,
            region,
            eni,
            creds,
            url,
        })
    }
}

impl Provider for Aws {
    fn shape(&self) -> &'static Shape {
        &SHAPE
    }

    fn me(&mut self, c: &Client) -> anyhow::Result<String> {
        if self.who.is_none() {
            self.who = Some(self.resolve(c)?);
        }
        Ok(self.who.as_ref().context("aws")?.instance.clone())
    }

    fn read(&mut self, c: &Client, me: &str) -> anyhow::Result<Held> {
        let eip = describe_eip(&mut self.ec2(c, false)?, &self.o)?;
        let eni = self.who.as_ref().and_then(|w| w.eni.clone());
        let held = Held {
            ip: eip.ip.parse().ok().or(self.o.ip),
            what: eip.ip.clone(),
            holder: eip.instance.clone().or(eip.eni.clone()),
            mine: (eip.instance.as_deref() == Some(me) || (eni.is_some() && eip.eni == eni))
                && self
                    .o
                    .private_ip
                    .is_none_or(|p| eip.private_ip.as_deref() == Some(p.to_string().as_str())),
        };
        self.eip = Some(eip);
        Ok(held)
    }

    /// The peers and their network interfaces (the holder is an instance, or an ENI with
    /// no instance: AWS returns no instanceId for an ENI that is not attached); this node's
    /// VPC on the way. One read that tolerates peers that no longer exist (a filter, not
    /// InstanceId.N: one stale ID made DescribeInstances fail with InvalidInstanceID.NotFound
    /// and aborted every claim after the Elastic IP had moved).
    fn peer_aliases(&mut self, c: &Client, me: &str) -> anyhow::Result<Vec<String>> {
        let mut ids = vec![me.to_string()];
        ids.extend(self.o.peers.iter().cloned());
        let mut params = vec![p("Filter.1.Name", "instance-id")];
        params.extend(
            ids.iter()
                .enumerate()
                .map(|(i, id)| p(&format!("Filter.1.Value.{}", i + 1), id)),
        );
        let (mut vpc, mut peer_enis, mut route_eni) = (None, Vec::new(), None);
        let mut private_held = false;
        let my_eni = self.who.as_ref().and_then(|w| w.eni.clone());
        if let Some(n) = self
            .ec2(c, false)?
            .call("DescribeInstances", &params, false)?
        {
            for res in n.items("reservationSet") {
                for inst in res.items("instancesSet") {
                    let id = inst.get("instanceId").unwrap_or_default();
                    if id == me {
                        vpc = inst.get("vpcId");
                        if let Some(want) = self.o.lan_ip {
                            route_eni = route_eni_of(inst, want);
                        }
                        if let Some(p) = self.o.private_ip {
                            private_held =
                                my_eni.is_some() && route_eni_of(inst, p).map(|(e, _)| e) == my_eni;
                        }
                    } else if self.o.peers.contains(&id) {
                        for nic in inst.items("networkInterfaceSet") {
                            peer_enis.extend(nic.get("networkInterfaceId"));
                        }
                    }
                }
            }
        }
        if let (Some(want), None) = (self.o.lan_ip, &route_eni) {
            bail!("aws: no network interface of instance {me} has the private IP {want} (lan_ip: this node's address on its LAN ENI)");
        }
        self.vpc = vpc;
        self.peer_enis = peer_enis;
        self.route_eni = route_eni;
        self.private_held = private_held;
        Ok(self.peer_enis.clone())
    }

    fn no_release(&self) -> Option<&'static str> {
        Some("--release is not supported (an Elastic IP is always associated somewhere or nowhere; claim it from the other node)")
    }

    fn converge(
        &mut self,
        c: &Client,
        me: &str,
        held: &Held,
        _mode: Mode,
        w: &mut Writes,
    ) -> anyhow::Result<()> {
        let mut ec2 = self.ec2(c, w.dry_run())?;
        let r = self.moves(&mut ec2, me, held.mine);
        w.planned.append(&mut ec2.planned);
        w.done.extend(r?);
        Ok(())
    }
}

impl Aws {
    /// The writes of a claim, in order: the Elastic IP, the routes, the source/dest check.
    /// Returns what was done (or, under --dry-run, planned); a failure after a change is
    /// a partial application, naming both halves.
    fn moves(&self, ec2: &mut Ec2, instance: &str, mine: bool) -> anyhow::Result<Vec<String>> {
        let mut done: Vec<String> = Vec::new();
        if !mine {
            self.associate(ec2, instance, &mut done)?;
        }
        // The routes' target: the LAN ENI when named, else the Elastic IP's interface.
        let eni = self.who.as_ref().and_then(|w| w.eni.clone());
        let target = self.route_eni.as_ref().map(|(e, _)| e.clone()).or(eni);
        for (table, dest) in self.routes_to_move(ec2, instance, target.as_ref(), &done)? {
            let key = if dest.contains(':') {
                "DestinationIpv6CidrBlock"
            } else {
                "DestinationCidrBlock"
            };
            let mut params = vec![p("RouteTableId", &table), p(key, &dest)];
            match &target {
                Some(e) => params.push(p("NetworkInterfaceId", e)),
                None => params.push(p("InstanceId", instance)),
            }
            ec2.call("ReplaceRoute", &params, true)
                .map_err(|e| partial(e, &done))?;
            done.push(format!("ReplaceRoute {table} {dest}"));
        }
        self.source_dest_check(ec2, instance, &mut done)?;
        Ok(done)
    }

    /// The Elastic IP to this node (with the shared private address if one is configured).
    fn associate(
        &self,
        ec2: &mut Ec2,
        instance: &str,
        done: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let eni = self.who.as_ref().and_then(|w| w.eni.clone());
        let eip = self.eip.as_ref().context("aws: Elastic IP not read")?;
        if let Some(ip) = self.o.private_ip {
            // The shared private address first: on AWS its Elastic IP association moves with
            // it (EC2 UG, MultipleIP.md); the association is then asserted, idempotently
            // (EC2 API Reference, AssociateAddress), with the address named.
            let e = eni.as_ref().context(
                "aws: private_ip needs this node's WAN network interface (the metadata service's, or eni)",
            )?;
            let ip = ip.to_string();
            if !self.private_held {
                ec2.call(
                    "AssignPrivateIpAddresses",
                    &[
                        p("NetworkInterfaceId", e),
                        p("PrivateIpAddress.1", &ip),
                        p("AllowReassignment", "true"),
                    ],
                    true,
                )?;
                done.push(format!("AssignPrivateIpAddresses {ip} -> {e}"));
            }
            ec2.call(
                "AssociateAddress",
                &[
                    p("AllocationId", &eip.allocation_id),
                    p("NetworkInterfaceId", e),
                    p("PrivateIpAddress", &ip),
                    p("AllowReassociation", "true"),
                ],
                true,
            )
            .map_err(|err| partial(err, done))?;
            done.push(format!("AssociateAddress {} -> {e} {ip}", eip.ip));
        } else {
            let mut params = vec![
                p("AllocationId", &eip.allocation_id),
                p("AllowReassociation", "true"),
            ];
            match &eni {
                Some(e) => params.push(p("NetworkInterfaceId", e)),
                None => params.push(p("InstanceId", instance)),
            }
            ec2.call("AssociateAddress", &params, true)?;
            done.push(format!(
                "AssociateAddress {} -> {}",
                eip.ip,
                eni.clone().unwrap_or(instance.to_string())
            ));
        }
        Ok(())
    }

    /// The route tables' routes that must point here: (table, destination).
    fn routes_to_move(
        &self,
        ec2: &mut Ec2,
        instance: &str,
        target: Option<&String>,
        done: &[String],
    ) -> anyhow::Result<Vec<(String, String)>> {
        let (o, vpc, peer_enis) = (&self.o, &self.vpc, &self.peer_enis);
        // Routes move only when they target this pair's peers (an instance ID or a peer's ENI),
        // in this node's VPC. --force widens who may hold the Elastic IP, never whose routes
        // are taken: it once moved an unrelated NAT instance's route table. IPv6 default routes
        // (::/0) move with IPv4 ones.
        let dests: Vec<String> = if o.destinations.is_empty() {
            vec!["0.0.0.0/0".into(), "::/0".into()]
        } else {
            o.destinations.clone()
        };
        let mut token: Option<String> = None;
        let mut replace = Vec::new();
        loop {
            // One VPC's tables, a page at a time (DescribeRouteTables: Filter vpc-id,
            // MaxResults 5-100, NextToken), so the cost does not grow with the account.
            let mut params = vec![p("MaxResults", "100")];
            if let Some(v) = &vpc {
                params.push(p("Filter.1.Name", "vpc-id"));
                params.push(p("Filter.1.Value.1", v));
            }
            if let Some(t) = &token {
                params.push(p("NextToken", t));
            }
            let page = ec2
                .call("DescribeRouteTables", &params, false)
                .map_err(|e| partial(e, done))?
                .context("DescribeRouteTables")?;
            for rt in page.items("routeTableSet") {
                let id = rt.get("routeTableId").unwrap_or_default();
                if vpc.is_some() && rt.get("vpcId").is_some_and(|v| Some(&v) != vpc.as_ref()) {
                    continue;
                }
                for route in rt.items("routeSet") {
                    let Some(dest) = route
                        .get("destinationCidrBlock")
                        .or_else(|| route.get("destinationIpv6CidrBlock"))
                    else {
                        continue;
                    };
                    if !dests.contains(&dest) {
                        continue;
                    }
                    let (ri, rn) = (route.get("instanceId"), route.get("networkInterfaceId"));
                    let ours = rn.is_some() && rn.as_ref() == target
                        || self.route_eni.is_none() && ri.as_deref() == Some(instance);
                    let peer = ri.as_ref().is_some_and(|i| o.peers.contains(i))
                        || rn.as_ref().is_some_and(|n| peer_enis.contains(n));
                    // This node, but not its LAN ENI (a route set up before lan_ip).
                    let mine_elsewhere = ri.as_deref() == Some(instance);
                    if !ours && (peer || mine_elsewhere) {
                        replace.push((id.clone(), dest));
                    }
                }
            }
            token = page.get("nextToken");
            if token.is_none() {
                break;
            }
        }
        Ok(replace)
    }

    /// The source/destination check off where the forwarded packets cross.
    fn source_dest_check(
        &self,
        ec2: &mut Ec2,
        instance: &str,
        done: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        // The source/destination check, off where the forwarded packets cross: on the LAN
        // ENI itself (a flag of each ENI; the instance-level call covers only the primary one
        // and fails on a multi-ENI instance), else on the instance.
        if let Some((e, on)) = &self.route_eni {
            if *on {
                ec2.call(
                    "ModifyNetworkInterfaceAttribute",
                    &[
                        p("NetworkInterfaceId", e),
                        p("SourceDestCheck.Value", "false"),
                    ],
                    true,
                )
                .map_err(|err| partial(err, done))?;
                done.push(format!(
                    "ModifyNetworkInterfaceAttribute {e} SourceDestCheck=false"
                ));
            }
            return Ok(());
        }
        let attr = ec2
            .call(
                "DescribeInstanceAttribute",
                &[p("InstanceId", instance), p("Attribute", "sourceDestCheck")],
                false,
            )
            .map_err(|e| partial(e, done))?;
        let check_on = attr
            .and_then(|n| n.get("sourceDestCheck/value"))
            .is_some_and(|v| v == "true");
        if check_on {
            ec2.call(
                "ModifyInstanceAttribute",
                &[
                    p("InstanceId", instance),
                    p("SourceDestCheck.Value", "false"),
                ],
                true,
            )
            .map_err(|e| partial(e, done))?;
            done.push(format!(
                "ModifyInstanceAttribute {instance} SourceDestCheck=false"
            ));
        }
        Ok(())
    }
}

/// The ENI of `inst` (a DescribeInstances item) that holds `want` as a primary or secondary
/// private IPv4, with its source/destination check (true when AWS leaves it out: the default).
fn route_eni_of(inst: &xml::Node, want: std::net::Ipv4Addr) -> Option<(String, bool)> {
    let want = want.to_string();
    inst.items("networkInterfaceSet")
        .into_iter()
        .find_map(|nic| {
            let holds = nic.get("privateIpAddress").as_deref() == Some(want.as_str())
                || nic
                    .items("privateIpAddressesSet")
                    .iter()
                    .any(|a| a.get("privateIpAddress").as_deref() == Some(want.as_str()));
            let id = nic.get("networkInterfaceId")?;
            holds.then(|| (id, nic.get("sourceDestCheck").as_deref() != Some("false")))
        })
}

/// Once something changed, a failure is a partial application, naming both halves.
fn partial(e: anyhow::Error, done: &[String]) -> anyhow::Error {
    if done.is_empty() {
        e
    } else {
        Partial {
            done: done.to_vec(),
            failed: format!("{e:#}"),
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_sigv4_wants() {
        assert_eq!(encode("0.0.0.0/0"), "0.0.0.0%2F0");
        assert_eq!(encode("a b~c"), "a%20b~c");
        assert_eq!(encode("eipalloc-0123"), "eipalloc-0123");
    }
}
