//! One probe: validated from configuration (or a shell command line) by its kind
//! ([`crate::kinds`]), then run: once, in the parallel runner, or in the monitor's loop.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    config::Probe,
    kinds::{self, Class, Cx, Kind},
};

pub use crate::tools::{Asked, Session, Tools};

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
