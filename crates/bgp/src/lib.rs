//! The BGP speaker boundary: which role this node's announcement of a shared address has,
//! and changing it in place.
//!
//! Where a floating IP is routed by BGP (Linode's IP Sharing with lelastic, or FRR as in
//! Linode's FRR guide), a failover is not an API call: both nodes announce the address all
//! the time, and the route servers prefer the path tagged with the *primary* community
//! (`65000:1`) over the *secondary* one (`65000:2`); between equal paths the one already
//! selected stays. Restarting the speaker to change its role costs 5–10 s (GoBGP waits 5–9 s
//! before its first connect); rewriting the community of the path it already announces
//! switches the route servers in ~0.1 s. So a transition here:
//!
//! * reads the local RIB first (the path this node originates for each prefix, and its
//!   communities) and changes nothing when the role is already right;
//! * writes the path again with the new community (GoBGP: `gobgp global rib add`, which
//!   replaces the locally originated path; FRR: `network PREFIX route-map ROLE` under
//!   `router bgp ASN` and an outbound soft refresh), or withdraws it;
//! * reads it back, so a speaker that refused the change (an unknown route-map, a
//!   community it filters) is a failed step, never a silent one.
//!
//! The speakers' own command-line tools are the interface (`gobgp` talks to GoBGP's gRPC
//! API, `vtysh` to FRR's daemons), found on PATH, run without a shell under a timeout.
//! Their output is outside input: parsed as JSON with size caps, never trusted to be
//! well-formed.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use anyhow::{anyhow, bail, Context};
use hakit_core::{config::Cidr, duration::HDuration, exec};
use serde::Deserialize;
use serde_json::Value;

/// lelastic's communities (and Linode's FRR guide's).
pub const PRIMARY: Community = Community(65000 << 16 | 1);
pub const SECONDARY: Community = Community(65000 << 16 | 2);
/// lelastic's GoBGP API address.
pub const GOBGP_API: &str = "127.0.0.1:50051";
/// Default timeout of one speaker command.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// A speaker's JSON answer larger than this is refused, read to the end and named in the
/// error (a full table is not what we ask for).
const MAX_OUTPUT: usize = 4 << 20;

/// `[bgp]`: the local BGP speaker that announces the shared addresses.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `gobgp` (lelastic, or any GoBGP daemon) or `frr`.
    pub speaker: Option<Kind>,
    /// The prefixes this pair announces (lelastic: each address on `lo`, IPv4 as /32,
    /// IPv6 as /64 or /56).
    #[serde(default)]
    pub prefixes: Vec<Cidr>,
    /// Communities of the two roles [default: 65000:1 and 65000:2, Linode's].
    pub primary: Option<String>,
    /// The secondary role's community [default: 65000:2].
    pub secondary: Option<String>,
    /// What FAULT and STOP do to the announcement: `secondary` (default: the peer's
    /// primary path wins, and this node still carries traffic if the peer has none) or
    /// `withdraw`.
    pub fault: Option<Demote>,
    /// What STOP does to the announcement (as `fault`).
    pub stop: Option<Demote>,
    /// gobgp: the GoBGP API, host:port [default: 127.0.0.1:50051, lelastic's].
    pub gobgp_api: Option<String>,
    /// frr: the local AS of `router bgp` (required for frr).
    pub frr_asn: Option<u32>,
    /// frr: route-maps that set each role's community [default: primary, secondary].
    pub frr_primary_route_map: Option<String>,
    /// frr: the route-map of the secondary role [default: secondary].
    pub frr_secondary_route_map: Option<String>,
    /// frr: vtysh's `--vty_socket` directory (default: FRR's own).
    pub frr_vty_socket: Option<PathBuf>,
    /// The speaker's systemd unit (e.g. `lelastic.service`, `frr.service`): started, never
    /// restarted, when the speaker does not answer.
    pub unit: Option<String>,
    /// The `gobgp` or `vtysh` program, found on PATH unless a path [default: by speaker].
    pub program: Option<String>,
    /// Timeout of each speaker command [default: 2s].
    pub timeout: Option<HDuration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Gobgp,
    Frr,
}

/// What FAULT/STOP do to the announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Demote {
    Secondary,
    Withdraw,
}

