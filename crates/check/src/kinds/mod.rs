//! The probe kinds: one file each, one line each in [`KINDS`].
//!
//! # Adding a probe kind
//!
//! 1. A file here, say `ntp.rs`, with a `pub const KIND: Def` (its name as `kind = "…"`
//!    takes it, a one-line description, and its keys with their types and documentation:
//!    `hakit.toml(5)` is generated from them), a `build` function that reads the keys through
//!    the [`Reader`] (a key a probe sets that the kind does not declare is refused there,
//!    with the list of the ones it takes), and a type implementing [`Kind`]: `detail` (the
//!    default name after `kind:`), `run` (the check itself, an error is a failure).
//!    Override `class` if the monitor should treat it like the gateway probes (asked every
//!    20 ms), the kernel-state probes (re-run on netlink events) or the provider probe.
//! 2. `mod ntp;` and `ntp::KIND,` in [`KINDS`] below. (`dns.rs` was the first kind
//!    written this way: the file, these two lines, its fuzz target and its test.)
//!
//! That is all the configuration file, validation, the one-shot run, the parallel runner,
//! the monitor, the metrics, the man pages and the command-line shortcut (`ha-check ntp …`,
//! generated from the keys by [`crate::shortcut`]; `args` names its positional ones) need.

use std::{net::IpAddr, str::FromStr, time::Duration};

use crate::{
    config::{Keys, Value},
    tools::{Asked, Session, Tools},
};

mod address;
mod bgp;
mod conntrack;
pub mod dns;
mod drbd;
mod fip_owner;
mod http;
mod icmp;
mod link;
mod neighbour;
mod nft_rule;
mod route;
mod service;
mod sysctl;
mod tcp;

/// Every probe kind, in the order the man page lists them.
pub const KINDS: &[Def] = &[
    icmp::KIND,
    neighbour::KIND,
    http::KIND,
    tcp::KIND,
    dns::KIND,
    link::KIND,
    address::KIND,
    route::KIND,
    nft_rule::KIND,
    conntrack::KIND,
    sysctl::KIND,
    service::KIND,
    drbd::KIND,
    fip_owner::KIND,
    bgp::KIND,
];

/// The kind called `name`.
pub fn find(name: &str) -> Option<&'static Def> {
    KINDS.iter().find(|d| d.name == name)
}

/// The names of all kinds, for messages.
pub fn names() -> String {
    KINDS.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
}

/// A probe kind: what `kind = "…"` names.
pub struct Def {
    /// The value of `kind`.
    pub name: &'static str,
    /// One line for the man page.
    pub about: &'static str,
    /// The keys this kind takes besides the common ones (kind, name, group, timeout,
    /// interval, fall, rise).
    pub keys: &'static [Key],
    /// The keys its command-line shortcut takes as positional arguments, in order
    /// (`ha-check icmp 192.0.2.1`); every other key is an option named after it
    /// (`--ca-file` for `ca_file`, `-i` also for `interface`). See [`crate::shortcut`].
    pub args: &'static [&'static str],
    /// Reads the keys; the error names the kind and the key.
    pub build: fn(&Reader) -> Result<Box<dyn Kind>, String>,
}

/// One key a kind takes.
pub struct Key {
    pub name: &'static str,
    pub ty: Ty,
    pub doc: &'static str,
}

/// A key's type: what the configuration file's value and the shortcut's argument must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// A string; the words say what it holds ("IP address", "path"), as the man page shows.
    Text(&'static str),
    /// An integer.
    Int,
    /// A number (an integer or a fraction).
    Number,
    /// true or false; a flag on the command line.
    Bool,
    /// A list of strings; one or more arguments on the command line.
    List,
}

impl Ty {
    /// The type in words, as the man page shows it.
    pub fn words(self) -> &'static str {
        match self {
            Ty::Text(w) => w,
            Ty::Int => "integer",
            Ty::Number => "number",
            Ty::Bool => "boolean",
            Ty::List => "list of strings",
        }
    }
}

impl Def {
    fn takes(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k.name == key)
    }

    fn key_list(&self) -> String {
        self.keys
            .iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks that every key set applies to this kind, then builds it.
    pub fn validate(&self, keys: &Keys) -> Result<Box<dyn Kind>, String> {
        if let Some(k) = keys.0.keys().find(|k| !self.takes(k)) {
            return Err(format!(
                "{} probe: key `{k}` does not apply (allowed: {})",
                self.name,
                self.key_list()
            ));
        }
        (self.build)(&Reader { def: self, keys })
    }
}

