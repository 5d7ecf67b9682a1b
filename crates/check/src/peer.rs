//! The monitors of a pair compare notes before one of them gives the role away.
//!
//! A failure both nodes see (the shared upstream gateway, the shared external target, a
//! stall of the host both run on) is no reason to fail over: the peer is no better off,
//! and with keepalived's `track_file` at `weight 0` both nodes would enter FAULT and the
//! LAN would have no gateway at all. So the monitor writes 1 (FAULT) only when the peer is
//! known to be *healthier*; while the peer is no better off it holds (writes nothing,
//! says so in its log, heartbeat and metrics) and decides again as reports arrive.
//!
//! Each monitor sends the other a small JSON report every `interval` (20 ms) over the sync
//! link: its verdict and, per probe, whether it is up and for how long it has passed. The
//! socket is bound to this node's sync address and connected to the peer's, so the kernel
//! delivers only datagrams from the peer's address and port. Times travel as ages ("passed
//! for 840 ms", "last pass 12 ms ago") and are placed on the receiver's clock at arrival:
//! the two nodes' clocks are never compared.
//!
//! The peer is healthier for a probe that is down here when its own probe of the same name
//! is up and one of these holds:
//! * the probe reads this node's kernel (link, address, route): such a failure is local;
//! * the peer's probe passed without a break from before this node's failure began (one
//!   interval earlier) until after it (one interval later): a failure both see breaks
//!   both runs, and the interval covers the skew between the two nodes' probes;
//! * this node's probe is still failing and the peer's has passed for `2 x (fall + rise)`
//!   intervals without a break (a long clean run beats a failing one, whatever started it).
//!
//! For a failing quorum group, the peer must be healthier for at least the group's `min`
//! probes. A peer silent for `silent_after` (250 ms) is treated as absent: the node then
//! acts alone, as without a `[check.peer]` table (FAULT on failure), since a dead peer
//! cannot be worse off and a peer that cannot be heard cannot be compared.
//!
//! The reports also carry this node's VRRP role per instance, as pseudo-probes named
//! `@vrrp:INSTANCE` (up: MASTER; a monitor of an older version takes them for probes it
//! does not have, and ignores them): MASTER when nat-notify's newest intent for the
//! instance is MASTER *and* keepalived runs (its pid file names a live keepalived, and
//! neither it nor a child of it is stopped or a zombie; a crashed or frozen keepalived
//! leaves its addresses behind but sends no advert and is no MASTER), with for how long
//! (`ok_for_ms`) and how long ago the roles were read (`last_ok_ms`, at most 50 ms: what
//! `split.rs` needs to tell a cut VRRP path from a crash). The receiving monitor
//! writes the peer's roles to `RUNTIME_DIR/peer.report` (at most every 100 ms, at once
//! when they change), and nat-notify reads it before a provider claim: a peer that is
//! MASTER and answers on the sync link means the VRRP path is cut, not the peer dead, and
//! the claim is held (a second path between the nodes, the one keepalived lacks).

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use log::{info, warn};

/// The UDP port the monitors talk on by default.
pub const DEFAULT_PORT: u16 = 7447;
/// A peer not heard from for this long is treated as absent.
pub const DEFAULT_SILENT_AFTER: Duration = Duration::from_millis(250);
/// The largest report accepted (a report of 64 probes is about 5 KB).
const MAX_REPORT: usize = 16 * 1024;

/// The pseudo-probe prefix of a VRRP role in a report.
pub const VRRP: &str = "@vrrp:";
/// The file, in the runtime directory, where the peer's VRRP roles are kept for nat-notify.
pub const PEER_REPORT: &str = "peer.report";
/// keepalived's pid file by default (keepalived's own default).
pub const KEEPALIVED_PID: &str = "/run/keepalived.pid";

