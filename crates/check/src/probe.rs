//! One probe: validated from configuration (or a shell command line), then run.

use std::{
    net::IpAddr,
    path::PathBuf,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use hakit_core::{
    config::{Cidr, Probe, ProbeKind},
    exec,
};
use hakit_net::Netlink;
use serde::Serialize;

use crate::{http, icmp, sock};

/// Programs and settings the probes use.
#[derive(Debug, Clone)]
pub struct Tools {
    pub nft: String,
    pub systemctl: String,
    pub drbdadm: String,
    /// The `[fip]` table, for the fip-owner probe.
    pub fip: Option<hakit_core::config::Fip>,
    /// The `[bgp]` speaker, for the bgp probe.
    pub bgp: Option<hakit_bgp::Speaker>,
    /// Where the fip-owner probe caches provider answers (the runtime directory).
    pub cache_dir: PathBuf,
    /// `nft -j list ruleset`, listed once per run and shared by every nft-rule probe and
    /// the counter export (clones share it).
    pub ruleset: Arc<OnceLock<Result<String, String>>>,
}

impl Tools {
    /// The ruleset as `nft -j list ruleset` prints it. The first caller runs nft (killed at
    /// `timeout`); concurrent callers wait for that one run, later ones reuse it.
    pub fn ruleset(&self, timeout: Duration) -> anyhow::Result<&str> {
        self.ruleset
            .get_or_init(|| {
                hakit_net::nft::list_ruleset(&self.nft, timeout).map_err(|e| format!("{e:#}"))
            })
            .as_deref()
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            nft: "nft".into(),
            systemctl: "systemctl".into(),
            drbdadm: "drbdadm".into(),
            fip: None,
            bgp: None,
            cache_dir: PathBuf::from(hakit_core::runtime::DEFAULT_DIR),
            ruleset: Arc::default(),
        }
    }
}

/// What a validated probe does.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    Icmp {
        target: IpAddr,
        iface: Option<String>,
        source: Option<IpAddr>,
        count: u32,
    },
    Http {
        url: http::Url,
        status: u16,
        iface: Option<String>,
        source: Option<IpAddr>,
        ca_file: Option<PathBuf>,
    },
    Tcp {
        host: String,
        port: u16,
        iface: Option<String>,
        source: Option<IpAddr>,
    },
    Link {
        dev: String,
    },
    Address {
        dev: String,
        ip: IpAddr,
        absent: bool,
    },
    Route {
        prefix: Cidr,
        dev: Option<String>,
        gateway: Option<IpAddr>,
    },
    NftRule {
        source: Cidr,
        to: IpAddr,
    },
    Conntrack {
        max: f64,
    },
    Sysctl {
        expect: Vec<(String, String)>,
    },
    Service {
        unit: Option<String>,
        pidfile: Option<PathBuf>,
        process: Option<String>,
    },
    Drbd {
        resource: String,
        role: Option<String>,
        connection: Option<String>,
        disk: Option<String>,
    },
    FipOwner {
        ip: Option<IpAddr>,
        cache: Duration,
    },
    Bgp {
        ip: Option<IpAddr>,
        sessions: Option<usize>,
        community: Option<hakit_bgp::Community>,
    },
    Neighbour {
        target: IpAddr,
        dev: String,
    },
}

/// What a probe keeps between runs of the monitor (a fresh one for a single run).
#[derive(Default)]
pub struct Session {
    asker: Option<hakit_net::neighbour::Asker>,
    pinger: Option<icmp::Pinger>,
    /// The rtnetlink socket of the link, address and route probes (the monitor asks every
    /// second: one socket, not one a run).
    netlink: Option<Netlink>,
}

impl Session {
    fn netlink(&mut self) -> anyhow::Result<&Netlink> {
        if self.netlink.is_none() {
            self.netlink = Some(Netlink::open()?);
        }
        self.netlink.as_ref().context("no netlink socket")
    }

    /// The socket an asked probe's answer arrives on, to poll.
    pub fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.pinger
            .as_ref()
            .map(icmp::Pinger::fd)
            .or_else(|| self.asker.as_ref().map(hakit_net::neighbour::Asker::fd))
    }
}

/// A question on the wire ([`Checked::ask`]), waiting for its answer.
#[derive(Debug, Clone)]
pub struct Asked {
    pub start: Instant,
    timeout: Duration,
    round: Option<icmp::Round>,
}

impl Asked {
    /// When it counts as unanswered.
    pub fn deadline(&self) -> Instant {
        self.start + self.timeout
    }
}

/// A probe ready to run.
#[derive(Debug, Clone)]
pub struct Checked {
    pub name: String,
    pub kind: &'static str,
    pub group: Option<String>,
    pub timeout: Duration,
    pub spec: Spec,
}

