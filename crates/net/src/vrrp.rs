//! VRRP advertisements as this host receives them: what keepalived hears, read beside it.
//!
//! A raw IPv4 socket for protocol 112 gets a copy of every advertisement the host accepts
//! after the firewall's input hook (keepalived reads the same packets on its own socket), so
//! a rule that drops VRRP hides it from both. The monitor uses it to tell a cut VRRP path
//! (the peer's reports arrive over the sync link, its adverts do not) from a dead peer.
//!
//! An advert is an IPv4 packet without fragments, protocol 112, carrying a VRRP version 2
//! or 3 packet of type 1 (RFC 3768 and RFC 5798, section 5). The TTL is not checked: a
//! multicast advert arrives with 255, but unicast adverts across a routed network (a
//! Hetzner Cloud Network) arrive with less and keepalived takes them; the caller trusts
//! only the peer's source address. The interval is the packet's: VRRPv3 carries
//! centiseconds (12 bits), VRRPv2 whole seconds.

use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd, OwnedFd},
    time::{Duration, SystemTime},
};

use nix::{
    errno::Errno,
    sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags},
};

/// IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;

/// One advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advert {
    pub source: Ipv4Addr,
    pub vrid: u8,
    pub priority: u8,
    /// The advertisement interval the sender announces.
    pub interval: Duration,
}

/// Reads one packet as received on a raw IPv4 socket (IP header first); `None` for
/// anything that is not a well-formed advertisement.
pub fn parse(pkt: &[u8]) -> Option<Advert> {
    let h = pkt.get(..20)?;
    let (version, ihl) = (h[0] >> 4, usize::from(h[0] & 0x0f) * 4);
    let protocol = h[9];
    // More fragments, or a fragment offset: not a whole advert.
    let frag = u16::from_be_bytes([h[6], h[7]]) & 0x3fff;
    if version != 4 || ihl < 20 || protocol != PROTOCOL || frag != 0 {
        return None;
    }
    let source = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let v = pkt.get(ihl..)?;
    if v.len() < 8 || v[0] & 0x0f != 1 {
        return None;
    }
    let interval = match v[0] >> 4 {
        3 => Duration::from_millis(u64::from(u16::from_be_bytes([v[4], v[5]]) & 0x0fff) * 10),
        2 => Duration::from_secs(u64::from(v[5])),
        _ => return None,
    };
    Some(Advert {
        source,
        vrid: v[1],
        priority: v[2],
        interval,
    })
}

/// A socket that receives the host's VRRP advertisements (non-blocking: the caller drains
/// it on its own schedule; the kernel queues what arrives meanwhile, each with the time it
/// arrived, so a late drain does not blur the gaps between adverts).
pub struct Listener {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Listener {
    /// Needs CAP_NET_RAW.
    pub fn open() -> std::io::Result<Listener> {
        let fd = hakit_sys::rawip::socket(PROTOCOL)?;
        setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
        Ok(Listener {
            fd,
            buf: vec![0; 2048],
        })
    }

