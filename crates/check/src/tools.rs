//! What the probes run against: the programs and settings they use ([`Tools`]), the
//! netlink session and cached answers of one run ([`Session`]), and the ICMP/ARP questions
//! a tick asks together ([`Asked`]). Kinds read them; the runner and the monitor own them.

use std::{
    path::PathBuf,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use anyhow::Context;
use hakit_net::{icmp, Netlink};

/// Programs and settings the probes use.
#[derive(Debug, Clone)]
pub struct Tools {
    pub nft: String,
    pub systemctl: String,
    pub drbdadm: String,
    /// The `[fip]` table, for the fip-owner probe.
    pub fip: Option<hakit_fip::config::Fip>,
    /// The `[bgp]` speaker, for the bgp probe.
    pub bgp: Option<hakit_bgp::Speaker>,
    /// Where the fip-owner probe caches provider answers (the runtime directory).
    pub cache_dir: PathBuf,
    /// keepalived's pid file (`[check.peer] keepalived_pid_file`): role-dependent probes
    /// judge by this node's role, which needs a live keepalived.
    pub keepalived_pid: PathBuf,
    /// `nft -j -t list ruleset`, listed once per run and shared by every nft-rule probe and
    /// the counter export (clones share it).
    pub ruleset: Arc<OnceLock<Result<String, String>>>,
}

impl Tools {
    /// The ruleset as `nft -j -t list ruleset` prints it. The first caller runs nft (killed at
    /// `timeout`); concurrent callers wait for that one run, later ones reuse it.
    pub fn ruleset(&self, timeout: Duration) -> anyhow::Result<&str> {
        self.ruleset
            .get_or_init(|| {
                hakit_net::nft::list_ruleset(&self.nft, timeout, &hakit_core::exec::never)
                    .map_err(|e| format!("{e:#}"))
            })
            .as_deref()
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            nft: "nft".into(),
            systemctl: "systemctl".into(),
            drbdadm: "drbdadm".into(),
            fip: None,
            bgp: None,
            cache_dir: PathBuf::from(hakit_core::runtime::DEFAULT_DIR),
            keepalived_pid: PathBuf::from(crate::peer::KEEPALIVED_PID),
            ruleset: Arc::default(),
        }
    }
}

/// What a probe keeps between runs of the monitor (a fresh one for a single run).
#[derive(Default)]
pub struct Session {
    pub(crate) asker: Option<hakit_net::neighbour::Asker>,
    pub(crate) pinger: Option<icmp::Pinger>,
    /// The rtnetlink socket of the link, address and route probes (the monitor asks every
    /// second: one socket, not one a run).
    pub(crate) netlink: Option<Netlink>,
}

impl Session {
    pub(crate) fn netlink(&mut self) -> anyhow::Result<&Netlink> {
        if self.netlink.is_none() {
            self.netlink = Some(Netlink::open()?);
        }
        self.netlink.as_ref().context("no netlink socket")
    }

    /// The socket an asked probe's answer arrives on, to poll.
    pub fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.pinger
            .as_ref()
            .map(icmp::Pinger::fd)
            .or_else(|| self.asker.as_ref().map(hakit_net::neighbour::Asker::fd))
    }
}

/// A question on the wire ([`Checked::ask`]), waiting for its answer.
#[derive(Debug, Clone)]
pub struct Asked {
    pub start: Instant,
    pub(crate) timeout: Duration,
    pub(crate) round: Option<icmp::Round>,
}

impl Asked {
    /// When it counts as unanswered.
    pub fn deadline(&self) -> Instant {
        self.start + self.timeout
    }
}
