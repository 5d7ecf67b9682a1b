//! The probe kinds' command-line shortcuts: `ha-check dns 192.0.2.53 --query gw.example`
//! runs one probe from a shell, exactly as a `[[check.probe]]` table with those keys would.
//!
//! Every shortcut is made here from its kind's definition in [`KINDS`], never written by
//! hand: the kind's `args` are its positional arguments, every other key is an option named
//! after it (`ca_file` is `--ca-file`; `interface` is also `-i`), typed as the key is
//! declared (an integer option refuses `three` at parse time, exit 2), a boolean key is a
//! flag, a list is one or more values, and `--timeout` is the common key. The help text of
//! each is the kind's and its keys' documentation, the same words `hakit.toml(5)` prints.
//! A new kind therefore has its shortcut, its help and its man page without an edit here.

use clap::{value_parser, Arg, ArgAction, ArgMatches, Command, CommandFactory};
use hakit_cli::ha_check::Cli;
use hakit_core::HDuration;

use crate::{
    config::{Keys, Probe, Value},
    kinds::{Def, Ty, KINDS},
};

/// ha-check's whole command line: hakit-cli's definitions and a subcommand per probe kind.
/// The binary parses with it and hakit-docgen renders its man pages and completions.
pub fn command() -> Command {
    KINDS
        .iter()
        .fold(Cli::command(), |cmd, d| cmd.subcommand(subcommand(d)))
}

/// Parses the command line (a usage error exits 2 with one line); the probe is the one a
/// shortcut names, if the subcommand was one.
pub fn parse(ident: &'static str) -> (Cli, Option<Probe>) {
    let (cli, matches) = hakit_core::cli::parse_command::<Cli>(ident, command());
    let probe = matches.subcommand().and_then(|(name, m)| {
        let d = KINDS.iter().find(|d| d.name == name)?;
        Some(probe(d, m))
    });
    (cli, probe)
}

/// The shortcut of one kind.
fn subcommand(d: &'static Def) -> Command {
    let mut cmd = Command::new(d.name).about(d.about);
    for (i, name) in d.args.iter().enumerate() {
        let Some(k) = d.keys.iter().find(|k| k.name == *name) else {
            continue; // a test proves every arg is a key
        };
        let arg = Arg::new(k.name)
            .index(i + 1)
            .value_name(k.name.to_uppercase())
            .help(k.doc);
        cmd = cmd.arg(typed(arg, k.ty));
    }
    for k in d.keys.iter().filter(|k| !d.args.contains(&k.name)) {
        let mut arg = Arg::new(k.name)
            .long(k.name.replace('_', "-"))
            .value_name(k.name.to_uppercase())
            .help(k.doc);
        if k.name == "interface" {
            arg = arg.short('i');
        }
        cmd = cmd.arg(typed(arg, k.ty));
    }
    cmd.arg(
        Arg::new("timeout")
            .long("timeout")
            .value_name("DUR")
            .value_parser(value_parser!(HDuration))
            .help("How long the probe may take [default: the deadline]"),
    )
}

/// The argument's parser and arity from the key's type.
fn typed(arg: Arg, ty: Ty) -> Arg {
    match ty {
        Ty::Text(_) => arg.value_parser(value_parser!(String)),
        Ty::Int => arg.value_parser(value_parser!(i64)),
        Ty::Number => arg.value_parser(value_parser!(f64)),
        Ty::Bool => arg.action(ArgAction::SetTrue).value_name(None::<&str>),
        Ty::List => arg
            .value_parser(value_parser!(String))
            .num_args(1..)
            .action(ArgAction::Append),
    }
}

