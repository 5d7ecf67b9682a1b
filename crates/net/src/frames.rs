//! Byte-exact link-layer announcement frames.
//!
//! Pure functions, no I/O, so every byte is pinned by a golden test.
//!
//! * Gratuitous ARP (RFC 5227 §2.3 "ARP Announcement", RFC 826 layout): an ARP *request*
//!   broadcast with sender IP = target IP = the address; target hardware address all zeros
//!   (RFC 5227: "ignored and SHOULD be set to all zeroes"). The *reply* form (opcode 2,
//!   target hardware = sender hardware, as iputils `arping -A` sends it) exists for old
//!   switches and hosts that ignore gratuitous requests.
//! * Unsolicited neighbour advertisement (RFC 4861 §4.4, §7.2.6): to all-nodes ff02::1,
//!   hop limit 255, source = the announced address (as Linux's own `ndisc_send_unsol_na`),
//!   Override flag set so receivers replace a cached link-layer address, the Router flag set
//!   when the sender forwards IPv6 (a router announcing itself with R=0 makes hosts drop it
//!   from their default-router list), and the target link-layer address option.
//!
//! Frames shorter than the Ethernet minimum are zero-padded to 60 bytes (without FCS):
//! raw `AF_PACKET` sends are not padded by every driver (veth is not).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::netlink::Mac;

/// EtherType of ARP (IEEE 802 numbers).
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// Ethernet broadcast.
pub const BROADCAST: Mac = Mac([0xff; 6]);
/// Multicast MAC of ff02::1 (RFC 2464 §7: 33:33 + low 32 bits).
pub const ALL_NODES_MAC: Mac = Mac([0x33, 0x33, 0, 0, 0, 1]);
/// IPv6 all-nodes link-local multicast.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// ARP opcodes (RFC 826).
pub const ARPOP_REQUEST: u16 = 1;
pub const ARPOP_REPLY: u16 = 2;
/// ICMPv6 type of a neighbour advertisement (RFC 4861 §4.4).
pub const ICMPV6_NA: u8 = 136;
/// IPv6 next header value of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// NA flags (RFC 4861 §4.4), in the first byte of the 32-bit flags word.
pub const NA_ROUTER: u8 = 0x80;
pub const NA_SOLICITED: u8 = 0x40;
pub const NA_OVERRIDE: u8 = 0x20;
/// ND option "target link-layer address" (RFC 4861 §4.6.1).
pub const ND_OPT_TARGET_LLADDR: u8 = 2;

const ETH_MIN_FRAME: usize = 60;

fn eth_header(out: &mut Vec<u8>, dst: Mac, src: Mac, ethertype: u16) {
    out.extend_from_slice(&dst.0);
    out.extend_from_slice(&src.0);
    out.extend_from_slice(&ethertype.to_be_bytes());
}

/// A gratuitous ARP frame for `ip` owned by `mac`: request form, or reply form if `reply`.
pub fn garp(mac: Mac, ip: Ipv4Addr, reply: bool) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_MIN_FRAME);
    eth_header(&mut f, BROADCAST, mac, ETH_P_ARP);
    f.extend_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // protocol type: IPv4
    f.push(6); // hardware address length
    f.push(4); // protocol address length
    let (op, tha) = if reply {
        (ARPOP_REPLY, mac.0)
    } else {
        (ARPOP_REQUEST, [0; 6])
    };
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&tha);
    f.extend_from_slice(&ip.octets());
    f.resize(ETH_MIN_FRAME, 0);
    f
}

/// An ARP probe (RFC 5227 §2.1.1) asking who has `ip`: a broadcast request from `mac`
/// with sender IP 0.0.0.0, so no receiver caches anything from it. Whoever holds `ip`
/// answers with a reply to `mac`.
pub fn arp_probe(mac: Mac, ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_MIN_FRAME);
    eth_header(&mut f, BROADCAST, mac, ETH_P_ARP);
    f.extend_from_slice(&1u16.to_be_bytes());
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.push(6);
    f.push(4);
    f.extend_from_slice(&ARPOP_REQUEST.to_be_bytes());
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip.octets());
    f.resize(ETH_MIN_FRAME, 0);
    f
}

