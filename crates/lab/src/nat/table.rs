//! A production-sized connection table through the NAT pair, and the flows of it checked
//! end to end after a failover.
//!
//! [`Table::fill`] opens `n` UDP flows from the LAN client to the server, each answered once
//! by the server (so the MASTER's entry has seen a reply, as an established flow's has):
//! flow `i` goes from the client's port `1024 + i % 64000` to the server's port
//! `20000 + i / 64000`, so a million flows need 16 server ports and one socket per client
//! port at a time (bound, used for its flows, closed), not one process or descriptor per
//! flow. The server records the floating IP's port each flow arrived from.
//!
//! [`Table::check`] is the test of a flow surviving a failover: for every sampled flow the
//! server sends the flow's next reply to the floating IP and the port it saw, and the
//! client's socket for that flow must receive it. Only a node holding the flow's conntrack
//! entry translates the reply back to the client; without it the reply is a new inbound
//! packet to the floating IP and the shipped ruleset drops it.
//!
//! Addresses: the lab's client and server ([`super::CLIENT`], [`super::SERVER`]).

use std::{
    collections::HashSet,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket},
    sync::{
        atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

use super::{NatLab, CLIENT, SERVER};

/// First client port of the flows.
const CPORT0: u16 = 1024;
/// Client ports per server port.
const CPORTS: u32 = 64_000;
/// First server port.
const SPORT0: u16 = 20_000;
/// Payload: flow id (4 bytes) and kind.
const FILL: u8 = 0;
const CHECK: u8 = 1;

fn flow(i: u32) -> (u16, u16) {
    (CPORT0 + (i % CPORTS) as u16, SPORT0 + (i / CPORTS) as u16)
}

fn payload(id: u32, kind: u8) -> [u8; 5] {
    let b = id.to_be_bytes();
    [b[0], b[1], b[2], b[3], kind]
}

fn parse(buf: &[u8]) -> Option<(u32, u8)> {
    match buf {
        [a, b, c, d, k] => Some((u32::from_be_bytes([*a, *b, *c, *d]), *k)),
        _ => None,
    }
}

/// What filling the table took.
#[derive(Debug, Clone)]
pub struct Filled {
    pub flows: u32,
    pub seconds: f64,
    /// Flows the server saw (and answered).
    pub answered: u64,
}

/// Sampled flows after a failover.
#[derive(Debug, Clone)]
pub struct Survival {
    pub sampled: usize,
    /// Replies received by the right client socket, for the right flow.
    pub survived: usize,
    /// Flow ids whose reply never arrived (at most 20 are kept).
    pub lost: Vec<u32>,
}

impl Survival {
    pub fn share(&self) -> f64 {
        if self.sampled == 0 {
            return 0.0;
        }
        self.survived as f64 / self.sampled as f64
    }
}

/// The flows, the server's sockets and the client's sockets of the sampled flows.
pub struct Table {
    pub flows: u32,
    server: Vec<UdpSocket>,
    seen: Arc<Vec<AtomicU16>>,
    samples: Vec<(u32, UdpSocket)>,
}

impl Table {
    /// Opens `flows` UDP flows through the pair at about `rate` flows a second, with
    /// `samples` of them (spread over the whole table) kept for [`Table::check`].
    pub fn fill(
        nat: &NatLab,
        flows: u32,
        samples: usize,
        rate: u32,
    ) -> anyhow::Result<(Table, Filled)> {
        if flows == 0 || flows > CPORTS * 1000 {
            bail!("flows: 1 to {}", CPORTS * 1000);
        }
        let server_ip: Ipv4Addr = SERVER.parse()?;
        let client_ip: Ipv4Addr = CLIENT.parse()?;
        let ports = flows.div_ceil(CPORTS);
        let server: Vec<UdpSocket> = nat.inet.within(|| {
            (0..ports)
                .map(|k| {
                    let s = UdpSocket::bind(SocketAddrV4::new(server_ip, SPORT0 + k as u16))?;
                    // A burst of flows must not overflow the echo's socket.
                    nix::sys::socket::setsockopt(
                        &s,
                        nix::sys::socket::sockopt::RcvBufForce,
                        &(8 << 20),
                    )?;
                    s.set_read_timeout(Some(Duration::from_millis(50)))?;
                    Ok(s)
                })
                .collect::<anyhow::Result<_>>()
        })?;
        let seen: Arc<Vec<AtomicU16>> = Arc::new((0..flows).map(|_| AtomicU16::new(0)).collect());
        let answered = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let echoes: Vec<_> = server
            .iter()
            .map(|s| {
                let (s, seen, answered, stop) =
                    (s.try_clone()?, seen.clone(), answered.clone(), stop.clone());
                Ok(thread::spawn(move || {
                    let mut buf = [0u8; 64];
                    while !stop.load(Ordering::Relaxed) {
                        let Ok((n, from)) = s.recv_from(&mut buf) else {
                            continue;
                        };
                        if let Some((id, FILL)) = parse(&buf[..n]) {
                            if let Some(slot) = seen.get(id as usize) {
                                if slot.swap(from.port(), Ordering::Relaxed) == 0 {
                                    answered.fetch_add(1, Ordering::Relaxed);
                                }
                                let _ = s.send_to(&buf[..n], from);
                            }
                        }
                    }
                }))
            })
            .collect::<anyhow::Result<_>>()?;

        // Sampled flows: spread over the table by a fixed-seed generator, one per client port.
        let want = samples.min(flows as usize).min(CPORTS as usize);
        let mut ids = Vec::with_capacity(want);
        let mut cports = HashSet::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        while ids.len() < want {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let id = ((x >> 33) % flows as u64) as u32;
            if cports.insert(flow(id).0) {
                ids.push(id);
            }
        }
        let mut samples: Vec<(u32, UdpSocket)> = nat.client.within(|| {
            ids.iter()
                .map(|&id| {
                    let s = UdpSocket::bind(SocketAddrV4::new(client_ip, flow(id).0))?;
                    s.set_nonblocking(true)?;
                    Ok((id, s))
                })
                .collect::<anyhow::Result<_>>()
        })?;
        samples.sort_by_key(|(id, _)| flow(*id).0);
        let by_cport: std::collections::HashMap<u16, usize> = samples
            .iter()
            .enumerate()
            .map(|(k, (id, _))| (flow(*id).0, k))
            .collect();

        // The client: one socket per client port, its flows to every server port, closed.
        let t0 = Instant::now();
        let sent = nat.client.within(|| {
            let mut sent = 0u32;
            let per_port = ports;
            for c in 0..CPORTS.min(flows) {
                let cport = CPORT0 + c as u16;
                let own;
                let sock = match by_cport.get(&cport) {
                    Some(&k) => &samples[k].1,
                    None => {
                        own = UdpSocket::bind(SocketAddrV4::new(client_ip, cport))
                            .with_context(|| format!("bind client port {cport}"))?;
                        &own
                    }
                };
                for k in 0..per_port {
                    let id = k * CPORTS + c;
                    if id >= flows {
                        break;
                    }
                    let to = SocketAddrV4::new(server_ip, SPORT0 + k as u16);
                    // A full socket buffer: the NIC queue is full; try again shortly.
                    let mut tries = 0;
                    while let Err(e) = sock.send_to(&payload(id, FILL), to) {
                        tries += 1;
                        if tries > 1000 {
                            bail!("send flow {id}: {e}");
                        }
                        thread::sleep(Duration::from_micros(200));
                    }
                    sent += 1;
                    // Paced: the MASTER's conntrackd reads one event per new flow.
                    if sent % 256 == 0 {
                        let due = Duration::from_secs_f64(f64::from(sent) / f64::from(rate.max(1)));
                        if let Some(wait) = due.checked_sub(t0.elapsed()) {
                            thread::sleep(wait);
                        }
                    }
                }
            }
            Ok(sent)
        })?;
        // Answers still in flight.
        let _ = crate::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            answered.load(Ordering::Relaxed) >= u64::from(sent)
        });
        let seconds = t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for e in echoes {
            let _ = e.join();
        }
        // Drop the fill's echoes the sampled sockets received.
        let mut buf = [0u8; 64];
        for (_, s) in &samples {
            while s.recv_from(&mut buf).is_ok() {}
        }
        let filled = Filled {
            flows: sent,
            seconds,
            answered: answered.load(Ordering::Relaxed),
        };
        Ok((
            Table {
                flows: sent,
                server,
                seen,
                samples,
            },
            filled,
        ))
    }

    /// Sends every sampled flow's next reply from the server to the floating IP `fip` and
    /// counts the ones the client receives on the flow's own socket within `wait`.
    pub fn check(&self, fip: Ipv4Addr, wait: Duration) -> anyhow::Result<Survival> {
        let mut expected = std::collections::HashMap::new();
        for (k, (id, _)) in self.samples.iter().enumerate() {
            let nat_port = self.seen[*id as usize].load(Ordering::Relaxed);
            if nat_port == 0 {
                // Never answered during the fill: not a flow the table holds.
                continue;
            }
            let (_, sport) = flow(*id);
            let s = &self.server[usize::from(sport - SPORT0)];
            s.send_to(&payload(*id, CHECK), SocketAddrV4::new(fip, nat_port))
                .with_context(|| format!("reply on flow {id}"))?;
            expected.insert(k, *id);
        }
        let sampled = expected.len();
        let mut got = HashSet::new();
        let t0 = Instant::now();
        let mut buf = [0u8; 64];
        while got.len() < sampled && t0.elapsed() < wait {
            let mut any = false;
            for (k, id) in &expected {
                if got.contains(k) {
                    continue;
                }
                while let Ok((n, _)) = self.samples[*k].1.recv_from(&mut buf) {
                    if parse(&buf[..n]) == Some((*id, CHECK)) {
                        got.insert(*k);
                        any = true;
                    }
                }
            }
            if !any {
                thread::sleep(Duration::from_millis(5));
            }
        }
        let mut lost: Vec<u32> = expected
            .iter()
            .filter(|(k, _)| !got.contains(*k))
            .map(|(_, id)| *id)
            .collect();
        lost.sort_unstable();
        lost.truncate(20);
        Ok(Survival {
            sampled,
            survived: got.len(),
            lost,
        })
    }
}

