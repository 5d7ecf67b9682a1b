//! EC2's view as the VPC model reads it from moto: the LAN table's default route, the
//! Elastic IP's association and each ENI's source/destination check and addresses.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use anyhow::Context;
use serde_json::Value;

use super::EIP;

/// EC2's view that the model acts on.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Seen {
    /// The LAN table's default route: the next hop (an ENI's private address), or None for
    /// a blackhole.
    pub lan_default: Option<String>,
    /// Elastic IP association: the private address it maps to.
    pub eip_private: Option<String>,
    /// Each node ENI (by ID): its source/destination check and its private addresses,
    /// primary first.
    pub enis: BTreeMap<String, (bool, Vec<String>)>,
}

/// One unsigned EC2 Query API call (moto checks no signature unless told to).
fn ec2_call(
    url_host: &str,
    action: &str,
    params: &[(&str, &str)],
) -> anyhow::Result<hakit_fip::xml::Node> {
    let mut body = format!("Action={action}&Version={}", hakit_fip::aws::VERSION);
    for (k, v) in params {
        body.push_str(&format!(
            "&{}={}",
            hakit_fip::aws::encode(k),
            hakit_fip::aws::encode(v)
        ));
    }
    let mut s = TcpStream::connect(url_host)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {url_host}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential=model/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let xml = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    hakit_fip::xml::parse(xml).with_context(|| format!("moto {action}: {resp}"))
}

/// EC2's view, read from moto.
pub(super) fn read_ec2(host: &str, world: &Value) -> anyhow::Result<Seen> {
    let w = |k: &str| world[k].as_str().unwrap_or_default().to_string();
    let ip_of: BTreeMap<String, String> = ["primary", "secondary"]
        .iter()
        .flat_map(|r| {
            [
                (w(&format!("{r}_wan_eni")), w(&format!("{r}_wan_ip"))),
                (w(&format!("{r}_lan_eni")), w(&format!("{r}_lan_ip"))),
            ]
        })
        .collect();
    let table = world["tables"][0].as_str().unwrap_or_default();
    let rts = ec2_call(host, "DescribeRouteTables", &[("RouteTableId.1", table)])?;
    let mut lan_default = None;
    for rt in rts.items("routeTableSet") {
        for r in rt.items("routeSet") {
            if r.get("destinationCidrBlock").as_deref() != Some("0.0.0.0/0") {
                continue;
            }
            // Only an ENI target routes: an instance with three ENIs is no target.
            lan_default = r
                .get("networkInterfaceId")
                .and_then(|e| ip_of.get(&e).cloned());
        }
    }
    let eip = ec2_call(
        host,
        "DescribeAddresses",
        &[("Filter.1.Name", "public-ip"), ("Filter.1.Value.1", EIP)],
    )?;
    let eip_private = eip
        .items("addressesSet")
        .first()
        .and_then(|a| a.get("privateIpAddress"));
    let nics = ec2_call(host, "DescribeNetworkInterfaces", &[])?;
    let enis = nics
        .items("networkInterfaceSet")
        .iter()
        .filter_map(|n| {
            let id = n.get("networkInterfaceId")?;
            let mut ips: Vec<String> = n.get("privateIpAddress").into_iter().collect();
            for a in n.items("privateIpAddressesSet") {
                if let Some(ip) = a.get("privateIpAddress") {
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
            }
            let on = n.get("sourceDestCheck").as_deref() != Some("false");
            Some((id, (on, ips)))
        })
        .collect();
    Ok(Seen {
        lan_default,
        eip_private,
        enis,
    })
}
