//! A fake cloud provider for fip-claim's tests: the Linode, Hetzner and DigitalOcean
//! calls fip-claim makes, their metadata services, real state (who holds the IP, shared
//! sets, actions that take a poll to finish) and injected faults.
//!
//! Usage: hakit-fake-cloud ADDR:PORT --provider P --me ID --owner ID --ip ADDR
//!        [--shared ADDR,...] [--fault KIND] [--log FILE]
//!        [--node ID=ADDR ...] [--route-ns NS] [--instant] [--control-dir DIR]
//!
//! For the failover lab (several nodes, one provider), `--node ID=ADDR` names each node by
//! the address it calls from (its metadata answers with that ID), and `--route-ns NS`
//! makes the provider's routing real: whenever the owner changes, the floating IP's /32
//! route in namespace NS is pointed at the new owner's address, as the cloud's network
//! would. `--instant` completes Hetzner/DigitalOcean actions at once. `--control-dir DIR`:
//! the provider writes the current owner to `DIR/owner` and answers every API request with
//! 503 while `DIR/outage_until` holds a Unix time in the future.
//! Faults: 500xN (N 500s, then normal), 429 (one 429 with Retry-After: 1), hang (API
//! requests never answered), garbage (200 with a non-JSON body), truncated (200 with cut
//! JSON), 401, 403 (with the provider's error shape), reset (one Hetzner-style 429 with only
//! `RateLimit-Reset`, two seconds ahead), stuck (actions never finish).
//! `--net-route DEST=GW` (Hetzner, repeatable): network 9's routes at start; `--network-ns
//! NS`: the default route of namespace NS follows network 9's route to 0.0.0.0/0 (the Cloud
//! Network's router), a blackhole without one.
//! `--edge-ns NS --anchor ID=ADDR ...` (DigitalOcean): namespace NS is the anchor
//! gateway, and translates the Reserved IP to and from the owner's anchor address.
//! `--extra-fips N` (Hetzner): N other Floating IPs listed before this one, paged as the API
//! pages (`page`, `per_page`, `meta.pagination.next_page`). Token: "Bearer fake-token".

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

mod actions;
mod aws;
mod digitalocean;
mod hetzner;
mod linode;

/// One API request, parsed.
pub(crate) struct Req {
    pub method: String,
    /// With the query string.
    pub path: String,
    /// The path's segments, without the query string.
    pub seg: Vec<String>,
    pub body: String,
    /// The body as JSON (null when it is not).
    pub json: serde_json::Value,
}

pub(crate) struct State {
    provider: String,
    me: u64,
    ip: String,
    owner: Option<u64>,
    shared: HashMap<u64, Vec<String>>,
    fault: String,
    faults_left: u32,
    actions: HashMap<u64, u32>,
    next_action: u64,
    log: Option<String>,
    /// AWS: route table -> target (instance or ENI).
    routes: HashMap<String, String>,
    /// Lab: node ID -> the address it calls from (and the next hop of its route).
    nodes: Vec<(u64, std::net::IpAddr)>,
    route_ns: Option<String>,
    /// Hetzner: the Cloud Network's routes (destination, gateway), and the namespace whose
    /// routes follow them (`--network-ns`: the network's own router).
    net_routes: Vec<(String, String)>,
    /// The network route actions started (they finish on their first poll).
    net_actions: Vec<u64>,
    network_ns: Option<String>,
    /// DigitalOcean: the anchor gateway's namespace (`--edge-ns`), where the Reserved IP is
    /// translated to and from the anchor IP (`--anchor ID=ADDR`) of the droplet it is
    /// assigned to.
    edge_ns: Option<String>,
    anchors: Vec<(u64, String)>,
    instant: bool,
    control_dir: Option<std::path::PathBuf>,
    extra_fips: u64,
}

impl State {
    /// The ID of the node calling from `peer`, or the configured `--me`.
    fn caller(&self, peer: Option<std::net::IpAddr>) -> u64 {
        self.nodes
            .iter()
            .find(|(_, a)| Some(*a) == peer)
            .map_or(self.me, |(id, _)| *id)
    }