/// The server's port for [`TcpFlows`].
const TCP_PORT: u16 = 5100;

/// Established TCP connections through the pair, each checked after a failover: the server
/// sends one byte on every connection and the client must read it. A connection whose
/// entry the new MASTER lacks is silent (the ruleset drops the segment; the server's
/// retransmissions meet the same), or reset.
pub struct TcpFlows {
    /// (client side, server side), by connection.
    pairs: Vec<(TcpStream, TcpStream)>,
}

/// What [`TcpFlows::check`] saw.
#[derive(Debug, Clone, Default)]
pub struct TcpSurvival {
    pub total: usize,
    pub survived: usize,
    pub reset: usize,
    pub silent: usize,
}

impl TcpFlows {
    /// Opens `n` connections from the LAN client to the server, through the pair.
    pub fn open(nat: &NatLab, n: usize) -> anyhow::Result<TcpFlows> {
        let server: SocketAddrV4 = SocketAddrV4::new(SERVER.parse()?, TCP_PORT);
        let listener = nat.inet.within(|| Ok(TcpListener::bind(server)?))?;
        // The server side learns each connection's index from its first 4 bytes.
        let accept = thread::spawn(move || -> anyhow::Result<Vec<(u32, TcpStream)>> {
            let mut got = Vec::with_capacity(n);
            for _ in 0..n {
                let (mut s, _) = listener.accept()?;
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut id = [0u8; 4];
                s.read_exact(&mut id)?;
                got.push((u32::from_be_bytes(id), s));
            }
            Ok(got)
        });
        let clients: Vec<TcpStream> = nat.client.within(|| {
            (0..n as u32)
                .map(|i| {
                    let mut c = TcpStream::connect_timeout(&server.into(), Duration::from_secs(3))
                        .with_context(|| format!("TCP connection {i} through the pair"))?;
                    c.write_all(&i.to_be_bytes())?;
                    Ok(c)
                })
                .collect()
        })?;
        let mut servers = accept
            .join()
            .map_err(|_| anyhow::anyhow!("the accepting thread panicked"))??;
        servers.sort_by_key(|(i, _)| *i);
        Ok(TcpFlows {
            pairs: clients
                .into_iter()
                .zip(servers.into_iter().map(|(_, s)| s))
                .collect(),
        })
    }

