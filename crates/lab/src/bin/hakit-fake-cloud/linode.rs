//! Linode's API as fip-claim calls it: who an address is assigned to, what a Linode shares,
//! IP Sharing (`share` replaces a Linode's whole shared set) and `assign`.

use super::*;

pub(crate) fn route(s: &mut State, r: &Req) -> Option<(u16, String)> {
    let (ip, json) = (s.ip.clone(), &r.json);
    let seg: Vec<&str> = r.seg.iter().map(String::as_str).collect();
    Some(match (r.method.as_str(), seg.as_slice()) {
        ("GET", ["v4", "networking", "ips", a]) if *a == ip => (
            200,
            format!(
                r#"{{"address":"{ip}","linode_id":{}}}"#,
                s.owner.map_or("null".into(), |o| o.to_string())
            ),
        ),
        ("GET", ["v4", "linode", "instances", id, "ips"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let sh: Vec<String> = s
                .shared
                .get(&id)
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|a| format!(r#"{{"address":"{a}"}}"#))
                .collect();
            (
                200,
                format!(
                    r#"{{"ipv4":{{"public":[],"private":[],"shared":[{}],"reserved":[]}},"ipv6":{{"global":[]}}}}"#,
                    sh.join(",")
                ),
            )
        }
        ("GET", ["v4", "linode", "instances", id]) => {
            (200, format!(r#"{{"id":{id},"region":"us-east"}}"#))
        }
        ("POST", ["v4", "networking", "ips", "share"]) => {
            let id = json["linode_id"].as_u64().unwrap_or(0);
            let ips: Vec<String> = json["ips"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            s.shared.insert(id, ips);
            (200, "{}".into())
        }
        ("POST", ["v4", "networking", "ips", "assign"]) => {
            s.owner = json["assignments"][0]["linode_id"].as_u64();
            (200, "{}".into())
        }
        _ => return None,
    })
}