/// The sender of an ARP frame that claims `ip` (a reply, or a gratuitous request, with
/// sender IP `ip`), if `frame` is one.
pub fn arp_claimant(frame: &[u8], ip: Ipv4Addr) -> Option<Mac> {
    if frame.len() < 42 || frame[12..14] != ETH_P_ARP.to_be_bytes() {
        return None;
    }
    let op = u16::from_be_bytes([frame[20], frame[21]]);
    if (op != ARPOP_REPLY && op != ARPOP_REQUEST) || frame[28..32] != ip.octets() {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&frame[22..28]);
    Some(Mac(mac))
}

/// An unsolicited neighbour advertisement for `ip` owned by `mac`.
pub fn unsolicited_na(mac: Mac, ip: Ipv6Addr, router: bool) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(32);
    icmp.push(ICMPV6_NA);
    icmp.push(0); // code
    icmp.extend_from_slice(&[0, 0]); // checksum, filled below
    icmp.push(NA_OVERRIDE | if router { NA_ROUTER } else { 0 });
    icmp.extend_from_slice(&[0, 0, 0]); // rest of flags word: reserved
    icmp.extend_from_slice(&ip.octets()); // target address
    icmp.push(ND_OPT_TARGET_LLADDR);
    icmp.push(1); // option length in units of 8 bytes
    icmp.extend_from_slice(&mac.0);
    let sum = icmpv6_checksum(ip, ALL_NODES, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    eth_header(&mut f, ALL_NODES_MAC, mac, ETH_P_IPV6);
    f.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, traffic class 0, flow label 0
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.push(IPPROTO_ICMPV6);
    f.push(255); // hop limit: receivers drop ND with anything else (RFC 4861 §7.1.2)
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&ALL_NODES.octets());
    f.extend_from_slice(&icmp);
    f
}

/// ICMPv6 type of a neighbour solicitation (RFC 4861 §4.3).
pub const ICMPV6_NS: u8 = 135;
/// ND option "source link-layer address" (RFC 4861 §4.6.1).
pub const ND_OPT_SOURCE_LLADDR: u8 = 1;

/// The solicited-node multicast address of `ip` (RFC 4291 §2.7.1): ff02::1:ffXX:XXXX.
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// A neighbour solicitation (RFC 4861 §4.3, §7.2.2) from `src` (this link's link-local
/// address) and `mac` for `target`, to target's solicited-node group, hop limit 255, with
/// the source link-layer address option: what a host sends to resolve its gateway.
pub fn neighbour_solicitation(mac: Mac, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let mut icmp = Vec::with_capacity(32);
    icmp.push(ICMPV6_NS);
    icmp.push(0); // code
    icmp.extend_from_slice(&[0, 0]); // checksum, filled below
    icmp.extend_from_slice(&[0, 0, 0, 0]); // reserved
    icmp.extend_from_slice(&target.octets());
    icmp.push(ND_OPT_SOURCE_LLADDR);
    icmp.push(1);
    icmp.extend_from_slice(&mac.0);
    let sum = icmpv6_checksum(src, group, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let g = group.octets();
    let dst = Mac([0x33, 0x33, g[12], g[13], g[14], g[15]]);
    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    eth_header(&mut f, dst, mac, ETH_P_IPV6);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.push(IPPROTO_ICMPV6);
    f.push(255);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&group.octets());
    f.extend_from_slice(&icmp);
    f
}