fn kind_name(k: ProbeKind) -> &'static str {
    match k {
        ProbeKind::Icmp => "icmp",
        ProbeKind::Http => "http",
        ProbeKind::Tcp => "tcp",
        ProbeKind::Link => "link",
        ProbeKind::Address => "address",
        ProbeKind::Route => "route",
        ProbeKind::NftRule => "nft-rule",
        ProbeKind::Conntrack => "conntrack",
        ProbeKind::Sysctl => "sysctl",
        ProbeKind::Service => "service",
        ProbeKind::Drbd => "drbd",
        ProbeKind::FipOwner => "fip-owner",
        ProbeKind::Bgp => "bgp",
        ProbeKind::Neighbour => "neighbour",
    }
}

/// The optional keys a probe has set.
fn keys(p: &Probe) -> Vec<&'static str> {
    let mut k = Vec::new();
    let mut add = |set: bool, name: &'static str| {
        if set {
            k.push(name)
        }
    };
    add(p.target.is_some(), "target");
    add(p.interface.is_some(), "interface");
    add(p.source.is_some(), "source");
    add(p.count.is_some(), "count");
    add(p.url.is_some(), "url");
    add(p.status.is_some(), "status");
    add(p.ca_file.is_some(), "ca_file");
    add(p.gateway.is_some(), "gateway");
    add(p.absent.is_some(), "absent");
    add(p.snat_source.is_some(), "snat_source");
    add(p.to.is_some(), "to");
    add(p.max_usage.is_some(), "max_usage");
    add(!p.expect.is_empty(), "expect");
    add(p.unit.is_some(), "unit");
    add(p.pidfile.is_some(), "pidfile");
    add(p.process.is_some(), "process");
    add(p.resource.is_some(), "resource");
    add(p.role.is_some(), "role");
    add(p.connection.is_some(), "connection");
    add(p.disk.is_some(), "disk");
    add(p.cache.is_some(), "cache");
    add(p.sessions.is_some(), "sessions");
    add(p.community.is_some(), "community");
    k
}

fn allowed(kind: ProbeKind) -> &'static [&'static str] {
    match kind {
        ProbeKind::Icmp => &["target", "interface", "source", "count"],
        ProbeKind::Http => &["url", "status", "interface", "source", "ca_file"],
        ProbeKind::Tcp => &["target", "interface", "source"],
        ProbeKind::Link => &["interface"],
        ProbeKind::Address => &["target", "interface", "absent"],
        ProbeKind::Route => &["target", "interface", "gateway"],
        ProbeKind::NftRule => &["snat_source", "to"],
        ProbeKind::Conntrack => &["max_usage"],
        ProbeKind::Sysctl => &["expect"],
        ProbeKind::Service => &["unit", "pidfile", "process"],
        ProbeKind::Drbd => &["resource", "role", "connection", "disk"],
        ProbeKind::FipOwner => &["target", "cache"],
        ProbeKind::Bgp => &["target", "sessions", "community"],
        ProbeKind::Neighbour => &["target", "interface"],
    }
}