/// `[check.peer]`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerConfig {
    /// This node's address on the link the reports use (the sync link).
    pub bind: IpAddr,
    /// The peer's address on that link.
    pub address: IpAddr,
    pub port: u16,
    pub silent_after: Duration,
    /// Where nat-notify's intents are read and the peer's roles written.
    pub runtime_dir: PathBuf,
    /// keepalived's pid file (this node is MASTER only while it names a live keepalived).
    pub keepalived_pid: PathBuf,
    /// Where the peer's VRRP adverts come from (see `split.rs`).
    pub vrrp_peer: Option<std::net::Ipv4Addr>,
}

impl PeerConfig {
    /// Checks the table (exit 2 at load, naming the key).
    pub fn new(
        bind: IpAddr,
        address: IpAddr,
        port: Option<u16>,
        silent_after: Option<Duration>,
    ) -> Result<PeerConfig, String> {
        let port = port.unwrap_or(DEFAULT_PORT);
        if port == 0 {
            return Err("[check.peer] port must be 1-65535".into());
        }
        if bind == address {
            return Err(format!(
                "[check.peer] address {address} is this node's own (bind): give the peer's sync address"
            ));
        }
        if bind.is_ipv4() != address.is_ipv4() {
            return Err(format!(
                "[check.peer] bind {bind} and address {address} are not of one family"
            ));
        }
        if bind.is_unspecified() || address.is_unspecified() || address.is_multicast() {
            return Err(
                "[check.peer] bind and address want unicast addresses, e.g. 192.0.2.1 and 192.0.2.2"
                    .into(),
            );
        }
        let silent_after = silent_after.unwrap_or(DEFAULT_SILENT_AFTER);
        if silent_after < Duration::from_millis(50) || silent_after > Duration::from_secs(10) {
            return Err(format!(
                "[check.peer] silent_after {silent_after:?} is outside 50ms-10s"
            ));
        }
        Ok(PeerConfig {
            bind,
            address,
            port,
            silent_after,
            runtime_dir: PathBuf::from(hakit_core::runtime::DEFAULT_DIR),
            keepalived_pid: PathBuf::from(KEEPALIVED_PID),
            vrrp_peer: None,
        })
    }
}

impl PeerConfig {
    /// `[check.peer]` as written, checked (exit 2 at load, naming the key);
    /// `runtime_dir` is where nat-notify's intents are.
    pub fn from_table(
        t: &crate::config::PeerTable,
        runtime_dir: PathBuf,
    ) -> Result<PeerConfig, String> {
        let mut cfg = PeerConfig::new(
            t.bind,
            t.address,
            t.port,
            t.silent_after.map(hakit_core::duration::HDuration::get),
        )?;
        cfg.runtime_dir = runtime_dir;
        if let Some(pid) = &t.keepalived_pid_file {
            cfg.keepalived_pid = pid.clone();
        }
        cfg.vrrp_peer = match t.vrrp_address {
            None => None,
            Some(IpAddr::V4(a)) if !a.is_unspecified() && !a.is_multicast() && !a.is_broadcast() => Some(a),
            Some(a) => return Err(format!("[check.peer] vrrp_address {a}: give the peer's unicast IPv4 address its VRRP adverts come from (IPv6 VRRP is not listened for)")),
        };
        Ok(cfg)
    }
}

/// What one monitor tells the other, every interval. On the wire, plain text (a parser
/// this small is cheap to bound and to fuzz, and costs the binary nothing like a JSON
/// derive): a header line `hakit-peer 1 SEQ HEALTHY`, then a line per probe, `UP OK_FOR_MS
/// LAST_OK_MS NAME`, where a missing value is `-` and the name is the rest of the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub seq: u64,
    /// The sender's verdict (not what it wrote: a holding node is unhealthy).
    pub healthy: Option<bool>,
    pub probes: Vec<ProbeReport>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    pub name: String,
    /// Up or down after the probe's fall/rise hysteresis.
    pub up: Option<bool>,
    /// For how long the probe has passed without a break, ms; `None` when its last answer
    /// failed.
    pub ok_for_ms: Option<u64>,
    /// How long ago it last passed, ms.
    pub last_ok_ms: Option<u64>,
}

