//! The configured speaker: `[bgp]` validated, and a role brought to every announced prefix
//! in place (read, write only what differs, read back), whatever the daemon: its commands
//! are its [`Dialect`]'s.

use std::{net::IpAddr, sync::Arc, time::Duration};

use anyhow::{bail, Context};
use hakit_core::{config::Cidr, exec};

use crate::{Community, Demote, Dialect, Kind, Role, Seen, Session, Target, MAX_OUTPUT};

/// The configured speaker, validated.
#[derive(Debug, Clone)]
pub struct Speaker {
    pub kind: Kind,
    pub program: String,
    /// The daemon's command-line dialect (one file per speaker: gobgp.rs, frr.rs, bird.rs).
    pub(crate) dialect: Arc<dyn Dialect>,
    pub primary: Community,
    pub secondary: Community,
    pub prefixes: Vec<Cidr>,
    pub fault: Demote,
    pub stop: Demote,
    pub unit: Option<String>,
    pub timeout: Duration,
}

impl Speaker {
    /// This speaker for the prefixes in `subset` only (all when it is empty): an instance's
    /// own shared addresses, where a pair runs one instance per address (per-IP roles).
    pub fn only(&self, subset: &[Cidr]) -> Speaker {
        let mut s = self.clone();
        if !subset.is_empty() {
            s.prefixes.retain(|p| subset.contains(p));
        }
        s
    }

    /// The prefixes, for messages: `203.0.113.10/32, 2001:db8::/64`.
    pub fn prefixes_text(&self) -> String {
        prefixes_text(&self.prefixes)
    }