/// Validates a probe; the error names the probe and the key.
pub fn validate(p: &Probe, default_timeout: Duration) -> Result<Checked, String> {
    let kind = p.kind.ok_or("probe without kind")?;
    let kn = kind_name(kind);
    for k in keys(p) {
        if !allowed(kind).contains(&k) {
            return Err(format!(
                "{kn} probe: key `{k}` does not apply (allowed: {})",
                allowed(kind).join(", ")
            ));
        }
    }
    let need = |v: &Option<String>, key: &str| {
        v.clone().ok_or_else(|| format!("{kn} probe needs `{key}`"))
    };
    let target = p.target.clone().unwrap_or_default();
    let spec =
        match kind {
            ProbeKind::Icmp => Spec::Icmp {
                target: need(&p.target, "target")?
                    .parse()
                    .map_err(|_| format!("icmp probe: target {target:?} is not an IP address"))?,
                iface: p.interface.clone(),
                source: p.source,
                count: p.count.unwrap_or(1).clamp(1, 100),
            },
            ProbeKind::Http => {
                let url = http::parse_url(&need(&p.url, "url")?)?;
                if url.https && (p.interface.is_some() || p.source.is_some()) {
                    return Err(
                        "http probe: interface/source binding is supported for http:// URLs only"
                            .into(),
                    );
                }
                Spec::Http {
                    url,
                    status: p.status.unwrap_or(204),
                    iface: p.interface.clone(),
                    source: p.source,
                    ca_file: p.ca_file.clone(),
                }
            }
            ProbeKind::Tcp => {
                let t = need(&p.target, "target")?;
                let (host, port) = t
                    .rsplit_once(':')
                    .ok_or_else(|| format!("tcp probe: target {t:?} is not host:port"))?;
                let port = port
                    .parse()
                    .map_err(|_| format!("tcp probe: bad port in {t:?}"))?;
                Spec::Tcp {
                    host: host.to_string(),
                    port,
                    iface: p.interface.clone(),
                    source: p.source,
                }
            }
            ProbeKind::Link => Spec::Link {
                dev: need(&p.interface, "interface")?,
            },
            ProbeKind::Address => Spec::Address {
                dev: need(&p.interface, "interface")?,
                ip: need(&p.target, "target")?
                    .parse()
                    .map_err(|_| format!("address probe: {target:?} is not an IP address"))?,
                absent: p.absent.unwrap_or(false),
            },
            ProbeKind::Route => Spec::Route {
                prefix: p.target.as_deref().unwrap_or("0.0.0.0/0").parse()?,
                dev: p.interface.clone(),
                gateway: p.gateway,
            },
            ProbeKind::NftRule => Spec::NftRule {
                source: p.snat_source.ok_or("nft-rule probe needs `snat_source`")?,
                to: p.to.ok_or("nft-rule probe needs `to`")?,
            },
            ProbeKind::Conntrack => {
                let max = p.max_usage.unwrap_or(0.9);
                if !(0.0..=1.0).contains(&max) || max == 0.0 {
                    return Err(format!("conntrack probe: max_usage {max} is not in (0, 1]"));
                }
                Spec::Conntrack { max }
            }
            ProbeKind::Sysctl => {
                if p.expect.is_empty() {
                    return Err(
                        "sysctl probe needs `expect` (e.g. [\"net.ipv4.ip_forward=1\"])".into(),
                    );
                }
                let mut expect = Vec::new();
                for e in &p.expect {
                    let (k, v) = e
                        .split_once('=')
                        .ok_or_else(|| format!("sysctl probe: {e:?} is not key=value"))?;
                    if k.is_empty() || k.contains("..") || k.starts_with('/') {
                        return Err(format!("sysctl probe: bad key {k:?}"));
                    }
                    expect.push((k.trim().to_string(), v.trim().to_string()));
                }
                Spec::Sysctl { expect }
            }
            ProbeKind::Service => {
                let n = [p.unit.is_some(), p.pidfile.is_some(), p.process.is_some()]
                    .iter()
                    .filter(|b| **b)
                    .count();
                if n != 1 {
                    return Err(
                        "service probe needs exactly one of `unit`, `pidfile`, `process`".into(),
                    );
                }
                Spec::Service {
                    unit: p.unit.clone(),
                    pidfile: p.pidfile.clone(),
                    process: p.process.clone(),
                }
            }
            ProbeKind::FipOwner => Spec::FipOwner {
                ip: match &p.target {
                    Some(t) => Some(t.parse().map_err(|_| {
                        format!("fip-owner probe: target {t:?} is not an IP address")
                    })?),
                    None => None,
                },
                cache: p.cache.map_or(Duration::from_secs(30), |d| d.get()),
            },
            ProbeKind::Bgp => Spec::Bgp {
                ip: match &p.target {
                    Some(t) => Some(
                        t.parse()
                            .map_err(|_| format!("bgp probe: target {t:?} is not an IP address"))?,
                    ),
                    None => None,
                },
                sessions: p.sessions,
                community: match &p.community {
                    Some(c) => Some(c.parse().map_err(|e| format!("bgp probe: {e}"))?),
                    None => None,
                },
            },
            ProbeKind::Neighbour => Spec::Neighbour {
                target: need(&p.target, "target")?.parse().map_err(|_| {
                    format!("neighbour probe: target {target:?} is not an IP address")
                })?,
                dev: need(&p.interface, "interface")?,
            },
            ProbeKind::Drbd => Spec::Drbd {
                resource: need(&p.resource, "resource")?,
                role: p.role.clone(),
                connection: p.connection.clone(),
                disk: p.disk.clone(),
            },
        };
    let detail = match &spec {
        Spec::Http { url, .. } => format!(
            "{}://{}:{}{}",
            if url.https { "https" } else { "http" },
            url.host,
            url.port,
            url.path
        ),
        Spec::Link { dev } => dev.clone(),
        Spec::NftRule { source, to } => format!("{source}->{to}"),
        Spec::Sysctl { expect } => expect
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(","),
        Spec::Service {
            unit,
            pidfile,
            process,
        } => unit
            .clone()
            .or(process.clone())
            .or(pidfile.as_ref().map(|p| p.display().to_string()))
            .unwrap_or_default(),
        Spec::Drbd { resource, .. } => resource.clone(),
        Spec::FipOwner { ip, .. } => ip.map_or("configured".into(), |i| i.to_string()),
        Spec::Bgp { ip, .. } => ip.map_or("sessions".into(), |i| i.to_string()),
        Spec::Conntrack { .. } => "usage".into(),
        Spec::Route { prefix, .. } => prefix.to_string(),
        _ => target,
    };
    Ok(Checked {
        name: p.name.clone().unwrap_or_else(|| format!("{kn}:{detail}")),
        kind: kn,
        group: p.group.clone(),
        timeout: p.timeout.map_or(default_timeout, |d| d.get()),
        spec,
    })
}

