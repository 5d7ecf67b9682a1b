//! Layer-2 reachability of a neighbour (the upstream gateway), and the kernel's events.
//!
//! [`ask`] asks the neighbour for its link-layer address the way the kernel would and waits
//! for the answer: for IPv4 an ARP probe (RFC 5227 §2.1.1: sender IP 0.0.0.0, so nobody's
//! cache learns from it), for IPv6 a neighbour solicitation from this link's link-local
//! address to the target's solicited-node group. Upstreams that rate-limit or drop ICMP
//! still answer these: a router that stops answering them cannot forward either.
//!
//! [`Events`] is a socket subscribed to rtnetlink's link, address and route groups: a
//! monitor blocks on it and re-checks the kernel's state the moment something changes
//! (carrier lost, the default route withdrawn, the WAN address removed) instead of on the
//! next tick.

use std::{
    net::{IpAddr, Ipv6Addr},
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use nix::{
    poll::{poll, PollFd, PollFlags, PollTimeout},
    sys::socket::{self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType},
};

use crate::{
    frames,
    netlink::{Link, Mac, Netlink},
};

/// One question to `ip` on `link` and the answer within `wait` (see [`Asker`]).
pub fn ask(nl: &Netlink, link: &Link, ip: IpAddr, wait: Duration) -> anyhow::Result<Option<Mac>> {
    Asker::open(nl, link, ip)?.ask(wait)
}

/// A socket and a question, kept across asks: a monitor asks every 20 ms, and closing an
/// `AF_PACKET` socket waits for an RCU grace period (10–20 ms here), longer than the
/// answer takes.
pub struct Asker {
    sock: OwnedFd,
    frame: Vec<u8>,
    addr: nix::sys::socket::LinkAddr,
    ip: IpAddr,
    mac: Mac,
    ifindex: u32,
}

impl Asker {
    /// The socket bound to `link` and the question for `ip`. Needs CAP_NET_RAW.
    pub fn open(nl: &Netlink, link: &Link, ip: IpAddr) -> anyhow::Result<Asker> {
        let mac = link
            .mac
            .with_context(|| format!("{} has no MAC address", link.name))?;
        if link.noarp {
            bail!("{} does not do ARP/ND (NOARP)", link.name);
        }
        let (ethertype, frame, dst) = match ip {
            IpAddr::V4(v4) => (
                frames::ETH_P_ARP,
                frames::arp_probe(mac, v4),
                frames::BROADCAST,
            ),
            IpAddr::V6(v6) => {
                let src = nl
                    .addresses(Some(link.index))?
                    .into_iter()
                    .find_map(|a| match a.addr {
                        IpAddr::V6(s) if is_link_local(s) && !a.tentative => Some(s),
                        _ => None,
                    })
                    .with_context(|| {
                        format!("{} has no usable link-local IPv6 address", link.name)
                    })?;
                let f = frames::neighbour_solicitation(mac, src, v6);
                let g = frames::solicited_node(v6).octets();
                (
                    frames::ETH_P_IPV6,
                    f,
                    Mac([0x33, 0x33, g[12], g[13], g[14], g[15]]),
                )
            }
        };
        // Bound to the EtherType and the interface: only that link's ARP (or IPv6) frames.
        let (sock, addr) = crate::garp::bound_packet_socket(link, ethertype, dst)?;
        Ok(Asker {
            sock,
            frame,
            addr,
            ip,
            mac,
            ifindex: link.index,
        })
    }

    /// The interface index the socket is bound to (a re-created link gets a new one).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Asks once and waits up to `wait`; the MAC that answered, or `None`.
    pub fn ask(&self, wait: Duration) -> anyhow::Result<Option<Mac>> {
        self.send()?;
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Past the deadline, the frames already received are still read once (an
            // answer that came while this thread was not scheduled is in time).
            let late = left.is_zero();
            if !late && !readable(&self.sock, left)? {
                continue;
            }
            let found = self.read();
            if found.is_some() || late {
                return Ok(found);
            }
        }
    }

    /// The question, on the wire (what came before it, late answers to earlier questions,
    /// is dropped first: not this answer). With [`Asker::read`] and [`Asker::fd`], a caller
    /// can wait for several probes in one poll (the monitor's tick).
    pub fn send(&self) -> anyhow::Result<()> {
        let mut buf = [0u8; 256];
        while socket::recv(self.sock.as_raw_fd(), &mut buf, MsgFlags::empty()).is_ok() {}
        socket::sendto(
            self.sock.as_raw_fd(),
            &self.frame,
            &self.addr,
            MsgFlags::empty(),
        )
        .with_context(|| format!("send to {}", self.ip))?;
        Ok(())
    }

    /// Reads what has arrived, without waiting: the MAC that answered, if any did.
    pub fn read(&self) -> Option<Mac> {
        let mut buf = [0u8; 256];
        while let Ok(n) = socket::recv(self.sock.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            let from = match self.ip {
                IpAddr::V4(v4) => frames::arp_claimant(&buf[..n], v4),
                IpAddr::V6(v6) => frames::na_sender(&buf[..n], v6),
            };
            if let Some(m) = from.filter(|m| *m != self.mac) {
                return Some(m);
            }
        }
        None
    }

    /// The socket, to poll for [`Asker::read`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

fn readable(fd: &OwnedFd, wait: Duration) -> anyhow::Result<bool> {
    let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(e).context("poll"),
    }
}

/// rtnetlink multicast groups (the legacy bitmask of `RTMGRP_*`, linux/rtnetlink.h).
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

/// Link, address and route changes of this network namespace, as they happen.
pub struct Events {
    sock: OwnedFd,
}

impl Events {
    pub fn open() -> anyhow::Result<Events> {
        let sock = socket::socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkRoute,
        )
        .context("open rtnetlink event socket")?;
        let groups = RTMGRP_LINK
            | RTMGRP_IPV4_IFADDR
            | RTMGRP_IPV4_ROUTE
            | RTMGRP_IPV6_IFADDR
            | RTMGRP_IPV6_ROUTE;
        socket::bind(sock.as_raw_fd(), &NetlinkAddr::new(0, groups))
            .context("subscribe to rtnetlink link/address/route events")?;
        Ok(Events { sock })
    }

    /// Waits up to `wait` for events; true when at least one arrived (all pending ones are
    /// consumed: the caller re-reads the state, it does not replay the messages). An
    /// overrun (ENOBUFS: events were lost) also counts as a change.
    pub fn wait(&self, wait: Duration) -> anyhow::Result<bool> {
        if !readable(&self.sock, wait)? {
            return Ok(false);
        }
        let mut buf = [0u8; 8192];
        loop {
            match socket::recv(self.sock.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(_) | Err(nix::errno::Errno::ENOBUFS) => continue,
                Err(nix::errno::Errno::EAGAIN) => return Ok(true),
                Err(e) => return Err(e).context("read rtnetlink events"),
            }
        }
    }
}
