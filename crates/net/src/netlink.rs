//! rtnetlink through neli: links, addresses and neighbours.
//!
//! One [`Netlink`] handle per process, with strict checking and extended ACKs on, so that a
//! malformed request is refused by the kernel with a reason instead of half-understood.
//! Every change is requested with `NLM_F_ACK` and the ACK is awaited: a change is done
//! when the kernel said so, not when the bytes left. Changes are idempotent at this level:
//! adding an address that is there, or deleting one that is not, reports "no change"
//! instead of an error, which is what every caller (hooks that may run twice) wants.

use std::{
    cell::Cell,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use anyhow::{anyhow, Context};
use log::trace;
use neli::{
    consts::{
        nl::{NlmF, NlmsgerrAttr},
        rtnl::{
            Arphrd, Ifa, IfaF, Iff, Ifla, Nda, Nud, RtAddrFamily, RtScope, RtTable, Rta, Rtm, RtmF,
            Rtn, Rtprot,
        },
        socket::NlFamily,
    },
    nl::{NlPayload, Nlmsghdr, NlmsghdrBuilder},
    rtnl::{
        Ifaddrmsg, IfaddrmsgBuilder, Ifinfomsg, IfinfomsgBuilder, Ndmsg, NdmsgBuilder,
        RtattrBuilder, Rtmsg, RtmsgBuilder,
    },
    socket::synchronous::NlSocketHandle,
    types::{Buffer, RtBuffer},
    utils::Groups,
};
use serde::Serialize;

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl std::str::FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Mac, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts
                .next()
                .ok_or_else(|| format!("invalid MAC address {s:?}"))?;
            if p.len() != 2 {
                return Err(format!("invalid MAC address {s:?}"));
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| format!("invalid MAC address {s:?}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("invalid MAC address {s:?}"));
        }
        Ok(Mac(out))
    }
}

