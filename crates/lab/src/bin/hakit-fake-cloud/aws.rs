//! EC2's query API as fip-claim calls it (signed with the instance role's credentials from
//! the fake IMDS): the Elastic IP, its association, this pair's instances, route tables
//! (two pages) and the source/destination check.

use super::*;

pub(crate) fn route(s: &mut State, r: &Req) -> (u16, String) {
    let (ip, p, body) = (s.ip.clone(), s.provider.clone(), &r.body);
    let form: HashMap<String, String> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%2F", "/").replace("%3A", ":")))
        .collect();
    let xml = |name: &str, inner: String| {
        format!("<?xml version=\"1.0\"?><{name}Response xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">{inner}<requestId>r</requestId></{name}Response>")
    };
    match form.get("Action").map(String::as_str) {
        Some("DescribeAddresses") => {
            let holder = s.owner.map_or(String::new(), |o| format!("<instanceId>i-{o}</instanceId><networkInterfaceId>eni-{o}</networkInterfaceId>"));
            (200, xml("DescribeAddresses", format!("<addressesSet><item><allocationId>eipalloc-1</allocationId><publicIp>{ip}</publicIp>{holder}</item></addressesSet>")))
        }
        Some("AssociateAddress") => {
            let target = form
                .get("NetworkInterfaceId")
                .or(form.get("InstanceId"))
                .cloned()
                .unwrap_or_default();
            s.owner = target.rsplit('-').next().and_then(|n| n.parse().ok());
            (
                200,
                xml(
                    "AssociateAddress",
                    "<return>true</return><associationId>eipassoc-1</associationId>".into(),
                ),
            )
        }
        Some("DescribeInstances") => {
            let nics: String = form
                .iter()
                // By InstanceId.N or by the instance-id filter's values (what fip-claim
                // sends: unknown IDs are then skipped, not an error).
                .filter(|(k, _)| {
                    k.starts_with("InstanceId.")
                        || (k.starts_with("Filter.1.Value.")
                            && form.get("Filter.1.Name").map(String::as_str) == Some("instance-id"))
                })
                .map(|(_, v)| {
                    let n = v.trim_start_matches("i-");
                    format!("<item><instanceId>{v}</instanceId><vpcId>vpc-1</vpcId><networkInterfaceSet><item><networkInterfaceId>eni-{n}</networkInterfaceId></item></networkInterfaceSet></item>")
                })
                .collect();
            (200, xml("DescribeInstances", format!("<reservationSet><item><instancesSet>{nics}</instancesSet></item></reservationSet>")))
        }
        Some("DescribeRouteTables") => {
            // Two pages: rtb-1 first with a nextToken, rtb-2 on the second page.
            let (table, next) = if form.get("NextToken").map(String::as_str) == Some("page2") {
                ("rtb-2", "")
            } else {
                ("rtb-1", "<nextToken>page2</nextToken>")
            };
            let target = s.routes.get(table).cloned().unwrap_or_default();
            let tag = if target.starts_with("i-") {
                "instanceId"
            } else {
                "networkInterfaceId"
            };
            (200, xml("DescribeRouteTables", format!("<routeTableSet><item><routeTableId>{table}</routeTableId><routeSet><item><destinationCidrBlock>0.0.0.0/0</destinationCidrBlock><{tag}>{target}</{tag}></item></routeSet></item></routeTableSet>{next}")))
        }
        Some("ReplaceRoute") => {
            let t = form.get("RouteTableId").cloned().unwrap_or_default();
            let target = form
                .get("NetworkInterfaceId")
                .or(form.get("InstanceId"))
                .cloned()
                .unwrap_or_default();
            s.routes.insert(t, target);
            (200, xml("ReplaceRoute", "<return>true</return>".into()))
        }
        Some("DescribeInstanceAttribute") => {
            let on = !s.shared.contains_key(&0);
            (200, xml("DescribeInstanceAttribute", format!("<instanceId>i-{}</instanceId><sourceDestCheck><value>{on}</value></sourceDestCheck>", s.me)))
        }
        Some("ModifyInstanceAttribute") => {
            s.shared.insert(0, Vec::new());
            (
                200,
                xml("ModifyInstanceAttribute", "<return>true</return>".into()),
            )
        }
        _ => (400, error_body(&p, "InvalidAction", "unknown action")),
    }
}