    /// The next queued advertisement with when it arrived (the kernel's receive time, on
    /// the wall clock), `None` when the queue is empty (what is not an advert is skipped).
    pub fn try_next(&mut self) -> std::io::Result<Option<(Advert, SystemTime)>> {
        loop {
            let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
            let (n, at) = {
                let mut iov = [std::io::IoSliceMut::new(&mut self.buf)];
                match recvmsg::<()>(
                    self.fd.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(m) => {
                        let at = m.cmsgs().ok().into_iter().flatten().find_map(|c| match c {
                            ControlMessageOwned::ScmTimestampns(t) => {
                                let d = Duration::from(t);
                                SystemTime::UNIX_EPOCH.checked_add(d)
                            }
                            _ => None,
                        });
                        (m.bytes, at)
                    }
                    Err(Errno::EAGAIN) => return Ok(None),
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            if let Some(a) = parse(&self.buf[..n.min(self.buf.len())]) {
                return Ok(Some((a, at.unwrap_or_else(SystemTime::now))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An advert as keepalived sends it: IPv4 header, then VRRP.
    fn packet(ttl: u8, vrrp: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, ttl, 112, 0, 0, 198, 51, 100, 3, 224, 0, 0, 18,
        ];
        p.extend_from_slice(vrrp);
        p
    }

    #[test]
    fn reads_v3_and_v2_adverts() {
        // VRRPv3, VRID 51, priority 100, one address, max advert interval 4 cs.
        let v3 = packet(255, &[0x31, 51, 100, 1, 0x00, 0x04, 0, 0, 198, 51, 100, 1]);
        assert_eq!(
            parse(&v3),
            Some(Advert {
                source: Ipv4Addr::new(198, 51, 100, 3),
                vrid: 51,
                priority: 100,
                interval: Duration::from_millis(40)
            })
        );
        // The reserved high bits of the interval field are not part of it.
        let v3 = packet(255, &[0x31, 51, 100, 1, 0xf0, 0x01, 0, 0]);
        assert_eq!(parse(&v3).unwrap().interval, Duration::from_millis(10));
        // VRRPv2: auth type, then the interval in seconds.
        let v2 = packet(255, &[0x21, 7, 150, 1, 0, 1, 0, 0]);
        let a = parse(&v2).unwrap();
        assert_eq!(
            (a.vrid, a.priority, a.interval),
            (7, 150, Duration::from_secs(1))
        );
    }

    #[test]
    fn refuses_what_is_no_advert() {
        let ok = [0x31, 51, 100, 1, 0x00, 0x04, 0, 0];
        assert!(parse(&packet(255, &ok)).is_some());
        // Unicast across a router: keepalived takes it, and so does the listener.
        assert!(parse(&packet(63, &ok)).is_some());
        assert_eq!(
            parse(&packet(255, &[0x32, 51, 100, 1, 0, 4, 0, 0])),
            None,
            "type 2"
        );
        assert_eq!(
            parse(&packet(255, &[0x41, 51, 100, 1, 0, 4, 0, 0])),
            None,
            "version 4"
        );
        assert_eq!(parse(&packet(255, &ok[..7])), None, "short");
        let mut p = packet(255, &ok);
        p[9] = 1;
        assert_eq!(parse(&p), None, "not protocol 112");
        let mut p = packet(255, &ok);
        p[6] = 0x20;
        assert_eq!(parse(&p), None, "a fragment");
        let mut p = packet(255, &ok);
        p[0] = 0x4f;
        assert_eq!(parse(&p), None, "options longer than the packet");
        for n in 0..20 {
            assert_eq!(parse(&packet(255, &ok)[..n]), None);
        }
        assert_eq!(parse(&[]), None);
    }
}

#[cfg(test)]
mod root_tests {
    use super::*;
    use nix::sys::socket::{sendto, SockaddrIn};
    use std::os::fd::AsRawFd;

    /// An advert sent on loopback reaches the listener, with its source and interval.
    #[test]
    #[ignore = "needs root (network namespaces): make integration"]
    fn hears_an_advert_on_loopback() {
        let mut l = Listener::open().expect("raw socket (root)");
        let tx = hakit_sys::rawip::socket(PROTOCOL).unwrap();
        // VRRPv3 advert, VRID 51, priority 100, 4 cs; the kernel adds the IP header.
        let vrrp = [0x31, 51, 100, 0, 0x00, 0x04, 0, 0];
        let to = SockaddrIn::new(127, 0, 0, 1, 0);
        // The first timestamping socket on a host switches the kernel's receive timestamps
        // on from a work queue (net_enable_timestamp): a packet in that window is stamped
        // when it is read. The monitor's listener lives for hours; the test waits it out
        // and drains a first advert before the measured one.
        std::thread::sleep(Duration::from_millis(200));
        sendto(tx.as_raw_fd(), &vrrp, &to, MsgFlags::empty()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        while l.try_next().unwrap().is_some() {}
        sendto(tx.as_raw_fd(), &vrrp, &to, MsgFlags::empty()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        let sent = SystemTime::now();
        std::thread::sleep(Duration::from_millis(50));
        let mut got = None;
        while got.is_none() && std::time::Instant::now() < deadline {
            got = l.try_next().unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        let (a, at) = got.expect("the advert");
        // The kernel's arrival time, not the (50 ms later) read's.
        let lag = at.duration_since(sent).unwrap_or_default();
        assert!(
            lag < Duration::from_millis(40),
            "arrived {lag:?} after sending"
        );
        assert_eq!(a.source, Ipv4Addr::LOCALHOST);
        assert_eq!(
            (a.vrid, a.priority, a.interval),
            (51, 100, Duration::from_millis(40))
        );
        assert_eq!(l.try_next().unwrap(), None, "one advert, read once");
    }
}