    /// Whether the control directory declares an API outage now.
    fn outage(&self) -> bool {
        let Some(dir) = &self.control_dir else {
            return false;
        };
        let until: f64 = std::fs::read_to_string(dir.join("outage_until"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        now < until
    }

    /// After a change of the network's routes: the network's router follows them.
    fn net_routes_changed(&self) {
        let Some(ns) = &self.network_ns else {
            return;
        };
        // The route the NAT pair moves: the default one.
        let dest = "0.0.0.0/0";
        {
            let argv: Vec<String> = match self.net_routes.iter().find(|(d, _)| d.as_str() == dest) {
                Some((_, gw)) => ["-n", ns, "route", "replace", "default", "via", gw]
                    .map(str::to_string)
                    .to_vec(),
                None => ["-n", ns, "route", "replace", "blackhole", "default"]
                    .map(str::to_string)
                    .to_vec(),
            };
            let ok = std::process::Command::new("ip")
                .args(&argv)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("hakit-fake-cloud: could not apply {argv:?}");
            }
        }
    }

    /// DigitalOcean's anchor gateway after a change of owner (DigitalOcean, "Find
    /// information about Droplet anchor IPs": traffic between a Reserved IP and its droplet
    /// flows through the droplet's anchor IP; the anchor is reachable only by its droplet and
    /// by the Reserved IP assigned to it): inbound to the Reserved IP is translated to the
    /// owner's anchor, and only the owner's anchor leaves as the Reserved IP; no owner, no
    /// translation. Interfaces: `ext` towards the internet.
    fn anchor_gateway_changed(&self) {
        let Some(ns) = &self.edge_ns else {
            return;
        };
        let anchor = self
            .anchors
            .iter()
            .find(|(id, _)| Some(*id) == self.owner)
            .map(|(_, a)| a.clone());
        let ip = &self.ip;
        let rules = match anchor {
            Some(a) => format!(
                "chain pre {{ type nat hook prerouting priority dstnat; iifname \"ext\" ip daddr {ip} dnat to {a}; }}\n\
                 chain post {{ type nat hook postrouting priority srcnat; oifname \"ext\" ip saddr {a} snat to {ip}; }}\n"
            ),
            None => String::new(),
        };
        let text = format!(
            "table ip do_reserved\ndelete table ip do_reserved\ntable ip do_reserved {{\n{rules}}}\n"
        );
        let ok = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                if let Some(mut i) = c.stdin.take() {
                    i.write_all(text.as_bytes())?;
                }
                c.wait()
            })
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("hakit-fake-cloud: could not apply the Reserved IP's translation in {ns}");
        }
    }

    /// After a change of owner: point the floating IP's route at the owner and publish it.
    fn owner_changed(&self) {
        self.anchor_gateway_changed();
        let owner = self.owner.map_or("none".to_string(), |o| o.to_string());
        if let (Some(ns), Some(hop)) = (
            &self.route_ns,
            self.nodes
                .iter()
                .find(|(id, _)| Some(*id) == self.owner)
                .map(|(_, a)| a.to_string()),
        ) {
            let fip = format!("{}/32", self.ip);
            let ok = std::process::Command::new("ip")
                .args(["-n", ns, "route", "replace", &fip, "via", &hop])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("hakit-fake-cloud: could not route {fip} via {hop} in {ns}");
            }
        }
        if let Some(dir) = &self.control_dir {
            let tmp = dir.join("owner.tmp");
            if std::fs::write(&tmp, format!("{owner}\n")).is_ok() {
                let _ = std::fs::rename(&tmp, dir.join("owner"));
            }
        }
    }
}

