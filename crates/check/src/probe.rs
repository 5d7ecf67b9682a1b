//! One probe: validated from configuration (or a shell command line) by its kind
//! ([`crate::kinds`]), then run: once, in the parallel runner, or in the monitor's loop.

use std::{
    path::PathBuf,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use anyhow::Context;
use hakit_net::{icmp, Netlink};
use serde::Serialize;

use crate::{
    config::Probe,
    kinds::{self, Class, Cx, Kind},
};

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
    netlink: Option<Netlink>,
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

/// A probe ready to run.
#[derive(Debug, Clone)]
pub struct Checked {
    pub name: String,
    pub kind: &'static str,
    pub group: Option<String>,
    pub timeout: Duration,
    probe: Arc<dyn Kind>,
}

/// Validates a probe; the error names the probe's kind and the key.
pub fn validate(p: &Probe, default_timeout: Duration) -> Result<Checked, String> {
    let kind = p.kind.as_deref().ok_or("probe without kind")?;
    let def = kinds::find(kind)
        .ok_or_else(|| format!("unknown kind `{kind}` (kinds: {})", kinds::names()))?;
    let probe: Arc<dyn Kind> = Arc::from(def.validate(&p.keys)?);
    Ok(Checked {
        name: p
            .name
            .clone()
            .unwrap_or_else(|| format!("{}:{}", def.name, probe.detail())),
        kind: def.name,
        group: p.group.clone(),
        timeout: p.timeout.map_or(default_timeout, |d| d.get()),
        probe,
    })
}

/// The result of one probe.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    pub name: String,
    pub kind: &'static str,
    pub group: Option<String>,
    pub ok: bool,
    pub detail: String,
    pub ms: f64,
}

impl Checked {
    /// How the monitor treats it.
    pub fn class(&self) -> Class {
        self.probe.class()
    }

    /// What must be configured elsewhere for it to run ([`Kind::needs`]).
    pub fn needs(&self, tools: &Tools) -> Result<(), String> {
        self.probe.needs(tools)
    }

    /// Runs the probe within `timeout` (the smaller of its own and what the deadline leaves).
    pub fn run(&self, timeout: Duration, tools: &Tools) -> ProbeResult {
        self.run_in(&mut Session::default(), timeout, tools)
    }

    /// [`Checked::run`] keeping what can be reused in `session` (the monitor's loop).
    pub fn run_in(&self, session: &mut Session, timeout: Duration, tools: &Tools) -> ProbeResult {
        let start = Instant::now();
        let r = self.probe.run(&mut Cx {
            session,
            timeout,
            tools,
        });
        if r.is_err() {
            // A fresh socket next time (the failure may be the socket's).
            session.netlink = None;
        }
        self.outcome(r, start)
    }

    /// Whether [`Checked::ask`] applies: one question and one answer on a socket the
    /// session keeps (icmp, neighbour). The monitor asks all of these on one tick and
    /// waits for their answers in one poll: a wake-up per tick, not one per probe.
    pub fn splits(&self) -> bool {
        self.class() == Class::Asked
    }

    /// Sends the question (opening the session's socket first if needed); an error is
    /// the probe's failed outcome.
    pub fn ask(&self, session: &mut Session, timeout: Duration) -> Result<Asked, ProbeResult> {
        let start = Instant::now();
        match self.probe.ask(session) {
            Ok(round) => Ok(Asked {
                start,
                timeout,
                round,
            }),
            Err(e) => Err(self.outcome(Err(e), start)),
        }
    }

    /// The outcome once the answer has arrived (read without waiting), or once `now` is
    /// past the timeout and it has not; `None` while still waiting.
    pub fn answer(
        &self,
        session: &mut Session,
        asked: &Asked,
        now: Instant,
    ) -> Option<ProbeResult> {
        self.probe
            .answer(session, asked, now >= asked.deadline())
            .map(|r| self.outcome(r, asked.start))
    }

    fn outcome(&self, r: anyhow::Result<String>, start: Instant) -> ProbeResult {
        ProbeResult {
            name: self.name.clone(),
            kind: self.kind,
            group: self.group.clone(),
            ok: r.is_ok(),
            detail: match r {
                Ok(d) => d,
                Err(e) => format!("{e:#}"),
            },
            ms: start.elapsed().as_secs_f64() * 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Keys, Value};

    fn probe(kind: &str, kv: &[(&str, &str)]) -> Probe {
        Probe {
            kind: Some(kind.into()),
            keys: Keys(
                kv.iter()
                    .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
                    .collect(),
            ),
            ..Probe::default()
        }
    }

    #[test]
    fn required_keys_are_named() {
        assert_eq!(
            validate(&probe("icmp", &[]), Duration::ZERO).unwrap_err(),
            "icmp probe needs `target`"
        );
        assert!(validate(&probe("service", &[]), Duration::ZERO)
            .unwrap_err()
            .contains("exactly one"));
        let mut p = probe("sysctl", &[]);
        p.keys.0.insert(
            "expect".into(),
            Value::List(vec!["net.ipv4.ip_forward".into()]),
        );
        assert!(validate(&p, Duration::ZERO)
            .unwrap_err()
            .contains("not key=value"));
        let p = probe(
            "http",
            &[("url", "https://198.51.100.9/"), ("interface", "eth0")],
        );
        assert!(validate(&p, Duration::ZERO)
            .unwrap_err()
            .contains("http:// URLs only"));
    }

    #[test]
    fn unknown_kinds_are_refused_with_the_list() {
        let e = validate(&probe("icmpp", &[]), Duration::ZERO).unwrap_err();
        assert!(
            e.starts_with("unknown kind `icmpp` (kinds: icmp, neighbour, http,"),
            "{e}"
        );
    }

    #[test]
    fn names_default_to_kind_and_target() {
        let p = probe("tcp", &[("target", "198.51.100.9:22")]);
        let c = validate(&p, Duration::from_millis(300)).unwrap();
        assert_eq!(
            (c.name.as_str(), c.timeout),
            ("tcp:198.51.100.9:22", Duration::from_millis(300))
        );
        let c = validate(&probe("route", &[]), Duration::ZERO).unwrap();
        assert_eq!(
            (c.name.as_str(), c.class()),
            ("route:0.0.0.0/0", Class::Kernel)
        );
    }
}