/// The result of one probe.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    pub name: String,
    pub kind: &'static str,
    pub group: Option<String>,
    pub ok: bool,
    pub detail: String,
    pub ms: f64,
}

impl Checked {
    /// Runs the probe within `timeout` (the smaller of its own and what the deadline leaves).
    pub fn run(&self, timeout: Duration, tools: &Tools) -> ProbeResult {
        self.run_in(&mut Session::default(), timeout, tools)
    }

    /// [`Checked::run`] keeping what can be reused in `session` (the monitor's loop).
    pub fn run_in(&self, session: &mut Session, timeout: Duration, tools: &Tools) -> ProbeResult {
        let start = Instant::now();
        let r = self.exec(session, timeout, tools);
        if r.is_err() {
            // A fresh socket next time (the failure may be the socket's).
            session.netlink = None;
        }
        self.outcome(r, start)
    }

    /// Whether [`Checked::ask`] applies: one question and one answer on a socket the
    /// session keeps (icmp, neighbour). The monitor asks all of these on one tick and
    /// waits for their answers in one poll: a wake-up per tick, not one per probe.
    pub fn splits(&self) -> bool {
        matches!(self.spec, Spec::Icmp { .. } | Spec::Neighbour { .. })
    }

    /// Sends the question (opening the session's socket first if needed); an error is
    /// the probe's failed outcome.
    pub fn ask(&self, session: &mut Session, timeout: Duration) -> Result<Asked, ProbeResult> {
        let start = Instant::now();
        self.ask_in(session, timeout)
            .map_err(|e| self.outcome(Err(e), start))
    }

    /// The outcome once the answer has arrived (read without waiting), or once `now` is
    /// past the timeout and it has not; `None` while still waiting.
    pub fn answer(
        &self,
        session: &mut Session,
        asked: &Asked,
        now: Instant,
    ) -> Option<ProbeResult> {
        self.answer_in(session, asked, now)
            .map(|r| self.outcome(r, asked.start))
    }

    fn outcome(&self, r: anyhow::Result<String>, start: Instant) -> ProbeResult {
        ProbeResult {
            name: self.name.clone(),
            kind: self.kind,
            group: self.group.clone(),
            ok: r.is_ok(),
            detail: match r {
                Ok(d) => d,
                Err(e) => format!("{e:#}"),
            },
            ms: start.elapsed().as_secs_f64() * 1000.0,
        }
    }

    fn ask_in(&self, session: &mut Session, timeout: Duration) -> anyhow::Result<Asked> {
        let start = Instant::now();
        let round = match &self.spec {
            Spec::Icmp {
                target,
                iface,
                source,
                count,
            } => {
                if session.pinger.is_none() {
                    session.pinger = Some(icmp::Pinger::open(*target, iface.as_deref(), *source)?);
                }
                let sent = session
                    .pinger
                    .as_ref()
                    .context("no ICMP socket")?
                    .send(*count);
                if sent.is_err() {
                    // A new socket next time: the interface may have gone and come back.
                    session.pinger = None;
                }
                Some(sent?)
            }
            Spec::Neighbour { target, dev } => {
                if session.asker.is_none() {
                    let nl = Netlink::open()?;
                    let l = nl
                        .link_by_name(dev)?
                        .with_context(|| format!("interface {dev} does not exist"))?;
                    session.asker = Some(hakit_net::neighbour::Asker::open(&nl, &l, *target)?);
                }
                let sent = session.asker.as_ref().context("no packet socket")?.send();
                if sent.is_err() {
                    // The link went away or changed: a new socket next time.
                    session.asker = None;
                }
                sent?;
                None
            }
            _ => bail!("{} probes are not asked and answered apart", self.kind),
        };
        Ok(Asked {
            start,
            timeout,
            round,
        })
    }