fn error_body(provider: &str, code: &str, msg: &str) -> String {
    match provider {
        "aws" => {
            let code = match code {
                "unauthorized" => "AuthFailure",
                "forbidden" => "UnauthorizedOperation",
                "rate_limit_exceeded" => "RequestLimitExceeded",
                "server_error" => "InternalError",
                other => other,
            };
            format!("<Response><Errors><Error><Code>{code}</Code><Message>{msg}</Message></Error></Errors><RequestID>r</RequestID></Response>")
        }
        "linode" => format!(r#"{{"errors":[{{"reason":"{msg}"}}]}}"#),
        "hetzner" => format!(r#"{{"error":{{"code":"{code}","message":"{msg}"}}}}"#),
        _ => format!(r#"{{"id":"{code}","message":"{msg}"}}"#),
    }
}

fn respond(mut s: &TcpStream, status: u16, extra: &str, body: &str) {
    let _ = write!(s, "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}", body.len());
}

fn handle(stream: TcpStream, st: Arc<Mutex<State>>) {
    let mut r = BufReader::new(&stream);
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    if method.is_empty() {
        return; // a readiness probe's bare connection: no request, no fault consumed
    }
    let (mut len, mut auth, mut imds_token, mut imds_ttl, mut amz_token) =
        (0usize, String::new(), String::new(), false, String::new());
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap_or(("", ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => len = v.trim().parse().unwrap_or(0),
            "authorization" => auth = v.trim().to_string(),
            "x-aws-ec2-metadata-token" => imds_token = v.trim().to_string(),
            "x-aws-ec2-metadata-token-ttl-seconds" => imds_ttl = true,
            "x-amz-security-token" => amz_token = v.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0u8; len];
    let _ = r.read_exact(&mut body);
    let body = String::from_utf8_lossy(&body).to_string();
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    let mut s = st.lock().unwrap();
    let owner_before = s.owner;
    let me = s.caller(peer);
    if let Some(l) = &s.log {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(l)
        {
            let _ = writeln!(f, "{method} {path} {body}");
        }
    }
    let p = s.provider.clone();
    // AWS IMDSv2: a session token first, then reads that carry it.
    if path.starts_with("/latest/") {
        let ok_token = imds_token == "imds-token";
        let (code, body) = match (method.as_str(), path.as_str()) {
            ("PUT", "/latest/api/token") if imds_ttl => (200, "imds-token".to_string()),
            ("PUT", "/latest/api/token") => (400, "missing TTL".to_string()),
            (_, _) if !ok_token => (401, String::new()),
            (_, "/latest/meta-data/instance-id") => (200, format!("i-{me}")),
            (_, "/latest/meta-data/placement/region") => (200, "us-east-1".into()),
            (_, "/latest/meta-data/mac") => (200, "02:00:00:00:00:01".into()),
            (_, "/latest/meta-data/network/interfaces/macs/02:00:00:00:00:01/interface-id") => (200, format!("eni-{me}")),
            (_, "/latest/meta-data/iam/security-credentials/") => (200, "hakit-role".into()),
            (_, "/latest/meta-data/iam/security-credentials/hakit-role") => {
                (200, r#"{"Code":"Success","AccessKeyId":"AKIDIMDS","SecretAccessKey":"imds-secret","Token":"imds-session"}"#.into())
            }
            _ => (404, String::new()),
        };
        return respond(&stream, code, "", &body);
    }
    // Metadata services: no token, no faults.
    match (method.as_str(), path.as_str()) {
        ("PUT", "/v1/token") => return respond(&stream, 200, "", "meta-token"),
        ("GET", "/v1/instance") => return respond(&stream, 200, "", &format!(r#"{{"id":{me}}}"#)),
        ("GET", "/hetzner/v1/metadata/instance-id") | ("GET", "/metadata/v1/id") => {
            return respond(&stream, 200, "", &me.to_string())
        }
        _ => {}
    }
    if s.outage() {
        return respond(
            &stream,
            503,
            "",
            &error_body(&p, "service_unavailable", "the API is down (lab outage)"),
        );
    }
    match s.fault.as_str() {
        "hang" => {
            drop(s);
            thread::sleep(Duration::from_secs(3600));
            return;
        }
        "401" | "403" => {
            let code = if s.fault == "401" { 401 } else { 403 };
            return respond(
                &stream,
                code,
                "",
                &error_body(
                    &p,
                    if code == 401 {
                        "unauthorized"
                    } else {
                        "forbidden"
                    },
                    "token not valid for this action",
                ),
            );
        }
        "garbage" => return respond(&stream, 200, "", "<html>proxy error</html>"),
        "truncated" if method == "GET" || p == "aws" => {
            return respond(
                &stream,
                200,
                "",
                if p == "aws" {
                    "<DescribeAddressesResponse><addressesSet><item>"
                } else {
                    r#"{"ipv4": {"sha"#
                },
            )
        }
        f if f.starts_with("500x") && s.faults_left > 0 => {
            s.faults_left -= 1;
            return respond(
                &stream,
                500,
                "",
                &error_body(&p, "server_error", "try again"),
            );
        }
        "reset" if s.faults_left > 0 => {
            s.faults_left -= 1;
            let reset = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                + 2;
            return respond(
                &stream,
                429,
                &format!("RateLimit-Limit: 3600\r\nRateLimit-Remaining: 0\r\nRateLimit-Reset: {reset}\r\n"),
                &error_body(&p, "rate_limit_exceeded", "slow down"),
            );
        }
        "429" if s.faults_left > 0 => {
            s.faults_left -= 1;
            return respond(
                &stream,
                429,
                "Retry-After: 1\r\n",
                &error_body(&p, "rate_limit_exceeded", "slow down"),
            );
        }
        _ => {}
    }
    if p == "aws" {
        if !auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDIMDS/") || amz_token != "imds-session"
        {
            return respond(
                &stream,
                401,
                "",
                &error_body(&p, "unauthorized", "not signed with the instance role"),
            );
        }
    } else if auth != "Bearer fake-token" {
        return respond(
            &stream,
            401,
            "",
            &error_body(&p, "unauthorized", "invalid token"),
        );
    }
    let route = path.split('?').next().unwrap_or("").to_string();
    let r = Req {
        json: serde_json::from_str(&body).unwrap_or_default(),
        seg: route
            .trim_start_matches('/')
            .split('/')
            .map(str::to_string)
            .collect(),
        method,
        path,
        body,
    };
    let found = match p.as_str() {
        "linode" => linode::route(&mut s, &r),
        "hetzner" => hetzner::route(&mut s, &r),
        "digitalocean" => digitalocean::route(&mut s, &r),
        "aws" if r.method == "POST" => Some(aws::route(&mut s, &r)),
        _ => None,
    };
    let (status, out) =
        found.unwrap_or_else(|| (404, error_body(&p, "not_found", "no such resource")));
    if s.owner != owner_before {
        s.owner_changed();
    }
    drop(s);
    respond(&stream, status, "", &out);
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The last occurrence wins, as on most command lines (tests append overrides).
    let opt = |n: &str| {
        args.iter()
            .rposition(|a| a == n)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let Some(addr) = args.first().cloned() else {
        eprintln!("usage: hakit-fake-cloud ADDR:PORT --provider P --me ID --owner ID --ip ADDR [--shared A,B] [--fault KIND] [--log FILE]");
        return std::process::ExitCode::from(2);
    };
    let me: u64 = opt("--me").and_then(|v| v.parse().ok()).unwrap_or(1);
    let mut shared = HashMap::new();
    if let Some(sh) = opt("--shared") {
        shared.insert(me, sh.split(',').map(str::to_string).collect());
    }
    let fault = opt("--fault").unwrap_or_default();
    let nodes: Vec<(u64, std::net::IpAddr)> = args
        .windows(2)
        .filter(|w| w[0] == "--node")
        .filter_map(|w| {
            let (id, a) = w[1].split_once('=')?;
            Some((id.parse().ok()?, a.parse().ok()?))
        })
        .collect();
    let st = Arc::new(Mutex::new(State {
        nodes,
        route_ns: opt("--route-ns"),
        net_routes: args
            .windows(2)
            .filter(|w| w[0] == "--net-route")
            .filter_map(|w| w[1].split_once('='))
            .map(|(d, g)| (d.to_string(), g.to_string()))
            .collect(),
        network_ns: opt("--network-ns"),
        edge_ns: opt("--edge-ns"),
        anchors: args
            .windows(2)
            .filter(|w| w[0] == "--anchor")
            .filter_map(|w| w[1].split_once('='))
            .filter_map(|(id, a)| Some((id.parse().ok()?, a.to_string())))
            .collect(),
        net_actions: Vec::new(),
        instant: args.iter().any(|a| a == "--instant"),
        control_dir: opt("--control-dir").map(std::path::PathBuf::from),
        extra_fips: opt("--extra-fips")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        provider: opt("--provider").unwrap_or_else(|| "linode".into()),
        me,
        ip: opt("--ip").unwrap_or_else(|| "203.0.113.10".into()),
        owner: opt("--owner").and_then(|v| v.parse().ok()),
        shared,
        faults_left: fault
            .strip_prefix("500x")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        fault,
        actions: HashMap::new(),
        next_action: 0,
        log: opt("--log"),
        routes: HashMap::from([
            (
                "rtb-1".to_string(),
                format!("i-{}", opt("--owner").unwrap_or_else(|| "1".into())),
            ),
            (
                "rtb-2".to_string(),
                format!("eni-{}", opt("--owner").unwrap_or_else(|| "1".into())),
            ),
        ]),
    }));
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hakit-fake-cloud: bind {addr}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Ok(s) = st.lock() {
        s.owner_changed();
        s.net_routes_changed();
    }
    println!("listening on {addr}");
    for c in listener.incoming().flatten() {
        let st = st.clone();
        thread::spawn(move || handle(c, st));
    }
    std::process::ExitCode::SUCCESS
}
