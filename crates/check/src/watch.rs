//! Peer-watch mode, for clouds without VRRP (the "natganker" pattern): watch the primary;
//! after `fall` consecutive failed probes run CMD (typically `fip-claim … --force`) and keep
//! re-running it every interval until it exits 0; once the peer answers `rise` times in a
//! row again, go back to watching. Stops cleanly on SIGTERM/SIGINT.

use std::{
    io::Read,
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use hakit_core::exec;
use log::{error, info, warn};

use hakit_net::{icmp, sock};

pub use hakit_cli::ha_check::Method;

#[derive(Debug, Clone)]
pub struct Watch {
    pub peer: IpAddr,
    pub method: Method,
    pub port: u16,
    pub interval: Duration,
    pub timeout: Duration,
    pub fall: u32,
    pub rise: u32,
    pub command: Vec<String>,
    pub command_timeout: Duration,
    /// Stop after this many probes (tests and dry runs); `None` runs until signalled.
    pub max_probes: Option<u64>,
}

/// One probe of the peer.
pub fn probe(w: &Watch) -> anyhow::Result<()> {
    match w.method {
        Method::Icmp => icmp::echo(w.peer, None, None, 1, w.timeout).map(|_| ()),
        Method::Tcp => sock::tcp_connect(
            std::net::SocketAddr::new(w.peer, w.port),
            None,
            None,
            w.timeout,
        )
        .map(|_| ()),
        Method::Ssh => {
            let start = Instant::now();
            let (fd, _) = sock::tcp_connect(
                std::net::SocketAddr::new(w.peer, w.port),
                None,
                None,
                w.timeout,
            )?;
            let mut s = std::net::TcpStream::from(fd);
            s.set_nonblocking(false)?;
            s.set_read_timeout(Some(
                w.timeout
                    .saturating_sub(start.elapsed())
                    .max(Duration::from_millis(1)),
            ))?;
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).context("read SSH banner")?;
            if !buf[..n].starts_with(b"SSH-") {
                bail!(
                    "no SSH banner from {} (got {:?})",
                    w.peer,
                    String::from_utf8_lossy(&buf[..n])
                );
            }
            Ok(())
        }
    }
}

/// Runs until `stop` is set (or `max_probes`); returns how many times CMD succeeded.
pub fn run(w: &Watch, stop: Arc<AtomicBool>) -> anyhow::Result<u64> {
    let (mut fails, mut oks, mut down, mut taken) = (0u32, 0u32, false, false);
    let mut runs_ok = 0u64;
    let mut n = 0u64;
    info!(
        "watching {} by {} every {:?} (fall {}, rise {})",
        w.peer,
        w.method.as_str(),
        w.interval,
        w.fall,
        w.rise
    );
    while !stop.load(Ordering::Relaxed) && w.max_probes.is_none_or(|m| n < m) {
        let tick = Instant::now();
        n += 1;
        match probe(w) {
            Ok(()) => {
                fails = 0;
                oks += 1;
                if down && oks >= w.rise {
                    info!(
                        "peer {} answers again ({oks} in a row): back to watching",
                        w.peer
                    );
                    down = false;
                    taken = false;
                }
            }
            Err(e) => {
                oks = 0;
                fails += 1;
                if !down {
                    warn!("peer {} probe failed ({fails}/{}): {e:#}", w.peer, w.fall);
                }
                if !down && fails >= w.fall {
                    warn!(
                        "peer {} is down after {fails} failed probes: taking over",
                        w.peer
                    );
                    down = true;
                }
            }
        }
        if down && !taken {
            match exec::run_ok_with_credentials(&w.command, w.command_timeout) {
                Ok(_) => {
                    info!("takeover command succeeded: {}", w.command.join(" "));
                    taken = true;
                    runs_ok += 1;
                }
                Err(e) => error!("takeover command failed, retrying next interval: {e:#}"),
            }
        }
        let left = w.interval.saturating_sub(tick.elapsed());
        let until = Instant::now() + left;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
        }
    }
    info!("peer watch stopped after {n} probe(s)");
    Ok(runs_ok)
}