    fn answer_in(
        &self,
        session: &mut Session,
        asked: &Asked,
        now: Instant,
    ) -> Option<anyhow::Result<String>> {
        let late = now >= asked.deadline();
        match &self.spec {
            Spec::Icmp { target, .. } => {
                let read = match (session.pinger.as_ref(), asked.round.as_ref()) {
                    (Some(p), Some(round)) => p.read(round),
                    _ => Err(anyhow::anyhow!("no ICMP socket")),
                };
                match read {
                    Ok(Some(rtt)) => Some(Ok(format!(
                        "reply from {target} in {:.3} ms",
                        rtt.as_secs_f64() * 1000.0
                    ))),
                    Ok(None) if !late => None,
                    r => {
                        // A new socket next time: the interface may have gone and come back.
                        session.pinger = None;
                        Some(Err(r.err().unwrap_or_else(|| {
                            anyhow::anyhow!(
                                "no echo reply from {target} within {:?}",
                                asked.timeout
                            )
                        })))
                    }
                }
            }
            Spec::Neighbour { target, dev } => {
                match session.asker.as_ref().and_then(|a| a.read()) {
                    Some(mac) => Some(Ok(format!(
                        "{target} is at {mac} ({:.3} ms)",
                        asked.start.elapsed().as_secs_f64() * 1000.0
                    ))),
                    None if !late => None,
                    None => Some(Err(anyhow::anyhow!(
                        "{target} did not answer {} on {dev} within {:?}",
                        if target.is_ipv4() {
                            "ARP"
                        } else {
                            "neighbour solicitation"
                        },
                        asked.timeout
                    ))),
                }
            }
            _ => Some(Err(anyhow::anyhow!(
                "{} probes are not asked and answered apart",
                self.kind
            ))),
        }
    }

