//! A raw IPv4 socket for an IP protocol that nix's `SockProtocol` does not name (VRRP is
//! protocol 112): nix builds sockets only from its enum.

use std::{
    io,
    os::fd::{FromRawFd, OwnedFd},
};

/// An `AF_INET`/`SOCK_RAW` socket for IP protocol `protocol`, close-on-exec. It receives
/// every packet of that protocol the host accepts (after the firewall's input hook), IP
/// header included. Needs CAP_NET_RAW.
#[allow(unsafe_code)]
pub fn socket(protocol: u8) -> io::Result<OwnedFd> {
    use nix::libc;
    // SAFETY: socket(2) takes three integers and no pointers; it returns a new descriptor
    // or -1 with errno set.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::c_int::from(protocol),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2), is open, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_raw_socket_or_the_reason_why_not() {
        // As root: a descriptor. Without CAP_NET_RAW: EPERM, never a panic or a bad fd.
        match super::socket(112) {
            Ok(fd) => assert!(std::os::fd::AsRawFd::as_raw_fd(&fd) >= 0),
            Err(e) => assert_eq!(e.raw_os_error(), Some(nix::libc::EPERM)),
        }
    }
}