/// How the monitor treats a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// One question, one answer on a socket the monitor keeps (the gateway probes: icmp,
    /// neighbour): every 20 ms, fall 4, rise 5, asked together on one tick.
    Asked,
    /// Reads the kernel's state (link, address, route): every second, fall and rise 1, and
    /// re-run at once on a netlink event.
    Kernel,
    /// Asks the cloud provider (fip-owner): every 30 s; fails on a BACKUP by design, so the
    /// monitor leaves it out.
    Provider,
    /// Reads the nftables ruleset: the monitor lists it afresh for every run.
    Ruleset,
    /// Everything else: every second, fall and rise 2.
    Other,
}

impl Class {
    /// The monitor's defaults: (interval, fall, rise).
    pub fn defaults(self) -> (Duration, u32, u32) {
        let ms = Duration::from_millis;
        match self {
            Class::Asked => (ms(20), 4, 5),
            Class::Kernel => (ms(1000), 1, 1),
            Class::Provider => (ms(30_000), 1, 1),
            Class::Ruleset | Class::Other => (ms(1000), 2, 2),
        }
    }
}

/// What a run of a probe has to hand.
pub struct Cx<'a> {
    pub session: &'a mut Session,
    pub timeout: Duration,
    pub tools: &'a Tools,
}

/// A validated probe of one kind.
pub trait Kind: std::fmt::Debug + Send + Sync {
    /// The default name after `kind:` (the target, the interface, …).
    fn detail(&self) -> String;

    /// How the monitor treats it.
    fn class(&self) -> Class {
        Class::Other
    }

    /// Checks what the probe is about; the text says what was seen, an error is a failure.
    fn run(&self, cx: &mut Cx<'_>) -> anyhow::Result<String>;

    /// What must be configured elsewhere for it to run at all (a `[bgp]` table…), checked
    /// once the tools are known; the error is a configuration error.
    fn needs(&self, _tools: &Tools) -> Result<(), String> {
        Ok(())
    }

    /// Kinds of [`Class::Asked`]: sends the question.
    fn ask(&self, _session: &mut Session) -> anyhow::Result<Option<hakit_net::icmp::Round>> {
        anyhow::bail!("not asked and answered apart")
    }

    /// Kinds of [`Class::Asked`]: the answer if it has come, the failure if `late` and it
    /// has not, `None` while waiting.
    fn answer(
        &self,
        _session: &mut Session,
        _asked: &Asked,
        _late: bool,
    ) -> Option<anyhow::Result<String>> {
        Some(Err(anyhow::anyhow!("not asked and answered apart")))
    }
}

/// A single run of an asked kind: the question, then waiting on the session's socket
/// until the answer or the timeout.
fn ask_and_wait(k: &dyn Kind, cx: &mut Cx<'_>) -> anyhow::Result<String> {
    let asked = Asked {
        start: std::time::Instant::now(),
        timeout: cx.timeout,
        round: k.ask(cx.session)?,
    };
    loop {
        let late = std::time::Instant::now() >= asked.deadline();
        if let Some(r) = k.answer(cx.session, &asked, late) {
            return r;
        }
        match cx.session.fd() {
            Some(fd) => hakit_net::sock::wait_any(&[fd], asked.deadline())?,
            None => std::thread::sleep(
                asked
                    .deadline()
                    .saturating_duration_since(std::time::Instant::now()),
            ),
        }
    }
}

/// Reads one probe's keys for its kind's `build`, with errors that name the kind and key.
pub struct Reader<'a> {
    def: &'a Def,
    keys: &'a Keys,
}