/// A standard community, `ASN:VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Community(pub u32);

impl FromStr for Community {
    type Err = String;
    fn from_str(s: &str) -> Result<Community, String> {
        let bad = || format!("invalid community {s:?}: expected ASN:VALUE, e.g. 65000:1");
        let (a, v) = s.split_once(':').ok_or_else(bad)?;
        let a: u16 = a.parse().map_err(|_| bad())?;
        let v: u16 = v.parse().map_err(|_| bad())?;
        Ok(Community(u32::from(a) << 16 | u32::from(v)))
    }
}

impl std::fmt::Display for Community {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        }
    }
}

/// What a transition wants the announcement to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Announce(Role),
    Withdraw,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Announce(r) => f.write_str(r.name()),
            Target::Withdraw => f.write_str("withdrawn"),
        }
    }
}

/// What the local speaker originates for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// No locally originated path.
    Absent,
    /// A local path with these communities.
    Path(Vec<Community>),
}

/// One BGP session of the speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub peer: String,
    pub established: bool,
    /// The speaker's own name of the state ("Established", "Active", …).
    pub state: String,
}

/// The configured speaker, validated.
#[derive(Debug, Clone)]
pub struct Speaker {
    pub kind: Kind,
    pub program: String,
    api: SocketAddr,
    asn: u32,
    maps: [String; 2],
    vty_socket: Option<PathBuf>,
    pub primary: Community,
    pub secondary: Community,
    pub prefixes: Vec<Cidr>,
    pub fault: Demote,
    pub stop: Demote,
    pub unit: Option<String>,
    pub timeout: Duration,
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !s.starts_with('-')
}

impl Speaker {
    /// Validates `[bgp]` (every error is a configuration error: exit 2).
    pub fn new(c: &Config) -> Result<Speaker, String> {
        let kind = c
            .speaker
            .ok_or("[bgp] speaker is required (gobgp or frr)")?;
        if c.prefixes.is_empty() {
            return Err("[bgp] prefixes is empty: list the shared addresses announced".into());
        }
        for p in &c.prefixes {
            let net_ok = match p.addr {
                IpAddr::V4(a) => {
                    let m = u32::MAX.checked_shl(32 - u32::from(p.prefix)).unwrap_or(0);
                    u32::from(a) & !m == 0
                }
                IpAddr::V6(a) => {
                    let m = u128::MAX
                        .checked_shl(128 - u32::from(p.prefix))
                        .unwrap_or(0);
                    u128::from(a) & !m == 0
                }
            };
            if !net_ok {
                return Err(format!(
                    "[bgp] prefixes: {p} has host bits set (a speaker announces networks)"
                ));
            }
        }
        let comm = |v: &Option<String>, d: Community, key: &str| match v {
            Some(s) => s
                .parse::<Community>()
                .map_err(|e| format!("[bgp] {key}: {e}")),
            None => Ok(d),
        };
        let primary = comm(&c.primary, PRIMARY, "primary")?;
        let secondary = comm(&c.secondary, SECONDARY, "secondary")?;
        if primary == secondary {
            return Err("[bgp] primary and secondary are the same community".into());
        }
        let api: SocketAddr = c
            .gobgp_api
            .as_deref()
            .unwrap_or(GOBGP_API)
            .parse()
            .map_err(|_| "[bgp] gobgp_api: expected host:port, e.g. 127.0.0.1:50051".to_string())?;
        let map = |v: &Option<String>, d: &str, key: &str| {
            let m = v.clone().unwrap_or_else(|| d.to_string());
            if name_ok(&m) {
                Ok(m)
            } else {
                Err(format!(
                    "[bgp] {key}: {m:?} is not a route-map name (letters, digits, _ . -)"
                ))
            }
        };
        let maps = [
            map(&c.frr_primary_route_map, "primary", "frr_primary_route_map")?,
            map(
                &c.frr_secondary_route_map,
                "secondary",
                "frr_secondary_route_map",
            )?,
        ];
        let asn = match (kind, c.frr_asn) {
            (Kind::Frr, None | Some(0)) => {
                return Err(
                    "[bgp] frr_asn is required for speaker = \"frr\" (router bgp ASN)".into(),
                )
            }
            (_, a) => a.unwrap_or(0),
        };
        if let Some(u) = &c.unit {
            if !name_ok(u.trim_end_matches(".service")) || u.contains("..") {
                return Err(format!("[bgp] unit: {u:?} is not a unit name"));
            }
        }
        let program = c.program.clone().unwrap_or_else(|| {
            match kind {
                Kind::Gobgp => "gobgp",
                Kind::Frr => "vtysh",
            }
            .to_string()
        });
        if program.is_empty() || program.starts_with('-') || program.contains('\0') {
            return Err(format!("[bgp] program: {program:?} is not a program"));
        }
        Ok(Speaker {
            kind,
            program,
            api,
            asn,
            maps,
            vty_socket: c.frr_vty_socket.clone(),
            primary,
            secondary,
            prefixes: c.prefixes.clone(),
            fault: c.fault.unwrap_or(Demote::Secondary),
            stop: c.stop.unwrap_or(Demote::Secondary),
            unit: c.unit.clone(),
            timeout: c.timeout.map_or(TIMEOUT, HDuration::get),
        })
    }