const MAGIC: &str = "hakit-peer 1";

fn flag(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "1",
        Some(false) => "0",
        None => "-",
    }
}

fn num(n: Option<u64>) -> String {
    n.map_or_else(|| "-".to_string(), |n| n.to_string())
}

impl Report {
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("{MAGIC} {} {}\n", self.seq, flag(self.healthy));
        for p in &self.probes {
            let name: String = p
                .name
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            s.push_str(&format!(
                "{} {} {} {name}\n",
                flag(p.up),
                num(p.ok_for_ms),
                num(p.last_ok_ms)
            ));
        }
        s.into_bytes()
    }

    /// Reads a datagram; anything malformed is refused whole.
    pub fn parse(data: &[u8]) -> anyhow::Result<Report> {
        anyhow::ensure!(data.len() <= MAX_REPORT, "report of {} bytes", data.len());
        let text = std::str::from_utf8(data).map_err(|_| anyhow::anyhow!("not UTF-8"))?;
        let mut lines = text.lines();
        let head = lines.next().unwrap_or_default();
        let rest = head
            .strip_prefix(MAGIC)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| anyhow::anyhow!("not a hakit-peer 1 report"))?;
        let (seq, healthy) = rest
            .split_once(' ')
            .ok_or_else(|| anyhow::anyhow!("header without a verdict"))?;
        let flag = |f: &str| -> anyhow::Result<Option<bool>> {
            match f {
                "1" => Ok(Some(true)),
                "0" => Ok(Some(false)),
                "-" => Ok(None),
                _ => anyhow::bail!("{f:?} is not 1, 0 or -"),
            }
        };
        let num = |f: &str| -> anyhow::Result<Option<u64>> {
            if f == "-" {
                return Ok(None);
            }
            let n: u64 = f
                .parse()
                .map_err(|_| anyhow::anyhow!("{f:?} is not a number"))?;
            anyhow::ensure!(n <= 86_400_000 * 365, "{n} ms is out of range");
            Ok(Some(n))
        };
        let mut r = Report {
            seq: seq
                .parse()
                .map_err(|_| anyhow::anyhow!("sequence {seq:?}"))?,
            healthy: flag(healthy)?,
            probes: Vec::new(),
        };
        for line in lines {
            anyhow::ensure!(r.probes.len() < 256, "more than 256 probes");
            let mut f = line.splitn(4, ' ');
            let (Some(up), Some(ok), Some(last), Some(name)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                anyhow::bail!("probe line {line:?} is not UP OK_FOR LAST_OK NAME");
            };
            anyhow::ensure!(!name.is_empty(), "a probe without a name");
            r.probes.push(ProbeReport {
                name: name.to_string(),
                up: flag(up)?,
                ok_for_ms: num(ok)?,
                last_ok_ms: num(last)?,
            });
        }
        Ok(r)
    }
}

/// A report placed on this node's clock.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub report: Report,
}

impl Seen {
    pub(crate) fn probe(&self, name: &str) -> Option<&ProbeReport> {
        self.report.probes.iter().find(|p| p.name == name)
    }

    pub(crate) fn ago(&self, ms: Option<u64>) -> Option<Instant> {
        self.at.checked_sub(Duration::from_millis(ms?))
    }
}

/// One of this node's probes, as the decision needs it.
#[derive(Debug, Clone)]
pub struct Mine {
    pub name: String,
    /// The quorum group's key (`probe:NAME` for a probe without a group).
    pub group: String,
    /// Reads this node's kernel (link, address, route).
    pub local: bool,
    pub interval: Duration,
    pub fall: u32,
    pub rise: u32,
    pub up: Option<bool>,
    /// When the failing run that took it down began (its first failed answer).
    pub down_since: Option<Instant>,
    /// Whether its last answer passed.
    pub last_ok: bool,
}

