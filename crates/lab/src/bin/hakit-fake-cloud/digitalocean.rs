//! DigitalOcean's API as fip-claim calls it: a Reserved IP's (or reserved IPv6's) droplet,
//! the assign action and its polling (IPv6 actions through `/v2/actions/{id}`: the
//! reserved IPv6 resource has no actions path of its own to read one back).

use super::*;

pub(crate) fn route(s: &mut State, r: &Req) -> Option<(u16, String)> {
    let (ip, json) = (s.ip.clone(), &r.json);
    let seg: Vec<&str> = r.seg.iter().map(String::as_str).collect();
    Some(match (r.method.as_str(), seg.as_slice()) {
        ("GET", ["v2", kind @ ("reserved_ips" | "reserved_ipv6"), a]) if *a == ip => (
            200,
            format!(
                r#"{{"{}":{{"ip":"{ip}","droplet":{}}}}}"#,
                if *kind == "reserved_ips" {
                    "reserved_ip"
                } else {
                    "reserved_ipv6"
                },
                s.owner
                    .map_or("null".into(), |o| format!(r#"{{"id":{o}}}"#))
            ),
        ),
        ("POST", ["v2", "reserved_ips" | "reserved_ipv6", _, "actions"]) => {
            let target = json["droplet_id"].as_u64().unwrap_or(0);
            actions::start(s, "digitalocean", target)
        }
        ("GET", ["v2", "reserved_ips", _, "actions", id] | ["v2", "actions", id]) => {
            actions::poll(s, "digitalocean", id.parse().unwrap_or(0))
        }
        _ => return None,
    })
}