    /// The prefixes, for messages: `203.0.113.10/32, 2001:db8::/64`.
    pub fn prefixes_text(&self) -> String {
        self.prefixes
            .iter()
            .map(Cidr::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Gobgp => "gobgp",
            Kind::Frr => "frr",
        }
    }

    /// The announced prefix that holds `ip`, and what the speaker originates for it.
    pub fn read_ip(&self, ip: IpAddr, stop: exec::Stop) -> anyhow::Result<(Cidr, Seen)> {
        let prefix = *self
            .prefixes
            .iter()
            .find(|p| p.contains(ip))
            .with_context(|| format!("[bgp] prefixes do not include {ip}"))?;
        Ok((prefix, self.read(&prefix, stop)?))
    }

    /// The role these communities say, if any.
    pub fn role_of(&self, seen: &Seen) -> Option<Role> {
        match seen {
            Seen::Path(c) if c.contains(&self.primary) => Some(Role::Primary),
            Seen::Path(c) if c.contains(&self.secondary) => Some(Role::Secondary),
            _ => None,
        }
    }

    /// Whether `seen` is what `target` asks for.
    pub fn is(&self, seen: &Seen, target: Target) -> bool {
        match target {
            Target::Withdraw => *seen == Seen::Absent,
            Target::Announce(r) => match seen {
                // Exactly one role community: a path tagged with both is ambiguous.
                Seen::Path(c) => {
                    self.role_of(seen) == Some(r)
                        && !(c.contains(&self.primary) && c.contains(&self.secondary))
                }
                Seen::Absent => false,
            },
        }
    }

    /// Describes `seen` in a log line.
    pub fn describe(&self, seen: &Seen) -> String {
        match seen {
            Seen::Absent => "not announced".into(),
            Seen::Path(c) => {
                let list = c.iter().map(Community::to_string).collect::<Vec<_>>();
                match self.role_of(seen) {
                    Some(r) => format!("{} ({})", r.name(), list.join(" ")),
                    None => format!("announced without a role community ({})", list.join(" ")),
                }
            }
        }
    }

    fn base(&self) -> anyhow::Result<Vec<String>> {
        let prog = exec::find(&self.program)
            .with_context(|| format!("bgp speaker {}", self.kind_name()))?;
        let mut v = vec![prog.to_string_lossy().to_string()];
        match self.kind {
            Kind::Gobgp => {
                v.extend([
                    "-u".into(),
                    self.api.ip().to_string(),
                    "-p".into(),
                    self.api.port().to_string(),
                ]);
            }
            Kind::Frr => {
                if let Some(d) = &self.vty_socket {
                    v.extend(["--vty_socket".into(), d.to_string_lossy().to_string()]);
                }
            }
        }
        Ok(v)
    }