/// A failing quorum group of this node's verdict.
#[derive(Debug, Clone)]
pub struct Failing {
    pub group: String,
    pub min: usize,
}

/// The peer's roles as `peer.report` holds them: `INSTANCE 1` (MASTER) or `INSTANCE 0`.
fn roles_text(r: &Report) -> String {
    r.probes
        .iter()
        .filter_map(|p| {
            let inst = p.name.strip_prefix(VRRP)?;
            Some(format!(
                "{inst} {}\n",
                if p.up == Some(true) { 1 } else { 0 }
            ))
        })
        .collect()
}

/// What the monitor does with an unhealthy verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Write 1: the peer is healthier, or absent.
    Fault(String),
    /// Keep the role: the peer is no better off (why).
    Hold(String),
    /// No report from the peer yet, and still within `silent_after` of starting to listen:
    /// keep whatever is written; a monitor that has written nothing yet writes nothing (the
    /// track file's initial FAULT stands until the peer's first report or its silence).
    Wait(String),
}

/// Whether the peer is healthier for `m`, one of this node's probes that is down.
fn healthier_for(m: &Mine, peer: &Seen, now: Instant) -> bool {
    let Some(q) = peer.probe(&m.name) else {
        return false;
    };
    let Some(ok_since) = peer.ago(q.ok_for_ms) else {
        return false;
    };
    if q.up != Some(true) {
        return false;
    }
    if m.local {
        return true;
    }
    let (Some(down), Some(last_ok)) = (m.down_since, peer.ago(q.last_ok_ms)) else {
        return false;
    };
    // The peer passed after this node's failure began: a failure both see stops both.
    let grace = m.interval;
    if last_ok < down + grace {
        return false;
    }
    let through = down.checked_sub(grace).is_some_and(|d| ok_since <= d);
    let long = m.interval * 2 * (m.fall + m.rise);
    through || (!m.last_ok && now.saturating_duration_since(ok_since) >= long)
}

/// The decision for an unhealthy verdict: `failing` its failing groups, `mine` every probe,
/// `listening` when this monitor began to listen for the peer.
pub fn decide(
    mine: &[Mine],
    failing: &[Failing],
    peer: Option<&Seen>,
    (silent_after, stale): (Duration, Duration),
    listening: Instant,
    now: Instant,
) -> Decision {
    let Some(peer) = peer else {
        // A monitor that just started waits for the peer's first report as for a late one.
        return if now.saturating_duration_since(listening) < silent_after {
            Decision::Wait("waiting for the peer's first report".into())
        } else {
            Decision::Fault("no report from the peer: acting alone".into())
        };
    };
    let age = now.saturating_duration_since(peer.at);
    if age >= silent_after {
        return Decision::Fault(format!(
            "the peer has been silent for {} ms: acting alone",
            age.as_millis()
        ));
    }
    if age > stale {
        return Decision::Hold(format!(
            "waiting for a fresh report from the peer (the last is {} ms old)",
            age.as_millis()
        ));
    }
    if peer.report.healthy != Some(true) {
        return Decision::Hold("the peer is unhealthy too: no better off".into());
    }
    for f in failing {
        let better = mine
            .iter()
            .filter(|m| m.group == f.group)
            .filter(|m| {
                if m.up == Some(true) {
                    peer.probe(&m.name).is_some_and(|q| q.up == Some(true))
                } else {
                    healthier_for(m, peer, now)
                }
            })
            .count();
        if better < f.min {
            return Decision::Hold(format!(
                "the peer is no healthier for {} ({better} of {} needed): a failure both see",
                f.group.strip_prefix("probe:").unwrap_or(&f.group),
                f.min
            ));
        }
    }
    Decision::Fault("the peer is healthier".into())
}

/// The latest report, shared between the exchange thread and the monitor's loop.
pub type Latest = Arc<Mutex<Option<Seen>>>;