/// The sender of a neighbour advertisement for `target` (an Ethernet frame carrying IPv6
/// with ICMPv6 directly, hop limit 255 as RFC 4861 §7.1.2 requires), if `frame` is one.
pub fn na_sender(frame: &[u8], target: Ipv6Addr) -> Option<Mac> {
    if frame.len() < 14 + 40 + 24 || frame[12..14] != ETH_P_IPV6.to_be_bytes() {
        return None;
    }
    let ip = &frame[14..];
    if ip[0] >> 4 != 6 || ip[6] != IPPROTO_ICMPV6 || ip[7] != 255 {
        return None;
    }
    let icmp = &ip[40..];
    if icmp[0] != ICMPV6_NA || icmp[1] != 0 || icmp[8..24] != target.octets() {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&frame[6..12]);
    Some(Mac(mac))
}

/// The ICMPv6 checksum (RFC 4443 §2.3) over the IPv6 pseudo-header (RFC 8200 §8.1) and the
/// message, whose checksum field must be zero.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for chunk in bytes.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, IPPROTO_ICMPV6]);
    add(msg);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_solicitation_golden() {
        let src: Ipv6Addr = "fe80::5eff:fe00:10a".parse().unwrap();
        let target: Ipv6Addr = "2001:db8::1:2:3".parse().unwrap();
        let f = neighbour_solicitation(MAC, src, target);
        assert_eq!(solicited_node(target).to_string(), "ff02::1:ff02:3");
        #[rustfmt::skip]
        let head: [u8; 22] = [
            0x33, 0x33, 0xff, 0x02, 0x00, 0x03, // dst: 33:33 + the group's low 32 bits
            0x02, 0x00, 0x5e, 0x00, 0x01, 0x0a, // src
            0x86, 0xdd,                         // ethertype IPv6
            0x60, 0, 0, 0,                      // version 6
            0x00, 0x20,                         // payload: 32 bytes
            58, 255,                            // ICMPv6, hop limit 255
        ];
        assert_eq!(f[..22], head);
        assert_eq!(f[22..38], src.octets());
        assert_eq!(f[38..54], solicited_node(target).octets());
        let icmp = &f[54..];
        assert_eq!(icmp.len(), 32);
        assert_eq!((icmp[0], icmp[1]), (ICMPV6_NS, 0));
        assert_eq!(icmp[8..24], target.octets());
        assert_eq!(icmp[24..26], [ND_OPT_SOURCE_LLADDR, 1]);
        assert_eq!(icmp[26..32], MAC.0);
        // The checksum verifies: summing with it in place gives 0.
        let mut zeroed = icmp.to_vec();
        let sum = u16::from_be_bytes([icmp[2], icmp[3]]);
        zeroed[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(icmpv6_checksum(src, solicited_node(target), &zeroed), sum);
        // An NA for the target, as the gateway answers, is recognised; others are not.
        let na = unsolicited_na(Mac([2, 0, 0, 0, 0, 1]), target, true);
        assert_eq!(na_sender(&na, target), Some(Mac([2, 0, 0, 0, 0, 1])));
        assert_eq!(na_sender(&na, src), None);
        assert_eq!(na_sender(&f, target), None);
    }

    const MAC: Mac = Mac([0x02, 0x00, 0x5e, 0x00, 0x01, 0x0a]);

    #[test]
    fn garp_request_golden() {
        let f = garp(MAC, Ipv4Addr::new(192, 0, 2, 10), false);
        #[rustfmt::skip]
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst: broadcast
            0x02, 0x00, 0x5e, 0x00, 0x01, 0x0a, // src
            0x08, 0x06,                         // ethertype ARP
            0x00, 0x01, 0x08, 0x00, 6, 4,       // Ethernet/IPv4, lengths
            0x00, 0x01,                         // opcode request
            0x02, 0x00, 0x5e, 0x00, 0x01, 0x0a, // sender MAC
            192, 0, 2, 10,                      // sender IP
            0, 0, 0, 0, 0, 0,                   // target MAC: zero (RFC 5227)
            192, 0, 2, 10,                      // target IP = sender IP
        ];
        assert_eq!(&f[..42], &want);
        assert_eq!(f.len(), 60);
        assert!(f[42..].iter().all(|&b| b == 0));
    }

    #[test]
    fn garp_reply_golden() {
        let f = garp(MAC, Ipv4Addr::new(192, 0, 2, 10), true);
        assert_eq!(&f[20..22], &[0x00, 0x02]);
        assert_eq!(&f[32..38], &MAC.0, "reply form: target MAC = sender MAC");
        assert_eq!(&f[38..42], &[192, 0, 2, 10]);
    }

    #[test]
    fn arp_probe_golden_and_claimant() {
        let ip = Ipv4Addr::new(198, 51, 100, 1);
        let f = arp_probe(MAC, ip);
        #[rustfmt::skip]
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0x02, 0x00, 0x5e, 0x00, 0x01, 0x0a,
            0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 6, 4,
            0x00, 0x01,                         // request
            0x02, 0x00, 0x5e, 0x00, 0x01, 0x0a, // sender MAC
            0, 0, 0, 0,                         // sender IP 0.0.0.0 (RFC 5227 probe)
            0, 0, 0, 0, 0, 0,
            198, 51, 100, 1,                    // target IP: the address asked about
        ];
        assert_eq!(&f[..42], &want);
        // Our own probe does not claim the address; a GARP or a reply from a peer does.
        assert_eq!(arp_claimant(&f, ip), None);
        let other = Mac([0x02, 0, 0, 0, 0, 0x02]);
        assert_eq!(arp_claimant(&garp(other, ip, true), ip), Some(other));
        assert_eq!(arp_claimant(&garp(other, ip, false), ip), Some(other));
        assert_eq!(
            arp_claimant(&garp(other, Ipv4Addr::new(198, 51, 100, 2), true), ip),
            None
        );
        assert_eq!(arp_claimant(&f[..30], ip), None, "short frame");
        let mut ipv6 = garp(other, ip, true);
        ipv6[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        assert_eq!(arp_claimant(&ipv6, ip), None, "not ARP");
    }

    #[test]
    fn unsolicited_na_golden() {
        let ip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let f = unsolicited_na(MAC, ip, false);
        #[rustfmt::skip]
        let mut want: Vec<u8> = vec![
            0x33, 0x33, 0, 0, 0, 1,             // dst: all-nodes multicast MAC
            0x02, 0x00, 0x5e, 0x00, 0x01, 0x0a, // src
            0x86, 0xdd,                         // ethertype IPv6
            0x60, 0, 0, 0,                      // version 6
            0, 32, 58, 255,                     // payload 32, ICMPv6, hop limit 255
        ];
        want.extend_from_slice(&ip.octets()); // source = announced address
        want.extend_from_slice(&ALL_NODES.octets());
        #[rustfmt::skip]
        want.extend_from_slice(&[
            136, 0, 0x9a, 0x03,                 // NA, code 0, checksum (computed independently)
            0x20, 0, 0, 0,                      // flags: Override only
        ]);
        want.extend_from_slice(&ip.octets()); // target
        want.extend_from_slice(&[2, 1, 0x02, 0x00, 0x5e, 0x00, 0x01, 0x0a]); // TLLA option
        assert_eq!(f, want);
    }

    #[test]
    fn router_flag_changes_flags_and_checksum() {
        let ip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let f = unsolicited_na(MAC, ip, true);
        assert_eq!(f[54 + 4], 0xa0, "Router | Override");
        assert_eq!(&f[54 + 2..54 + 4], &[0x1a, 0x03]);
    }

    #[test]
    fn checksum_verifies_to_zero() {
        let ip: Ipv6Addr = "2001:db8:ffff::1".parse().unwrap();
        let f = unsolicited_na(Mac([0xfe; 6]), ip, false);
        // Summing a message that carries its correct checksum gives 0 after inversion.
        assert_eq!(icmpv6_checksum(ip, ALL_NODES, &f[54..]), 0);
    }
}