impl Reader<'_> {
    /// The value of `key`, read as `read` (a string, an integer…): a key the kind does not
    /// declare, or declares with another type, is a bug of ours, said loudly (the man page
    /// and the command-line shortcut are made from the declaration).
    fn get(&self, key: &str, read: Ty) -> Result<Option<&Value>, String> {
        let declared = self.def.keys.iter().find(|k| k.name == key).map(|k| k.ty);
        match declared {
            None => Err(format!(
                "{} probe: reads undeclared key `{key}` (hakit bug)",
                self.def.name
            )),
            Some(ty) if std::mem::discriminant(&ty) != std::mem::discriminant(&read) => {
                Err(format!(
                    "{} probe: reads `{key}` as {} but declares {} (hakit bug)",
                    self.def.name,
                    read.words(),
                    ty.words()
                ))
            }
            Some(_) => Ok(self.keys.0.get(key)),
        }
    }

    fn wrong(&self, key: &str, what: &str) -> String {
        format!("{} probe: `{key}` must be {what}", self.def.name)
    }

    /// The kind's name, for messages.
    pub fn kind(&self) -> &'static str {
        self.def.name
    }

    /// A string key.
    pub fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key, Ty::Text("string"))? {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }

    /// A string key that must be set.
    pub fn need(&self, key: &str) -> Result<String, String> {
        self.string(key)?
            .ok_or_else(|| format!("{} probe needs `{key}`", self.def.name))
    }

    /// A string key parsed by `T`'s `FromStr`; `what` names the type in the error.
    pub fn parse<T: FromStr>(&self, key: &str, what: &str) -> Result<Option<T>, String> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| format!("{} probe: {key} {s:?} is not {what}", self.def.name)),
        }
    }

    /// An IP address given as a string.
    pub fn ip(&self, key: &str) -> Result<Option<IpAddr>, String> {
        self.parse(key, "an IP address")
    }

    /// A duration given as a string ("250ms", "2s").
    pub fn duration(&self, key: &str) -> Result<Option<Duration>, String> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) => hakit_core::duration::parse(&s)
                .map(Some)
                .map_err(|e| format!("{} probe: {key}: {e}", self.def.name)),
        }
    }

    /// An integer that fits `T`.
    pub fn int<T: TryFrom<i64>>(&self, key: &str) -> Result<Option<T>, String> {
        match self.get(key, Ty::Int)? {
            None => Ok(None),
            Some(Value::Int(i)) => T::try_from(*i)
                .map(Some)
                .map_err(|_| self.wrong(key, "an integer in range")),
            Some(_) => Err(self.wrong(key, "an integer")),
        }
    }

    /// A number (an integer is one too).
    pub fn float(&self, key: &str) -> Result<Option<f64>, String> {
        match self.get(key, Ty::Number)? {
            None => Ok(None),
            Some(Value::Float(f)) => Ok(Some(*f)),
            Some(Value::Int(i)) => Ok(Some(*i as f64)),
            Some(_) => Err(self.wrong(key, "a number")),
        }
    }

    /// A boolean.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key, Ty::Bool)? {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong(key, "true or false")),
        }
    }

    /// A list of strings (empty when not set).
    pub fn strings(&self, key: &str) -> Result<Vec<String>, String> {
        match self.get(key, Ty::List)? {
            None => Ok(Vec::new()),
            Some(Value::List(l)) => Ok(l.clone()),
            Some(_) => Err(self.wrong(key, "a list of strings")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(kv: &[(&str, Value)]) -> Keys {
        Keys(kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn every_kind_is_listed_once_and_documents_its_keys() {
        let mut names: Vec<_> = KINDS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len(), "a kind listed twice");
        for d in KINDS {
            assert!(!d.about.is_empty(), "{}: no description", d.name);
            for k in d.keys {
                assert!(
                    !k.doc.is_empty() && !k.ty.words().is_empty(),
                    "{}.{}",
                    d.name,
                    k.name
                );
                assert!(
                    !["kind", "name", "group", "timeout", "interval", "fall", "rise"]
                        .contains(&k.name),
                    "{}: `{}` is a common key",
                    d.name,
                    k.name
                );
            }
        }
    }

    /// Each kind reads only keys it declares, as far as a build without values and one with
    /// every declared key of the wrong type get (both stop at the first error): the error is
    /// about a key, never an undeclared read. Past that, the reader refuses an undeclared
    /// read at run time with a message that names it a hakit bug.
    #[test]
    fn kinds_read_only_declared_keys() {
        for d in KINDS {
            let err = d.validate(&Keys::default()).err().unwrap_or_default();
            assert!(!err.contains("hakit bug"), "{}: {err}", d.name);
            let all = Keys(
                d.keys
                    .iter()
                    .map(|k| (k.name.to_string(), Value::Bool(true)))
                    .collect(),
            );
            let err = d.validate(&all).err().unwrap_or_default();
            assert!(!err.contains("hakit bug"), "{}: {err}", d.name);
        }
    }

    #[test]
    fn keys_that_do_not_apply_are_refused() {
        let e = find("icmp")
            .unwrap()
            .validate(&keys(&[
                ("target", s("192.0.2.1")),
                ("url", s("http://x/")),
            ]))
            .unwrap_err();
        assert_eq!(
            e,
            "icmp probe: key `url` does not apply (allowed: target, interface, source, count)"
        );
    }

    #[test]
    fn values_of_the_wrong_type_are_named() {
        let icmp = find("icmp").unwrap();
        let e = icmp
            .validate(&keys(&[("target", s("192.0.2.1")), ("count", s("3"))]))
            .unwrap_err();
        assert_eq!(e, "icmp probe: `count` must be an integer");
        let e = icmp
            .validate(&keys(&[
                ("target", s("192.0.2.1")),
                ("count", Value::Int(-1)),
            ]))
            .unwrap_err();
        assert_eq!(e, "icmp probe: `count` must be an integer in range");
        let e = icmp.validate(&keys(&[("target", s("gw"))])).unwrap_err();
        assert_eq!(e, "icmp probe: target \"gw\" is not an IP address");
    }
}
