//! The tables `ha-check` reads: `[check]`, `[[check.group]]` and `[[check.probe]]`
//! (hakit-core loads the file; each table's types live with the crate that uses it).
//!
//! A probe's common keys are read here; the rest are kept as plain values ([`Keys`]) for
//! its kind to read and check ([`crate::kinds`]), so a new kind brings its keys with it.

use std::{collections::BTreeMap, fmt, path::PathBuf};

use hakit_core::{
    config::{File, Skip},
    HDuration,
};
use hakit_fip::config::Fip;
use serde::{
    de::{self, MapAccess, SeqAccess, Visitor},
    Deserialize, Deserializer,
};

/// What `ha-check` reads.
pub type CheckFile<B = Skip> = File<Skip, Skip, Check, Fip, B>;

/// `[check]`: `ha-check`, keepalived's `vrrp_script`.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// keepalived's `vrrp_script` interval; the overall deadline defaults to 80% of it.
    pub interval: Option<HDuration>,
    /// Overall deadline for all probes (overrides the 80% rule).
    pub deadline: Option<HDuration>,
    /// Prometheus textfile written after every run.
    pub textfile: Option<PathBuf>,
    /// nftables table whose named counters go into the textfile, "FAMILY NAME"
    /// (e.g. "inet hakit_filter"): the drop-rate alert reads them.
    pub nft_counters: Option<String>,
    /// The primary's address for `ha-check watch` (the peer-watch unit reads it from here,
    /// so the unit file carries no per-node value).
    pub watch_peer: Option<std::net::IpAddr>,
    /// keepalived's `track_file` that `ha-check monitor` writes (0 healthy, 1 not) on every
    /// change of verdict, with its heartbeat beside it (`FILE.heartbeat`).
    pub track_file: Option<PathBuf>,
    /// The maintenance flag `ha-check drain` writes and `ha-check undrain` removes: while it
    /// exists the monitor writes 1 to the track file (keepalived: FAULT), so the node gives
    /// the role away and never takes it back, across reboots, until undrained
    /// [default: /var/lib/hakit/drain].
    pub drain_file: Option<PathBuf>,
    /// `ha-check monitor`'s real-time priority (SCHED_RR, 1-99; 0: a normal process). Default
    /// 10: on a busy machine a normal process can wait 100 ms for a core, long enough for
    /// four 20 ms probes to miss (keepalived runs SCHED_RR 20 from its unit, conntrackd RR 5).
    pub monitor_rt_priority: Option<u8>,
    /// `[check.peer]`: the pair's monitors compare notes over the sync link, and a node
    /// gives the role away (writes 1) only when the peer is healthier: a failure both see
    /// never puts both in FAULT. Without it a node writes 1 on any failure.
    pub peer: Option<PeerTable>,
    /// `[[check.probe]]`: the probes, all run in parallel.
    #[serde(default, rename = "probe")]
    pub probes: Vec<Probe>,
    /// `[[check.group]]`: quorum groups; a probe without a group must pass on its own.
    #[serde(default, rename = "group")]
    pub groups: Vec<Group>,
}

/// `[check.peer]`: where the two monitors talk (UDP, both ends bound to these addresses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerTable {
    /// This node's address on the sync link, e.g. "192.0.2.1".
    pub bind: std::net::IpAddr,
    /// The peer's address on the sync link, e.g. "192.0.2.2".
    pub address: std::net::IpAddr,
    /// UDP port, the same on both nodes [default: 7447].
    pub port: Option<u16>,
    /// A peer not heard from for this long counts as absent, and an unhealthy node then
    /// gives the role away as without this table [default: 250ms; 50ms-10s].
    pub silent_after: Option<HDuration>,
    /// keepalived's pid file: this node tells the peer it is MASTER of an instance only
    /// while this keepalived runs, and the peer's nat-notify then holds its provider
    /// claim (a cut VRRP path, not a dead node) [default: /run/keepalived.pid].
    pub keepalived_pid_file: Option<std::path::PathBuf>,
    /// The address the peer's VRRP adverts come from (its `unicast_src_ip`, or its address
    /// on the VRRP interface), IPv4: the monitor listens for them, and when they stop while
    /// the peer still reports MASTER over the sync link (only the VRRP path is cut) the
    /// newer MASTER stands down (track file 1) until they return, so the LAN VIP is not
    /// held by both [default: not listened for].
    pub vrrp_address: Option<std::net::IpAddr>,
}

