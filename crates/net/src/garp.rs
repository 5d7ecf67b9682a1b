//! A burst of gratuitous ARPs and unsolicited neighbour advertisements.
//!
//! Split in two so that callers can validate without sending (`--dry-run`) and so that
//! every refusal happens before the first frame: [`resolve`] turns a [`Plan`] into a
//! [`Burst`] (interface looked up, addresses checked, frames built) or a usage error;
//! [`Burst::send`] opens one `AF_PACKET` socket and sends.
//!
//! Timing: the first round leaves at once; round *k* is scheduled at `start + k·interval`
//! on the monotonic clock, so a slow send or a late wake-up does not push every later
//! frame back (no drift over the burst).

use std::{
    net::IpAddr,
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    sync::OnceLock,
    thread,
    time::{Duration, Instant},
};

use anyhow::Context;
use hakit_core::{usage_error, HDuration};

use hakit_core::debug;
use log::info;
use nix::sys::socket::{self, AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::{
    frames,
    netlink::{Link, Mac, Netlink},
};

/// What `garp-burst` reads.
pub type GarpFile = hakit_core::config::File<Garp>;

/// `[garp]`: garp-burst's defaults (each key is also a flag; nat-notify's GARP step takes
/// its count and interval from its instance).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Garp {
    /// Interface the frames go out of (the WAN leg).
    pub interface: Option<String>,
    /// Addresses to announce: gratuitous ARP for IPv4, unsolicited neighbour advertisements
    /// for IPv6 [default: every global address on the interface].
    pub ips: Option<Vec<IpAddr>>,
    /// Frames per address [default: 5] (garp-burst's own default, as `--count` says).
    pub count: Option<u32>,
    /// Time between rounds [default: 200ms].
    pub interval: Option<HDuration>,
    /// Send ARP replies instead of requests (some switches only learn from replies).
    pub reply: Option<bool>,
}

/// What to announce.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub interface: String,
    /// Addresses to announce; empty means every global address on the interface.
    pub ips: Vec<IpAddr>,
    /// Rounds; each round sends one frame per address (two for IPv4 with `reply`).
    pub count: u32,
    pub interval: Duration,
    /// Also send the ARP-reply form for IPv4 addresses.
    pub reply: bool,
    /// Announce addresses that are not on the interface, and on NOARP links.
    pub force: bool,
    /// NA Router flag; `None` reads the interface's IPv6 forwarding sysctl.
    pub router: Option<bool>,
}

/// One frame of a round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Frame {
    pub ip: IpAddr,
    /// `arp-request`, `arp-reply` or `na`.
    pub kind: &'static str,
    #[serde(skip)]
    pub bytes: Vec<u8>,
    #[serde(skip)]
    ethertype: u16,
    #[serde(skip)]
    dst: Mac,
}

/// A validated burst, ready to send.
#[derive(Debug, Clone, Serialize)]
pub struct Burst {
    pub link: Link,
    pub frames: Vec<Frame>,
    pub count: u32,
    #[serde(serialize_with = "ser_ms")]
    pub interval: Duration,
    pub router: bool,
}

/// What was sent.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub interface: String,
    pub ifindex: u32,
    pub mac: String,
    pub addresses: Vec<IpAddr>,
    pub frames_sent: u32,
    /// Time from the start of [`Burst::send`] to the first frame handed to the kernel.
    #[serde(serialize_with = "ser_ms")]
    pub first_frame_after: Duration,
    #[serde(serialize_with = "ser_ms")]
    pub elapsed: Duration,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Validates `plan` against the kernel's view of the interface and builds the frames.
/// Every refusal is a usage error (exit 2): retrying cannot help.
pub fn resolve(nl: &Netlink, plan: &Plan) -> anyhow::Result<Burst> {
    let link = nl
        .link_by_name(&plan.interface)?
        .ok_or_else(|| usage_error(format!("unknown interface {:?}", plan.interface)))?;
    resolve_on(nl, plan, &link)
}

