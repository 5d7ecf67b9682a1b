//! Hetzner Cloud's API as fip-claim calls it: Floating IPs (paged, as the API pages), the
//! assign action and its polling, running actions, in the shapes Hetzner's own API document
//! requires (fip_claim_specs.rs holds the fake to it through Prism).

use super::*;

pub(crate) fn route(s: &mut State, r: &Req) -> Option<(u16, String)> {
    let (ip, json) = (s.ip.clone(), &r.json);
    let seg: Vec<&str> = r.seg.iter().map(String::as_str).collect();
    Some(match (r.method.as_str(), seg.as_slice()) {
        ("GET", ["v1", "floating_ips"]) => {
            // Every Floating IP of the project, ours last, a page at a time.
            let q = |k: &str| {
                r.path
                    .split_once('?')
                    .map(|(_, q)| q)
                    .unwrap_or("")
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            let (page, per) = (
                q("page").unwrap_or(1).max(1),
                q("per_page").unwrap_or(25).clamp(1, 50),
            );
            let total = s.extra_fips + 1;
            let all: Vec<String> = (0..total)
                .map(|i| {
                    if i + 1 == total {
                        hetzner_fip(7, &ip, s.owner)
                    } else {
                        hetzner_fip(1000 + i, &format!("192.0.2.{}", i % 250), None)
                    }
                })
                .collect();
            let from = ((page - 1) * per).min(total) as usize;
            let to = (page * per).min(total) as usize;
            let next = if (to as u64) < total {
                (page + 1).to_string()
            } else {
                "null".into()
            };
            (
                200,
                format!(
                    r#"{{"floating_ips":[{}],"meta":{{"pagination":{{"page":{page},"per_page":{per},"previous_page":null,"next_page":{next},"last_page":{},"total_entries":{total}}}}}}}"#,
                    all[from..to].join(","),
                    total.div_ceil(per)
                ),
            )
        }
        ("GET", ["v1", "floating_ips", "7", "actions"]) => {
            // Assign actions not finished yet (status=running is the only filter used).
            let running: Vec<String> = s
                .actions
                .iter()
                .filter(|(_, polls)| s.fault == "stuck" || **polls < 1)
                .filter(|_| !s.instant)
                .map(|(id, _)| {
                    let target = s
                        .shared
                        .get(&(u64::MAX - id))
                        .and_then(|v| v.first().cloned())
                        .unwrap_or_default();
                    hetzner_action(*id, "running", &target)
                })
                .collect();
            (
                200,
                format!(
                    r#"{{"actions":[{}],"meta":{{"pagination":{{"page":1,"per_page":25,"previous_page":null,"next_page":null,"last_page":1,"total_entries":{}}}}}}}"#,
                    running.join(","),
                    running.len()
                ),
            )
        }
        ("GET", ["v1", "floating_ips", "7"]) => (
            200,
            format!(r#"{{"floating_ip":{}}}"#, hetzner_fip(7, &ip, s.owner)),
        ),
        ("POST", ["v1", "floating_ips", "7", "actions", "assign"]) => {
            let target = json["server"].as_u64().unwrap_or(0);
            actions::start(s, "hetzner", target)
        }
        ("GET", ["v1", "networks", "9"]) => (200, format!(r#"{{"network":{}}}"#, network(s))),
        ("POST", ["v1", "networks", "9", "actions", what @ ("add_route" | "delete_route")]) => {
            let (dest, gw) = (
                json["destination"].as_str().unwrap_or_default().to_string(),
                json["gateway"].as_str().unwrap_or_default().to_string(),
            );
            let at = s.net_routes.iter().position(|(d, _)| *d == dest);
            // Hetzner refuses a route that overlaps another and deletes only one that exists.
            match (*what, at) {
                ("add_route", Some(_)) => {
                    return Some((
                        422,
                        error_body(
                            "hetzner",
                            "invalid_input",
                            "route overlaps an existing route",
                        ),
                    ))
                }
                ("delete_route", None) => {
                    return Some((404, error_body("hetzner", "not_found", "route not found")))
                }
                ("delete_route", Some(i)) if s.net_routes[i].1 != gw => {
                    return Some((404, error_body("hetzner", "not_found", "route not found")))
                }
                ("add_route", None) => s.net_routes.push((dest, gw)),
                (_, Some(i)) => {
                    s.net_routes.remove(i);
                }
                _ => {}
            }
            s.net_routes_changed();
            s.next_action += 1;
            let id = s.next_action;
            let status = if s.instant { "success" } else { "running" };
            s.net_actions.push(id);
            (
                201,
                format!(r#"{{"action":{}}}"#, network_action(id, what, status)),
            )
        }
        ("GET", ["v1", "actions", id]) if s.net_actions.iter().any(|a| a.to_string() == *id) => {
            let id: u64 = id.parse().unwrap_or(0);
            (
                200,
                format!(
                    r#"{{"action":{}}}"#,
                    network_action(id, "add_route", "success")
                ),
            )
        }
        ("GET", ["v1", "actions", id]) => actions::poll(s, "hetzner", id.parse().unwrap_or(0)),
        _ => return None,
    })
}

/// A Floating IP with every property Hetzner's API document requires (Prism's validating
/// proxy in fip_claim_specs.rs holds the fake to it).
pub(crate) fn hetzner_fip(id: u64, ip: &str, server: Option<u64>) -> String {
    let ty = if ip.contains(':') { "ipv6" } else { "ipv4" };
    format!(
        r#"{{"id":{id},"ip":"{ip}","server":{},"type":"{ty}","name":"fip-{id}","description":null,"blocked":false,"created":"2026-01-01T00:00:00+00:00","dns_ptr":[],"labels":{{}},"protection":{{"delete":false}},"home_location":{{"id":1,"name":"fsn1","description":"Falkenstein DC Park 1","country":"DE","city":"Falkenstein","latitude":50.47612,"longitude":12.370071,"network_zone":"eu-central"}}}}"#,
        server.map_or("null".into(), |s| s.to_string())
    )
}

/// An assign action with every property Hetzner's API document requires.
pub(crate) fn hetzner_action(id: u64, status: &str, server: &str) -> String {
    let (progress, finished) = if status == "running" {
        (50, "null")
    } else {
        (100, r#""2026-01-01T00:00:01+00:00""#)
    };
    format!(
        r#"{{"id":{id},"command":"assign_floating_ip","status":"{status}","progress":{progress},"started":"2026-01-01T00:00:00+00:00","finished":{finished},"resources":[{{"id":{server},"type":"server"}},{{"id":7,"type":"floating_ip"}}],"error":null}}"#
    )
}

/// Network 9 with its routes, every property Hetzner's API document requires.
fn network(s: &State) -> String {
    let routes: Vec<String> = s
        .net_routes
        .iter()
        .map(|(d, g)| format!(r#"{{"destination":"{d}","gateway":"{g}"}}"#))
        .collect();
    format!(
        r#"{{"id":9,"name":"lan","ip_range":"198.51.100.0/24","subnets":[],"routes":[{}],"servers":[],"load_balancers":[],"protection":{{"delete":false}},"labels":{{}},"created":"2026-01-01T00:00:00+00:00","expose_routes_to_vswitch":false}}"#,
        routes.join(",")
    )
}

/// A network route action with every property Hetzner's API document requires.
fn network_action(id: u64, command: &str, status: &str) -> String {
    let (progress, finished) = if status == "running" {
        (50, "null")
    } else {
        (100, r#""2026-01-01T00:00:01+00:00""#)
    };
    format!(
        r#"{{"id":{id},"command":"{command}","status":"{status}","progress":{progress},"started":"2026-01-01T00:00:00+00:00","finished":{finished},"resources":[{{"id":9,"type":"network"}}],"error":null}}"#
    )
}