/// A quorum group: healthy when at least `min` of its probes pass.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The group's name, which probes name in their `group` key.
    pub name: String,
    /// Default: every probe of the group.
    pub min: Option<usize>,
}

/// `[[check.probe]]`: one probe. Which keys apply depends on `kind`; a key that does not
/// apply is refused when the configuration is checked.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Probe {
    /// What the probe looks at (required): one of the kinds below.
    pub kind: Option<String>,
    /// Shown in logs, JSON and metrics; defaults to `kind:target`.
    pub name: Option<String>,
    /// Quorum group this probe counts towards.
    pub group: Option<String>,
    /// How long the probe may take [default: the run's deadline; monitor: its interval].
    pub timeout: Option<HDuration>,
    /// monitor: how often the probe runs [default: 20ms for icmp and neighbour, 1s for the
    /// others, 30s for fip-owner]; at least 5ms.
    pub interval: Option<HDuration>,
    /// monitor: consecutive failures that make the probe down [default: 4; 1 for link,
    /// address and route, which the kernel's events re-check at once].
    pub fall: Option<u32>,
    /// monitor: consecutive passes that make a down probe up again [default: 5].
    pub rise: Option<u32>,
    /// The kind's own keys (see each kind in hakit.toml(5)), read and checked by the kind.
    pub keys: Keys,
}

/// A probe's kind-specific keys, as written.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Keys(pub BTreeMap<String, Value>);

/// A value of a kind-specific key: the TOML shapes a probe key can have.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number, boolean or list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
                Ok(Value::Str(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                i64::try_from(v)
                    .map(Value::Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut l = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    l.push(s);
                }
                Ok(Value::List(l))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Probe;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a probe table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
                let mut p = Probe::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "kind" => p.kind = Some(map.next_value()?),
                        "name" => p.name = Some(map.next_value()?),
                        "group" => p.group = Some(map.next_value()?),
                        "timeout" => p.timeout = Some(map.next_value()?),
                        "interval" => p.interval = Some(map.next_value()?),
                        "fall" => p.fall = Some(map.next_value()?),
                        "rise" => p.rise = Some(map.next_value()?),
                        _ => {
                            let v = map.next_value()?;
                            p.keys.0.insert(key, v);
                        }
                    }
                }
                Ok(p)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_keys_are_typed_and_the_rest_kept_for_the_kind() {
        let f: CheckFile = hakit_core::config::parse(
            "[[check.probe]]\nkind = \"icmp\"\ntarget = \"192.0.2.1\"\ncount = 3\n\
             interval = \"20ms\"\nexpect = [\"a=1\"]\nmax_usage = 0.5\nabsent = true\n",
        )
        .unwrap();
        let p = &f.check.probes[0];
        assert_eq!(p.kind.as_deref(), Some("icmp"));
        assert_eq!(
            p.interval.unwrap().get(),
            std::time::Duration::from_millis(20)
        );
        let k = &p.keys.0;
        assert_eq!(k["target"], Value::Str("192.0.2.1".into()));
        assert_eq!(k["count"], Value::Int(3));
        assert_eq!(k["expect"], Value::List(vec!["a=1".into()]));
        assert_eq!(k["max_usage"], Value::Float(0.5));
        assert_eq!(k["absent"], Value::Bool(true));
        assert!(!k.contains_key("interval"));
    }

    #[test]
    fn bad_common_keys_and_nested_values_name_their_line() {
        let e = hakit_core::config::parse::<CheckFile>(
            "[[check.probe]]\nkind = \"icmp\"\ninterval = \"soon\"\n",
        )
        .unwrap_err();
        assert!(e.starts_with("3:"), "{e}");
        let e = hakit_core::config::parse::<CheckFile>(
            "[[check.probe]]\nkind = \"icmp\"\ntarget = { a = 1 }\n",
        )
        .unwrap_err();
        assert!(
            e.contains("a string, number, boolean or list of strings"),
            "{e}"
        );
        let e =
            hakit_core::config::parse::<CheckFile>("[check]\nintervall = \"1s\"\n").unwrap_err();
        assert!(e.contains("unknown field `intervall`"), "{e}");
    }
}