    /// Runs one speaker command, stopped as soon as `stop` gives a reason (a newer state
    /// superseded the transition driving the speaker).
    fn run(&self, args: &[String], stop: exec::Stop) -> anyhow::Result<String> {
        let mut argv = self.base()?;
        argv.extend_from_slice(args);
        let ran = exec::run_until(&argv, None, self.timeout, MAX_OUTPUT, stop)?;
        // vtysh exits 0 for some refusals and prints "% ..." instead: both are errors.
        let refused = ran
            .stdout
            .lines()
            .chain(ran.stderr.lines())
            .find(|l| l.trim_start().starts_with('%'));
        if !ran.success() || refused.is_some() {
            let line = refused.unwrap_or_else(|| ran.first_error_line());
            let at = match self.kind {
                Kind::Gobgp => format!("GoBGP API {}", self.api),
                Kind::Frr => format!(
                    "FRR vty {}",
                    self.vty_socket
                        .as_ref()
                        .map_or("(default)".into(), |d| d.display().to_string())
                ),
            };
            bail!(
                "{at}: {} {}: {} ({})",
                self.kind_name(),
                args.iter()
                    .filter(|a| a.as_str() != "-c")
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" "),
                ran.status,
                hakit_core::logging::one_line(line)
            );
        }
        Ok(ran.stdout)
    }

    fn family(p: &Cidr) -> &'static str {
        if p.addr.is_ipv4() {
            "ipv4"
        } else {
            "ipv6"
        }
    }

    /// What the speaker originates for `prefix` now.
    pub fn read(&self, prefix: &Cidr, stop: exec::Stop) -> anyhow::Result<Seen> {
        let p = prefix.to_string();
        let fam = Self::family(prefix);
        match self.kind {
            Kind::Gobgp => {
                let out = self.run(&args(&["global", "rib", "-a", fam, &p, "-j"]), stop)?;
                parse_gobgp_rib(&out, &p)
            }
            Kind::Frr => {
                let out = self.run(
                    &args(&["-c", &format!("show bgp {fam} unicast {p} json")]),
                    stop,
                )?;
                parse_frr_prefix(&out)
            }
        }
    }

    /// Makes the speaker announce `prefix` as `target` (no read-back: see [`Speaker::ensure`]).
    pub fn write(&self, prefix: &Cidr, target: Target, stop: exec::Stop) -> anyhow::Result<()> {
        let p = prefix.to_string();
        let fam = Self::family(prefix);
        match self.kind {
            Kind::Gobgp => {
                let a = match target {
                    Target::Announce(r) => {
                        let c = self.community(r).to_string();
                        args(&[
                            "global",
                            "rib",
                            "add",
                            "-a",
                            fam,
                            &p,
                            "origin",
                            "incomplete",
                            "community",
                            &c,
                        ])
                    }
                    Target::Withdraw => args(&["global", "rib", "del", "-a", fam, &p]),
                };
                self.run(&a, stop).map(|_| ())
            }
            Kind::Frr => {
                let network = match target {
                    Target::Announce(r) => format!("network {p} route-map {}", self.map(r)),
                    Target::Withdraw => format!("no network {p}"),
                };
                let cmds = [
                    "configure terminal".to_string(),
                    format!("router bgp {}", self.asn),
                    format!("address-family {fam} unicast"),
                    network,
                    "end".into(),
                    // The route-map's community reaches the peers now, not at the next
                    // route-map update timer.
                    format!("clear bgp {fam} unicast * soft out"),
                ];
                let a: Vec<String> = cmds
                    .into_iter()
                    .flat_map(|c| ["-c".to_string(), c])
                    .collect();
                self.run(&a, stop).map(|_| ())
            }
        }
    }

    pub fn community(&self, r: Role) -> Community {
        match r {
            Role::Primary => self.primary,
            Role::Secondary => self.secondary,
        }
    }

    fn map(&self, r: Role) -> &str {
        match r {
            Role::Primary => &self.maps[0],
            Role::Secondary => &self.maps[1],
        }
    }

    /// Brings every prefix to `target`: read, write only what differs, read back.
    /// `stop` is asked before each prefix and stops a running speaker command.
    pub fn ensure(&self, target: Target, stop: exec::Stop) -> anyhow::Result<Applied> {
        let mut applied = Applied::default();
        for p in &self.prefixes {
            if let Some(why) = stop() {
                bail!("superseded before {p}: {why}");
            }
            let before = self.read(p, stop)?;
            if self.is(&before, target) {
                applied.unchanged.push(*p);
                continue;
            }
            self.write(p, target, stop)?;
            let after = self.read(p, stop)?;
            if !self.is(&after, target) {
                bail!(
                    "{} did not take {p} {target}: it is {} after the change",
                    self.kind_name(),
                    self.describe(&after)
                );
            }
            applied.changed.push((*p, self.describe(&before)));
        }
        Ok(applied)
    }

    /// The role every prefix has now: `Some` when all agree.
    pub fn current(&self, stop: exec::Stop) -> anyhow::Result<(Option<Target>, String)> {
        let mut all = Vec::new();
        let mut text = Vec::new();
        for p in &self.prefixes {
            let seen = self.read(p, stop)?;
            text.push(format!("{p} {}", self.describe(&seen)));
            all.push(match (&seen, self.role_of(&seen)) {
                (Seen::Absent, _) => Some(Target::Withdraw),
                (_, Some(r)) if self.is(&seen, Target::Announce(r)) => Some(Target::Announce(r)),
                _ => None,
            });
        }
        let first = all.first().copied().flatten();
        let agreed = if all.iter().all(|t| *t == first) {
            first
        } else {
            None
        };
        Ok((agreed, text.join(", ")))
    }

    /// The speaker's BGP sessions.
    pub fn sessions(&self, stop: exec::Stop) -> anyhow::Result<Vec<Session>> {
        match self.kind {
            Kind::Gobgp => parse_gobgp_neighbors(&self.run(&args(&["neighbor", "-j"]), stop)?),
            Kind::Frr => {
                parse_frr_neighbors(&self.run(&args(&["-c", "show bgp neighbors json"]), stop)?)
            }
        }
    }
}

