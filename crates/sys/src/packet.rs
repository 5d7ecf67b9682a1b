//! `sockaddr_ll`: nix builds it only from a raw pointer.

use anyhow::Context;
use nix::sys::socket::{LinkAddr, SockaddrLike};

/// The link-layer address of an AF_PACKET socket: interface `ifindex`, EtherType
/// `protocol` (host order), and a destination hardware address (the first `halen` bytes
/// of `addr`, at most 8; 0 to bind).
#[allow(unsafe_code)]
pub fn link_addr(
    ifindex: u32,
    protocol: u16,
    halen: u8,
    addr: [u8; 8],
) -> anyhow::Result<LinkAddr> {
    let sll = nix::libc::sockaddr_ll {
        sll_family: nix::libc::AF_PACKET as u16,
        sll_protocol: protocol.to_be(),
        sll_ifindex: i32::try_from(ifindex).context("interface index out of range")?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: halen,
        sll_addr: addr,
    };
    let len = std::mem::size_of::<nix::libc::sockaddr_ll>() as nix::libc::socklen_t;
    // SAFETY: `sll` is a fully initialised `sockaddr_ll` that lives across the call, and
    // `len` is exactly its size; `from_raw` copies it and checks family and length.
    let a =
        unsafe { LinkAddr::from_raw((&sll as *const nix::libc::sockaddr_ll).cast(), Some(len)) };
    a.context("build sockaddr_ll")
}

#[cfg(test)]
mod tests {
    #[test]
    fn builds_what_it_was_given() {
        let a = super::link_addr(7, 0x0806, 6, [2, 0, 0, 0, 0, 1, 0, 0]).unwrap();
        assert_eq!(a.ifindex(), 7);
        assert_eq!(a.protocol(), 0x0806u16.to_be());
        assert_eq!(a.addr(), Some([2, 0, 0, 0, 0, 1]));
    }
}
