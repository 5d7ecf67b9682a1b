//! The BGP speaker boundary: which role this node's announcement of a shared address has,
//! and changing it in place.
//!
//! Where a floating IP is routed by BGP (Linode's IP Sharing with lelastic, or FRR as in
//! Linode's FRR guide), a failover is not an API call: both nodes announce the address all
//! the time, and the route servers prefer the path tagged with the *primary* community
//! (`65000:1`) over the *secondary* one (`65000:2`); between equal paths the one already
//! selected stays. Restarting the speaker to change its role costs 5–10 s (GoBGP waits 5–9 s
//! before its first connect); rewriting the community of the path it already announces
//! switches the route servers in ~0.1 s. So a transition here:
//!
//! * reads the local RIB first (the path this node originates for each prefix, and its
//!   communities) and changes nothing when the role is already right;
//! * writes the path again with the new community (GoBGP: `gobgp global rib add`, which
//!   replaces the locally originated path; FRR: `network PREFIX route-map ROLE` under
//!   `router bgp ASN`; BIRD: the static route's community in
//!   hakit's roles file and `birdc configure`), or withdraws it;
//! * reads it back, so a speaker that refused the change (an unknown route-map, a
//!   community it filters) is a failed step, never a silent one (FRR in the same vtysh
//!   call as the write, read once more if that answer is not yet the new role).
//!
//! The speakers' own command-line tools are the interface (`gobgp` talks to GoBGP's gRPC
//! API, `vtysh` to FRR's daemons), found on PATH, run without a shell under a timeout. Each
//! speaker is one file behind [`Dialect`] ([`gobgp`], [`frr`], [`bird`]: BIRD's roles live
//! in a file it includes, taken by `birdc configure`): its commands and its output's
//! parser; [`speaker`] is what they share (validation, the read-write-read-back, sessions).
//! Their output is outside input: parsed as JSON with size caps, never trusted to be
//! well-formed.

use std::{str::FromStr, time::Duration};

use anyhow::anyhow;
use serde_json::Value;

mod apply;
mod bird;
mod config;
mod frr;
mod gobgp;
mod setup;
mod speaker;

pub use apply::Applied;
pub use bird::{bird_roles, parse_bird_protocols, parse_bird_route};
pub use config::{Config, Demote, Kind};
pub use frr::{parse_frr_neighbors, parse_frr_prefix};
pub use gobgp::{parse_gobgp_neighbors, parse_gobgp_rib};
pub use speaker::Speaker;

/// lelastic's communities (and Linode's FRR guide's).
pub const PRIMARY: Community = Community(65000 << 16 | 1);
pub const SECONDARY: Community = Community(65000 << 16 | 2);
/// lelastic's GoBGP API address.
pub const GOBGP_API: &str = "127.0.0.1:50051";
/// The roles file hakit writes for BIRD (included from bird.conf).
pub const BIRD_ROLES: &str = "/etc/bird/hakit-roles.conf";
/// Default timeout of one speaker command.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// A speaker's JSON answer larger than this is refused, read to the end and named in the
/// error (a full table is not what we ask for).
const MAX_OUTPUT: usize = 4 << 20;

/// A standard community, `ASN:VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Community(pub u32);

impl FromStr for Community {
    type Err = String;
    fn from_str(s: &str) -> Result<Community, String> {
        let bad = || format!("invalid community {s:?}: expected ASN:VALUE, e.g. 65000:1");
        let (a, v) = s.split_once(':').ok_or_else(bad)?;
        let a: u16 = a.parse().map_err(|_| bad())?;
        let v: u16 = v.parse().map_err(|_| bad())?;
        Ok(Community(u32::from(a) << 16 | u32::from(v)))
    }
}

impl std::fmt::Display for Community {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        }
    }
}

/// What a transition wants the announcement to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Announce(Role),
    Withdraw,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Announce(r) => f.write_str(r.name()),
            Target::Withdraw => f.write_str("withdrawn"),
        }
    }
}

/// What the local speaker originates for one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// No locally originated path.
    Absent,
    /// A local path with these communities.
    Path(Vec<Community>),
}

/// One BGP session of the speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub peer: String,
    pub established: bool,
    /// The speaker's own name of the state ("Established", "Active", …).
    pub state: String,
}