pub fn latest(l: &Latest) -> Option<Seen> {
    l.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Starts the exchange: every `every`, `report()` is sent to the peer; what the peer sends
/// lands in the returned [`Latest`]. A bind that fails (the sync address not up yet) is
/// retried every second; meanwhile the peer counts as absent.
pub fn spawn(
    cfg: &PeerConfig,
    every: Duration,
    rt_priority: u8,
    stop: Arc<AtomicBool>,
    report: impl FnMut(u64) -> Report + Send + 'static,
) -> anyhow::Result<Latest> {
    let out: Latest = Arc::default();
    let (cfg, latest) = (cfg.clone(), out.clone());
    thread::Builder::new().name("peer".into()).spawn(move || {
        let _ = crate::rt::realtime(rt_priority);
        exchange(&cfg, every, &stop, &latest, report)
    })?;
    Ok(out)
}

fn open(cfg: &PeerConfig, every: Duration) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(SocketAddr::new(cfg.bind, cfg.port))?;
    s.connect(SocketAddr::new(cfg.address, cfg.port))?;
    s.set_read_timeout(Some(every.max(Duration::from_millis(1))))?;
    Ok(s)
}

fn exchange(
    cfg: &PeerConfig,
    every: Duration,
    stop: &AtomicBool,
    latest: &Latest,
    mut report: impl FnMut(u64) -> Report,
) {
    let mut sock = None;
    let mut said_bind = false;
    let mut said_heard = false;
    let mut seq = 0u64;
    let mut buf = vec![0u8; MAX_REPORT + 1];
    let mut next = Instant::now();
    // The peer's roles for nat-notify: written when they change, and at least every
    // 100 ms while reports arrive (the file's age tells nat-notify the peer is heard).
    let roles_file = cfg.runtime_dir.join(PEER_REPORT);
    let mut roles_written: Option<(Instant, String)> = None;
    let mut said_roles_error = false;
    while !stop.load(Ordering::Relaxed) {
        let Some(s) = &sock else {
            match open(cfg, every) {
                Ok(s) => {
                    info!(
                        "peer reports: {}:{} <-> {}:{}",
                        cfg.bind, cfg.port, cfg.address, cfg.port
                    );
                    sock = Some(s);
                }
                Err(e) => {
                    if !said_bind {
                        warn!("peer reports: cannot bind {}:{}: {e}; the peer counts as absent until it can (retried every second)", cfg.bind, cfg.port);
                        said_bind = true;
                    }
                    thread::sleep(Duration::from_secs(1));
                }
            }
            continue;
        };
        let now = Instant::now();
        if now >= next {
            seq += 1;
            // Refused (no monitor on the peer yet) or unreachable: the peer goes silent.
            let _ = s.send(&report(seq).encode());
            next += every;
            if next < now {
                next = now + every;
            }
        }
        let _ = s.set_read_timeout(Some(
            next.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ));
        match s.recv(&mut buf) {
            Ok(n) => match Report::parse(&buf[..n]) {
                Ok(r) => {
                    if !said_heard {
                        info!("peer reports: heard from {}", cfg.address);
                        said_heard = true;
                    }
                    let roles = roles_text(&r);
                    let due = roles_written.as_ref().is_none_or(|(at, text)| {
                        *text != roles || at.elapsed() >= Duration::from_millis(100)
                    });
                    if due && (!roles.is_empty() || roles_written.is_some()) {
                        match hakit_core::runtime::write_atomic(
                            &roles_file,
                            roles.as_bytes(),
                            0o644,
                        ) {
                            Ok(()) => said_roles_error = false,
                            Err(e) if !said_roles_error => {
                                warn!("peer reports: {e:#}");
                                said_roles_error = true;
                            }
                            Err(_) => {}
                        }
                        roles_written = Some((Instant::now(), roles));
                    }
                    *latest
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Seen {
                        at: Instant::now(),
                        report: r,
                    });
                }
                Err(e) => warn!(
                    "peer reports: a datagram from {} refused: {e:#}",
                    cfg.address
                ),
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                warn!("peer reports: {e}; reopening");
                sock = None;
                thread::sleep(every);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::vrrp_roles;

    const MS: Duration = Duration::from_millis(1);

    /// This node is MASTER of an instance when nat-notify's newest intent says so and the
    /// pid file names a live keepalived (a copy of sleep named keepalived here); not when
    /// keepalived is gone. The roles travel as pseudo-probes and come out as peer.report.
    #[test]
    fn vrrp_roles_need_the_intent_and_a_live_keepalived() {
        let d = std::env::temp_dir().join(format!("hakit-peer-roles-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("VI_1.intents"),
            r#"{"next":2,"recent":[{"generation":1,"state":"BACKUP"},{"generation":2,"state":"MASTER"}]}"#,
        )
        .unwrap();
        std::fs::write(
            d.join("VI_2.intents"),
            r#"{"next":1,"recent":[{"generation":1,"state":"FAULT"}]}"#,
        )
        .unwrap();
        let sleep = hakit_core::exec::find("sleep").unwrap();
        let ka = d.join("keepalived");
        std::fs::copy(&sleep, &ka).unwrap();
        let mut child = std::process::Command::new(&ka).arg("30").spawn().unwrap();
        let pid = d.join("keepalived.pid");
        std::fs::write(&pid, format!("{}\n", child.id())).unwrap();
        let up = |r: &[ProbeReport]| -> Vec<(String, Option<bool>)> {
            r.iter().map(|p| (p.name.clone(), p.up)).collect()
        };
        let roles = vrrp_roles(&d, &pid);
        assert_eq!(
            up(&roles),
            [
                ("@vrrp:VI_1".into(), Some(true)),
                ("@vrrp:VI_2".into(), Some(false))
            ]
        );
        let r = Report {
            seq: 1,
            healthy: Some(true),
            probes: roles,
        };
        let again = Report::parse(&r.encode()).unwrap();
        assert_eq!(roles_text(&again), "VI_1 1\nVI_2 0\n");
        // Frozen (SIGSTOP): alive, but sending nothing: no MASTER; thawed, MASTER again.
        let p = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGSTOP).unwrap();
        let frozen = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            up(&vrrp_roles(&d, &pid))[0].1 == Some(false)
        });
        assert!(frozen, "a stopped keepalived is no MASTER");
        nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGCONT).unwrap();
        let thawed = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            up(&vrrp_roles(&d, &pid))[0].1 == Some(true)
        });
        assert!(thawed, "running again");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            up(&vrrp_roles(&d, &pid)),
            [
                ("@vrrp:VI_1".into(), Some(false)),
                ("@vrrp:VI_2".into(), Some(false))
            ],
            "a dead keepalived is no MASTER"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    fn mine(name: &str, down_since: Option<Instant>, last_ok: bool) -> Mine {
        Mine {
            name: name.into(),
            group: format!("probe:{name}"),
            local: false,
            interval: 20 * MS,
            fall: 4,
            rise: 5,
            up: Some(down_since.is_none()),
            down_since,
            last_ok,
        }
    }

    fn seen(at: Instant, healthy: bool, probes: &[(&str, bool, Option<u64>, Option<u64>)]) -> Seen {
        Seen {
            at,
            report: Report {
                seq: 1,
                healthy: Some(healthy),
                probes: probes
                    .iter()
                    .map(|&(n, up, ok_for, last)| ProbeReport {
                        name: n.into(),
                        up: Some(up),
                        ok_for_ms: ok_for,
                        last_ok_ms: last,
                    })
                    .collect(),
            },
        }
    }

    fn failing(name: &str) -> Vec<Failing> {
        vec![Failing {
            group: format!("probe:{name}"),
            min: 1,
        }]
    }

    fn decide_now(m: &[Mine], f: &[Failing], p: Option<&Seen>, now: Instant) -> Decision {
        let listening = now - Duration::from_secs(10);
        decide(m, f, p, (DEFAULT_SILENT_AFTER, 60 * MS), listening, now)
    }

    #[test]
    fn one_sided_failure_faults_at_once() {
        // Down since 80 ms ago; the peer has passed for 10 s, last 5 ms before its report.
        let now = Instant::now() + Duration::from_secs(20);
        let m = [mine("gw", Some(now - 80 * MS), false)];
        let p = seen(now - 2 * MS, true, &[("gw", true, Some(10_000), Some(5))]);
        assert!(matches!(
            decide_now(&m, &failing("gw"), Some(&p), now),
            Decision::Fault(_)
        ));
    }

    #[test]
    fn a_failure_both_see_holds() {
        let now = Instant::now() + Duration::from_secs(20);
        let m = [mine("gw", Some(now - 80 * MS), false)];
        // The peer's probe is down too.
        let p = seen(now - 2 * MS, false, &[("gw", false, None, Some(90))]);
        assert!(matches!(
            decide_now(&m, &failing("gw"), Some(&p), now),
            Decision::Hold(_)
        ));
        // Still up after its hysteresis, but its run of passes broke after ours did.
        let p = seen(now - 2 * MS, true, &[("gw", true, None, Some(70))]);
        assert!(matches!(
            decide_now(&m, &failing("gw"), Some(&p), now),
            Decision::Hold(_)
        ));
        // Recovered first, 40 ms ago: a short run that began after our failure.
        let p = seen(now - 2 * MS, true, &[("gw", true, Some(40), Some(1))]);
        assert!(matches!(
            decide_now(&m, &failing("gw"), Some(&p), now),
            Decision::Hold(_)
        ));
        // A run that ended before our failure could be seen through: no later pass.
        let p = seen(now - 2 * MS, true, &[("gw", true, Some(5000), Some(75))]);
        assert!(matches!(
            decide_now(&m, &failing("gw"), Some(&p), now),
            Decision::Hold(_)
        ));
    }

    #[test]
    fn a_long_clean_run_beats_a_failing_probe() {
        let now = Instant::now() + Duration::from_secs(20);
        // We failed long ago; the peer lost one answer 2 s ago and passed since.
        let m = [mine("gw", Some(now - Duration::from_secs(5)), false)];
        let p = seen(now - 2 * MS, true, &[("gw", true, Some(400), Some(3))]);
        assert!(matches!(
            decide_now(&m, &failing("gw"), Some(&p), now),
            Decision::Fault(_)
        ));
        // ... but not while our own probe passes again (both recovering from one blip).
        let m = [mine("gw", Some(now - Duration::from_secs(5)), true)];
        assert!(matches!(
            decide_now(&m, &failing("gw"), Some(&p), now),
            Decision::Hold(_)
        ));
    }

    #[test]
    fn a_local_probe_needs_only_the_peer_up() {
        let now = Instant::now() + Duration::from_secs(20);
        let mut m = mine("link:eth0", Some(now - 5 * MS), false);
        m.local = true;
        let p = seen(
            now - 2 * MS,
            true,
            &[("link:eth0", true, Some(900), Some(900))],
        );
        assert!(matches!(
            decide_now(&[m], &failing("link:eth0"), Some(&p), now),
            Decision::Fault(_)
        ));
    }

    #[test]
    fn silence_and_staleness() {
        let now = Instant::now() + Duration::from_secs(20);
        let m = [mine("gw", Some(now - 80 * MS), false)];
        let f = failing("gw");
        assert!(matches!(decide_now(&m, &f, None, now), Decision::Fault(_)));
        let just_started = now - 100 * MS;
        assert!(matches!(
            decide(&m, &f, None, (DEFAULT_SILENT_AFTER, 60 * MS), just_started, now),
            Decision::Wait(ref w) if w.contains("first report")
        ));
        let p = seen(now - 100 * MS, false, &[("gw", false, None, None)]);
        assert!(
            matches!(decide_now(&m, &f, Some(&p), now), Decision::Hold(ref w) if w.contains("fresh")),
            "a late report is waited for"
        );
        let p = seen(now - 300 * MS, false, &[("gw", false, None, None)]);
        assert!(matches!(
            decide_now(&m, &f, Some(&p), now),
            Decision::Fault(ref w) if w.contains("silent")
        ));
        // A peer that does not know the probe is no healthier for it.
        let p = seen(now - 2 * MS, true, &[("other", true, Some(9000), Some(1))]);
        assert!(matches!(
            decide_now(&m, &f, Some(&p), now),
            Decision::Hold(_)
        ));
    }

    #[test]
    fn quorum_groups_count_probes_the_peer_is_healthier_for() {
        let now = Instant::now() + Duration::from_secs(20);
        let mut a = mine("ext1", Some(now - 80 * MS), false);
        let mut b = mine("ext2", Some(now - 80 * MS), false);
        a.group = "external".into();
        b.group = "external".into();
        let f = [Failing {
            group: "external".into(),
            min: 1,
        }];
        // One of the two external targets is dead for both; the other only for us.
        let p = seen(
            now - 2 * MS,
            true,
            &[
                ("ext1", false, None, Some(500)),
                ("ext2", true, Some(9000), Some(4)),
            ],
        );
        assert!(matches!(
            decide_now(&[a.clone(), b.clone()], &f, Some(&p), now),
            Decision::Fault(_)
        ));
        let p = seen(
            now - 2 * MS,
            true,
            &[
                ("ext1", false, None, Some(500)),
                ("ext2", false, None, Some(500)),
            ],
        );
        assert!(matches!(
            decide_now(&[a, b], &f, Some(&p), now),
            Decision::Hold(_)
        ));
    }

    #[test]
    fn reports_parse_strictly() {
        let r = Report {
            seq: 7,
            healthy: Some(true),
            probes: vec![
                ProbeReport {
                    name: "gateway arp".into(),
                    up: Some(true),
                    ok_for_ms: Some(3),
                    last_ok_ms: Some(1),
                },
                ProbeReport {
                    name: "link:eth0".into(),
                    up: None,
                    ok_for_ms: None,
                    last_ok_ms: None,
                },
            ],
        };
        assert_eq!(Report::parse(&r.encode()).unwrap(), r);
        assert_eq!(
            String::from_utf8(r.encode()).unwrap(),
            "hakit-peer 1 7 1\n1 3 1 gateway arp\n- - - link:eth0\n"
        );
        for bad in [
            &b"hakit-peer 2 1 1\n"[..],
            b"hakit-peer 1 x 1\n",
            b"hakit-peer 1 1 yes\n",
            b"hakit-peer 1 1 1\n1 3 1\n",
            b"hakit-peer 1 1 1\n1 -3 1 gw\n",
            b"hakit-peer 1 1 1\n1 99999999999999999 1 gw\n",
            b"\xff\x00",
        ] {
            assert!(
                Report::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(Report::parse(&vec![b' '; MAX_REPORT + 1]).is_err());
        let many = format!("hakit-peer 1 1 1\n{}", "1 1 1 gw\n".repeat(300));
        assert!(Report::parse(many.as_bytes()).is_err());
        // A control character in a name cannot add a line.
        let mut r = r;
        r.probes[0].name = "gw\nfake".into();
        assert_eq!(Report::parse(&r.encode()).unwrap().probes.len(), 2);
    }

    #[test]
    fn config_is_checked_at_load() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(PeerConfig::new(a, b, None, None).is_ok());
        assert!(PeerConfig::new(a, a, None, None)
            .unwrap_err()
            .contains("own"));
        assert!(PeerConfig::new(a, b, Some(0), None).is_err());
        assert!(
            PeerConfig::new(a, "2001:db8::2".parse().unwrap(), None, None)
                .unwrap_err()
                .contains("family")
        );
        assert!(PeerConfig::new(a, b, None, Some(Duration::from_millis(5))).is_err());
    }
}
