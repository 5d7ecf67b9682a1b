//! Command-line behaviour that needs no privileges: help, usage errors, configuration.

mod util;

use util::*;

#[test]
fn help_teaches_and_lists_exit_codes() {
    let out = run_host("garp-burst", &["--help"], &[]);
    assert_exit(&out, 0, "");
    let text = stdout(&out);
    for want in [
        "--interface",
        "--ip",
        "--count",
        "--interval",
        "--reply",
        "--dry-run",
        "--json",
        "Exit codes:",
        "HAKIT_GARP_COUNT",
        "Examples:",
    ] {
        assert!(text.contains(want), "--help lacks {want}:\n{text}");
    }
    let out = run_host("garp-burst", &["-h"], &[]);
    assert!(stdout(&out).contains("3  superseded"));
}

#[test]
fn unknown_config_key_is_named() {
    let dir = std::env::temp_dir().join(format!("hakit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("typo.toml");
    std::fs::write(&conf, "[garp]\ninterface = \"eth0\"\ncuont = 3\n").unwrap();
    let out = run_host("garp-burst", &["--config", conf.to_str().unwrap()], &[]);
    assert_exit(&out, 2, "");
    let err = stderr(&out);
    assert!(
        err.contains("typo.toml:3:1: unknown field `cuont`"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one-line error: {err}");

    // HAKIT_CONFIG is the same as --config.
    let out = run_host(
        "garp-burst",
        &[],
        &[("HAKIT_CONFIG", conf.to_str().unwrap())],
    );
    assert_exit(&out, 2, "unknown field `cuont`");

    let out = run_host("garp-burst", &["--config", "/nonexistent/hakit.toml"], &[]);
    assert_exit(&out, 2, "cannot read config /nonexistent/hakit.toml");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn garbage_arguments_never_panic() {
    let cases: &[&[&str]] = &[
        &["--count", "99999999999999999999"],
        &["--interval", "1e400s"],
        &["--interval", "999999999999999999999h"],
        &["--ip", ""],
        &["-i", "\u{1F600}"],
        &["--reply=maybe"],
        &["--bogus"],
    ];
    for args in cases {
        let out = run_host("garp-burst", args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
    }
}

#[test]
fn each_binary_checks_its_own_tables_and_all_check_table_names() {
    let dir = std::env::temp_dir().join(format!("hakit-cli-tables-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("hakit.toml");
    let c = conf.to_str().unwrap();
    std::fs::write(
        &conf,
        "[[notify.instance]]\nname = \"VI_1\"\nfloating_ip = [\"203.0.113.10/32\"]\n",
    )
    .unwrap();
    let out = run_host("nat-notify", &["--config", c, "status"], &[]);
    assert_exit(&out, 2, "hakit.toml:3:1: unknown field `floating_ip`");
    std::fs::write(&conf, "[notfy]\n").unwrap();
    for (b, arg) in [("garp-burst", "--dry-run"), ("nat-notify", "status")] {
        let out = run_host(b, &["--config", c, arg], &[]);
        assert_eq!(out.status.code(), Some(2), "{b}");
        assert!(
            stderr(&out).contains("unknown field `notfy`"),
            "{b}: {}",
            stderr(&out)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nat_notify_help_and_usage_errors() {
    let out = run_host("nat-notify", &["--help"], &[]);
    assert_exit(&out, 0, "");
    let text = stdout(&out);
    for want in [
        "notify_master",
        "vrrp_notify_fifo_script",
        "Exit codes:",
        "superseded",
        "--dry-run",
        "status",
    ] {
        assert!(text.contains(want), "--help lacks {want}");
    }
    for (args, want) in [
        (
            &["INSTANCE", "VI_1", "SLEEPY", "1"][..],
            "unknown state \"SLEEPY\"",
        ),
        (&["INSTANCE", "VI_1", "MASTER", "x"][..], "invalid priority"),
        (
            &["--floating-ip", "203.0.113.300/32", "master"][..],
            "invalid address/prefix",
        ),
        (&["--lock-timeout", "5", "master"][..], "invalid duration"),
        // Hardening: every name that reaches nft, a file name or systemctl is checked first,
        // and every duration and count is bounded.
        (
            &[
                "--interface",
                "eth0\" ; flush ruleset ; \"",
                "--floating-ip",
                "203.0.113.10/32",
                "master",
            ][..],
            "not a Linux interface name",
        ),
        (
            &["--instance", "VI/1", "--interface", "eth0", "master"][..],
            "instance name \"VI/1\"",
        ),
        (
            &["--lock-timeout", "18000000000000000000s", "master"][..],
            "invalid duration",
        ),
        (
            &[
                "--interface",
                "eth0",
                "--garp-count",
                "4294967295",
                "master",
            ][..],
            "garp_count is at most 100",
        ),
        (
            &["--interface", "eth0", "--unit=--root=/", "master"][..],
            "not a systemd unit name",
        ),
        // Usage errors found after the configuration was read change nothing either.
        (
            &[
                "--interface",
                "eth0",
                "--unknown-instance",
                "fail",
                "INSTANCE",
                "VI_9",
                "MASTER",
                "100",
            ][..],
            "instance \"VI_9\" is not configured",
        ),
        (&["--interface", "eth0", "fifo", "/"][..], "/ is not a FIFO"),
        (
            &["--interface", "eth0", "fifo", "/nonexistent/fifo"][..],
            "notify FIFO /nonexistent/fifo",
        ),
    ] {
        let rt = std::env::temp_dir().join(format!("hakit-cli-rt-{}", std::process::id()));
        let out = run_host(
            "nat-notify",
            args,
            &[("HAKIT_RUNTIME_DIR", &rt.to_string_lossy())],
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).lines().count(),
            1,
            "{args:?}: one line: {}",
            stderr(&out)
        );
        // Exit 2 means nothing changed: not even the runtime directory was created.
        assert!(
            !rt.exists(),
            "{args:?}: a usage error created {}",
            rt.display()
        );
    }
}

#[test]
fn shipped_example_config_is_valid_for_nat_notify() {
    let out = run_host(
        "nat-notify",
        &["--config", "examples/hakit.toml", "master", "--dry-run"],
        &[],
    );
    assert_exit(&out, 0, "");
    assert!(
        stdout(&out).contains("add 203.0.113.10/32 to eth0"),
        "{}",
        stdout(&out)
    );
}

/// The whole file, every table read with the types of the crate that owns it.
type Whole = hakit_core::config::File<
    hakit_net::garp::Garp,
    hakit_notify::config::Notify,
    hakit_check::config::Check,
    hakit_fip::config::Fip,
    hakit_bgp::Config,
>;

#[test]
fn every_example_config_parses_with_every_table() {
    let mut n = 0;
    for e in std::fs::read_dir("examples").unwrap().flatten() {
        let p = e.path().join("hakit.toml");
        let p = if e.path().is_dir() { p } else { e.path() };
        if p.extension().and_then(|x| x.to_str()) != Some("toml") || !p.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        // Every table with its owner's types (each binary reads only its own).
        let parsed: Result<Whole, String> = hakit_core::config::parse(&text);
        assert!(parsed.is_ok(), "{}: {}", p.display(), parsed.unwrap_err());
        n += 1;
    }
    assert!(n >= 7, "only {n} example configs found");
}

#[test]
fn aws_iam_policy_lists_exactly_the_actions_fip_claim_calls() {
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("examples/aws/iam-policy.json").unwrap())
            .unwrap();
    let mut granted: Vec<String> = policy["Statement"][0]["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().trim_start_matches("ec2:").to_string())
        .collect();
    granted.sort();
    // The actions the AWS provider sends: every string literal passed to `call(`.
    let src = std::fs::read_to_string("crates/fip/src/aws.rs").unwrap();
    let mut called: Vec<String> = src
        .split(".call(")
        .skip(1)
        .filter_map(|rest| {
            rest.trim_start()
                .strip_prefix('"')
                .and_then(|r| r.split('"').next())
                .map(str::to_string)
        })
        .collect();
    called.sort();
    called.dedup();
    assert_eq!(
        granted, called,
        "the IAM policy must grant exactly what fip-claim calls"
    );
}

/// `nat-notify status | head -1`, `ha-check -v | true`: a reader that goes away is a normal
/// end of output, never a panic (it was exit 134, "failed printing to stdout"). The pipe is
/// closed before the binary writes; the exit status is the one the work earned.
#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    use std::process::{Command, Stdio};
    let cases: [(&str, &[&str], i32); 3] = [
        (
            "nat-notify",
            &["--config", "examples/hakit.toml", "master", "--dry-run"],
            0,
        ),
        (
            "nat-notify",
            &[
                "--config",
                "examples/hakit.toml",
                "master",
                "--dry-run",
                "--json",
            ],
            0,
        ),
        ("garp-burst", &["--help"], 0),
    ];
    for (name, args, want) in cases {
        // nix's pipe(2), not std::io::pipe (Rust 1.87; the MSRV is 1.85).
        let (reader, writer) = nix::unistd::pipe().unwrap();
        drop(reader);
        let out = Command::new(bin(name))
            .args(args)
            .env_remove("HAKIT_CONFIG")
            .env("HAKIT_SYSLOG_SOCKET", "/nonexistent")
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(want),
            "{name} {args:?} with a closed stdout: {:?} {}",
            out.status,
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
}

/// Every NAT example's health checks judge the uplink: a link probe of the WAN interface and
/// ICMP probes bound to it, none aimed inside the LAN prefix that is NATed (such a target
/// tests the LAN, not the uplink: the old examples probed 198.51.100.53 inside
/// 198.51.100.0/24), and the example writes its metrics where Debian's node_exporter reads.
#[test]
fn nat_examples_check_the_uplink_and_export_metrics() {
    for d in nat_profiles() {
        let p = format!("examples/{d}/hakit.toml");
        let text = std::fs::read_to_string(&p).unwrap();
        let f: Whole = hakit_core::config::parse(&text).unwrap();
        let inst = &f.notify.instances[0];
        let wan = inst.interface.clone().unwrap();
        let lan = inst.snat_source.unwrap();
        let kind = |p: &hakit_check::config::Probe| p.kind.clone().unwrap();
        let key = |p: &hakit_check::config::Probe, k: &str| match p.keys.0.get(k) {
            Some(hakit_check::config::Value::Str(s)) => Some(s.clone()),
            _ => None,
        };
        let probes = &f.check.probes;
        assert!(
            probes
                .iter()
                .any(|p| kind(p) == "link" && key(p, "interface").as_ref() == Some(&wan)),
            "{p}: no link probe of the WAN {wan}"
        );
        let icmp: Vec<_> = probes.iter().filter(|p| kind(p) == "icmp").collect();
        // On AWS the standby has no public IPv4: only the upstream gateway (the VPC router).
        let want = if d == "aws" { 1 } else { 2 };
        assert!(
            icmp.len() >= want,
            "{p}: the upstream gateway and a target beyond it"
        );
        for pr in icmp {
            let t: std::net::IpAddr = key(pr, "target").unwrap().parse().unwrap();
            assert!(
                !lan.contains(t),
                "{p}: ICMP target {t} is inside the LAN {lan}"
            );
            assert_eq!(
                key(pr, "interface").as_deref(),
                Some(wan.as_str()),
                "{p}: {t} not bound to the WAN"
            );
        }
        assert_eq!(
            f.general.textfile_dir.as_deref(),
            Some(std::path::Path::new("/var/lib/prometheus/node-exporter")),
            "{p}: metrics off or not where node_exporter reads"
        );
    }
}

/// `status` and `--dry-run` only look: they create no runtime directory.
#[test]
fn looking_creates_nothing() {
    let rt = std::env::temp_dir().join(format!("hakit-cli-look-{}", std::process::id()));
    for args in [
        &[
            "--interface",
            "eth0",
            "--floating-ip",
            "203.0.113.10/32",
            "status",
        ][..],
        &[
            "--interface",
            "eth0",
            "--floating-ip",
            "203.0.113.10/32",
            "master",
            "--dry-run",
        ][..],
    ] {
        let out = run_host(
            "nat-notify",
            args,
            &[
                ("HAKIT_RUNTIME_DIR", &rt.to_string_lossy()),
                ("HAKIT_SYSLOG_SOCKET", "/nonexistent"),
            ],
        );
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(!rt.exists(), "{args:?} created {}", rt.display());
    }
}

/// A CA file that is missing or holds no certificate is a configuration error (exit 2),
/// never a silent fall-back to the system bundle; a token with characters an HTTP header
/// cannot carry likewise. Nothing is sent (the endpoint would refuse the connection).
#[test]
fn fip_claim_refuses_a_useless_ca_file_and_a_malformed_token() {
    let dir = std::env::temp_dir().join(format!("hakit-cli-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let base = [
        "--provider",
        "linode",
        "--ip",
        "203.0.113.10",
        "--endpoint-url",
        "http://127.0.0.1:1/v4",
        "--metadata-url",
        "http://127.0.0.1:1",
        "--syslog-socket",
        "/nonexistent",
    ];
    for (ca, token, want) in [
        (empty.to_str().unwrap(), "abc", "no PEM certificate"),
        ("/nonexistent/ca.pem", "abc", "/nonexistent/ca.pem"),
        ("", "abc\ndef", "characters an HTTP header cannot carry"),
    ] {
        let mut args: Vec<&str> = base.to_vec();
        if !ca.is_empty() {
            args.extend(["--ca-file", ca]);
        }
        let out = run_host("fip-claim", &args, &[("LINODE_TOKEN", token)]);
        assert_eq!(out.status.code(), Some(2), "{want}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{want}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("abc"),
            "the token leaked: {}",
            stderr(&out)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A config file in a fresh directory, with the runtime directory beside it.
fn bgp_config(tag: &str, body: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("hakit-cli-bgp-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("hakit.toml");
    std::fs::write(
        &conf,
        format!(
            "[general]\nruntime_dir = \"{}\"\n\n[[notify.instance]]\nname = \"VI_1\"\nannounce = true\n\n{body}",
            dir.join("run").display()
        ),
    )
    .unwrap();
    (dir, conf.to_string_lossy().to_string())
}

#[test]
fn bad_bgp_tables_are_usage_errors() {
    for (tag, body, want) in [
        ("kind", "[bgp]\nspeaker = \"quagga\"\nprefixes = [\"203.0.113.10/32\"]\n", "unknown variant `quagga`"),
        ("bird", "[bgp]\nspeaker = \"bird\"\nprefixes = [\"203.0.113.10/32\"]\nbird_roles_file = \"roles.conf\"\n", "bird_roles_file: \"roles.conf\" is not an absolute file path"),
        ("none", "", "announce = true needs a [bgp] table"),
        ("asn", "[bgp]\nspeaker = \"frr\"\nprefixes = [\"203.0.113.10/32\"]\n", "frr_asn is required"),
        ("comm", "[bgp]\nspeaker = \"gobgp\"\nprefixes = [\"203.0.113.10/32\"]\nprimary = \"65000:70000\"\n", "invalid community"),
        ("host", "[bgp]\nspeaker = \"gobgp\"\nprefixes = [\"203.0.113.10/24\"]\n", "host bits"),
        // Per-IP roles: an instance's own prefixes are [bgp]'s, and no two instances move one.
        ("own", "[[notify.instance]]\nname = \"VI_2\"\nannounce = true\nannounce_prefixes = [\"203.0.113.11/32\"]\n\n[bgp]\nspeaker = \"gobgp\"\nprefixes = [\"203.0.113.10/32\"]\n", "announce_prefixes: 203.0.113.11/32 is not in [bgp] prefixes"),
        ("twice", "[[notify.instance]]\nname = \"VI_2\"\nannounce = true\nannounce_prefixes = [\"203.0.113.11/32\"]\n\n[bgp]\nspeaker = \"gobgp\"\nprefixes = [\"203.0.113.10/32\", \"203.0.113.11/32\"]\n", "instances VI_1 and VI_2 both announce every [bgp] prefix"),
        ("alone", "[[notify.instance]]\nname = \"VI_2\"\nannounce_prefixes = [\"203.0.113.10/32\"]\n\n[bgp]\nspeaker = \"gobgp\"\nprefixes = [\"203.0.113.10/32\"]\n", "announce_prefixes without announce = true"),
    ] {
        let (dir, conf) = bgp_config(tag, body);
        let out = run_host("nat-notify", &["--config", &conf, "INSTANCE", "VI_1", "MASTER", "100"], &[]);
        assert_eq!(out.status.code(), Some(2), "{tag}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{tag}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{tag}: one line: {}", stderr(&out));
        // Nothing was started: the runtime directory was never created.
        assert!(!dir.join("run").exists(), "{tag}: runtime dir created");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn an_unreachable_speaker_fails_the_announcement_step() {
    for (tag, body, want) in [
        (
            "gobgp",
            "[bgp]\nspeaker = \"gobgp\"\nprefixes = [\"203.0.113.10/32\"]\ngobgp_api = \"127.0.0.1:9\"\n",
            "GoBGP API 127.0.0.1:9",
        ),
        (
            "frr",
            "[bgp]\nspeaker = \"frr\"\nfrr_asn = 65001\nprefixes = [\"203.0.113.10/32\"]\nfrr_vty_socket = \"@DIR@\"\n",
            "failed to connect to any daemons",
        ),
    ] {
        let prog = if tag == "frr" { "vtysh" } else { "gobgp" };
        if hakit_lab::which(prog).is_none() {
            hakit_lab::skip("an_unreachable_speaker_fails_the_announcement_step", &format!("{prog} is not installed (make deps)"));
            continue;
        }
        let (dir, conf) = bgp_config(tag, "");
        let body = body.replace("@DIR@", &dir.join("vty").display().to_string());
        std::fs::create_dir_all(dir.join("vty")).unwrap();
        let text = std::fs::read_to_string(&conf).unwrap() + &body;
        std::fs::write(&conf, text).unwrap();
        let out = run_host("nat-notify", &["--config", &conf, "--json", "INSTANCE", "VI_1", "MASTER", "100"], &[]);
        assert_eq!(out.status.code(), Some(1), "{tag}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("bgp_announce failed") && err.contains(want), "{tag}: {err}");
        let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let step = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == "bgp_announce")
            .cloned()
            .unwrap_or_default();
        assert_eq!(step["result"], "failed", "{tag}: {report}");
        // --dry-run says what MASTER would do, and BACKUP demotes.
        let out = run_host("nat-notify", &["--config", &conf, "--dry-run", "INSTANCE", "VI_1", "BACKUP", "100"], &[]);
        assert_eq!(out.status.code(), Some(0), "{tag}: {}", stderr(&out));
        assert!(stdout(&out).contains("announce 203.0.113.10/32 secondary"), "{tag}: {}", stdout(&out));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `--version` names the commit the binary was built from when the build said which
/// (`make` exports HAKIT_COMMIT; build.rs puts it in the version).
#[test]
fn version_names_the_commit_when_built_by_make() {
    for name in ["garp-burst", "nat-notify", "ha-check", "fip-claim"] {
        let out = run_host(name, &["--version"], &[]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        let v = stdout(&out);
        assert!(
            v.starts_with(&format!("{name} {}", env!("CARGO_PKG_VERSION"))),
            "{v}"
        );
        if let Some(c) = option_env!("HAKIT_COMMIT").filter(|c| !c.is_empty()) {
            assert!(v.contains(&format!("(commit {c})")), "{name}: {v}");
        }
    }
}

/// A probe that needs a table configured elsewhere says so at start (the kind's `needs`),
/// not at its first run: exit 2, one line naming the probe.
#[test]
fn a_bgp_probe_without_a_bgp_table_is_a_usage_error() {
    let dir = std::env::temp_dir().join(format!("hakit-cli-bgp-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("hakit.toml");
    std::fs::write(
        &conf,
        "[[check.probe]]\nkind = \"link\"\ninterface = \"lo\"\n\n[[check.probe]]\nkind = \"bgp\"\n",
    )
    .unwrap();
    let out = run_host("ha-check", &["--config", &conf.to_string_lossy()], &[]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_exit(
        &out,
        2,
        "probe 2: a bgp probe needs a [bgp] table (speaker, prefixes)",
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

/// A checker refuses what cannot work (hakit-setup runs `nat-notify master --dry-run` on the
/// rendered file): SNAT with nothing to NAT to is refused at load, by every command; the dry
/// run refuses an interface the node does not have and a SNAT target that is neither a
/// floating IP nor the node's own address. Exit 2, one line naming the key; root-free.
#[test]
fn checkers_refuse_a_plan_that_cannot_work() {
    let dir = std::env::temp_dir().join(format!("hakit-plan-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("hakit.toml");
    let c = conf.to_string_lossy().to_string();
    let write = |instance: &str| {
        std::fs::write(
            &conf,
            format!(
                "[general]\nruntime_dir = \"{}\"\nsyslog_socket = \"/nonexistent\"\n\n[[notify.instance]]\nname = \"VI_1\"\nsnat_source = \"198.51.100.0/24\"\n{instance}",
                dir.join("run").display()
            ),
        )
        .unwrap()
    };
    // No target: the AWS and DigitalOcean profiles shipped like this and never NATed.
    write("interface = \"lo\"\n");
    for args in [&["master", "--dry-run"][..], &["status"][..]] {
        let mut argv = vec!["--config", c.as_str()];
        argv.extend_from_slice(args);
        let out = run_host("nat-notify", &argv, &[]);
        assert_exit(
            &out,
            2,
            "instance VI_1: snat_source is set but nothing to NAT to: set snat_to = ADDRESS",
        );
        assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    }
    write("snat_to = \"127.0.0.1\"\n");
    let out = run_host("nat-notify", &["--config", &c, "master", "--dry-run"], &[]);
    assert_exit(&out, 2, "snat_source is set but interface is not");
    // A NIC the node does not have (cloud images say ens5, not eth0).
    write("interface = \"hakitnone0\"\nsnat_to = \"127.0.0.1\"\n");
    let out = run_host("nat-notify", &["--config", &c, "master", "--dry-run"], &[]);
    assert_exit(
        &out,
        2,
        "instance VI_1: interface = \"hakitnone0\": no such interface on this node (it has: ",
    );
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    // A target that is neither a floating IP nor the node's: the provider would not
    // translate it.
    write("interface = \"lo\"\nsnat_to = \"203.0.113.77\"\n");
    let out = run_host("nat-notify", &["--config", &c, "master", "--dry-run"], &[]);
    assert_exit(
        &out,
        2,
        "instance VI_1: snat_to 203.0.113.77 is neither in floating_ips nor an address of this node",
    );
    // A claim without a provider to claim from: refused at load by every command (it was
    // exit 1 at the first MASTER).
    write("interface = \"lo\"\nsnat_to = \"127.0.0.1\"\nfip_claim = true\n");
    for args in [
        &["master", "--dry-run"][..],
        &["master"][..],
        &["status"][..],
    ] {
        let mut argv = vec!["--config", c.as_str()];
        argv.extend_from_slice(args);
        let out = run_host("nat-notify", &argv, &[]);
        assert_exit(
            &out,
            2,
            "instance VI_1: fip_claim = true needs a [fip] table with a provider",
        );
        assert!(
            !dir.join("run").exists(),
            "{args:?}: the runtime directory was made"
        );
    }
    // The node's own address, or a floating IP the MASTER adds: a plan that can run.
    for ok in [
        "interface = \"lo\"\nsnat_to = \"127.0.0.1\"\n",
        "interface = \"lo\"\nfloating_ips = [\"203.0.113.10/32\"]\n",
    ] {
        write(ok);
        let out = run_host("nat-notify", &["--config", &c, "master", "--dry-run"], &[]);
        assert_exit(&out, 0, "");
        assert!(
            stdout(&out).contains("SNAT 198.51.100.0/24 -> "),
            "{ok}: {}",
            stdout(&out)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