/// The probe a shortcut's arguments describe, as its table would say it.
fn probe(d: &Def, m: &ArgMatches) -> Probe {
    let mut keys = Keys::default();
    for k in d.keys {
        let value = match k.ty {
            Ty::Text(_) => m.get_one::<String>(k.name).cloned().map(Value::Str),
            Ty::Int => m.get_one::<i64>(k.name).copied().map(Value::Int),
            Ty::Number => m.get_one::<f64>(k.name).copied().map(Value::Float),
            Ty::Bool => m.get_flag(k.name).then_some(Value::Bool(true)),
            Ty::List => m
                .get_many::<String>(k.name)
                .map(|v| Value::List(v.cloned().collect())),
        };
        if let Some(v) = value {
            keys.0.insert(k.name.to_string(), v);
        }
    }
    Probe {
        kind: Some(d.name.to_string()),
        timeout: m.get_one::<HDuration>("timeout").copied(),
        keys,
        ..Probe::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use clap::FromArgMatches;

    /// Invocations as an operator would type them: together, they set every key of every kind.
    const EVERY_KEY: &[&[&str]] = &[
        &[
            "icmp",
            "192.0.2.1",
            "-i",
            "eth0",
            "--source",
            "192.0.2.2",
            "--count",
            "3",
        ],
        &["neighbour", "192.0.2.1", "-i", "eth0"],
        &[
            "http",
            "http://192.0.2.80/healthz",
            "--status",
            "200",
            "-i",
            "eth0",
            "--source",
            "192.0.2.2",
            "--ca-file",
            "/etc/ssl/ca.pem",
        ],
        &[
            "tcp",
            "192.0.2.80:443",
            "-i",
            "eth0",
            "--source",
            "192.0.2.2",
        ],
        &[
            "dns",
            "192.0.2.53",
            "--query",
            "gw.example",
            "--address",
            "192.0.2.1",
            "-i",
            "eth0",
            "--source",
            "192.0.2.2",
        ],
        &["link", "eth0"],
        &["address", "203.0.113.10", "-i", "eth0", "--absent"],
        &[
            "route",
            "0.0.0.0/0",
            "-i",
            "eth0",
            "--gateway",
            "203.0.113.1",
        ],
        &[
            "nft-rule",
            "--snat-source",
            "198.51.100.0/24",
            "--to",
            "203.0.113.10",
        ],
        &["conntrack", "--max-usage", "0.9"],
        &[
            "sysctl",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
        ],
        &["service", "--unit", "conntrackd.service"],
        &["service", "--pidfile", "/run/conntrackd.pid"],
        &["service", "--process", "conntrackd"],
        &[
            "drbd",
            "r0",
            "--role",
            "Primary",
            "--connection",
            "Connected",
            "--disk",
            "UpToDate",
        ],
        &["fip-owner", "203.0.113.10", "--cache", "0s"],
        &[
            "bgp",
            "203.0.113.10",
            "--sessions",
            "1",
            "--community",
            "65000:100",
        ],
    ];

    fn parse_from(args: &[&str]) -> Result<(Cli, Option<Probe>), clap::Error> {
        let m = command()
            .try_get_matches_from(std::iter::once("ha-check").chain(args.iter().copied()))?;
        let cli = Cli::from_arg_matches(&m)?;
        let probe = m
            .subcommand()
            .and_then(|(name, sub)| KINDS.iter().find(|d| d.name == name).map(|d| probe(d, sub)));
        Ok((cli, probe))
    }

    /// Every kind has a shortcut, every key is reachable from it, and what it gives the
    /// kind passes the kind's own validation (so each argument's type is the one the kind
    /// reads: a string where an integer is read fails here).
    #[test]
    fn every_kind_has_a_shortcut_that_sets_every_key() {
        for d in KINDS {
            for a in d.args {
                assert!(
                    d.keys.iter().any(|k| k.name == *a),
                    "{}: arg {a} is not a key",
                    d.name
                );
            }
            let mut set = Vec::new();
            for args in EVERY_KEY.iter().filter(|a| a[0] == d.name) {
                let (cli, p) = parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
                assert!(
                    cli.cmd.is_none(),
                    "{}: also a hand-written subcommand",
                    d.name
                );
                let p = p.expect("a probe");
                assert_eq!(p.kind.as_deref(), Some(d.name));
                d.validate(&p.keys)
                    .unwrap_or_else(|e| panic!("{args:?} does not validate: {e}"));
                set.extend(p.keys.0.into_keys());
            }
            let mut all: Vec<_> = d.keys.iter().map(|k| k.name.to_string()).collect();
            set.sort_unstable();
            set.dedup();
            all.sort_unstable();
            assert_eq!(set, all, "{}: keys no invocation in EVERY_KEY set", d.name);
        }
    }

    #[test]
    fn values_are_typed_as_the_keys_are() {
        let (_, p) =
            parse_from(&["icmp", "192.0.2.1", "--count", "3", "--timeout", "250ms"]).unwrap();
        let p = p.unwrap();
        assert_eq!(p.keys.0.get("count"), Some(&Value::Int(3)));
        assert_eq!(
            p.keys.0.get("target"),
            Some(&Value::Str("192.0.2.1".into()))
        );
        assert_eq!(p.timeout, Some(HDuration(Duration::from_millis(250))));
        let (_, p) = parse_from(&["sysctl", "a=1", "b=2"]).unwrap();
        assert_eq!(
            p.unwrap().keys.0.get("expect"),
            Some(&Value::List(vec!["a=1".into(), "b=2".into()]))
        );
        let (_, p) = parse_from(&["address", "192.0.2.1", "-i", "eth0"]).unwrap();
        assert_eq!(
            p.unwrap().keys.0.get("absent"),
            None,
            "a flag not given is not set"
        );
    }

    #[test]
    fn wrong_arguments_are_usage_errors() {
        for bad in [
            &["icmp", "192.0.2.1", "--count", "three"][..],
            &["conntrack", "--max-usage", "most"],
            &["icmp", "192.0.2.1", "--timeout", "soon"],
            &["dns", "192.0.2.53", "--ttl", "5"],
            &["link", "eth0", "eth1"],
        ] {
            let e = parse_from(bad).err();
            assert!(e.is_some(), "{bad:?} parsed");
        }
    }

    /// The hand-written modes are still there, and a probe is not one of them.
    #[test]
    fn modes_are_not_probes() {
        let (cli, p) = parse_from(&["undrain"]).unwrap();
        assert!(cli.cmd.is_some() && p.is_none());
        let (cli, p) = parse_from(&[]).unwrap();
        assert!(cli.cmd.is_none() && p.is_none());
    }

    /// What a key's type cannot say (a required key) the kind's validation does: exit 2 too.
    #[test]
    fn a_missing_required_key_fails_validation() {
        let (_, p) = parse_from(&["sysctl"]).unwrap();
        let p = p.unwrap();
        assert!(crate::kinds::find("sysctl")
            .unwrap()
            .validate(&p.keys)
            .is_err());
        let (_, p) = parse_from(&["dns", "192.0.2.53"]).unwrap();
        let err = crate::kinds::find("dns")
            .unwrap()
            .validate(&p.unwrap().keys)
            .unwrap_err();
        assert!(err.contains("query"), "{err}");
    }
}