    /// One byte from the server on every connection; how many the client read within `wait`.
    pub fn check(&self, wait: Duration) -> anyhow::Result<TcpSurvival> {
        for (_, s) in &self.pairs {
            let mut s = s;
            s.write_all(b"x")?;
        }
        let mut done = vec![None::<bool>; self.pairs.len()];
        let t0 = Instant::now();
        for (c, _) in &self.pairs {
            c.set_nonblocking(true)?;
        }
        let mut buf = [0u8; 16];
        while t0.elapsed() < wait && done.iter().any(Option::is_none) {
            for (k, (c, _)) in self.pairs.iter().enumerate() {
                if done[k].is_some() {
                    continue;
                }
                let mut c = c;
                match c.read(&mut buf) {
                    Ok(0) => done[k] = Some(false),
                    Ok(_) => done[k] = Some(true),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => done[k] = Some(false),
                }
            }
            thread::sleep(Duration::from_millis(5));
        }
        Ok(TcpSurvival {
            total: done.len(),
            survived: done.iter().filter(|d| **d == Some(true)).count(),
            reset: done.iter().filter(|d| **d == Some(false)).count(),
            silent: done.iter().filter(|d| d.is_none()).count(),
        })
    }
}

/// Connections in the kernel table of the namespace `ns` (its own count: each namespace has
/// its own table, all bounded by the host's `nf_conntrack_max`).
pub fn kernel_entries(ns: &crate::Ns) -> anyhow::Result<u64> {
    ns.within(|| {
        let t = std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count")
            .context("read nf_conntrack_count")?;
        t.trim().parse().context("nf_conntrack_count")
    })
}

