//! ICMP and ICMPv6 echo.
//!
//! First choice is an ICMP datagram ("ping") socket: no privilege needed where
//! `net.ipv4.ping_group_range` allows the caller's group, and the kernel delivers only the
//! replies to this socket. Where that is refused, a raw socket (CAP_NET_RAW), which sees
//! every ICMP packet the host receives unless connected (it is, to the target): replies are
//! matched by identifier, sequence and a per-probe nonce in the payload, so parallel probes
//! never take each other's replies.
//!
//! ICMP errors are matched the same way. The kernel hands an error to the socket by the
//! quoted packet's identifier (ping sockets) or its addresses (a connected raw socket)
//! alone, so any host that can send ICMP to the gateway could fail a probe with a forged
//! "unreachable" quoting a guessed identifier or the well-known target. With
//! `IP_RECVERR`/`IPV6_RECVERR` each error arrives on the error queue with the packet it
//! quotes: it fails the round only when that packet is one of the round's own requests
//! (identifier on raw sockets, sequence, and the nonce, which an off-path host cannot
//! know). An error quoting fewer than 16 bytes of the request cannot be told from a
//! forgery and is ignored: the round then ends at its timeout.

use std::{
    net::{IpAddr, SocketAddr},
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    sync::atomic::{AtomicU16, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use nix::{
    errno::Errno,
    poll::PollFlags,
    sys::socket::{
        connect, recv, recvmsg, sendto, setsockopt, socket, sockopt, MsgFlags, SockFlag,
        SockProtocol, SockType,
    },
};

use crate::sock::{bind_to, family, sockaddr, wait};

/// Echo request / reply types (RFC 792, RFC 4443).
const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;

static SEQ: AtomicU16 = AtomicU16::new(1);

fn nonce() -> [u8; 8] {
    let t = hakit_core::clock::since_epoch().as_nanos() as u64;
    (t ^ (u64::from(std::process::id()) << 32) ^ u64::from(SEQ.load(Ordering::Relaxed)))
        .to_be_bytes()
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

struct Sock {
    fd: OwnedFd,
    raw: bool,
}

fn open(target: IpAddr) -> anyhow::Result<Sock> {
    let proto = if target.is_ipv4() {
        SockProtocol::Icmp
    } else {
        SockProtocol::IcmpV6
    };
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let s = match socket(family(target), SockType::Datagram, flags, proto) {
        Ok(fd) => Sock { fd, raw: false },
        Err(Errno::EACCES | Errno::EPERM | Errno::EPROTONOSUPPORT) => {
            let fd = socket(family(target), SockType::Raw, flags, proto).context(
                "ICMP: ping sockets not allowed (net.ipv4.ping_group_range) and no CAP_NET_RAW",
            )?;
            Sock { fd, raw: true }
        }
        Err(e) => return Err(e).context("open ICMP socket"),
    };
    // Errors on the error queue, with the packet they quote (see the module's notes).
    if target.is_ipv4() {
        setsockopt(&s.fd, sockopt::Ipv4RecvErr, &true)
    } else {
        setsockopt(&s.fd, sockopt::Ipv6RecvErr, &true)
    }
    .context("ICMP socket: IP_RECVERR")?;
    Ok(s)
}

/// Sends `count` echo requests to `target` and waits for any matching reply; returns the
/// round-trip time of the first.
pub fn echo(
    target: IpAddr,
    iface: Option<&str>,
    source: Option<IpAddr>,
    count: u32,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    Pinger::open(target, iface, source)?.echo(count, timeout)
}

/// A bound ICMP socket kept across echoes (the monitor pings every 20 ms: one socket
/// instead of fifty a second).
pub struct Pinger {
    s: Sock,
    target: IpAddr,
}

impl Pinger {
    pub fn open(
        target: IpAddr,
        iface: Option<&str>,
        source: Option<IpAddr>,
    ) -> anyhow::Result<Pinger> {
        let s = open(target)?;
        bind_to(&s.fd, iface, source)?;
        if s.raw {
            // A raw socket sees every ICMP packet the host receives (the other probes'
            // replies too: a wake-up each, fifty a second per probe in the monitor).
            // Connected, the kernel hands it only what `target` sends. An optimisation
            // only: where it fails (no route yet), sendto still names the target and the
            // replies are still matched by identifier, sequence and nonce.
            let _ = connect(s.fd.as_raw_fd(), &sockaddr(SocketAddr::new(target, 0)));
        }
        Ok(Pinger { s, target })
    }

    /// One round: `count` requests, the first matching reply within `timeout`.
    pub fn echo(&self, count: u32, timeout: Duration) -> anyhow::Result<Duration> {
        let round = self.send(count)?;
        let deadline = round.start + timeout;
        loop {
            if !wait(&self.s.fd, PollFlags::POLLIN, deadline)? {
                // Past the deadline, what already arrived is still read once.
                if let Some(rtt) = self.read(&round)? {
                    return Ok(rtt);
                }
                bail!("no echo reply from {} within {timeout:?}", self.target);
            }
            if let Some(rtt) = self.read(&round)? {
                return Ok(rtt);
            }
        }
    }

    /// The requests of one round, on the wire (late replies to earlier rounds, and errors
    /// queued for them, are dropped first). With [`Pinger::read`] and [`Pinger::fd`], a
    /// caller can wait for several probes in one poll (the monitor's tick).
    pub fn send(&self, count: u32) -> anyhow::Result<Round> {
        let mut buf = [0u8; 2048];
        loop {
            match recv(self.s.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                // A pending error of an earlier round (its details are dropped below).
                Err(_) => {}
            }
        }
        self.own_error(None);
        let target = self.target;
        let id = (std::process::id() as u16) ^ SEQ.fetch_add(0x1111, Ordering::Relaxed);
        let nonce = nonce();
        let req = if target.is_ipv4() {
            ECHO_REQUEST_V4
        } else {
            ECHO_REQUEST_V6
        };
        let mut seqs = Vec::new();
        let start = Instant::now();
        for _ in 0..count.max(1) {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            seqs.push(seq);
            let mut pkt = vec![req, 0, 0, 0];
            pkt.extend_from_slice(&id.to_be_bytes());
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.extend_from_slice(&nonce);
            pkt.extend_from_slice(b"hakit-ha");
            if target.is_ipv4() {
                // Datagram sockets fill in the checksum themselves; raw IPv4 sockets do not.
                let c = checksum(&pkt);
                pkt[2..4].copy_from_slice(&c.to_be_bytes());
            }
            sendto(
                self.s.fd.as_raw_fd(),
                &pkt,
                &sockaddr(SocketAddr::new(target, 0)),
                MsgFlags::empty(),
            )
            .with_context(|| format!("send echo request to {target}"))?;
        }
        Ok(Round {
            id,
            seqs,
            nonce,
            start,
        })
    }

    /// Reads what has arrived, without waiting: the round trip if a reply of `round` is
    /// among it. An ICMP error that quotes one of the round's requests (unreachable) fails
    /// it; any other error is dropped.
    pub fn read(&self, round: &Round) -> anyhow::Result<Option<Duration>> {
        let (s, target) = (&self.s, self.target);
        let rep = if target.is_ipv4() {
            ECHO_REPLY_V4
        } else {
            ECHO_REPLY_V6
        };
        let mut buf = [0u8; 2048];
        let mut errors = 0;
        loop {
            let n = match recv(s.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => n,
                Err(Errno::EAGAIN) => {
                    if self.own_error(Some(round)) {
                        bail!("echo to {target}: destination unreachable (an ICMP error)");
                    }
                    return Ok(None);
                }
                Err(Errno::EINTR) => continue,
                // An ICMP error was queued (the socket's pending error, read once): whose
                // it is, the error queue says.
                Err(e) => {
                    if self.own_error(Some(round)) {
                        bail!("echo to {target}: {}", std::io::Error::from(e));
                    }
                    errors += 1;
                    if errors > 64 {
                        bail!("echo to {target}: {}", std::io::Error::from(e));
                    }
                    continue;
                }
            };
            // Raw IPv4 sockets deliver the IP header too.
            let off = if s.raw && target.is_ipv4() && n > 0 {
                usize::from(buf[0] & 0x0f) * 4
            } else {
                0
            };
            let Some(icmp) = buf.get(off..n) else {
                continue;
            };
            if icmp.len() < 16 || icmp[0] != rep {
                continue;
            }
            let rid = u16::from_be_bytes([icmp[4], icmp[5]]);
            let rseq = u16::from_be_bytes([icmp[6], icmp[7]]);
            // Datagram sockets rewrite the identifier; the nonce still proves the reply is ours.
            if (s.raw && rid != round.id)
                || !round.seqs.contains(&rseq)
                || icmp[8..16] != round.nonce
            {
                continue;
            }
            return Ok(Some(round.start.elapsed()));
        }
    }

    /// Empties the socket's error queue; whether an entry quotes one of `round`'s
    /// requests. Every other entry is dropped: an earlier round's, or a forgery. (The
    /// error's errno is what `recv` returned just before: the kernel sets the socket's
    /// pending error with each entry it queues; the queue's ancillary data is not parsed.)
    fn own_error(&self, round: Option<&Round>) -> bool {
        let req = if self.target.is_ipv4() {
            ECHO_REQUEST_V4
        } else {
            ECHO_REQUEST_V6
        };
        let mut found = false;
        let mut buf = [0u8; 2048];
        for _ in 0..256 {
            let n = {
                let mut iov = [std::io::IoSliceMut::new(&mut buf)];
                match recvmsg::<()>(
                    self.s.fd.as_raw_fd(),
                    &mut iov,
                    None,
                    MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(m) => m.bytes,
                    Err(_) => break,
                }
            };
            let Some(round) = round else {
                continue;
            };
            // The quoted request: its ICMP header and payload, as this socket sent them.
            let q = &buf[..n.min(buf.len())];
            let ours = q.len() >= 16
                && q[0] == req
                && (!self.s.raw || u16::from_be_bytes([q[4], q[5]]) == round.id)
                && round.seqs.contains(&u16::from_be_bytes([q[6], q[7]]))
                && q[8..16] == round.nonce;
            if ours {
                found = true;
            } else {
                log::trace!(
                    "an ICMP error about echo to {} ignored: it quotes no request of this round",
                    self.target
                );
            }
        }
        found
    }

    /// The socket, to poll for [`Pinger::read`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.s.fd.as_fd()
    }
}

/// The requests of one round, as [`Pinger::read`] matches their replies.
#[derive(Debug, Clone)]
pub struct Round {
    id: u16,
    seqs: Vec<u16>,
    nonce: [u8; 8],
    /// When the first request left.
    pub start: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_known_echo() {
        // Echo request id 1 seq 1, no payload: checksum 0xf7fd.
        assert_eq!(checksum(&[8, 0, 0, 0, 0, 1, 0, 1]), 0xf7fd);
    }

    #[test]
    fn loopback_answers() {
        // Unprivileged where ping_group_range allows it, raw otherwise (root): both work on lo.
        let rtt = echo(
            "127.0.0.1".parse().unwrap(),
            None,
            None,
            1,
            Duration::from_secs(2),
        );
        match rtt {
            Ok(d) => assert!(d < Duration::from_secs(2)),
            Err(e) => assert!(format!("{e:#}").contains("CAP_NET_RAW"), "{e:#}"),
        }
    }
}
