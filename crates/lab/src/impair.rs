//! Delay with jitter on one link, in user space: what `tc qdisc … netem delay D J` does, for
//! kernels without `sch_netem` (this machine kind's has none, nor `nfnetlink_queue`).
//!
//! A bridge port is taken off its bridge and a veth pair put in its place; two `AF_PACKET`
//! sockets forward every frame between the port and the pair. Frames the port's host sends
//! (its egress, where netem would sit) are held for a delay drawn uniformly from
//! `[delay - jitter, delay + jitter]` (so they reorder, as with netem); the way back is not.
//! [`Impair::stop`] puts the port back. Lab-only: frames larger than the MTU (GSO) are
//! dropped, which is why the lab uses it only where traffic is probes and control packets.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    os::fd::{AsFd, AsRawFd, OwnedFd},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Condvar, Mutex,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::Context;
use nix::{
    poll::{poll, PollFd, PollFlags, PollTimeout},
    sys::socket::{self, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType},
};

use crate::Ns;

/// `PACKET_OUTGOING`: a frame this host sent (a packet socket sees those too).
const PACKET_OUTGOING: u8 = 4;

/// A running impairment; [`Impair::stop`] undoes it.
pub struct Impair {
    ns: Ns,
    bridge: String,
    port: String,
    pair: (String, String),
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Frames forwarded (both directions).
    pub frames: Arc<AtomicU64>,
}

type Queue = Arc<(Mutex<BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>>, Condvar)>;

/// netem runs in the kernel's softirq, which no process can starve; this forwarder stands
/// in for it, so it runs real-time above everything the lab measures (the monitor's 10,
/// keepalived's 20). Without it, a loaded machine delays the forwarder and the lab would
/// blame the uplink monitor for the lab's own stalls.
fn kernel_like() {
    if let Err(e) = hakit_core::sched::realtime(50, Duration::from_millis(500)) {
        log::warn!("impair: forwarder not real-time ({e:#}): delays may exceed the model's");
    }
}

fn packet_socket(ns: &Ns, dev: &str) -> anyhow::Result<(OwnedFd, u32)> {
    let (ns, dev) = (ns.name.clone(), dev.to_string());
    // A thread of its own enters the namespace: the socket stays there once opened.
    thread::spawn(move || -> anyhow::Result<(OwnedFd, u32)> {
        let f = std::fs::File::open(format!("/run/netns/{ns}"))?;
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
        let index = nix::net::if_::if_nametoindex(dev.as_str())
            .with_context(|| format!("{dev} in {ns}"))?;
        let sock = socket::socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::EthAll,
        )?;
        let addr = link_addr(index)?;
        socket::bind(sock.as_raw_fd(), &addr)?;
        Ok((sock, index))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("packet socket thread panicked"))?
}

fn link_addr(index: u32) -> anyhow::Result<LinkAddr> {
    // ETH_P_ALL, the interface; nothing else matters to bind or to sendto on a raw socket.
    hakit_sys::packet::link_addr(index, nix::libc::ETH_P_ALL as u16, 0, [0; 8])
}

impl Impair {
    /// Puts `delay ± jitter` on bridge `bridge`'s port `port` in `ns`.
    pub fn start(
        ns: &Ns,
        bridge: &str,
        port: &str,
        delay: Duration,
        jitter: Duration,
    ) -> anyhow::Result<Impair> {
        anyhow::ensure!(
            port.len() <= 11,
            "port name {port:?} too long for jit{port}0"
        );
        let pair = (format!("jit{port}0"), format!("jit{port}1"));
        ns.ip(&[
            "link", "add", &pair.0, "type", "veth", "peer", "name", &pair.1,
        ])?;
        ns.ip(&["link", "set", &pair.0, "master", bridge])?;
        for d in [&pair.0, &pair.1] {
            ns.ip(&["link", "set", d, "up"])?;
        }
        let (a, ai) = packet_socket(ns, port)?;
        let (b, bi) = packet_socket(ns, &pair.1)?;
        let (a, b) = (Arc::new(a), Arc::new(b));
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        // netem is an egress qdisc: only what the port's host sends is held; the way back
        // goes through the forwarder at once.
        let zero = Duration::ZERO;
        for (from, to, to_index, delay, jitter) in [
            (a.clone(), b.clone(), bi, delay, jitter),
            (b, a, ai, zero, zero),
        ] {
            let q: Queue = Arc::default();
            let (stop1, q1, n) = (stop.clone(), q.clone(), frames.clone());
            threads.push(thread::spawn(move || {
                kernel_like();
                receive(&from, &q1, &stop1, delay, jitter, &n)
            }));
            let (stop2, q2) = (stop.clone(), q);
            threads.push(thread::spawn(move || {
                kernel_like();
                send(&to, to_index, &q2, &stop2)
            }));
        }
        // Only now off the bridge: the forwarder is already there to carry its frames.
        ns.ip(&["link", "set", port, "nomaster"])?;
        Ok(Impair {
            ns: ns.clone(),
            bridge: bridge.into(),
            port: port.into(),
            pair,
            stop,
            threads,
            frames,
        })
    }

    /// The port back on its bridge, the forwarder gone.
    pub fn stop(self) -> anyhow::Result<()> {
        self.ns
            .ip(&["link", "set", &self.port, "master", &self.bridge])?;
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.ns.ip(&["link", "del", &self.pair.0])
    }
}

fn receive(
    fd: &OwnedFd,
    q: &Queue,
    stop: &AtomicBool,
    delay: Duration,
    jitter: Duration,
    n: &AtomicU64,
) {
    let mut buf = vec![0u8; 65536];
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        if !matches!(poll(&mut fds, PollTimeout::from(100u16)), Ok(k) if k > 0) {
            continue;
        }
        while let Ok((len, from)) = socket::recvfrom::<LinkAddr>(fd.as_raw_fd(), &mut buf) {
            if from.is_some_and(|f| f.pkttype() == PACKET_OUTGOING) {
                continue;
            }
            // xorshift64: uniform in [delay - jitter, delay + jitter].
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let span = (jitter.as_micros() as u64) * 2 + 1;
            let d = delay.saturating_sub(jitter) + Duration::from_micros(seed % span);
            seq += 1;
            let (m, c) = &**q;
            if let Ok(mut h) = m.lock() {
                h.push(Reverse((Instant::now() + d, seq, buf[..len].to_vec())));
                c.notify_one();
            }
            n.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn send(fd: &OwnedFd, index: u32, q: &Queue, stop: &AtomicBool) {
    let Ok(addr) = link_addr(index) else { return };
    let (m, c) = &**q;
    let Ok(mut h) = m.lock() else { return };
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        match h.peek() {
            Some(Reverse((due, _, _))) if *due <= now => {
                if let Some(Reverse((_, _, frame))) = h.pop() {
                    drop(h);
                    let _ = socket::sendto(fd.as_raw_fd(), &frame, &addr, MsgFlags::empty());
                    h = match m.lock() {
                        Ok(h) => h,
                        Err(_) => return,
                    };
                }
            }
            Some(Reverse((due, _, _))) => {
                let wait = *due - now;
                h = match c.wait_timeout(h, wait) {
                    Ok((h, _)) => h,
                    Err(_) => return,
                };
            }
            None => {
                h = match c.wait_timeout(h, Duration::from_millis(100)) {
                    Ok((h, _)) => h,
                    Err(_) => return,
                };
            }
        }
    }
}