/// [`resolve`] on a link the caller has just looked up (nat-notify's address action: the
/// interface is not looked up twice in one transition).
pub fn resolve_on(nl: &Netlink, plan: &Plan, link: &Link) -> anyhow::Result<Burst> {
    if plan.count == 0 {
        return Err(usage_error("count must be at least 1"));
    }
    if !link.up {
        return Err(usage_error(format!("interface {} is down", link.name)));
    }
    let mac = match link.mac {
        Some(m) if m.0 != [0; 6] => m,
        _ => {
            return Err(usage_error(format!(
                "interface {} has no Ethernet address",
                link.name
            )))
        }
    };
    if link.noarp && !plan.force {
        return Err(usage_error(format!(
            "interface {} does not use ARP/ND (NOARP); --force to send anyway",
            link.name
        )));
    }
    // The address dump is needed to pick addresses or to verify them; not for explicit
    // addresses the caller vouches for (`force`), e.g. ones it has just added itself.
    let on_link = if plan.ips.is_empty() || !plan.force {
        nl.addresses(Some(link.index))?
    } else {
        Vec::new()
    };
    let ips: Vec<IpAddr> = if plan.ips.is_empty() {
        let all: Vec<IpAddr> = on_link
            .iter()
            .filter(|a| a.global)
            .map(|a| a.addr)
            .collect();
        if all.is_empty() {
            return Err(usage_error(format!(
                "interface {} has no global address to announce",
                link.name
            )));
        }
        all
    } else {
        for ip in &plan.ips {
            let unusable = ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_loopback()
                || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
            if unusable {
                return Err(usage_error(format!(
                    "{ip} cannot be announced (not a unicast address)"
                )));
            }
            if !plan.force && !on_link.iter().any(|a| a.addr == *ip) {
                return Err(usage_error(format!(
                    "{ip} is not on interface {}; --force to announce it anyway",
                    link.name
                )));
            }
        }
        dedup(&plan.ips)
    };
    let router = plan.router.unwrap_or_else(|| ipv6_forwarding(&link.name));
    let mut out = Vec::new();
    for ip in &ips {
        match ip {
            IpAddr::V4(v4) => {
                out.push(Frame {
                    ip: *ip,
                    kind: "arp-request",
                    bytes: frames::garp(mac, *v4, false),
                    ethertype: frames::ETH_P_ARP,
                    dst: frames::BROADCAST,
                });
                if plan.reply {
                    out.push(Frame {
                        ip: *ip,
                        kind: "arp-reply",
                        bytes: frames::garp(mac, *v4, true),
                        ethertype: frames::ETH_P_ARP,
                        dst: frames::BROADCAST,
                    });
                }
            }
            IpAddr::V6(v6) => out.push(Frame {
                ip: *ip,
                kind: "na",
                bytes: frames::unsolicited_na(mac, *v6, router),
                ethertype: frames::ETH_P_IPV6,
                dst: frames::ALL_NODES_MAC,
            }),
        }
    }
    Ok(Burst {
        link: link.clone(),
        frames: out,
        count: plan.count,
        interval: plan.interval,
        router,
    })
}

fn dedup(ips: &[IpAddr]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::with_capacity(ips.len());
    for ip in ips {
        if !out.contains(ip) {
            out.push(*ip);
        }
    }
    out
}

fn ipv6_forwarding(dev: &str) -> bool {
    hakit_core::sysctl::read_parts(&["net", "ipv6", "conf", dev, "forwarding"])
        .is_ok_and(|v| v == "1")
}

/// The process's packet socket, opened on first use and never closed before exit.
///
/// Closing an `AF_PACKET` socket waits for an RCU grace period (`packet_release` calls
/// `synchronize_net`): 10–20 ms measured here. Paid in the middle of a failover it would
/// delay every later step, so one socket serves the whole process (a FIFO reader sends
/// many bursts) and the kernel closes it at exit, after the work is done. Protocol 0: the
/// socket only sends; the kernel never queues received frames on it.
fn sending_socket() -> anyhow::Result<BorrowedFd<'static>> {
    static SOCKET: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(s) = SOCKET.get() {
        return Ok(s.as_fd());
    }
    let s = packet_socket(SockFlag::SOCK_CLOEXEC)?;
    Ok(SOCKET.get_or_init(|| s).as_fd())
}

/// A raw `AF_PACKET` socket (the only kind hakit opens: frames it builds itself).
pub(crate) fn packet_socket(flags: SockFlag) -> anyhow::Result<OwnedFd> {
    socket::socket(AddressFamily::Packet, SockType::Raw, flags, None)
        .context("open AF_PACKET socket (needs CAP_NET_RAW)")
}