    pub fn kind_name(&self) -> &'static str {
        self.dialect.name()
    }

    /// The announced prefix that holds `ip`, and what the speaker originates for it.
    pub fn read_ip(&self, ip: IpAddr, stop: exec::Stop) -> anyhow::Result<(Cidr, Seen)> {
        let prefix = *self
            .prefixes
            .iter()
            .find(|p| p.contains(ip))
            .with_context(|| format!("[bgp] prefixes do not include {ip}"))?;
        Ok((prefix, self.read(&prefix, stop)?))
    }

    /// The role these communities say, if any.
    pub fn role_of(&self, seen: &Seen) -> Option<Role> {
        match seen {
            Seen::Path(c) if c.contains(&self.primary) => Some(Role::Primary),
            Seen::Path(c) if c.contains(&self.secondary) => Some(Role::Secondary),
            _ => None,
        }
    }

    /// Whether `seen` is what `target` asks for.
    pub fn is(&self, seen: &Seen, target: Target) -> bool {
        match target {
            Target::Withdraw => *seen == Seen::Absent,
            Target::Announce(r) => match seen {
                // Exactly one role community: a path tagged with both is ambiguous.
                Seen::Path(c) => {
                    self.role_of(seen) == Some(r)
                        && !(c.contains(&self.primary) && c.contains(&self.secondary))
                }
                Seen::Absent => false,
            },
        }
    }

    /// Describes `seen` in a log line.
    pub fn describe(&self, seen: &Seen) -> String {
        match seen {
            Seen::Absent => "not announced".into(),
            Seen::Path(c) => {
                let list = c.iter().map(Community::to_string).collect::<Vec<_>>();
                match self.role_of(seen) {
                    Some(r) => format!("{} ({})", r.name(), list.join(" ")),
                    None => format!("announced without a role community ({})", list.join(" ")),
                }
            }
        }
    }

    pub(crate) fn base(&self) -> anyhow::Result<Vec<String>> {
        let prog = exec::find(&self.program)
            .with_context(|| format!("bgp speaker {}", self.kind_name()))?;
        let mut v = vec![prog.to_string_lossy().to_string()];
        v.extend(self.dialect.connect_args());
        Ok(v)
    }

    /// Runs one speaker command, stopped as soon as `stop` gives a reason (a newer state
    /// superseded the transition driving the speaker).
    pub(crate) fn run(&self, args: &[String], stop: exec::Stop) -> anyhow::Result<String> {
        let mut argv = self.base()?;
        argv.extend_from_slice(args);
        let ran = exec::run_until(&argv, None, self.timeout, MAX_OUTPUT, stop)?;
        // vtysh and birdc exit 0 for some refusals and say so in a line: both are errors.
        let refused = self
            .dialect
            .refused(&ran.stdout)
            .or_else(|| self.dialect.refused(&ran.stderr));
        if !ran.success() || refused.is_some() {
            let line = refused.unwrap_or_else(|| ran.first_error_line());
            let at = self.dialect.at();
            bail!(
                "{at}: {} {}: {} ({})",
                self.kind_name(),
                args.iter()
                    .filter(|a| a.as_str() != "-c")
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" "),
                ran.status,
                hakit_core::logging::one_line(line)
            );
        }
        Ok(ran.stdout)
    }

    fn family(p: &Cidr) -> &'static str {
        if p.addr.is_ipv4() {
            "ipv4"
        } else {
            "ipv6"
        }
    }

    /// What the speaker originates for `prefix` now.
    pub fn read(&self, prefix: &Cidr, stop: exec::Stop) -> anyhow::Result<Seen> {
        let p = prefix.to_string();
        let out = self.run(&self.dialect.read_args(Self::family(prefix), &p), stop)?;
        self.dialect.parse_read(&out, &p)
    }

    /// Makes the speaker announce `prefixes` as `target`: the dialect's commands, `stop`
    /// asked before each. Returns what the speaker originated for each before and after
    /// the write when the dialect reads around it in the same call
    /// ([`Dialect::write_reads_around`]) and its answer parses.
    pub(crate) fn write(
        &self,
        prefixes: &[Cidr],
        target: Target,
        stop: exec::Stop,
    ) -> anyhow::Result<Option<(Vec<Seen>, Vec<Seen>)>> {
        let community = match target {
            Target::Announce(r) => Some(self.community(r)),
            Target::Withdraw => None,
        };
        let list = Self::list(prefixes);
        let mut out = String::new();
        for cmd in self.dialect.write(&list, target, community)? {
            if let Some(why) = stop() {
                bail!("superseded before {}: {why}", prefixes_text(prefixes));
            }
            out = self.run(&cmd, stop)?;
        }
        if !self.dialect.write_reads_around() {
            return Ok(None);
        }
        // The prefixes' reads twice over; an answer that does not parse is no failure of
        // the write: `ensure` reads again.
        let twice: Vec<(&str, String)> = list.iter().chain(&list).cloned().collect();
        Ok(self
            .dialect
            .parse_read_many(&out, &twice)
            .ok()
            .map(|mut seen| {
                let after = seen.split_off(list.len());
                (seen, after)
            }))
    }

    pub fn community(&self, r: Role) -> Community {
        match r {
            Role::Primary => self.primary,
            Role::Secondary => self.secondary,
        }
    }

    /// What the speaker originates for each of `prefixes`, in order: one command where
    /// the dialect reads several at once, one per prefix otherwise.
    pub fn read_all(&self, prefixes: &[Cidr], stop: exec::Stop) -> anyhow::Result<Vec<Seen>> {
        let list = Self::list(prefixes);
        match self.dialect.read_many_args(&list) {
            Some(args) if prefixes.len() > 1 => {
                let out = self.run(&args, stop)?;
                self.dialect.parse_read_many(&out, &list)
            }
            _ if prefixes.len() < 2 => prefixes.iter().map(|p| self.read(p, stop)).collect(),
            // One command per prefix (GoBGP's CLI): side by side, so that a transition
            // waits for one start, not one per prefix. Asked once before: each read is
            // short and bounded by the speaker's timeout.
            _ => {
                if let Some(why) = stop() {
                    bail!(
                        "superseded before reading {}: {why}",
                        prefixes_text(prefixes)
                    );
                }
                let never = || None;
                std::thread::scope(|s| {
                    let reads: Vec<_> = prefixes
                        .iter()
                        .map(|p| s.spawn(move || self.read(p, &never)))
                        .collect();
                    reads
                        .into_iter()
                        .map(|r| {
                            r.join()
                                .unwrap_or_else(|_| bail!("a read's thread panicked"))
                        })
                        .collect()
                })
            }
        }
    }

    pub(crate) fn list(prefixes: &[Cidr]) -> Vec<(&'static str, String)> {
        prefixes
            .iter()
            .map(|p| (Self::family(p), p.to_string()))
            .collect()
    }

    /// The speaker's BGP sessions.
    pub fn sessions(&self, stop: exec::Stop) -> anyhow::Result<Vec<Session>> {
        let out = self.run(&self.dialect.sessions_args(), stop)?;
        self.dialect.parse_sessions(&out)
    }
}

fn prefixes_text(prefixes: &[Cidr]) -> String {
    prefixes
        .iter()
        .map(Cidr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