    fn exec(
        &self,
        session: &mut Session,
        timeout: Duration,
        tools: &Tools,
    ) -> anyhow::Result<String> {
        match &self.spec {
            Spec::Icmp { .. } | Spec::Neighbour { .. } => {
                let asked = self.ask_in(session, timeout)?;
                loop {
                    if let Some(r) = self.answer_in(session, &asked, Instant::now()) {
                        return r;
                    }
                    match session.fd() {
                        Some(fd) => sock::wait_any(&[fd], asked.deadline())?,
                        None => std::thread::sleep(
                            asked.deadline().saturating_duration_since(Instant::now()),
                        ),
                    }
                }
            }
            Spec::Http {
                url,
                status,
                iface,
                source,
                ca_file,
            } => {
                let (got, t) =
                    http::get(url, iface.as_deref(), *source, ca_file.as_deref(), timeout)?;
                if got != *status {
                    bail!("status {got}, expected {status}");
                }
                Ok(format!(
                    "status {got} in {:.3} ms",
                    t.as_secs_f64() * 1000.0
                ))
            }
            Spec::Tcp {
                host,
                port,
                iface,
                source,
            } => {
                let to = sock::resolve(host, *port)?;
                let (_, t) = sock::tcp_connect(to, iface.as_deref(), *source, timeout)?;
                Ok(format!(
                    "connected to {to} in {:.3} ms",
                    t.as_secs_f64() * 1000.0
                ))
            }
            Spec::Link { dev } => {
                let l = session
                    .netlink()?
                    .link_by_name(dev)?
                    .with_context(|| format!("interface {dev} does not exist"))?;
                if !l.up {
                    bail!("interface {dev} is down");
                }
                if !l.carrier {
                    bail!("interface {dev} has no carrier");
                }
                Ok(format!("{dev} up, carrier"))
            }
            Spec::Address { dev, ip, absent } => {
                let nl = session.netlink()?;
                let l = nl
                    .link_by_name(dev)?
                    .with_context(|| format!("interface {dev} does not exist"))?;
                let present = nl.addresses(Some(l.index))?.iter().any(|a| a.addr == *ip);
                match (present, absent) {
                    (true, false) => Ok(format!("{ip} on {dev}")),
                    (false, true) => Ok(format!("{ip} not on {dev}")),
                    (true, true) => bail!("{ip} is on {dev}, expected absent"),
                    (false, false) => bail!("{ip} is not on {dev}"),
                }
            }
            Spec::Route {
                prefix,
                dev,
                gateway,
            } => {
                let nl = session.netlink()?;
                let oif = match dev {
                    Some(d) => Some(
                        nl.link_by_name(d)?
                            .with_context(|| format!("interface {d} does not exist"))?
                            .index,
                    ),
                    None => None,
                };
                let routes = nl.routes()?;
                let want_v4 = prefix.addr.is_ipv4();
                let found = routes.iter().find(|r| {
                    let dst_ok = r.dst_len == prefix.prefix
                        && r.dst.map_or(prefix.prefix == 0, |d| d == prefix.addr)
                        && r.dst.is_none_or(|d| d.is_ipv4() == want_v4)
                        && r.gateway.is_none_or(|g| g.is_ipv4() == want_v4 || !want_v4);
                    dst_ok
                        && oif.is_none_or(|i| r.oif == Some(i))
                        && gateway.is_none_or(|g| r.gateway == Some(g))
                });
                match found {
                    Some(r) => Ok(format!(
                        "route {prefix}{}{}",
                        r.gateway.map_or(String::new(), |g| format!(" via {g}")),
                        match (dev, r.oif) {
                            (Some(d), _) => format!(" dev {d}"),
                            (None, Some(i)) => format!(" dev {}", link_name(nl, i)),
                            (None, None) => String::new(),
                        }
                    )),
                    None => bail!(
                        "no route {prefix}{}{}",
                        dev.as_ref().map_or(String::new(), |d| format!(" dev {d}")),
                        gateway.map_or(String::new(), |g| format!(" via {g}"))
                    ),
                }
            }
            Spec::NftRule { source, to } => {
                let rules = hakit_net::nft::parse_ruleset(tools.ruleset(timeout)?)?;
                if rules.iter().any(|r| r.translates(*source, *to)) {
                    Ok(format!("SNAT {source} -> {to} present"))
                } else {
                    bail!("no SNAT rule {source} -> {to}")
                }
            }
            Spec::Conntrack { max } => {
                let read = |f: &str| -> anyhow::Result<f64> {
                    let p = format!("/proc/sys/net/netfilter/{f}");
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("read {p} (is nf_conntrack loaded?)"))?
                        .trim()
                        .parse::<f64>()
                        .with_context(|| format!("parse {p}"))
                };
                let (count, limit) = (read("nf_conntrack_count")?, read("nf_conntrack_max")?);
                let usage = if limit > 0.0 { count / limit } else { 1.0 };
                if usage >= *max {
                    bail!(
                        "conntrack table {count}/{limit} = {:.1}% used, limit {:.1}%",
                        usage * 100.0,
                        max * 100.0
                    );
                }
                Ok(format!(
                    "conntrack {count}/{limit} = {:.1}% used",
                    usage * 100.0
                ))
            }
            Spec::Sysctl { expect } => {
                let mut bad = Vec::new();
                for (k, v) in expect {
                    let p = format!("/proc/sys/{}", k.replace('.', "/"));
                    let got = std::fs::read_to_string(&p).with_context(|| format!("read {k}"))?;
                    let got = got.split_whitespace().collect::<Vec<_>>().join(" ");
                    let want = v.split_whitespace().collect::<Vec<_>>().join(" ");
                    if got != want {
                        bad.push(format!("{k}={got} (expected {want})"));
                    }
                }
                if !bad.is_empty() {
                    bail!("{}", bad.join(", "));
                }
                Ok(format!("{} sysctl(s) as expected", expect.len()))
            }
            Spec::Service {
                unit,
                pidfile,
                process,
            } => {
                if let Some(u) = unit {
                    let st = hakit_net::systemd::unit_state(&tools.systemctl, u, timeout)?;
                    if !st.active {
                        bail!("unit {u} is {}", st.word);
                    }
                    return Ok(format!("unit {u} active"));
                }
                if let Some(p) = pidfile {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("read pidfile {}", p.display()))?;
                    let pid: i32 = text
                        .trim()
                        .parse()
                        .with_context(|| format!("pidfile {} holds no pid", p.display()))?;
                    if pid <= 0 {
                        bail!("pidfile {} holds pid {pid}", p.display());
                    }
                    return match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
                        Ok(()) | Err(nix::errno::Errno::EPERM) => Ok(format!("pid {pid} alive")),
                        Err(_) => bail!("pid {pid} from {} is not running", p.display()),
                    };
                }
                let name = process.as_deref().unwrap_or_default();
                for e in std::fs::read_dir("/proc").context("read /proc")?.flatten() {
                    if e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                    {
                        if let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) {
                            if comm.trim_end() == name {
                                return Ok(format!(
                                    "process {name} running (pid {})",
                                    e.file_name().to_string_lossy()
                                ));
                            }
                        }
                    }
                }
                bail!("no process named {name}")
            }
            Spec::FipOwner { ip, cache } => fip_owner(*ip, *cache, timeout, tools),
            Spec::Bgp {
                ip,
                sessions,
                community,
            } => bgp(*ip, *sessions, *community, timeout, tools),
            Spec::Drbd {
                resource,
                role,
                connection,
                disk,
            } => {
                let mut seen = Vec::new();
                for (what, want) in [("role", role), ("cstate", connection), ("dstate", disk)] {
                    let Some(want) = want else { continue };
                    let r = exec::run_ok(
                        &exec::argv(&[&tools.drbdadm, what, resource]),
                        None,
                        timeout,
                    )?;
                    // drbdadm prints local/peer ("Primary/Secondary", "UpToDate/UpToDate"): the local side counts.
                    let got = r.stdout.trim().split('/').next().unwrap_or("").to_string();
                    if !got.eq_ignore_ascii_case(want) {
                        bail!("drbd {resource} {what} is {got}, expected {want}");
                    }
                    seen.push(format!("{what} {got}"));
                }
                Ok(format!("drbd {resource}: {}", seen.join(", ")))
            }
        }
    }
}