/// A non-blocking `AF_PACKET` socket bound to `link` and `ethertype`: it receives only that
/// link's frames of that EtherType; `addr` (with `dst`) is where it sends.
pub(crate) fn bound_packet_socket(
    link: &Link,
    ethertype: u16,
    dst: Mac,
) -> anyhow::Result<(OwnedFd, LinkAddr)> {
    let sock = packet_socket(SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK)?;
    let addr = link_addr(link.index, ethertype, dst)?;
    socket::bind(sock.as_raw_fd(), &addr).with_context(|| format!("bind to {}", link.name))?;
    Ok((sock, addr))
}

/// `sockaddr_ll` for sending one frame: interface, EtherType and destination MAC.
pub(crate) fn link_addr(ifindex: u32, ethertype: u16, dst: Mac) -> anyhow::Result<LinkAddr> {
    let mut sll_addr = [0u8; 8];
    sll_addr[..6].copy_from_slice(&dst.0);
    hakit_sys::packet::link_addr(ifindex, ethertype, 6, sll_addr)
}

impl Burst {
    /// The addresses announced, in order.
    pub fn addresses(&self) -> Vec<IpAddr> {
        dedup(&self.frames.iter().map(|f| f.ip).collect::<Vec<_>>())
    }

    /// Sends the burst. Fails on the first frame the kernel refuses (interface gone or
    /// down mid-burst), naming how many frames had left by then.
    pub fn send(&self) -> anyhow::Result<Report> {
        let start = Instant::now();
        let name = &self.link.name;
        let sock = sending_socket()?;
        let dests = self
            .frames
            .iter()
            .map(|f| link_addr(self.link.index, f.ethertype, f.dst))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut sent = 0u32;
        let mut first = None;
        for round in 0..self.count {
            if round > 0 {
                let due = start + self.interval * round;
                let now = Instant::now();
                if due > now {
                    thread::sleep(due - now);
                }
            }
            for (frame, dest) in self.frames.iter().zip(&dests) {
                socket::sendto(sock.as_raw_fd(), &frame.bytes, dest, MsgFlags::empty())
                    .with_context(|| {
                        format!(
                            "send {} for {} on {name} after {sent} frames",
                            frame.kind, frame.ip
                        )
                    })?;
                first.get_or_insert_with(|| start.elapsed());
                sent += 1;
            }
            debug!("garp round {}/{} on {name} sent", round + 1, self.count);
        }
        let report = Report {
            interface: name.clone(),
            ifindex: self.link.index,
            mac: self.link.mac.map(|m| m.to_string()).unwrap_or_default(),
            addresses: self.addresses(),
            frames_sent: sent,
            first_frame_after: first.unwrap_or_default(),
            elapsed: start.elapsed(),
        };
        info!(
            "announced {} on {name} ({}): {sent} frames in {:.1} ms",
            join(&report.addresses),
            report.mac,
            report.elapsed.as_secs_f64() * 1000.0
        );
        Ok(report)
    }
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Who else answers for `ip` on `link`: sends one ARP probe (sender IP 0.0.0.0, so no
/// cache learns anything) and collects, for `wait`, the MACs other than `link`'s own that
/// reply for `ip` or announce it. A non-empty answer while this node holds `ip` means two
/// nodes hold it: a split brain. Needs CAP_NET_RAW.
pub fn arp_claimants(
    link: &Link,
    ip: std::net::Ipv4Addr,
    wait: Duration,
) -> anyhow::Result<Vec<Mac>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mac = link
        .mac
        .with_context(|| format!("{} has no MAC address", link.name))?;
    // Bound with the ARP EtherType: delivery of ARP frames on this interface only.
    let (sock, _) = bound_packet_socket(link, frames::ETH_P_ARP, frames::BROADCAST)?;
    socket::sendto(
        sock.as_raw_fd(),
        &frames::arp_probe(mac, ip),
        &link_addr(link.index, frames::ETH_P_ARP, frames::BROADCAST)?,
        MsgFlags::empty(),
    )
    .with_context(|| format!("send ARP probe for {ip} on {}", link.name))?;
    let deadline = Instant::now() + wait;
    let mut found: Vec<Mac> = Vec::new();
    let mut buf = [0u8; 128];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(ms)).context("poll ARP socket")? == 0 {
            continue;
        }
        while let Ok(n) = socket::recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            if let Some(m) = frames::arp_claimant(&buf[..n], ip) {
                if m != mac && !found.contains(&m) {
                    found.push(m);
                }
            }
        }
    }
    Ok(found)
}