/// A process's resident memory (KiB) and CPU time so far (seconds).
pub fn rss_cpu(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces): utime and stime are 14 and 15.
    let cpu = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            // rest starts at field 3 (state): utime is field 14.
            (t(11) + t(12)) / clock_ticks()
        })
        .unwrap_or(0.0);
    (rss, cpu)
}

fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

/// Bytes node `i` has sent on its sync link.
pub fn sync_tx_bytes(nat: &NatLab, i: usize) -> u64 {
    nat.nodes[i]
        .ns
        .exec(&["cat", "/sys/class/net/sync0/statistics/tx_bytes"])
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

/// Entries node `i` holds for its peer: its external cache (`conntrackd -s`) when the lab
/// runs with one, else its kernel table (the peer's state is injected there).
pub fn peer_state(nat: &NatLab, i: usize) -> u64 {
    let n = &nat.nodes[i];
    if nat.opts.external_cache {
        hakit_notify::conntrackd::external_entries(&n.conntrackd.stats(&n.ns)).unwrap_or(0)
    } else {
        kernel_entries(&n.ns).unwrap_or(0)
    }
}

/// New flows through the pair while a failover runs: every 2 ms a new UDP flow from the
/// client (a fresh socket, so a fresh source port) to the server's echo port. The result is
/// the longest time between two new flows that were answered (by either node): a takeover
/// that held new flows back (behind a commit, say) shows as a gap that long.
struct NewFlows {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<anyhow::Result<f64>>,
}

impl NewFlows {
    fn start(nat: &NatLab) -> NewFlows {
        let stop = Arc::new(AtomicBool::new(false));
        let client = nat.client.clone();
        let stop2 = stop.clone();
        let thread = thread::spawn(move || -> anyhow::Result<f64> {
            client.enter()?;
            let to = SocketAddrV4::new(SERVER.parse()?, 5002);
            let t0 = Instant::now();
            let mut open: Vec<(f64, UdpSocket, bool)> = Vec::new();
            let mut buf = [0u8; 64];
            let poll = |open: &mut Vec<(f64, UdpSocket, bool)>, buf: &mut [u8]| {
                for (_, s, answered) in open.iter_mut().filter(|p| !p.2) {
                    *answered = s.recv_from(buf).is_ok();
                }
            };
            while !stop2.load(Ordering::Relaxed) && open.len() < 4_000 {
                let s = UdpSocket::bind(SocketAddrV4::new(CLIENT.parse()?, 0))?;
                s.set_nonblocking(true)?;
                let _ = s.send_to(b"new", to);
                open.push((t0.elapsed().as_secs_f64() * 1000.0, s, false));
                poll(&mut open, &mut buf);
                thread::sleep(Duration::from_millis(2));
            }
            // Late answers (a flow sent just before the end).
            thread::sleep(Duration::from_millis(200));
            poll(&mut open, &mut buf);
            let end = open.last().map_or(0.0, |p| p.0);
            let mut last = 0.0;
            let mut gap: f64 = 0.0;
            for (sent, _, _) in open.iter().filter(|p| p.2) {
                gap = gap.max(sent - last);
                last = *sent;
            }
            Ok(gap.max(end - last))
        });
        NewFlows { stop, thread }
    }

    fn finish(self) -> Option<f64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().ok().and_then(Result::ok)
    }
}