/// What [`Speaker::ensure`] did: prefixes changed (with what they were) and unchanged.
#[derive(Debug, Default, Clone)]
pub struct Applied {
    pub changed: Vec<(Cidr, String)>,
    pub unchanged: Vec<Cidr>,
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn json(out: &str, what: &str) -> anyhow::Result<Value> {
    let t = out.trim();
    if t.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(t).map_err(|e| anyhow!("{what}: not JSON ({e})"))
}

/// `gobgp global rib -a FAMILY PREFIX -j`: `{"PREFIX": [path, ...]}`, each path with
/// `attrs` (type 8: `communities` as 32-bit numbers). The locally originated path has no
/// `neighbor-ip` (or GoBGP's `<nil>`); paths learned from peers are not ours to judge.
pub fn parse_gobgp_rib(out: &str, prefix: &str) -> anyhow::Result<Seen> {
    let v = json(out, "gobgp global rib")?;
    let paths = match &v {
        Value::Null => return Ok(Seen::Absent),
        Value::Object(m) => match m.get(prefix) {
            Some(Value::Array(a)) => a,
            Some(_) => bail!("gobgp global rib: {prefix} is not a list of paths"),
            None => return Ok(Seen::Absent),
        },
        _ => bail!("gobgp global rib: not an object"),
    };
    for path in paths {
        let from_peer = ["neighbor-ip", "source-id"].iter().any(|k| {
            path.get(*k)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty() && s != "<nil>" && s != "0.0.0.0")
        });
        if from_peer || path.get("withdrawal") == Some(&Value::Bool(true)) {
            continue;
        }
        let mut comms = Vec::new();
        for a in path["attrs"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            if a["type"].as_u64() == Some(8) {
                for c in a["communities"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    let n = c
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .context("gobgp global rib: a community is not a 32-bit number")?;
                    comms.push(Community(n));
                }
            }
        }
        return Ok(Seen::Path(comms));
    }
    Ok(Seen::Absent)
}

