//! Sockets bound the way a gateway's health check needs: to an interface
//! (`SO_BINDTODEVICE`) and/or a source address, so a BACKUP tests its own uplink rather
//! than whatever path the routing table (or the VIP) would pick.

use std::{
    net::{IpAddr, SocketAddr},
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use nix::{
    errno::Errno,
    poll::{poll, PollFd, PollFlags, PollTimeout},
    sys::socket::{
        bind, connect, getsockopt, setsockopt, socket, sockopt, AddressFamily, SockFlag,
        SockProtocol, SockType, SockaddrStorage,
    },
};

pub fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

pub fn sockaddr(sa: SocketAddr) -> SockaddrStorage {
    SockaddrStorage::from(sa)
}

/// Binds `fd` to `iface` and/or `source` (port 0).
pub fn bind_to(fd: &OwnedFd, iface: Option<&str>, source: Option<IpAddr>) -> anyhow::Result<()> {
    if let Some(dev) = iface {
        setsockopt(fd, sockopt::BindToDevice, &std::ffi::OsString::from(dev))
            .with_context(|| format!("bind to interface {dev}"))?;
    }
    if let Some(src) = source {
        bind(fd.as_raw_fd(), &sockaddr(SocketAddr::new(src, 0)))
            .with_context(|| format!("bind to source {src}"))?;
    }
    Ok(())
}

/// Waits until `fd` is ready for `flags` or `deadline` passes.
pub fn wait(fd: &OwnedFd, flags: PollFlags, deadline: Instant) -> anyhow::Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Past the deadline, one last look without waiting: an answer that arrived while
        // this thread was not scheduled (a loaded machine) is still an answer in time.
        let ms = if left.is_zero() {
            0
        } else {
            u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX)
        };
        let mut fds = [PollFd::new(fd.as_fd(), flags)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) if ms == 0 => return Ok(false),
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).context("poll"),
        }
    }
}

/// Waits until one of `fds` is readable or `deadline` passes (the caller reads; what
/// arrived by then is read once more past the deadline).
pub fn wait_any(fds: &[BorrowedFd<'_>], deadline: Instant) -> anyhow::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Ok(());
    }
    let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
    let mut polled: Vec<PollFd> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    match poll(&mut polled, PollTimeout::from(ms)) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e).context("poll"),
    }
}

/// A TCP connection to `to`, bound as asked, established within `timeout`; returns the
/// connected socket and the time the handshake took.
pub fn tcp_connect(
    to: SocketAddr,
    iface: Option<&str>,
    source: Option<IpAddr>,
    timeout: Duration,
) -> anyhow::Result<(OwnedFd, Duration)> {
    let start = Instant::now();
    let deadline = start + timeout;
    let fd = socket(
        family(to.ip()),
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::Tcp,
    )
    .context("create TCP socket")?;
    bind_to(&fd, iface, source)?;
    match connect(fd.as_raw_fd(), &sockaddr(to)) {
        Ok(()) | Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(e).with_context(|| format!("connect to {to}")),
    }
    if !wait(&fd, PollFlags::POLLOUT, deadline)? {
        bail!("connect to {to}: no answer within {timeout:?}");
    }
    let err = getsockopt(&fd, sockopt::SocketError).context("SO_ERROR")?;
    if err != 0 {
        bail!(
            "connect to {to}: {}",
            std::io::Error::from_raw_os_error(err)
        );
    }
    Ok((fd, start.elapsed()))
}

/// Resolves `host:port` (numeric first; names through the system resolver).
pub fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    use std::net::ToSocketAddrs;
    (h, port)
        .to_socket_addrs()
        .with_context(|| format!("resolve {h}"))?
        .next()
        .with_context(|| format!("{h} has no address"))
}