/// Established TCP connections opened beside the UDP table in [`handover`].
pub const TCP_CONNECTIONS: usize = 500;

/// One handover of a filled table, measured.
#[derive(Debug, Clone)]
pub struct Handover {
    pub flows: u32,
    pub fill: Filled,
    /// From the end of the fill until the backup held every flow (None: it never did).
    pub sync_s: Option<f64>,
    /// What the backup held just before the failover.
    pub backup_held: u64,
    /// From the event until the new MASTER was converged.
    pub converged_ms: Option<f64>,
    /// From the event until conntrackd's commit on the new MASTER finished (external cache).
    pub commit_ms: Option<f64>,
    /// The longest time without an answered new flow, from just before the event until
    /// the new MASTER was converged and its commit done.
    pub new_flow_gap_ms: Option<f64>,
    /// What the new MASTER's conntrackd logged about commits, flushes and resyncs.
    pub commit_log: String,
    pub survival: Survival,
    /// The established TCP connections opened beside the table ([`TCP_CONNECTIONS`]).
    pub tcp: TcpSurvival,
    /// conntrackd (RSS KiB, CPU s during fill + sync) on the master and the backup.
    pub rss_kib: [u64; 2],
    pub cpu_s: [f64; 2],
    /// Bytes the master sent on the sync link during fill + sync.
    pub sync_bytes: u64,
}