/// `vtysh -c 'show bgp FAMILY unicast PREFIX json'`: `paths[]`, the local one with
/// `"sourced": true` (or `"local": true`), communities under `community.list`.
pub fn parse_frr_prefix(out: &str) -> anyhow::Result<Seen> {
    let v = json(out, "vtysh show bgp")?;
    let paths = v["paths"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for path in paths {
        let local = path["sourced"] == Value::Bool(true) || path["local"] == Value::Bool(true);
        if !local {
            continue;
        }
        let mut comms = Vec::new();
        for c in path["community"]["list"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let s = c
                .as_str()
                .context("vtysh show bgp: a community is not a string")?;
            // Well-known names (no-export, …) are not role communities: skipped.
            if let Ok(c) = s.parse::<Community>() {
                comms.push(c);
            }
        }
        return Ok(Seen::Path(comms));
    }
    Ok(Seen::Absent)
}

/// `gobgp neighbor -j`: `[{conf: {neighbor_address}, state: {session_state}}]`, state 6 is
/// ESTABLISHED (GoBGP's API enum).
pub fn parse_gobgp_neighbors(out: &str) -> anyhow::Result<Vec<Session>> {
    let v = json(out, "gobgp neighbor")?;
    let list = match &v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a,
        _ => bail!("gobgp neighbor: not a list"),
    };
    const STATES: [&str; 7] = [
        "Unknown",
        "Idle",
        "Connect",
        "Active",
        "OpenSent",
        "OpenConfirm",
        "Established",
    ];
    Ok(list
        .iter()
        .map(|n| {
            let s = n["state"]["session_state"].as_u64().unwrap_or(0);
            Session {
                peer: hakit_core::logging::one_line(
                    n["conf"]["neighbor_address"].as_str().unwrap_or("?"),
                ),
                established: s == 6,
                state: STATES
                    .get(usize::try_from(s).unwrap_or(0))
                    .unwrap_or(&"Unknown")
                    .to_string(),
            }
        })
        .collect())
}