/// What a caller needs to know about a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Hardware address; `None` for links without one (loopback has all zeros, tun none).
    pub mac: Option<Mac>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`).
    pub carrier: bool,
    /// `IFF_NOARP`: the link does not do ARP/ND (GARP would be pointless).
    pub noarp: bool,
    pub mtu: u32,
}

/// An address on a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IfAddr {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix: u8,
    /// Global (universe) scope: what `garp-burst` announces by default.
    pub global: bool,
    /// IPv6 duplicate address detection still running.
    pub tentative: bool,
}

/// A neighbour (ARP/NDP) entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Neighbour {
    pub index: u32,
    pub addr: IpAddr,
    pub mac: Option<Mac>,
    /// The kernel's NUD state name (`reachable`, `stale`, `permanent`, …).
    pub state: String,
}

/// `RTM_F_FIB_MATCH` (linux/rtnetlink.h): a lookup answers the routing entry, not a clone.
fn fib_match() -> RtmF {
    RtmF::from_bits_retain(0x2000)
}

/// A route, as the kernel answers a lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub dst: Option<IpAddr>,
    pub dst_len: u8,
    /// The routing table it is in (254: main).
    pub table: u32,
    /// One, or each of a multipath route's.
    pub nexthops: Vec<Nexthop>,
}

/// Where a route sends traffic: out of `oif`, via `gateway` (none: on link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Nexthop {
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
}

/// Whether a change request changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Change {
    Applied,
    AlreadyThere,
}

/// A netlink request refused by the kernel: errno plus the extended ACK message, if any.
#[derive(Debug)]
pub struct KernelError {
    pub errno: i32,
    pub msg: Option<String>,
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.errno))?;
        if let Some(m) = &self.msg {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

impl std::error::Error for KernelError {}

/// Turns a kernel error message into a typed [`KernelError`] with the extended ACK text.
fn kernel_err<M>(err: &neli::err::Nlmsgerr<M>) -> anyhow::Error {
    let msg = err
        .ext_ack()
        .get_attr_handle()
        .get_attr_payload_as_with_len::<String>(NlmsgerrAttr::Msg)
        .ok()
        .map(|s| s.trim_end_matches('\0').to_string())
        .filter(|s| !s.is_empty());
    anyhow::Error::new(KernelError {
        errno: err.error().abs(),
        msg,
    })
}

pub(crate) fn errno_of(e: &anyhow::Error) -> Option<i32> {
    e.downcast_ref::<KernelError>().map(|k| k.errno)
}

/// A route netlink socket.
///
/// Requests are synchronous on a plain socket: one request in flight, replies read until
/// the ACK, the error or the end of the dump. (neli's `NlRouter` would add a processing
/// thread and channels: more code, and a thread start on the failover hot path.)
pub struct Netlink {
    sock: NlSocketHandle,
    seq: Cell<u32>,
}

impl Netlink {
    /// Opens the socket in the caller's network namespace.
    pub fn open() -> anyhow::Result<Netlink> {
        let sock = NlSocketHandle::connect(NlFamily::Route, None, Groups::empty())
            .map_err(|e| anyhow!("open rtnetlink socket: {e}"))?;
        sock.enable_strict_checking(true)
            .map_err(|e| anyhow!("enable netlink strict checking: {e}"))?;
        sock.enable_ext_ack(true)
            .map_err(|e| anyhow!("enable netlink extended ack: {e}"))?;
        Ok(Netlink {
            sock,
            seq: Cell::new(1),
        })
    }

    /// Sends a request and maps the payload of every reply message through `parse`.
    /// Non-dump requests always ask for an ACK, so every request ends on an explicit
    /// ACK, error or NLMSG_DONE, never on a guess.
    pub(crate) fn request<P, R, X>(
        &self,
        ty: Rtm,
        flags: NlmF,
        payload: P,
        parse: impl Fn(&R) -> Option<X>,
    ) -> anyhow::Result<Vec<X>>
    where
        P: neli::Size + neli::ToBytes + fmt::Debug,
        R: neli::Size + neli::FromBytesWithInput<Input = usize> + fmt::Debug,
    {
        let dump = flags.contains(NlmF::DUMP);
        let flags = if dump { flags } else { flags | NlmF::ACK };
        let seq = self.seq.get();
        self.seq.set(seq.wrapping_add(1));
        let msg = NlmsghdrBuilder::default()
            .nl_type(ty)
            .nl_flags(flags | NlmF::REQUEST)
            .nl_seq(seq)
            .nl_pid(0)
            .nl_payload(NlPayload::Payload(payload))
            .build()?;
        trace!("netlink request seq {seq}: {msg:?}");
        self.sock
            .send(&msg)
            .map_err(|e| anyhow!("netlink send: {e}"))?;
        let mut out = Vec::new();
        loop {
            let (msgs, _) = self
                .sock
                .recv::<Rtm, R>()
                .map_err(|e| anyhow!("netlink receive: {e}"))?;
            for m in msgs {
                let m: Nlmsghdr<Rtm, R> = m.map_err(|e| anyhow!("netlink parse: {e}"))?;
                if *m.nl_seq() != seq {
                    trace!("netlink: skipping reply for seq {}", m.nl_seq());
                    continue;
                }
                match m.nl_payload() {
                    NlPayload::Payload(p) => out.extend(parse(p)),
                    NlPayload::Err(e) => return Err(kernel_err(e)),
                    NlPayload::Ack(_) | NlPayload::DumpExtAck(_) | NlPayload::Empty => {
                        trace!("netlink seq {seq}: done, {} item(s)", out.len());
                        return Ok(out);
                    }
                }
            }
        }
    }

    /// Looks a link up by name; `Ok(None)` when no such link exists.
    pub fn link_by_name(&self, name: &str) -> anyhow::Result<Option<Link>> {
        if name.is_empty()
            || name.len() > 15
            || name.contains(['/', '\0'])
            || name.contains(char::is_whitespace)
        {
            return Ok(None);
        }
        let mut attrs = RtBuffer::new();
        attrs.push(
            RtattrBuilder::default()
                .rta_type(Ifla::Ifname)
                .rta_payload(format!("{name}\0"))
                .build()?,
        );
        let msg = IfinfomsgBuilder::default()
            .ifi_family(RtAddrFamily::Unspecified)
            .ifi_type(Arphrd::Netrom) // 0: strict checking refuses any other value
            .ifi_index(0)
            .rtattrs(attrs)
            .build()?;
        match self.request(Rtm::Getlink, NlmF::empty(), msg, |l: &Ifinfomsg| {
            Some(parse_link(l))
        }) {
            Ok(mut links) => Ok(links.pop()),
            Err(e) if errno_of(&e) == Some(nix::libc::ENODEV) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("get link {name}")),
        }
    }

    /// Looks a link up by index; `Ok(None)` when no such link exists.
    pub fn link_by_index(&self, index: u32) -> anyhow::Result<Option<Link>> {
        let msg = IfinfomsgBuilder::default()
            .ifi_family(RtAddrFamily::Unspecified)
            .ifi_type(Arphrd::Netrom) // 0: strict checking refuses any other value
            .ifi_index(i32::try_from(index).context("link index out of range")?)
            .build()?;
        match self.request(Rtm::Getlink, NlmF::empty(), msg, |l: &Ifinfomsg| {
            Some(parse_link(l))
        }) {
            Ok(mut links) => Ok(links.pop()),
            Err(e) if errno_of(&e) == Some(nix::libc::ENODEV) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("get link #{index}")),
        }
    }

    /// All links.
    pub fn links(&self) -> anyhow::Result<Vec<Link>> {
        let msg = IfinfomsgBuilder::default()
            .ifi_family(RtAddrFamily::Unspecified)
            .ifi_type(Arphrd::Netrom) // 0: strict checking refuses any other value
            .build()?;
        self.request(Rtm::Getlink, NlmF::DUMP, msg, |l: &Ifinfomsg| {
            Some(parse_link(l))
        })
        .context("dump links")
    }

    /// Addresses, of one link (`Some(index)`) or of all.
    pub fn addresses(&self, index: Option<u32>) -> anyhow::Result<Vec<IfAddr>> {
        let msg = IfaddrmsgBuilder::default()
            .ifa_family(RtAddrFamily::Unspecified)
            .ifa_prefixlen(0)
            .ifa_scope(RtScope::Universe)
            .ifa_index(index.unwrap_or(0))
            .build()?;
        let addrs = self
            .request(Rtm::Getaddr, NlmF::DUMP, msg, parse_addr)
            .context("dump addresses")?;
        Ok(addrs
            .into_iter()
            .filter(|a| index.is_none_or(|i| a.index == i))
            .collect())
    }

    /// Adds `addr/prefix` to link `index`; [`Change::AlreadyThere`] if it was present.
    pub fn add_address(&self, index: u32, addr: IpAddr, prefix: u8) -> anyhow::Result<Change> {
        let msg = addr_msg(index, addr, prefix)?;
        match self.request(
            Rtm::Newaddr,
            NlmF::CREATE | NlmF::EXCL | NlmF::ACK,
            msg,
            |_: &Ifaddrmsg| Some(()),
        ) {
            Ok(_) => Ok(Change::Applied),
            Err(e) if errno_of(&e) == Some(nix::libc::EEXIST) => Ok(Change::AlreadyThere),
            Err(e) => Err(e).with_context(|| format!("add {addr}/{prefix} to link {index}")),
        }
    }

    /// Removes `addr/prefix` from link `index`; [`Change::AlreadyThere`] if it was absent.
    pub fn del_address(&self, index: u32, addr: IpAddr, prefix: u8) -> anyhow::Result<Change> {
        let msg = addr_msg(index, addr, prefix)?;
        match self.request(Rtm::Deladdr, NlmF::empty(), msg, |_: &Ifaddrmsg| Some(())) {
            Ok(_) => Ok(Change::Applied),
            Err(e) if errno_of(&e) == Some(nix::libc::EADDRNOTAVAIL) => Ok(Change::AlreadyThere),
            Err(e) => Err(e).with_context(|| format!("delete {addr}/{prefix} from link {index}")),
        }
    }

    /// The route the kernel uses for `addr` (`RTM_GETROUTE` for one address with
    /// `RTM_F_FIB_MATCH`: the routing entry itself, its prefix and next hops, as
    /// `ip route get fibmatch` prints it), through the policy rules, from any table.
    /// `Ok(None)` when the kernel has no unicast route there (unreachable, blackhole,
    /// prohibit). One message whatever the size of the table: a gateway fed a full BGP
    /// table holds a million routes, which a dump would copy on every probe.
    pub fn route_to(&self, addr: IpAddr) -> anyhow::Result<Option<Route>> {
        let len = if addr.is_ipv4() { 32 } else { 128 };
        let mut attrs = RtBuffer::new();
        attrs.push(rta(Rta::Dst, ip_bytes(addr))?);
        // RTM_F_FIB_MATCH (linux/rtnetlink.h). neli names it on glibc targets only, and its
        // from_bits_truncate drops the bit on musl (the static build): a lookup without it
        // answers a cloned /32, never the route (the systemd lab saw it).
        let msg = rtmsg(
            family(addr.is_ipv4()),
            len,
            0,
            Rtprot::Unspec,
            Rtn::Unspec,
            fib_match(),
            attrs,
        )?;
        match self.request(Rtm::Getroute, NlmF::empty(), msg, parse_route) {
            Ok(mut r) => Ok(r.pop()),
            // No route, or one that is not unicast (the kernel refuses to describe a
            // blackhole's or prohibit route's FIB match with EINVAL).
            Err(e)
                if matches!(
                    errno_of(&e),
                    Some(nix::libc::ENETUNREACH | nix::libc::EHOSTUNREACH | nix::libc::EINVAL)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e).with_context(|| format!("get the route to {addr}")),
        }
    }

    /// Neighbour entries, of one link or of all.
    pub fn neighbours(&self, index: Option<u32>) -> anyhow::Result<Vec<Neighbour>> {
        let msg = NdmsgBuilder::default()
            .ndm_family(RtAddrFamily::Unspecified)
            .ndm_index(index.map_or(0, |i| i as i32))
            .ndm_state(Nud::empty())
            .ndm_flags(neli::consts::rtnl::Ntf::empty())
            .ndm_type(neli::consts::rtnl::Rtn::Unspec)
            .build()?;
        let neigh = self
            .request(Rtm::Getneigh, NlmF::DUMP, msg, parse_neigh)
            .context("dump neighbours")?;
        Ok(neigh
            .into_iter()
            .filter(|n| index.is_none_or(|i| n.index == i))
            .collect())
    }
}

/// An attribute of a route or rule message.
pub(crate) fn rta(ty: Rta, payload: Vec<u8>) -> anyhow::Result<neli::rtnl::Rtattr<Rta, Buffer>> {
    Ok(RtattrBuilder::default()
        .rta_type(ty)
        .rta_payload(Buffer::from(payload))
        .build()?)
}

/// An address's bytes, in network order.
pub(crate) fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

pub(crate) fn family(v4: bool) -> RtAddrFamily {
    if v4 {
        RtAddrFamily::Inet
    } else {
        RtAddrFamily::Inet6
    }
}

/// An `rtmsg` with the table left to RTA_TABLE, scope universe, tos 0. A FIB rule's header
/// (linux/fib_rules.h) has this layout too: protocol and scope are its reserved bytes, the
/// type its action.
pub(crate) fn rtmsg(
    family: RtAddrFamily,
    dst_len: u8,
    src_len: u8,
    protocol: Rtprot,
    kind: Rtn,
    flags: RtmF,
    attrs: RtBuffer<Rta, Buffer>,
) -> anyhow::Result<Rtmsg> {
    Ok(RtmsgBuilder::default()
        .rtm_family(family)
        .rtm_dst_len(dst_len)
        .rtm_src_len(src_len)
        .rtm_tos(0)
        .rtm_table(RtTable::Unspec)
        .rtm_protocol(protocol)
        .rtm_scope(RtScope::Universe)
        .rtm_type(kind)
        .rtm_flags(flags)
        .rtattrs(attrs)
        .build()?)
}

fn addr_msg(index: u32, addr: IpAddr, prefix: u8) -> anyhow::Result<Ifaddrmsg> {
    let (family, bytes, max): (_, Vec<u8>, u8) = match addr {
        IpAddr::V4(a) => (RtAddrFamily::Inet, a.octets().to_vec(), 32),
        IpAddr::V6(a) => (RtAddrFamily::Inet6, a.octets().to_vec(), 128),
    };
    if prefix > max {
        anyhow::bail!("prefix /{prefix} is too long for {addr}");
    }
    let mut attrs = RtBuffer::new();
    for ty in [Ifa::Local, Ifa::Address] {
        attrs.push(
            RtattrBuilder::default()
                .rta_type(ty)
                .rta_payload(Buffer::from(bytes.clone()))
                .build()?,
        );
    }
    if addr.is_ipv6() {
        // A floating address must be usable at once: no duplicate address detection
        // (keepalived adds its IPv6 VIPs the same way). Ignored on delete.
        attrs.push(
            RtattrBuilder::default()
                .rta_type(Ifa::Flags)
                .rta_payload(nix::libc::IFA_F_NODAD)
                .build()?,
        );
    }
    Ok(IfaddrmsgBuilder::default()
        .ifa_family(family)
        .ifa_prefixlen(prefix)
        .ifa_scope(RtScope::Universe)
        .ifa_index(index)
        .rtattrs(attrs)
        .build()?)
}

fn parse_link(l: &Ifinfomsg) -> Link {
    let h = l.rtattrs().get_attr_handle();
    let name = h
        .get_attr_payload_as_with_len::<String>(Ifla::Ifname)
        .map(|s| s.trim_end_matches('\0').to_string())
        .unwrap_or_default();
    let mac = h.get_attribute(Ifla::Address).and_then(|a| {
        let b: &[u8] = a.rta_payload().as_ref();
        <[u8; 6]>::try_from(b).ok().map(Mac)
    });
    let mtu = h.get_attr_payload_as::<u32>(Ifla::Mtu).unwrap_or(0);
    let flags = l.ifi_flags();
    Link {
        index: u32::try_from(*l.ifi_index()).unwrap_or(0),
        name,
        mac,
        up: flags.contains(Iff::UP),
        carrier: flags.contains(Iff::LOWERUP),
        noarp: flags.contains(Iff::NOARP),
        mtu,
    }
}

pub(crate) fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
        _ => None,
    }
}

fn parse_addr(a: &Ifaddrmsg) -> Option<IfAddr> {
    let h = a.rtattrs().get_attr_handle();
    // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS the
    // peer there. Elsewhere both are equal and IPv6 sends only IFA_ADDRESS.
    let raw = h
        .get_attribute(Ifa::Local)
        .or_else(|| h.get_attribute(Ifa::Address))?;
    let addr = ip_from_bytes(raw.rta_payload().as_ref())?;
    // IFA_FLAGS (u32) supersedes the 8-bit ifa_flags when present.
    let flags32 = h.get_attr_payload_as::<u32>(Ifa::Flags).ok();
    let tentative = match flags32 {
        Some(f) => f & nix::libc::IFA_F_TENTATIVE != 0,
        None => a.ifa_flags().contains(IfaF::TENTATIVE),
    };
    Some(IfAddr {
        index: *a.ifa_index(),
        addr,
        prefix: *a.ifa_prefixlen(),
        global: *a.ifa_scope() == RtScope::Universe,
        tentative,
    })
}

pub(crate) fn parse_route(r: &Rtmsg) -> Option<Route> {
    let h = r.rtattrs().get_attr_handle();
    if *r.rtm_type() != Rtn::Unicast {
        return None;
    }
    let ip = |t: Rta| {
        h.get_attribute(t)
            .and_then(|a| ip_from_bytes(a.rta_payload().as_ref()))
    };
    let mut nexthops = match h.get_attribute(Rta::Multipath) {
        Some(a) => parse_multipath(a.rta_payload().as_ref()),
        None => Vec::new(),
    };
    if nexthops.is_empty() {
        nexthops.push(Nexthop {
            oif: h.get_attr_payload_as::<u32>(Rta::Oif).ok(),
            gateway: ip(Rta::Gateway),
        });
    }
    Some(Route {
        dst: ip(Rta::Dst),
        dst_len: *r.rtm_dst_len(),
        table: h
            .get_attr_payload_as::<u32>(Rta::Table)
            .unwrap_or(u32::from(u8::from(*r.rtm_table()))),
        nexthops,
    })
}

/// `RTA_MULTIPATH`: `struct rtnexthop { u16 len; u8 flags; u8 hops; i32 ifindex; }`, each
/// followed by its own attributes (`RTA_GATEWAY`), all 4-byte aligned (linux/rtnetlink.h).
fn parse_multipath(mut b: &[u8]) -> Vec<Nexthop> {
    let align = |n: usize| (n + 3) & !3;
    let mut out = Vec::new();
    while b.len() >= 8 {
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        if len < 8 || len > b.len() {
            break;
        }
        let oif = u32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        let mut gateway = None;
        let mut attrs = &b[8..len];
        while attrs.len() >= 4 {
            let alen = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
            let ty = u16::from_ne_bytes([attrs[2], attrs[3]]);
            if alen < 4 || alen > attrs.len() {
                break;
            }
            if ty == nix::libc::RTA_GATEWAY {
                gateway = ip_from_bytes(&attrs[4..alen]);
            }
            attrs = &attrs[align(alen).min(attrs.len())..];
        }
        out.push(Nexthop {
            oif: (oif > 0).then_some(oif),
            gateway,
        });
        b = &b[align(len).min(b.len())..];
    }
    out
}

fn nud_name(n: &Nud) -> String {
    const NAMES: [(Nud, &str); 8] = [
        (Nud::INCOMPLETE, "incomplete"),
        (Nud::REACHABLE, "reachable"),
        (Nud::STALE, "stale"),
        (Nud::DELAY, "delay"),
        (Nud::PROBE, "probe"),
        (Nud::FAILED, "failed"),
        (Nud::NOARP, "noarp"),
        (Nud::PERMANENT, "permanent"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(f, _)| n.contains(*f))
        .map(|(_, s)| *s)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

fn parse_neigh(n: &Ndmsg) -> Option<Neighbour> {
    let h = n.rtattrs().get_attr_handle();
    let addr = ip_from_bytes(h.get_attribute(Nda::Dst)?.rta_payload().as_ref())?;
    let mac = h.get_attribute(Nda::Lladdr).and_then(|a| {
        let b: &[u8] = a.rta_payload().as_ref();
        <[u8; 6]>::try_from(b).ok().map(Mac)
    });
    Some(Neighbour {
        index: u32::try_from(*n.ndm_index()).ok()?,
        addr,
        mac,
        state: nud_name(n.ndm_state()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flag survives on every target (the static musl build dropped it once).
    #[test]
    fn fib_match_flag_is_sent() {
        assert_eq!(fib_match().bits(), 0x2000);
    }

    /// Two next hops as the kernel encodes `nexthop via 203.0.113.5 dev #3 nexthop via
    /// 203.0.113.6 dev #4`; a truncated or lying length ends the parse, never panics.
    #[test]
    fn multipath_next_hops() {
        let hop = |oif: u32, gw: [u8; 4]| {
            let mut b = Vec::new();
            b.extend_from_slice(&16u16.to_ne_bytes()); // rtnh_len: 8 + an 8-byte attribute
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&oif.to_ne_bytes());
            b.extend_from_slice(&8u16.to_ne_bytes());
            b.extend_from_slice(&nix::libc::RTA_GATEWAY.to_ne_bytes());
            b.extend_from_slice(&gw);
            b
        };
        let mut b = hop(3, [203, 0, 113, 5]);
        b.extend(hop(4, [203, 0, 113, 6]));
        let hops = parse_multipath(&b);
        assert_eq!(
            hops,
            [
                Nexthop {
                    oif: Some(3),
                    gateway: Some("203.0.113.5".parse().unwrap())
                },
                Nexthop {
                    oif: Some(4),
                    gateway: Some("203.0.113.6".parse().unwrap())
                }
            ]
        );
        for cut in 0..b.len() {
            assert!(parse_multipath(&b[..cut]).len() <= 2);
        }
        let mut lying = b.clone();
        lying[0] = 0xff;
        lying[1] = 0xff;
        assert_eq!(parse_multipath(&lying), []);
        lying[0..2].copy_from_slice(&3u16.to_ne_bytes());
        assert_eq!(parse_multipath(&lying), []);
    }

    #[test]
    fn mac_parses_and_prints() {
        let m: Mac = "02:00:5e:00:01:0a".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:5e:00:01:0a");
        for bad in [
            "",
            "02:00",
            "02:00:5e:00:01:0a:00",
            "zz:00:5e:00:01:0a",
            "2:0:5e:0:1:a",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn nud_names_are_readable() {
        assert_eq!(nud_name(&Nud::STALE), "stale");
        assert_eq!(nud_name(&Nud::empty()), "none");
    }

    #[test]
    fn link_lookup_reads_the_kernel_and_refuses_bad_names() {
        // Read-only requests work without privileges in any namespace.
        let nl = Netlink::open().unwrap();
        let lo = nl
            .link_by_name("lo")
            .unwrap()
            .expect("every namespace has lo");
        assert_eq!(lo.name, "lo");
        assert!(lo.index > 0);
        assert!(nl.links().unwrap().iter().any(|l| l.index == lo.index));
        assert_eq!(nl.link_by_index(lo.index).unwrap(), Some(lo.clone()));
        assert_eq!(nl.link_by_index(i32::MAX as u32).unwrap(), None);
        for name in ["", "a/b", "sixteen-chars-xx", "a b", "hakit-no-such"] {
            assert_eq!(nl.link_by_name(name).unwrap(), None, "{name:?}");
        }
        // A lookup answers whatever the namespace holds (a route or none), never an error.
        nl.route_to("240.0.0.1".parse().unwrap()).unwrap();
        nl.route_to("3fff:fff:ffff:ffff::1".parse().unwrap())
            .unwrap();
        // Several requests on one socket keep their sequence numbers straight.
        for _ in 0..3 {
            nl.addresses(Some(lo.index)).unwrap();
        }
    }
}