/// Fills the table with `flows`, waits until the backup holds them and for `settle` more
/// (a scheduled flush of the backup's table would have run by then), then fails node a over
/// to b (`crash`: SIGKILL and links down; else keepalived stopped) and checks `samples`
/// flows end to end.
pub fn handover(
    nat: &mut NatLab,
    flows: u32,
    samples: usize,
    rate: u32,
    settle: Duration,
    crash: bool,
) -> anyhow::Result<Handover> {
    let (a, b) = (0, 1);
    // The flows answer once and then stay quiet: their UDP entries would expire after 30 s
    // on both nodes (nf_conntrack_udp_timeout). Ten minutes stands in for flows that keep
    // sending (the replica's timer on the backup is the one the master's last event carried).
    for n in &nat.nodes {
        crate::run_ok(&mut n.ns.command(&[
            "sysctl",
            "-q",
            "-w",
            "net.netfilter.nf_conntrack_udp_timeout=600",
            "net.netfilter.nf_conntrack_udp_timeout_stream=600",
        ]))?;
    }
    let pids = [nat.nodes[a].conntrackd.pid, nat.nodes[b].conntrackd.pid];
    let cpu0 = [rss_cpu(pids[0]).1, rss_cpu(pids[1]).1];
    let tx0 = sync_tx_bytes(nat, a);
    let held0 = peer_state(nat, b);
    let (table, fill) = Table::fill(nat, flows, samples, rate)?;
    let tcp_flows = TcpFlows::open(nat, TCP_CONNECTIONS)?;
    let t_sync = Instant::now();
    let want = held0 + u64::from(fill.flows) + TCP_CONNECTIONS as u64;
    let synced = crate::wait_until(
        Duration::from_secs(30 + u64::from(flows) / 5_000),
        Duration::from_millis(200),
        || peer_state(nat, b) >= want,
    );
    let sync_s = synced.map(|_| t_sync.elapsed().as_secs_f64());
    let rss_kib = [rss_cpu(pids[0]).0, rss_cpu(pids[1]).0];
    let cpu_s = [rss_cpu(pids[0]).1 - cpu0[0], rss_cpu(pids[1]).1 - cpu0[1]];
    let sync_bytes = sync_tx_bytes(nat, a).saturating_sub(tx0);
    thread::sleep(settle);
    let backup_held = peer_state(nat, b).saturating_sub(held0);

    let log = nat.nodes[b].conntrackd.log.clone();
    let log_from = std::fs::metadata(&log).map_or(0, |m| m.len());
    let new_flows = NewFlows::start(nat);
    thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    if crash {
        nat.crash(a)?;
    } else {
        nat.stop_keepalived(a);
    }
    let mut commit_ms = None;
    let mut converged_ms = None;
    let deadline = Duration::from_secs(30);
    while t0.elapsed() < deadline && (commit_ms.is_none() || converged_ms.is_none()) {
        if converged_ms.is_none() && nat.converged_peer(b, !crash).is_ok() {
            converged_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
        }
        if commit_ms.is_none() {
            let text = std::fs::read(&log).unwrap_or_default();
            let new = String::from_utf8_lossy(text.get(log_from as usize..).unwrap_or(&[]));
            if !nat.opts.external_cache || new.contains("commit has taken") {
                commit_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    // New flows for a while after: a gap at the end counts too.
    thread::sleep(Duration::from_millis(300));
    let new_flow_gap_ms = new_flows.finish();
    let fip: Ipv4Addr = super::FIP.parse()?;
    let survival = table.check(fip, Duration::from_secs(3))?;
    let tcp = tcp_flows.check(Duration::from_secs(5))?;
    // What the new MASTER's conntrackd said about commits and flushes, since the lab began.
    let text = std::fs::read(&log).unwrap_or_default();
    let commit_log = String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| l.contains("ommit") || l.contains("flush") || l.contains("resync"))
        .map(|l| l.split_once("] ").map_or(l, |(_, r)| r).to_string())
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Handover {
        flows: fill.flows,
        fill,
        sync_s,
        backup_held,
        converged_ms,
        commit_ms,
        new_flow_gap_ms,
        commit_log,
        survival,
        tcp,
        rss_kib,
        cpu_s,
        sync_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_are_distinct_and_in_range() {
        let mut all = HashSet::new();
        for i in (0..1_000_000).step_by(997) {
            let (c, s) = flow(i);
            assert!((CPORT0..CPORT0 + CPORTS as u16).contains(&c));
            assert!((SPORT0..SPORT0 + 16).contains(&s));
            assert!(all.insert((c, s)), "flow {i} repeats");
        }
        assert_eq!(parse(&payload(123_456, CHECK)), Some((123_456, CHECK)));
        assert_eq!(parse(&[1, 2, 3]), None);
    }
}