/// `vtysh -c 'show bgp neighbors json'`: `{ADDRESS: {bgpState}}`.
pub fn parse_frr_neighbors(out: &str) -> anyhow::Result<Vec<Session>> {
    let v = json(out, "vtysh show bgp neighbors")?;
    let map = match &v {
        Value::Null => return Ok(Vec::new()),
        Value::Object(m) => m,
        _ => bail!("vtysh show bgp neighbors: not an object"),
    };
    Ok(map
        .iter()
        .filter(|(_, n)| n.get("bgpState").is_some())
        .map(|(k, n)| {
            let state = n["bgpState"].as_str().unwrap_or("Unknown");
            Session {
                peer: hakit_core::logging::one_line(k),
                established: state == "Established",
                state: hakit_core::logging::one_line(state),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speaker(kind: Kind) -> Speaker {
        Speaker::new(&Config {
            speaker: Some(kind),
            prefixes: vec!["203.0.113.10/32".parse().unwrap()],
            frr_asn: Some(65001),
            ..Config::default()
        })
        .unwrap()
    }

    // Captured from Debian's gobgp 3.10 (`gobgp global rib -a ipv4 203.0.113.10/32 -j`)
    // after `gobgp global rib add ... community 65000:2`.
    const GOBGP_RIB: &str = r#"{"203.0.113.10/32":[{"nlri":{"prefix":"203.0.113.10/32"},"age":1795901306,"best":true,"attrs":[{"type":1,"value":2},{"type":8,"communities":[4259840002]},{"type":3,"nexthop":"0.0.0.0"}],"stale":false}]}"#;

    #[test]
    fn gobgp_rib_gives_the_local_path_role() {
        let s = speaker(Kind::Gobgp);
        let seen = parse_gobgp_rib(GOBGP_RIB, "203.0.113.10/32").unwrap();
        assert_eq!(seen, Seen::Path(vec![SECONDARY]));
        assert_eq!(s.role_of(&seen), Some(Role::Secondary));
        assert!(s.is(&seen, Target::Announce(Role::Secondary)));
        assert!(!s.is(&seen, Target::Announce(Role::Primary)));
        assert!(!s.is(&seen, Target::Withdraw));
        assert_eq!(
            parse_gobgp_rib("", "203.0.113.10/32").unwrap(),
            Seen::Absent
        );
        assert_eq!(
            parse_gobgp_rib("{}", "203.0.113.10/32").unwrap(),
            Seen::Absent
        );
    }

    #[test]
    fn gobgp_paths_from_peers_are_not_ours() {
        let out = r#"{"203.0.113.10/32":[{"attrs":[{"type":8,"communities":[4259840001]}],"neighbor-ip":"2001:db8:ff::1","source-id":"203.0.113.1"}]}"#;
        assert_eq!(
            parse_gobgp_rib(out, "203.0.113.10/32").unwrap(),
            Seen::Absent
        );
    }

    #[test]
    fn both_role_communities_are_ambiguous() {
        let s = speaker(Kind::Gobgp);
        let seen = Seen::Path(vec![PRIMARY, SECONDARY]);
        assert!(!s.is(&seen, Target::Announce(Role::Primary)));
        assert!(!s.is(&seen, Target::Announce(Role::Secondary)));
    }

    #[test]
    fn hostile_output_is_an_error_not_a_panic() {
        for out in [
            "[",
            "null",
            r#"{"203.0.113.10/32": 5}"#,
            r#"{"203.0.113.10/32":[{"attrs":[{"type":8,"communities":[-1]}]}]}"#,
            r#"{"203.0.113.10/32":[{"attrs":[{"type":8,"communities":[99999999999]}]}]}"#,
            "\"x\"",
        ] {
            let _ = parse_gobgp_rib(out, "203.0.113.10/32");
            let _ = parse_frr_prefix(out);
            let _ = parse_gobgp_neighbors(out);
            let _ = parse_frr_neighbors(out);
        }
        assert!(parse_gobgp_rib("[", "203.0.113.10/32").is_err());
        assert!(parse_gobgp_neighbors("{}").is_err());
    }

    // Trimmed from Debian's FRR 8.4 `show bgp ipv4 unicast 203.0.113.10/32 json`.
    const FRR_PREFIX: &str = r#"{"prefix":"203.0.113.10/32","paths":[
      {"aspath":{"string":"65001"},"community":{"string":"65000:1","list":["65000:1"]},"peer":{"peerId":"2001:db8:ff::3"}},
      {"aspath":{"string":"Local"},"sourced":true,"local":true,"community":{"string":"no-export 65000:2","list":["no-export","65000:2"]}}]}"#;

    #[test]
    fn frr_gives_the_sourced_path_role() {
        let s = speaker(Kind::Frr);
        let seen = parse_frr_prefix(FRR_PREFIX).unwrap();
        assert_eq!(seen, Seen::Path(vec![SECONDARY]));
        assert_eq!(s.describe(&seen), "secondary (65000:2)");
        assert_eq!(parse_frr_prefix("{}").unwrap(), Seen::Absent);
    }

    #[test]
    fn sessions_parse() {
        let g = r#"[{"conf":{"neighbor_address":"2001:db8:ff::1"},"state":{"session_state":6}},{"conf":{"neighbor_address":"2001:db8:ff::4"},"state":{"session_state":3}}]"#;
        let s = parse_gobgp_neighbors(g).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s[0].established && !s[1].established);
        assert_eq!(s[1].state, "Active");
        let f = r#"{"2001:db8:ff::1":{"bgpState":"Established"},"2001:db8:ff::4":{"bgpState":"Active"}}"#;
        let s = parse_frr_neighbors(f).unwrap();
        assert_eq!(s.iter().filter(|s| s.established).count(), 1);
    }

    #[test]
    fn configuration_is_validated() {
        let base = Config {
            speaker: Some(Kind::Gobgp),
            prefixes: vec!["203.0.113.10/32".parse().unwrap()],
            ..Config::default()
        };
        assert!(Speaker::new(&base).is_ok());
        let bad = |f: &dyn Fn(&mut Config)| {
            let mut c = base.clone();
            f(&mut c);
            Speaker::new(&c).unwrap_err()
        };
        assert!(bad(&|c| c.speaker = None).contains("speaker is required"));
        assert!(bad(&|c| c.prefixes.clear()).contains("prefixes is empty"));
        assert!(
            bad(&|c| c.prefixes = vec!["203.0.113.10/24".parse().unwrap()]).contains("host bits")
        );
        assert!(bad(&|c| c.primary = Some("65000:2".into())).contains("same community"));
        assert!(bad(&|c| c.primary = Some("65536:1".into())).contains("invalid community"));
        assert!(bad(&|c| c.gobgp_api = Some("localhost".into())).contains("gobgp_api"));
        assert!(bad(&|c| c.speaker = Some(Kind::Frr)).contains("frr_asn"));
        assert!(bad(&|c| c.frr_primary_route_map = Some("a b; c".into())).contains("route-map"));
        assert!(bad(&|c| c.unit = Some("../x".into())).contains("unit"));
        assert_eq!("65000:1".parse::<Community>().unwrap(), PRIMARY);
        assert_eq!(SECONDARY.to_string(), "65000:2");
    }
}
