//! Fuzzing every binary from the outside: mutated argv, `HAKIT_*` environment and config
//! files, as a root hook would receive them.
//!
//! Each invocation runs in a network namespace of its own (`unshare --net`: nothing it does
//! can reach a real network or change the host's), with `nft`, `conntrackd` and `systemctl`
//! replaced by stubs on PATH, provider tokens in the environment and in a token file. It
//! fails on any exit status outside 0-3, any death by a signal (a panic aborts), any run
//! still going after 10 s, and any secret on stdout or stderr. Needs root (the namespace);
//! without it the test is skipped loudly, and under CI=true a skip is a failure.
//!
//! HAKIT_CLI_FUZZ_SECONDS sets the budget (default 20; `make fuzz` gives it more),
//! HAKIT_FUZZ_SEED replays a run.

mod util;

use std::{
    os::unix::{fs::PermissionsExt, process::ExitStatusExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use util::*;

const SECRETS: [(&str, &str); 4] = [
    ("HCLOUD_TOKEN", "hakitfuzzsecretHCLOUD"),
    ("LINODE_TOKEN", "hakitfuzzsecretLINODE"),
    ("DIGITALOCEAN_TOKEN", "hakitfuzzsecretDO"),
    ("AWS_SECRET_ACCESS_KEY", "hakitfuzzsecretAWS"),
];
const FILE_SECRET: &str = "hakitfuzzsecretFILE";

fn flags(bin: &str) -> &'static [&'static str] {
    match bin {
        "garp-burst" => &[
            "-i",
            "--ip",
            "-c",
            "--count",
            "--interval",
            "--reply",
            "--force",
            "--dry-run",
            "--json",
            "-v",
            "--config",
        ],
        "nat-notify" => &[
            "master",
            "backup",
            "fault",
            "stop",
            "master-rx-lower-pri",
            "status",
            "INSTANCE",
            "GROUP",
            "--instance",
            "--interface",
            "--floating-ip",
            "--vrrp-vip",
            "--snat-source",
            "--conntrackd-config",
            "--unit",
            "--garp-count",
            "--garp-interval",
            "--lock-timeout",
            "--command-timeout",
            "--retries",
            "--unknown-instance",
            "--runtime-dir",
            "--textfile",
            "--dry-run",
            "--json",
            "-v",
            "--config",
        ],
        "ha-check" => &[
            "icmp",
            "http",
            "tcp",
            "link",
            "address",
            "route",
            "nft-rule",
            "conntrack",
            "sysctl",
            "service",
            "fip-owner",
            "--interval",
            "--deadline",
            "--textfile",
            "--nft-counters",
            "--runtime-dir",
            "--json",
            "-i",
            "--timeout",
            "--count",
            "--status",
            "--ca-file",
            "--snat-source",
            "--to",
            "--absent",
            "--gateway",
            "-v",
            "--config",
        ],
        _ => &[
            "--provider",
            "--ip",
            "--peer",
            "--check",
            "--force",
            "--dry-run",
            "--json",
            "--token-file",
            "--endpoint-url",
            "--metadata-url",
            "--timeout",
            "--deadline",
            "--ca-file",
            "--floating-ip-id",
            "--route-destination",
            "--release",
            "--assign",
            "-v",
            "--config",
        ],
    }
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn every_binary_survives_mutated_argv_env_and_config() {
    if !nix::unistd::geteuid().is_root() || which("unshare").is_none() {
        let why = "cli fuzz needs root and unshare (a network namespace per run)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIPPED every_binary_survives_mutated_argv_env_and_config: {why}");
        return;
    }
    let budget = Duration::from_secs(env_number("HAKIT_CLI_FUZZ_SECONDS", 20));
    let seed = fuzz_seed();
    let mut rng = Rng(seed);
    let d = std::env::temp_dir().join(format!("hakit-cli-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("stubs")).unwrap();
    for stub in [
        "nft",
        "conntrackd",
        "systemctl",
        "drbdadm",
        "gobgp",
        "vtysh",
    ] {
        let p = d.join("stubs").join(stub);
        std::fs::write(&p, "#!/bin/sh\necho stub >&2\nexit 1\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let token = d.join("token");
    std::fs::write(&token, FILE_SECRET).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Config seeds: the shipped examples, pointed at this directory.
    let mut configs: Vec<String> = Vec::new();
    for e in [
        "examples/hakit.toml",
        "examples/bare-metal/hakit.toml",
        "examples/hetzner/hakit.toml",
        "examples/aws/hakit.toml",
    ] {
        let t = std::fs::read_to_string(e).unwrap();
        configs.push(
            t.replace("/etc/hakit/hcloud.token", &token.to_string_lossy())
                .replace("/var/lib/prometheus/node-exporter", &d.to_string_lossy())
                .replace(
                    "/etc/conntrackd/conntrackd.conf",
                    &d.join("ctd.conf").to_string_lossy(),
                )
                .replace("units = [\"lelastic\"]", ""),
        );
    }
    let d_s = d.to_string_lossy().to_string();
    let long = "x".repeat(300);
    let values: Vec<String> = [
        "lo",
        "eth0",
        "VI_1",
        "203.0.113.10",
        "203.0.113.10/32",
        "198.51.100.0/24",
        "2001:db8::10/128",
        "1s",
        "200ms",
        "0s",
        "18000000000000000000s",
        "25h",
        "4294967295",
        "-1",
        "0",
        "3",
        "",
        "a\nb",
        "eth0\";flush ruleset;\"",
        "%s%n",
        "\u{1b}[2J",
        "linode",
        "aws",
        "hetzner",
        "digitalocean",
        "http://127.0.0.1:1/v4",
        "http://[::1]:1/",
        "inet hakit_filter",
        "net.ipv4.ip_forward=1",
        "fail",
        "ignore",
        "/dev/zero",
        &long,
    ]
    .iter()
    .map(|s| s.to_string())
    // A path that does not exist, in the scratch directory: a fuzzed `--textfile` or
    // runtime directory writes there, never on the host (it once left /nonexistent behind,
    // which a later test takes for a missing HOME).
    .chain([
        d_s.clone(),
        token.to_string_lossy().to_string(),
        d.join("nonexistent").to_string_lossy().to_string(),
    ])
    .collect();
    let env_keys = [
        "HAKIT_GARP_COUNT",
        "HAKIT_GARP_INTERVAL",
        "HAKIT_NOTIFY_INTERFACE",
        "HAKIT_CHECK_INTERVAL",
        "HAKIT_CHECK_DEADLINE",
        "HAKIT_FIP_PROVIDER",
        "HAKIT_FIP_IP",
        "HAKIT_FIP_DEADLINE",
        "HAKIT_WATCH_PEER",
        "HAKIT_NOTIFY_GARP_COUNT",
        "RUST_LOG",
    ];
    let start = Instant::now();
    let (mut runs, mut failures) = (0u64, Vec::new());
    while start.elapsed() < budget && failures.len() < 10 {
        runs += 1;
        let name = *rng.pick(&["garp-burst", "nat-notify", "ha-check", "fip-claim"]);
        let mut args: Vec<String> = Vec::new();
        for _ in 0..(rng.next() % 7) {
            if rng.chance(2) {
                args.push(rng.pick(flags(name)).to_string());
            } else {
                args.push(rng.pick(&values).clone());
            }
        }
        let conf = d.join(format!("c{}.toml", runs % 16));
        let mut text = rng.pick(&configs).clone().into_bytes();
        for _ in 0..(rng.next() % 4) {
            if text.is_empty() {
                break;
            }
            let i = (rng.next() % text.len() as u64) as usize;
            match rng.next() % 3 {
                0 => text[i] = rng.next() as u8,
                1 => {
                    text.truncate(i);
                }
                _ => {
                    let v = rng.pick(&values).clone();
                    text.splice(i..i, v.into_bytes());
                }
            }
        }
        std::fs::write(&conf, &text).unwrap();
        let mut cmd = Command::new("unshare");
        // In the scratch directory: a relative path among the fuzzed values (a runtime or
        // textfile directory named "tcp") lands there, never in the source tree.
        let exe = std::fs::canonicalize(bin(name)).unwrap();
        cmd.current_dir(&d)
            .arg("--net")
            .arg("--")
            .arg(exe)
            .args(&args);
        cmd.env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", d.join("stubs").display()),
            )
            .env("HAKIT_RUNTIME_DIR", d.join("run"))
            .env("HAKIT_SYSLOG_SOCKET", d.join("no-syslog"))
            .env("HAKIT_CONFIG", &conf);
        for (k, v) in SECRETS {
            cmd.env(k, v);
        }
        for _ in 0..(rng.next() % 3) {
            cmd.env(rng.pick(&env_keys), rng.pick(&values));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let shown = format!("{name} {args:?} (config {})", conf.display());
        let out = match hakit_lab::run(&mut cmd, Duration::from_secs(10)) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{shown}: {e:#} (hung past 10 s?)"));
                continue;
            }
        };
        let both = format!("{}{}", stdout(&out), stderr(&out));
        if let Some(sig) = out.status.signal() {
            failures.push(format!("{shown}: killed by signal {sig}: {}", tail(&both)));
        } else if !matches!(out.status.code(), Some(0..=3)) {
            failures.push(format!(
                "{shown}: exit {:?}: {}",
                out.status.code(),
                tail(&both)
            ));
        }
        for s in SECRETS.iter().map(|s| s.1).chain([FILE_SECRET]) {
            if both.contains(s) {
                failures.push(format!(
                    "{shown}: a secret reached the output: {}",
                    tail(&both)
                ));
            }
        }
        if runs % 64 == 0 {
            // Whatever a run recorded, the next starts clean.
            let _ = std::fs::remove_dir_all(d.join("run"));
        }
    }
    let _ = std::fs::remove_dir_all(&d);
    println!("cli fuzz seed {seed}: {runs} runs in {:?}", start.elapsed());
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
    assert!(runs > 50, "only {runs} runs");
}

fn tail(s: &str) -> String {
    let t: String = s
        .chars()
        .rev()
        .take(300)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    t.replace('\n', " | ")
}

fn which(p: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(p))
            .find(|f| Path::new(f).exists())
    })
}