/// One BGP daemon's command-line dialect. Adding a speaker is a file implementing this, an
/// arm in [`Speaker::new`] and a [`Kind`] variant.
pub trait Dialect: std::fmt::Debug + Send + Sync {
    /// Its name in messages and `[bgp] speaker`.
    fn name(&self) -> &'static str;
    /// Its command-line tool [default of `[bgp] program`].
    fn program(&self) -> &'static str;
    /// The arguments that reach the daemon (API address, vty socket), after the program.
    fn connect_args(&self) -> Vec<String>;
    /// Where the daemon was asked, for errors.
    fn at(&self) -> String;
    /// The command that shows the locally originated path of `prefix` (`family` ipv4/ipv6).
    fn read_args(&self, family: &str, prefix: &str) -> Vec<String>;
    /// What that command's output says: the local path's communities, or none.
    fn parse_read(&self, out: &str, prefix: &str) -> anyhow::Result<Seen>;
    /// Prepares announcing each of `prefixes` (family, prefix) as `target` (with the
    /// role's `community`) or withdrawing them, and returns the commands that make the
    /// daemon take it, run in order: one per prefix (GoBGP), one configuration session for
    /// all (FRR), or the roles file rewritten once and one `configure` (BIRD).
    fn write(
        &self,
        prefixes: &[(&str, String)],
        target: Target,
        community: Option<Community>,
    ) -> anyhow::Result<Vec<Vec<String>>>;
    /// Whether the last command of [`Dialect::write`] starts and ends with
    /// [`Dialect::read_many_args`] for the written prefixes, so that its output is the
    /// reads before and after the write (vtysh runs `show` before `configure terminal` and
    /// after `end` in the same call: an announcement is one vtysh start on the failover
    /// path). Such a dialect must take a write of a role a prefix already has as a no-op.
    fn write_reads_around(&self) -> bool {
        false
    }
    /// The line of a command's output that says the daemon refused it although it exited
    /// 0 (vtysh's `% …`, birdc's 8xxx/9xxx reply codes), if any.
    fn refused<'a>(&self, out: &'a str) -> Option<&'a str> {
        let _ = out;
        None
    }
    /// One command that shows the local paths of all `prefixes` (family, prefix) at once,
    /// where the daemon's tool takes several (vtysh: one `-c` each, ~30 ms a start), and
    /// its parser (one [`Seen`] per prefix, in order). None: one read per prefix.
    fn read_many_args(&self, prefixes: &[(&str, String)]) -> Option<Vec<String>> {
        let _ = prefixes;
        None
    }
    fn parse_read_many(&self, out: &str, prefixes: &[(&str, String)]) -> anyhow::Result<Vec<Seen>> {
        let _ = (out, prefixes);
        anyhow::bail!("{} reads one prefix at a time", self.name())
    }
    /// The command that lists the BGP sessions, and its parser.
    fn sessions_args(&self) -> Vec<String>;
    fn parse_sessions(&self, out: &str) -> anyhow::Result<Vec<Session>>;
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn json(out: &str, what: &str) -> anyhow::Result<Value> {
    let t = out.trim();
    if t.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(t).map_err(|e| anyhow!("{what}: not JSON ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_role_communities_are_ambiguous() {
        let s = Speaker::new(&Config {
            speaker: Some(Kind::Gobgp),
            prefixes: vec!["203.0.113.10/32".parse().unwrap()],
            ..Config::default()
        })
        .unwrap();
        let seen = Seen::Path(vec![PRIMARY, SECONDARY]);
        assert!(!s.is(&seen, Target::Announce(Role::Primary)));
        assert!(!s.is(&seen, Target::Announce(Role::Secondary)));
    }

    #[test]
    fn hostile_output_is_an_error_not_a_panic() {
        for out in [
            "[",
            "null",
            r#"{"203.0.113.10/32": 5}"#,
            r#"{"203.0.113.10/32":[{"attrs":[{"type":8,"communities":[-1]}]}]}"#,
            r#"{"203.0.113.10/32":[{"attrs":[{"type":8,"communities":[99999999999]}]}]}"#,
            "\"x\"",
        ] {
            let _ = parse_gobgp_rib(out, "203.0.113.10/32");
            let _ = parse_frr_prefix(out);
            let _ = parse_gobgp_neighbors(out);
            let _ = parse_frr_neighbors(out);
            let _ = parse_bird_route(out, "203.0.113.10/32");
            let _ = parse_bird_protocols(out);
        }
    }

    #[test]
    fn configuration_is_validated() {
        let base = Config {
            speaker: Some(Kind::Gobgp),
            prefixes: vec!["203.0.113.10/32".parse().unwrap()],
            ..Config::default()
        };
        assert!(Speaker::new(&base).is_ok());
        let bad = |f: &dyn Fn(&mut Config)| {
            let mut c = base.clone();
            f(&mut c);
            Speaker::new(&c).unwrap_err()
        };
        assert!(bad(&|c| c.speaker = None).contains("speaker is required"));
        assert!(bad(&|c| c.prefixes.clear()).contains("prefixes is empty"));
        assert!(
            bad(&|c| c.prefixes = vec!["203.0.113.10/24".parse().unwrap()]).contains("host bits")
        );
        assert!(bad(&|c| c.primary = Some("65000:2".into())).contains("same community"));
        assert!(bad(&|c| c.primary = Some("65536:1".into())).contains("invalid community"));
        assert!(bad(&|c| c.gobgp_api = Some("localhost".into())).contains("gobgp_api"));
        assert!(bad(&|c| c.speaker = Some(Kind::Frr)).contains("frr_asn"));
        assert!(bad(&|c| c.frr_primary_route_map = Some("a b; c".into())).contains("route-map"));
        assert!(bad(&|c| c.unit = Some("../x".into())).contains("unit"));
        assert_eq!("65000:1".parse::<Community>().unwrap(), PRIMARY);
        assert_eq!(SECONDARY.to_string(), "65000:2");
    }
}