/// Whether this node owns the floating IP at the provider: a read-only check through the
/// fip-claim library, reused for `cache` from a file in the runtime directory.
fn fip_owner(
    ip: Option<IpAddr>,
    cache: Duration,
    timeout: Duration,
    tools: &Tools,
) -> anyhow::Result<String> {
    let mut cfg = tools
        .fip
        .clone()
        .context("fip-owner probe: no [fip] table (provider, ip, ...) in the config file")?;
    cfg.ip = ip.or(cfg.ip);
    let key = cfg
        .ip
        .map_or_else(
            || cfg.allocation_id.clone().unwrap_or_else(|| "fip".into()),
            |i| i.to_string(),
        )
        .replace([':', '/'], "_");
    let path = tools
        .cache_dir
        .join(format!("ha-check.fip-owner.{key}.json"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    // A cache in a directory another user can write could claim ownership: it is trusted
    // (and written) only in a private one.
    let private = hakit_core::runtime::ensure_private_dir(&tools.cache_dir).is_ok();
    let cached: Option<serde_json::Value> = private
        .then(|| {
            hakit_core::runtime::read_file(&path, 64 << 10, hakit_core::runtime::Trust::Config).ok()
        })
        .flatten()
        .and_then(|t| serde_json::from_str(&t).ok());
    let fresh = cached.filter(|c| {
        c["at"]
            .as_f64()
            .is_some_and(|at| now - at < cache.as_secs_f64() && now >= at)
    });
    let (owned, detail, age) = match fresh {
        Some(c) => (
            c["owned"].as_bool().unwrap_or(false),
            c["detail"].as_str().unwrap_or_default().to_string(),
            now - c["at"].as_f64().unwrap_or(now),
        ),
        None => {
            cfg.deadline = Some(hakit_core::HDuration(timeout));
            cfg.timeout = Some(hakit_core::HDuration(
                cfg.timeout.map_or(timeout, |t| t.get().min(timeout)),
            ));
            cfg.attempts = Some(cfg.attempts.unwrap_or(2).min(2));
            let out = hakit_fip::run(&cfg, hakit_fip::model::Mode::Check, false, false)?;
            let detail = format!(
                "{} {} by this node ({}), held by {}",
                out.provider,
                out.ip.map_or("?".into(), |i| i.to_string()),
                out.this_node,
                out.owner_before.as_deref().unwrap_or("nobody")
            );
            let rec = serde_json::json!({"at": now, "owned": out.owned, "detail": detail});
            if private {
                let _ = hakit_core::runtime::write_atomic(&path, rec.to_string().as_bytes(), 0o644);
            }
            (out.owned, detail, 0.0)
        }
    };
    let src = if age > 0.0 {
        format!(" (cached {age:.0}s ago)")
    } else {
        String::new()
    };
    if owned {
        Ok(format!("owned: {detail}{src}"))
    } else {
        bail!("NOT owned: {detail}{src}")
    }
}

/// The bgp probe: at least `min` sessions established (default all), and `ip`'s prefix
/// announced with `community` (default: with either role's community).
fn bgp(
    ip: Option<IpAddr>,
    min: Option<usize>,
    community: Option<hakit_bgp::Community>,
    timeout: Duration,
    tools: &Tools,
) -> anyhow::Result<String> {
    let mut sp = tools
        .bgp
        .clone()
        .context("the bgp probe needs a [bgp] table")?;
    sp.timeout = sp.timeout.min(timeout);
    let sessions = sp.sessions()?;
    let up = sessions.iter().filter(|s| s.established).count();
    let need = min.unwrap_or(sessions.len()).max(1);
    let list = sessions
        .iter()
        .map(|s| format!("{} {}", s.peer, s.state))
        .collect::<Vec<_>>()
        .join(", ");
    if up < need {
        bail!(
            "{up} of {} session(s) established, {need} needed ({list})",
            sessions.len()
        );
    }
    let mut out = format!("{up} of {} session(s) established", sessions.len());
    if let Some(ip) = ip {
        let (prefix, seen) = sp.read_ip(ip)?;
        let ok = match (community, &seen) {
            (Some(c), hakit_bgp::Seen::Path(cs)) => cs.contains(&c),
            (None, _) => sp.role_of(&seen).is_some(),
            _ => false,
        };
        let what = sp.describe(&seen);
        if !ok {
            bail!(
                "{prefix} is {what}{}",
                community.map_or(String::new(), |c| format!(", expected {c}"))
            );
        }
        out.push_str(&format!("; {prefix} {what}"));
    }
    Ok(out)
}

/// An interface's name for messages (its index when the name cannot be read).
fn link_name(nl: &Netlink, index: u32) -> String {
    nl.links()
        .ok()
        .and_then(|l| l.into_iter().find(|l| l.index == index))
        .map_or_else(|| format!("#{index}"), |l| l.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(kind: ProbeKind) -> Probe {
        Probe {
            kind: Some(kind),
            ..Probe::default()
        }
    }

    #[test]
    fn keys_that_do_not_apply_are_refused() {
        let mut p = probe(ProbeKind::Icmp);
        p.target = Some("192.0.2.1".into());
        p.url = Some("http://x/".into());
        let e = validate(&p, Duration::from_secs(1)).unwrap_err();
        assert_eq!(
            e,
            "icmp probe: key `url` does not apply (allowed: target, interface, source, count)"
        );
    }

    #[test]
    fn required_keys_are_named() {
        assert_eq!(
            validate(&probe(ProbeKind::Icmp), Duration::ZERO).unwrap_err(),
            "icmp probe needs `target`"
        );
        assert!(validate(&probe(ProbeKind::Service), Duration::ZERO)
            .unwrap_err()
            .contains("exactly one"));
        let mut p = probe(ProbeKind::Sysctl);
        p.expect = vec!["net.ipv4.ip_forward".into()];
        assert!(validate(&p, Duration::ZERO)
            .unwrap_err()
            .contains("not key=value"));
        let mut p = probe(ProbeKind::Http);
        p.url = Some("https://198.51.100.9/".into());
        p.interface = Some("eth0".into());
        assert!(validate(&p, Duration::ZERO)
            .unwrap_err()
            .contains("http:// URLs only"));
    }

    /// Every kind, checked complete: `index` is an exhaustive match, so a new kind does
    /// not compile until it has an index, and the test below fails until it is listed.
    const KINDS: [ProbeKind; 14] = [
        ProbeKind::Icmp,
        ProbeKind::Http,
        ProbeKind::Tcp,
        ProbeKind::Link,
        ProbeKind::Address,
        ProbeKind::Route,
        ProbeKind::NftRule,
        ProbeKind::Conntrack,
        ProbeKind::Sysctl,
        ProbeKind::Service,
        ProbeKind::Drbd,
        ProbeKind::FipOwner,
        ProbeKind::Bgp,
        ProbeKind::Neighbour,
    ];

    fn index(k: ProbeKind) -> usize {
        match k {
            ProbeKind::Icmp => 0,
            ProbeKind::Http => 1,
            ProbeKind::Tcp => 2,
            ProbeKind::Link => 3,
            ProbeKind::Address => 4,
            ProbeKind::Route => 5,
            ProbeKind::NftRule => 6,
            ProbeKind::Conntrack => 7,
            ProbeKind::Sysctl => 8,
            ProbeKind::Service => 9,
            ProbeKind::Drbd => 10,
            ProbeKind::FipOwner => 11,
            ProbeKind::Bgp => 12,
            ProbeKind::Neighbour => 13,
        }
    }

    /// The `[[check.probe]]` table, `keys` (what a probe has set) and `allowed` (what each
    /// kind takes) are three lists of the same keys: one added to the table and not to
    /// `keys` would be silently ignored, one no kind allows always refused.
    #[test]
    fn the_key_lists_agree_with_the_probe_table() {
        let mut seen: Vec<usize> = KINDS.iter().map(|k| index(*k)).collect();
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..KINDS.len()).collect::<Vec<_>>(),
            "KINDS lists each kind once"
        );
        let common = [
            "kind", "name", "group", "timeout", "interval", "fall", "rise",
        ];
        let table = include_str!("../../core/src/config.rs")
            .split("pub struct Probe {")
            .nth(1)
            .and_then(|b| b.split("\n}").next())
            .expect("pub struct Probe in hakit-core's config.rs");
        let fields: std::collections::BTreeSet<&str> = table
            .lines()
            .filter_map(|l| l.trim().strip_prefix("pub "))
            .filter_map(|f| f.split(':').next())
            .map(str::trim)
            .filter(|f| !common.contains(f))
            .collect();
        let keys_fn = include_str!("probe.rs")
            .split("fn keys(p: &Probe)")
            .nth(1)
            .and_then(|b| b.split("\n}").next())
            .expect("fn keys");
        let listed: std::collections::BTreeSet<&str> =
            keys_fn.split('"').skip(1).step_by(2).collect();
        assert_eq!(fields, listed, "the Probe table and keys()");
        let allowed_any: std::collections::BTreeSet<&str> = KINDS
            .iter()
            .flat_map(|k| allowed(*k).iter().copied())
            .collect();
        assert_eq!(fields, allowed_any, "the Probe table and allowed()");
    }

    #[test]
    fn names_default_to_kind_and_target() {
        let mut p = probe(ProbeKind::Tcp);
        p.target = Some("198.51.100.9:22".into());
        let c = validate(&p, Duration::from_millis(300)).unwrap();
        assert_eq!(
            (c.name.as_str(), c.timeout),
            ("tcp:198.51.100.9:22", Duration::from_millis(300))
        );
    }
}
