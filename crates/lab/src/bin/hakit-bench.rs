//! `make bench`: measures hakit against the tools an operator would otherwise use, side by
//! side in one run, and rewrites BENCHMARKS.md with the method, the machine and the numbers.
//!
//! Timing never comes from the tool under test: frames are timestamped by the kernel of a
//! peer namespace (tcpdump capture), process start by this harness just before `spawn`,
//! both on CLOCK_REALTIME. Runs of the two tools are interleaved so drift in machine load
//! affects both alike.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context};
use hakit_lab::{capture::Capture, Lab};

const RUNS: usize = 30;
const SPACING_RUNS: usize = 10;
const BINARIES: [(&str, u64); 4] = [
    ("garp-burst", 1 << 20),
    ("nat-notify", 5 << 19),
    ("ha-check", 5 << 19),
    ("fip-claim", 5 << 19),
];

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Writes one `| label | n | median | p90 | max |` row (milliseconds); returns the median.
fn latency_row(md: &mut String, label: &str, v: &mut [f64]) -> anyhow::Result<f64> {
    let m = median(v);
    writeln!(
        md,
        "| {label} | {} | {m:.3} ms | {:.3} ms | {:.3} ms |",
        v.len(),
        pct(v, 0.9),
        pct(v, 1.0)
    )?;
    Ok(m)
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    format!(
        "{} cores ({cpu}), kernel {}, {}",
        thread::available_parallelism().map_or(0, |n| n.get()),
        sh("uname", &["-r"]),
        sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    )
}

fn main() -> std::process::ExitCode {
    if let Err(e) = hakit_lab::clean_up_on_signals() {
        eprintln!("{e:#}");
        return std::process::ExitCode::from(2);
    }
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hakit-bench: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut only: Option<String> = None;
    let mut soak_secs: u64 = 600;
    let (mut static_dir, mut out) = (
        PathBuf::from("target/x86_64-unknown-linux-musl/release"),
        PathBuf::from("BENCHMARKS.md"),
    );
    while let Some(a) = args.next() {
        match a.as_str() {
            "--static-dir" => {
                static_dir = PathBuf::from(args.next().context("--static-dir needs a path")?)
            }
            "--out" => out = PathBuf::from(args.next().context("--out needs a path")?),
            "--only" => {
                only = Some(
                    args.next()
                        .context("--only needs garp|notify|fifo|check|fip|failover|linode|uplink|soak")?,
                )
            }
            "--soak-secs" => {
                soak_secs = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .context("--soak-secs needs a number of seconds")?
            }
            other => bail!(
                "unknown argument {other:?} (usage: hakit-bench [--static-dir DIR] [--out FILE] [--only garp|notify|fifo|check|fip|failover|linode|uplink|soak] [--soak-secs N])"
            ),
        }
    }
    if !hakit_lab::available("hakit-bench") {
        bail!("benchmarks build network namespaces: run as root");
    }
    let mut md = String::new();
    writeln!(md, "# hakit benchmarks\n")?;
    writeln!(
        md,
        "Written by `make bench` (do not edit by hand). Machine: {}.\n",
        machine()
    )?;
    writeln!(md, "Performance is measured here, never asserted in tests. Every comparison runs the tools side by side in one run, interleaved.\n")?;
    sizes(&mut md, &static_dir)?;
    let want = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if want("garp") {
        garp(&mut md, &static_dir.join("garp-burst"))?;
    }
    if want("notify") {
        notify(&mut md, &static_dir.join("nat-notify"))?;
    }
    if want("fifo") {
        fifo_burst(&mut md, &static_dir.join("nat-notify"))?;
    }
    if want("check") {
        check(&mut md, &static_dir.join("ha-check"))?;
    }
    if want("fip") {
        fip(&mut md, &static_dir.join("fip-claim"))?;
    }
    if want("failover") {
        failover(&mut md, &static_dir)?;
    }
    if want("linode") {
        linode(&mut md, &static_dir)?;
    }
    if want("uplink") {
        uplink(&mut md, &static_dir)?;
    }
    if want("soak") {
        soak(&mut md, &static_dir, soak_secs)?;
    }
    std::fs::write(&out, &md).with_context(|| format!("write {}", out.display()))?;
    print!("{md}");
    Ok(())
}

fn sizes(md: &mut String, dir: &Path) -> anyhow::Result<()> {
    writeln!(md, "## Static binary sizes\n")?;
    writeln!(md, "`make static`: x86_64-unknown-linux-musl, release profile (LTO, one codegen unit, `opt-level = \"z\"`, strip, panic=abort), static and non-PIE (`.cargo/config.toml`: a static-pie binary carries ~50 KB of relocations; the cost is ASLR).\n")?;
    writeln!(md, "| binary | stripped size | budget | `file` says |")?;
    writeln!(md, "|---|---|---|---|")?;
    for (name, budget) in BINARIES {
        let p = dir.join(name);
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        let kind = sh("file", &["-b", &p.to_string_lossy()]);
        let kind = kind
            .split(", ")
            .find(|k| k.contains("linked"))
            .unwrap_or("?")
            .to_string();
        writeln!(
            md,
            "| {name} | {} bytes ({:.2} MiB) | {:.2} MiB | {kind} |",
            meta.len(),
            meta.len() as f64 / 1048576.0,
            budget as f64 / 1048576.0
        )?;
    }
    writeln!(md)?;
    Ok(())
}

/// One tool invocation inside namespace `a`: (start time, exit ok).
fn timed_spawn(ns: &hakit_lab::Ns, argv: &[String]) -> anyhow::Result<f64> {
    let argv = argv.to_vec();
    ns.within(move || {
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let t0 = now_unix();
        let status = c.status().with_context(|| format!("run {}", argv[0]))?;
        if !status.success() {
            bail!("{argv:?} failed: {status}");
        }
        Ok(t0)
    })
}

fn garp(md: &mut String, garp_burst: &Path) -> anyhow::Result<()> {
    let garp =
        std::fs::canonicalize(garp_burst).context("static garp-burst missing: make static")?;
    let garp = garp.to_string_lossy().to_string();
    let arping = hakit_lab::which("arping").context("arping (iputils-arping) not installed")?;
    let arping = arping.to_string_lossy().to_string();
    let mut lab = Lab::new()?;
    let a = lab.ns("a")?;
    let b = lab.ns("b")?;
    lab.veth(&a, "eth0", &b, "eth0")?;
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"])?;
    b.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"])?;

    // First frame: interleaved single-frame runs of each tool.
    let pcap = lab.dir().join("first.pcap");
    let cap = Capture::start(&b, "eth0", "arp and arp[6:2] == 1", &pcap)?;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let g_argv = s(&[&garp, "-i", "eth0", "--ip", "192.0.2.1", "-c", "1"]);
    let a_argv = s(&[&arping, "-U", "-c", "1", "-I", "eth0", "192.0.2.1"]);
    let mut starts = Vec::new(); // (tool, t0)
    for _ in 0..RUNS {
        for (tool, argv) in [("garp-burst", &g_argv), ("arping", &a_argv)] {
            let t0 = timed_spawn(&a, argv)?;
            starts.push((tool, t0));
            thread::sleep(Duration::from_millis(20));
        }
    }
    thread::sleep(Duration::from_millis(100));
    let packets = cap.stop()?;
    let mut first = [Vec::new(), Vec::new()];
    for (i, (tool, t0)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(f64::INFINITY, |s| s.1);
        if let Some(p) = packets.iter().find(|p| p.ts >= *t0 && p.ts < end) {
            first[usize::from(*tool == "arping")].push((p.ts - t0) * 1000.0);
        }
    }
    let [mut g, mut ar] = first;
    if g.len() < RUNS / 2 || ar.len() < RUNS / 2 {
        bail!(
            "too few frames matched runs: garp-burst {} arping {} of {RUNS}",
            g.len(),
            ar.len()
        );
    }
    writeln!(
        md,
        "## garp-burst: process start to first frame on the wire\n"
    )?;
    writeln!(md, "Method: two namespaces joined by a veth; tcpdump in the peer timestamps each ARP request on arrival (kernel time). The harness, already inside the sender's namespace, reads CLOCK_REALTIME just before spawning the tool; the difference is start-to-wire latency, including exec, netlink look-ups and socket set-up. {RUNS} runs per tool, interleaved, one frame each (`garp-burst -c 1`, iputils `arping -U -c 1`). Static musl build of garp-burst.\n")?;
    writeln!(md, "| tool | runs | median | p90 | max |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    let gm = latency_row(md, "garp-burst", &mut g)?;
    let am = latency_row(md, "arping -U (iputils)", &mut ar)?;
    writeln!(md, "\nRatio of medians, arping / garp-burst: **{:.1}x**. Target: first frame within 2 ms of start — {}.\n", am / gm, if gm <= 2.0 { "met" } else { "NOT met" })?;

    // Spacing accuracy.
    let pcap = lab.dir().join("spacing.pcap");
    let cap = Capture::start(&b, "eth0", "arp and arp[6:2] == 1", &pcap)?;
    let mut windows = Vec::new();
    for _ in 0..SPACING_RUNS {
        let t0 = timed_spawn(
            &a,
            &s(&[
                &garp,
                "-i",
                "eth0",
                "--ip",
                "192.0.2.1",
                "-c",
                "5",
                "--interval",
                "10ms",
            ]),
        )?;
        windows.push(("garp-burst 10ms", t0, now_unix()));
        thread::sleep(Duration::from_millis(20));
    }
    let t0 = timed_spawn(
        &a,
        &s(&[
            &garp,
            "-i",
            "eth0",
            "--ip",
            "192.0.2.1",
            "-c",
            "5",
            "--interval",
            "1s",
        ]),
    )?;
    windows.push(("garp-burst 1s", t0, now_unix()));
    let t0 = timed_spawn(
        &a,
        &s(&[&arping, "-U", "-c", "5", "-I", "eth0", "192.0.2.1"]),
    )?;
    windows.push(("arping -U 1s", t0, now_unix()));
    thread::sleep(Duration::from_millis(100));
    let packets = cap.stop()?;
    writeln!(md, "## garp-burst: spacing of 5 frames\n")?;
    writeln!(md, "Method: same capture; gaps between consecutive frames of one run, error = |gap − interval|. iputils arping only accepts whole seconds for `-i` (`-i 0.01` is refused), so it cannot do 10 ms; both tools are also shown at 1 s.\n")?;
    writeln!(
        md,
        "| tool, interval | gaps | mean gap | mean error | max error |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    writeln!(md, "| arping, 10 ms | — | not possible | — | — |")?;
    for label in ["garp-burst 10ms", "garp-burst 1s", "arping -U 1s"] {
        let want = if label.ends_with("10ms") { 0.010 } else { 1.0 };
        let mut gaps = Vec::new();
        let mut incomplete = 0;
        for (i, (l, t0, t1)) in windows.iter().enumerate() {
            if l != &label {
                continue;
            }
            // A run owns the frames from its start to the next run's start.
            let end = windows.get(i + 1).map_or(t1 + 0.05, |w| w.1);
            let ts: Vec<f64> = packets
                .iter()
                .filter(|p| p.ts >= *t0 && p.ts < end)
                .map(|p| p.ts)
                .collect();
            if ts.len() != 5 {
                incomplete += 1;
                continue;
            }
            gaps.extend(ts.windows(2).map(|w| w[1] - w[0]));
        }
        if incomplete > 0 {
            writeln!(md, "| {label}: {incomplete} run(s) without exactly 5 captured frames, left out | | | | |")?;
        }
        if gaps.is_empty() {
            bail!("no frames captured for {label}");
        }
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let errs: Vec<f64> = gaps.iter().map(|g| (g - want).abs() * 1000.0).collect();
        let mean_err = errs.iter().sum::<f64>() / errs.len() as f64;
        let max_err = errs.iter().copied().fold(0.0, f64::max);
        writeln!(
            md,
            "| {label} | {} | {:.3} ms | {mean_err:.3} ms | {max_err:.3} ms |",
            gaps.len(),
            mean * 1000.0
        )?;
    }
    writeln!(md)?;
    Ok(())
}

/// nat-notify MASTER hook versus the shell hook people write today, to the first GARP.
fn notify(md: &mut String, nat_notify: &Path) -> anyhow::Result<()> {
    const FAILOVERS: usize = 20;
    let nn = std::fs::canonicalize(nat_notify).context("static nat-notify missing: make static")?;
    let nn = nn.to_string_lossy().to_string();
    let arping = hakit_lab::which("arping")
        .context("arping not installed")?
        .to_string_lossy()
        .to_string();
    let mut lab = Lab::new()?;
    let gw = lab.ns("gw")?;
    let wan = lab.ns("wan")?;
    let peer = lab.ns("peer")?;
    lab.veth(&gw, "eth0", &wan, "eth0")?;
    lab.veth(&gw, "sync0", &peer, "sync0")?;
    gw.ip(&["addr", "add", "203.0.113.2/24", "dev", "eth0"])?;
    gw.ip(&["addr", "add", "192.0.2.1/24", "dev", "sync0"])?;
    peer.ip(&["addr", "add", "192.0.2.2/24", "dev", "sync0"])?;
    // External cache on, so both hooks do the same conntrackd work (a commit).
    let ctd = hakit_lab::conntrackd::start_with(
        &mut lab,
        &gw,
        "gw",
        "192.0.2.1",
        "192.0.2.2",
        "sync0",
        |c| c.replace("DisableExternalCache on", "DisableExternalCache off"),
    )?;
    let ctd_conf = ctd.conf.to_string_lossy().to_string();
    let dir = lab.dir().to_path_buf();
    let conf = notify_conf(&dir, &format!("conntrackd_config = \"{ctd_conf}\"\n"))?;
    let c = conf.to_string_lossy().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let hook = s(&[&nn, "--config", &c, "master"]);
    let reset = s(&[&nn, "--config", &c, "backup"]);
    let shell = s(&[
        "/bin/sh",
        "-c",
        &format!("conntrackd -C {ctd_conf} -c && ip addr add 203.0.113.10/32 dev eth0 && {arping} -U -c 1 -I eth0 203.0.113.10"),
    ]);
    let shell_reset = s(&["ip", "addr", "del", "203.0.113.10/32", "dev", "eth0"]);
    let commit = s(&["conntrackd", "-C", &ctd_conf, "-c"]);
    // The same without conntrackd: the hooks' own cost (address + GARP).
    let bare = dir.join("bare.toml");
    std::fs::write(
        &bare,
        std::fs::read_to_string(&conf)?
            .replace(&format!("conntrackd_config = \"{ctd_conf}\"\n"), ""),
    )?;
    let b = bare.to_string_lossy().to_string();
    let hook_bare = s(&[&nn, "--config", &b, "master"]);
    let reset_bare = s(&[&nn, "--config", &b, "backup"]);
    let shell_bare = s(&[
        "/bin/sh",
        "-c",
        &format!("ip addr add 203.0.113.10/32 dev eth0 && {arping} -U -c 1 -I eth0 203.0.113.10"),
    ]);
    const TOOLS: [&str; 4] = [
        "nat-notify",
        "shell hook",
        "nat-notify, no conntrackd",
        "shell, no conntrackd",
    ];

    let pcap = dir.join("notify.pcap");
    let cap = Capture::start(
        &wan,
        "eth0",
        "arp and arp[6:2] == 1 and arp[14:4] == 0xcb00710a",
        &pcap,
    )?;
    let mut starts = Vec::new();
    let mut commits = Vec::new();
    for _ in 0..FAILOVERS {
        for (tool, run, undo) in [
            (0, &hook, &reset),
            (1, &shell, &shell_reset),
            (2, &hook_bare, &reset_bare),
            (3, &shell_bare, &shell_reset),
        ] {
            let t0 = timed_spawn(&gw, run)?;
            starts.push((tool, t0));
            thread::sleep(Duration::from_millis(30));
            timed_spawn(&gw, undo)?;
            thread::sleep(Duration::from_millis(30));
        }
        let t0 = now_unix();
        timed_spawn(&gw, &commit)?;
        commits.push((now_unix() - t0) * 1000.0);
    }
    thread::sleep(Duration::from_millis(100));
    let packets = cap.stop()?;
    let mut lat = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for (i, (tool, t0)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(f64::INFINITY, |s| s.1);
        if let Some(p) = packets.iter().find(|p| p.ts >= *t0 && p.ts < end) {
            lat[*tool].push((p.ts - t0) * 1000.0);
        }
    }
    for (t, l) in TOOLS.iter().zip(&lat) {
        if l.len() < FAILOVERS / 2 {
            bail!("too few GARPs matched for {t}: {} of {FAILOVERS}", l.len());
        }
    }
    let [mut h, mut sh, mut hb, mut sb] = lat;
    writeln!(
        md,
        "## nat-notify: MASTER hook start to floating IP up and first GARP on the wire\n"
    )?;
    writeln!(md, "Method: a gateway namespace with conntrackd (FTFW, its own sync link) and a WAN peer running tcpdump. The harness, inside the gateway's namespace, reads CLOCK_REALTIME and spawns the hook; the first GARP for the floating IP is timestamped by the peer's kernel (the GARP leaves only after the address is on the interface, so it bounds both). {FAILOVERS} failovers per hook, interleaved, each followed by the hook's own undo (`nat-notify backup`, `ip addr del`). The shell hook is what people run today: `conntrackd -c && ip addr add … && arping -U -c 1`. The cost of `conntrackd -c` alone (a client round trip to the daemon) is measured in the same run.\n")?;
    writeln!(md, "| hook | failovers | median | p90 | max |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    let hm = latency_row(md, "nat-notify master (static)", &mut h)?;
    let sm = latency_row(md, "shell: conntrackd -c, ip addr add, arping -U", &mut sh)?;
    let cm = latency_row(md, "`conntrackd -c` alone", &mut commits)?;
    let hbm = latency_row(md, "nat-notify master, no conntrackd", &mut hb)?;
    let sbm = latency_row(md, "shell: ip addr add, arping -U", &mut sb)?;
    writeln!(
        md,
        "\nRatio of medians, shell / nat-notify: **{:.1}x** with conntrackd, **{:.1}x** without. Most of a hook's time is `conntrackd -c`'s own client (a dynamically linked program and a round trip to the daemon), which both hooks must run. nat-notify beyond conntrackd's commit: {:.3} ms (target under 5 ms) — {}.\n",
        sm / hm,
        sbm / hbm,
        hm - cm,
        if hm - cm < 5.0 { "met" } else { "NOT met" }
    )?;
    Ok(())
}

/// CPU time (user + system) of all waited-for children so far, in ms.
/// nat-notify's config for the one-gateway benchmarks: instance VI_1, the floating IP on
/// eth0, one GARP round, state under `dir`; `extra` adds instance keys.
fn notify_conf(dir: &Path, extra: &str) -> anyhow::Result<PathBuf> {
    let conf = dir.join("hakit.toml");
    std::fs::write(
        &conf,
        format!(
            "[general]\nruntime_dir = \"{d}/run\"\nsyslog_socket = \"{d}/no.sock\"\n\n[[notify.instance]]\nname = \"VI_1\"\n\
             interface = \"eth0\"\nfloating_ips = [\"203.0.113.10/32\"]\ngarp_count = 1\n{extra}",
            d = dir.display()
        ),
    )?;
    Ok(conf)
}

/// A flood of keepalived events through the notify FIFO: how long after the flood's last
/// line the newest state is in force. Each queued event used to cost a transition (~3 ms):
/// 100,000 of them were applied 296 s late.
fn fifo_burst(md: &mut String, nat_notify: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    const RUNS: usize = 5;
    const EVENTS: usize = 100_000;
    let nn = std::fs::canonicalize(nat_notify).context("static nat-notify missing: make static")?;
    let nn = nn.to_string_lossy().to_string();
    let mut lab = Lab::new()?;
    let gw = lab.ns("gw")?;
    let wan = lab.ns("wan")?;
    lab.veth(&gw, "eth0", &wan, "eth0")?;
    gw.ip(&["addr", "add", "203.0.113.2/24", "dev", "eth0"])?;
    let dir = lab.dir().to_path_buf();
    let conf = notify_conf(&dir, "")?;
    let c = conf.to_string_lossy().to_string();
    let state = dir.join("run/VI_1.state");
    let (mut late, mut flood) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        let fifo = dir.join(format!("notify-{run}.fifo"));
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        let f = fifo.to_string_lossy().to_string();
        let mut reader = gw
            .command(&[&nn, "--config", &c, "fifo", &f])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo)?;
        let mut lines = String::with_capacity(EVENTS * 32);
        for i in 0..EVENTS - 1 {
            let st = if i % 2 == 0 { "MASTER" } else { "BACKUP" };
            writeln!(lines, "INSTANCE \"VI_1\" {st} 100")?;
        }
        // The newest: a state none of the flood had.
        let last = if run % 2 == 0 { "FAULT" } else { "STOP" };
        writeln!(lines, "INSTANCE \"VI_1\" {last} 100")?;
        let t0 = now_unix();
        w.write_all(lines.as_bytes())?;
        w.flush()?;
        let t_end = now_unix();
        let applied =
            hakit_lab::wait_until(Duration::from_secs(30), Duration::from_millis(1), || {
                std::fs::read_to_string(&state).is_ok_and(|t| {
                    t.contains(&format!("\"state\": \"{last}\""))
                        && t.contains("\"converged\": true")
                })
            });
        let t_applied = now_unix();
        drop(w);
        let _ = reader.wait();
        if applied.is_none() {
            bail!("fifo burst: {last} not applied within 30 s of the flood's end");
        }
        late.push((t_applied - t_end) * 1000.0);
        flood.push((t_end - t0) * 1000.0);
        let _ = std::fs::remove_file(&fifo);
    }
    writeln!(
        md,
        "## nat-notify: a flood of events through the notify FIFO\n"
    )?;
    writeln!(md, "Method: a gateway namespace, `nat-notify fifo` (static build) reading a FIFO; the harness writes {EVENTS} keepalived lines as fast as the pipe takes them (alternating MASTER and BACKUP for VI_1, then one FAULT or STOP), and polls the recorded state every millisecond until the newest state is recorded as converged. Measured from the flood's last byte written to that moment. {RUNS} runs.\n")?;
    writeln!(md, "| what | runs | median | p90 | max |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    let fl = latency_row(md, "writing the flood", &mut flood)?;
    let lm = latency_row(md, "newest state in force after the flood's end", &mut late)?;
    let _ = fl;
    writeln!(md, "\nTarget: the newest event applied within 100 ms of the burst's end — {} (events of one instance are coalesced as they are queued; a queued newer state stops the transition in progress).\n", if pct(&mut late, 1.0) <= 100.0 { "met" } else if lm <= 100.0 { "met at the median, NOT at the maximum" } else { "NOT met" })?;
    Ok(())
}

fn children_cpu_ms() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| {
            tv.tv_sec() as f64 * 1000.0 + tv.tv_usec() as f64 / 1000.0
        };
        t(u.user_time()) + t(u.system_time())
    })
}

/// ha-check (three probes in parallel) versus the sequential shell check people write.
fn check(md: &mut String, ha_check: &Path) -> anyhow::Result<()> {
    const RUNS: usize = 30;
    let hc = std::fs::canonicalize(ha_check).context("static ha-check missing: make static")?;
    let hc = hc.to_string_lossy().to_string();
    let http = std::env::current_exe()?.with_file_name("hakit-lab-http");
    let mut lab = Lab::new()?;
    let gw = lab.ns("gw")?;
    let srv = lab.ns("srv")?;
    lab.veth(&gw, "eth0", &srv, "eth0")?;
    gw.ip(&["addr", "add", "203.0.113.2/24", "dev", "eth0"])?;
    srv.ip(&["addr", "add", "203.0.113.9/24", "dev", "eth0"])?;
    srv.ip(&["addr", "add", "203.0.113.99/24", "dev", "eth0"])?;
    lab.spawn(&srv, "http", &[&http.to_string_lossy(), "203.0.113.9:8080"])?;
    thread::sleep(Duration::from_millis(300));
    let dir = lab.dir().to_path_buf();
    let conf = dir.join("hakit.toml");
    std::fs::write(
        &conf,
        format!(
            "[general]\nruntime_dir = \"{d}/run\"\nsyslog_socket = \"{d}/no.sock\"\n\n[check]\ndeadline = \"800ms\"\n\n\
             [[check.probe]]\nkind = \"icmp\"\ntarget = \"203.0.113.9\"\n\n[[check.probe]]\nkind = \"icmp\"\ntarget = \"203.0.113.99\"\n\n\
             [[check.probe]]\nkind = \"http\"\nurl = \"http://203.0.113.9:8080/generate_204\"\n",
            d = dir.display()
        ),
    )?;
    let c = conf.to_string_lossy().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let hc_argv = s(&[&hc, "--config", &c]);
    let sh_argv = s(&[
        "/bin/sh",
        "-c",
        "ping -c1 -W1 203.0.113.9 >/dev/null && ping -c1 -W1 203.0.113.99 >/dev/null && [ \"$(curl -s -o /dev/null -w '%{http_code}' http://203.0.113.9:8080/generate_204)\" = 204 ]",
    ]);
    let time = hakit_lab::which("time").map(|p| p.to_string_lossy().to_string());
    let mut wall = [Vec::new(), Vec::new()];
    let mut cpu = [Vec::new(), Vec::new()];
    let mut rss = [Vec::new(), Vec::new()];
    for _ in 0..RUNS {
        for (i, argv) in [&hc_argv, &sh_argv].into_iter().enumerate() {
            let argv2 = argv.clone();
            let (w, c) = gw.within(move || {
                let c0 = children_cpu_ms();
                let t0 = std::time::Instant::now();
                let st = Command::new(&argv2[0])
                    .args(&argv2[1..])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()?;
                let w = t0.elapsed().as_secs_f64() * 1000.0;
                if !st.success() {
                    bail!("{argv2:?} reported unhealthy: {st}");
                }
                Ok((w, children_cpu_ms() - c0))
            })?;
            wall[i].push(w);
            cpu[i].push(c);
            if let Some(t) = &time {
                let mut a = vec![t.clone(), "-f".into(), "%M".into()];
                a.extend(argv.iter().cloned());
                let out = gw.within(move || {
                    Ok(Command::new(&a[0])
                        .args(&a[1..])
                        .stdout(Stdio::null())
                        .output()?)
                })?;
                if let Some(kb) = String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .and_then(|l| l.trim().parse::<f64>().ok())
                {
                    rss[i].push(kb);
                }
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
    let [mut hw, mut sw] = wall;
    let [mut hcpu, mut scpu] = cpu;
    let [mut hr, mut sr] = rss;
    let (hwm, swm, hcm, scm) = (
        median(&mut hw),
        median(&mut sw),
        median(&mut hcpu),
        median(&mut scpu),
    );
    let (hrm, srm) = (median(&mut hr), median(&mut sr));
    writeln!(md, "## ha-check: three probes versus the shell script\n")?;
    writeln!(md, "Method: a gateway namespace and a server namespace (two addresses, an HTTP server answering 204). The same three checks: gateway ping, external ping, HTTP 204. ha-check runs them in parallel (static build, config file); the shell runs `ping -c1 -W1` twice and `curl`, sequentially, as `ha-check.sh` scripts do. {RUNS} runs each, interleaved. Wall time by the harness around spawn and wait; CPU is user+system of the whole process tree (getrusage of children); peak RSS from GNU time's `%M` (the largest process of the tree).\n")?;
    writeln!(
        md,
        "| check | wall median | wall p90 | CPU median | peak RSS median |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    writeln!(
        md,
        "| ha-check | {hwm:.3} ms | {:.3} ms | {hcm:.3} ms | {hrm:.0} KiB |",
        pct(&mut hw, 0.9)
    )?;
    writeln!(
        md,
        "| shell: ping, ping, curl | {swm:.3} ms | {:.3} ms | {scm:.3} ms | {srm:.0} KiB |",
        pct(&mut sw, 0.9)
    )?;
    writeln!(
        md,
        "\nRatios of medians, shell / ha-check: wall **{:.1}x** (target 10x — {}), CPU **{:.1}x**, RSS **{:.1}x**. ha-check CPU per run {hcm:.3} ms (target under 3 ms — {}).\n",
        swm / hwm,
        if swm / hwm >= 10.0 { "met" } else { "NOT met" },
        scm / hcm,
        srm / hrm,
        if hcm < 3.0 { "met" } else { "NOT met" }
    )?;
    Ok(())
}

/// fip-claim against the natganker sequence with the AWS CLI, both against one moto server.
fn fip(md: &mut String, fip_claim: &Path) -> anyhow::Result<()> {
    writeln!(
        md,
        "## fip-claim: the natganker sequence, fip-claim versus the AWS CLI\n"
    )?;
    writeln!(md, "Method: a moto EC2 server on loopback per row with SigV4 checking on (an IAM user's key), a VPC with three instances, N route tables whose default route targets the primary (and an unrelated NAT instance's table, never touched), an Elastic IP on the primary. Each run moves the EIP, every default route and the source/dest check to the secondary: once with one `fip-claim` run (static build), once with the AWS CLI sequence natganker runs (`associate-address`, `describe-route-tables`, `replace-route` per table, `modify-instance-attribute`), the state reset in between (untimed). Runs interleaved. Wall time around the process(es).\n")?;
    writeln!(
        md,
        "| route tables | tool | runs | median | p90 | max | HTTP requests |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    let mut notes = Vec::new();
    for (tables, runs) in [(1usize, 8usize), (30, 3), (150, 2)] {
        notes.push(fip_world(md, fip_claim, tables, runs)?);
    }
    writeln!(md)?;
    for n in notes {
        writeln!(md, "{n}")?;
    }
    writeln!(md)?;
    Ok(())
}

/// One moto world with `tables` route tables, `runs` interleaved runs of each tool: one
/// table row pair, and the sentence about it.
fn fip_world(
    md: &mut String,
    fip_claim: &Path,
    tables: usize,
    runs: usize,
) -> anyhow::Result<String> {
    let fc = std::fs::canonicalize(fip_claim).context("static fip-claim missing: make static")?;
    let fc = fc.to_string_lossy().to_string();
    let (Some(moto_bin), Some(aws)) = (hakit_lab::which("moto_server"), hakit_lab::which("aws"))
    else {
        bail!("moto_server and the AWS CLI are needed (make deps; pip install awscli)");
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut moto = hakit_lab::Spawned(
        Command::new(moto_bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let _ = &mut moto;
    hakit_lab::wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .context("moto did not start")?;
    let py = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new("python3")
            .arg("tests/aws/moto_lab.py")
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "moto_lab.py {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    };
    let w: serde_json::Value = serde_json::from_str(&py(&["setup", &url, &tables.to_string()])?)?;
    py(&["auth", &url])?;
    let g = |k: &str| w[k].as_str().unwrap_or_default().to_string();
    let env = [
        ("AWS_ACCESS_KEY_ID", g("key")),
        ("AWS_SECRET_ACCESS_KEY", g("secret")),
        ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
    ];
    let claim = |who: &str, eni: &str, peer: &str| -> anyhow::Result<(f64, serde_json::Value)> {
        let t0 = std::time::Instant::now();
        let out = Command::new(&fc)
            .args([
                "--provider",
                "aws",
                "--ip",
                &g("ip"),
                "--instance-id",
                who,
                "--eni",
                eni,
                "--region",
                "us-east-1",
                "--peer",
                peer,
                "--endpoint-url",
                &url,
                "--syslog-socket",
                "/nonexistent",
                "--json",
            ])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()?;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        if !out.status.success() {
            bail!("fip-claim: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok((ms, serde_json::from_slice(&out.stdout)?))
    };
    let cli_sequence = || -> anyhow::Result<(f64, usize)> {
        let mut calls: Vec<Vec<String>> = vec![vec![
            "ec2".into(),
            "associate-address".into(),
            "--allocation-id".into(),
            g("allocation"),
            "--network-interface-id".into(),
            g("secondary_eni"),
            "--allow-reassociation".into(),
        ]];
        calls.push(vec!["ec2".into(), "describe-route-tables".into()]);
        for t in w["tables"].as_array().into_iter().flatten() {
            calls.push(vec![
                "ec2".into(),
                "replace-route".into(),
                "--route-table-id".into(),
                t.as_str().unwrap_or_default().into(),
                "--destination-cidr-block".into(),
                "0.0.0.0/0".into(),
                "--network-interface-id".into(),
                g("secondary_eni"),
            ]);
        }
        calls.push(vec![
            "ec2".into(),
            "modify-instance-attribute".into(),
            "--instance-id".into(),
            g("secondary"),
            "--no-source-dest-check".into(),
        ]);
        let t0 = std::time::Instant::now();
        for c in &calls {
            let out = Command::new(&aws)
                .args(["--endpoint-url", &url])
                .args(c)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .output()?;
            if !out.status.success() {
                bail!("aws {c:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        Ok((t0.elapsed().as_secs_f64() * 1000.0, calls.len()))
    };
    let (mut fw, mut cw) = (Vec::new(), Vec::new());
    let (mut freq, mut creq, mut reread) = (0, 0, (0usize, 0usize));
    for _ in 0..runs {
        // Each run moves EIP, both routes and the check from the primary to the secondary.
        claim(&g("primary"), &g("primary_eni"), &g("secondary"))?;
        let (ms, out) = claim(&g("secondary"), &g("secondary_eni"), &g("primary"))?;
        fw.push(ms);
        freq = out["calls"].as_array().map_or(0, |c| c.len());
        let (_, again) = claim(&g("secondary"), &g("secondary_eni"), &g("primary"))?;
        let calls: Vec<String> = again["calls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["call"].as_str().map(str::to_string))
            .collect();
        reread = (
            calls.len(),
            calls.iter().filter(|c| !c.starts_with("Describe")).count(),
        );
        claim(&g("primary"), &g("primary_eni"), &g("secondary"))?;
        let (ms, n) = cli_sequence()?;
        cw.push(ms);
        creq = n;
    }
    let row = |md: &mut String, tool: &str, v: &mut [f64], req: usize| -> anyhow::Result<f64> {
        let n = v.len();
        let m = median(v);
        writeln!(
            md,
            "| {tables} | {tool} | {n} | {m:.1} ms | {:.1} ms | {:.1} ms | {req} |",
            pct(v, 0.9),
            v.iter().copied().fold(f64::MIN, f64::max)
        )?;
        Ok(m)
    };
    let f = row(md, "fip-claim (one run)", &mut fw, freq)?;
    let c = row(md, "AWS CLI sequence", &mut cw, creq)?;
    Ok(format!(
        "{tables} route table(s): AWS CLI / fip-claim **{:.0}x**; fip-claim {freq} requests (reads first, one DescribeRouteTables page per 100 tables, a read-back at the end), the AWS CLI {creq} (one process each, no reads, no verification); a converged re-run of fip-claim made {} requests, {} of them writes.",
        c / f,
        reread.0,
        reread.1
    ))
}

/// One failover measured in the NAT lab.
struct Run {
    blackout_ms: f64,
    lost: u64,
    /// Event to VIP up on the new master (keepalived's own detection and takeover).
    vrrp_ms: f64,
    /// VIP up on the new master to the provider routing the floating IP there: the hook.
    hook_ms: f64,
    retrans: u64,
    tcp_ok: bool,
}

fn owner_changed_at(nat: &hakit_lab::nat::NatLab) -> Option<f64> {
    std::fs::metadata(nat.control.join("owner"))
        .ok()?
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// Soft (`hard` false) or hard failover from a to b, measured, then a restored as MASTER.
fn one_failover(nat: &mut hakit_lab::nat::NatLab, hard: bool, tag: &str) -> anyhow::Result<Run> {
    let timeout = Duration::from_secs(30);
    let m = nat.measure(tag, &["--tcp", "--udp-ms", "1"], 1, !hard, timeout, |n| {
        if hard {
            n.crash(0)
        } else {
            n.stop_keepalived(0);
            Ok(())
        }
    })?;
    if let Err(e) = &m.converged {
        bail!("{tag}: {e}");
    }
    let vip_up = m
        .first("VIP up on b")
        .context("the VIP never came up on b")?;
    let routed = owner_changed_at(nat).context("the provider never moved the floating IP")?;
    // Restore a as MASTER.
    if hard {
        nat.links_up(0)?;
    }
    nat.start_keepalived(0)?;
    nat.wait_converged(0, timeout)?;
    Ok(Run {
        blackout_ms: m.blackout_ms(),
        lost: m.lost(),
        vrrp_ms: (vip_up - m.t_event) * 1000.0,
        hook_ms: (routed - vip_up) * 1000.0,
        retrans: m.retrans,
        tcp_ok: m.tcp_ok(),
    })
}

const FAILOVER_RUNS: usize = 10;

fn failover(md: &mut String, static_dir: &Path) -> anyhow::Result<()> {
    use hakit_lab::nat::{NatLab, Opts};
    type Tweak = fn(&mut Opts);
    let configs: [(&str, Tweak); 4] = [
        ("hakit, fast profile (advert_int 0.04 s)", |_| {}),
        ("hakit, keepalived defaults (advert_int 1 s)", |o| {
            o.advert_int = "1".into()
        }),
        (
            "shell hook (primary-backup.sh, ip, arping, nft, curl), fast profile",
            |o| o.shell_hook = true,
        ),
        (
            "hakit, fast profile, conntrackd external cache on (commit on MASTER)",
            |o| o.external_cache = true,
        ),
    ];
    writeln!(md, "## Failover in the NAT lab (`hakit_lab::nat`)\n")?;
    writeln!(md, "Method: the full pair of `make demo`/`make chaos` (keepalived VRRP v3, nat-notify on the notify FIFO, ha-check, the shipped strict nftables ruleset, conntrackd FTFW, a fake provider that routes the floating IP to its owner). Per configuration {FAILOVER_RUNS} soft failovers (SIGTERM to keepalived on the master) and {FAILOVER_RUNS} hard ones (SIGKILL both keepalived processes, every link down), each followed by a restore. The LAN client measures through the NAT: a UDP echo every 1 ms (blackout = longest silence beyond the 1 ms interval) and a fresh TCP stream per run checked byte by byte; TCP retransmissions are the server's (`ss -ti`) during the run. VRRP = event to the VIP on the new master (netlink, polled every 1 ms inside its namespace); hook = VIP up to the provider routing the floating IP to the new master (the fake provider's owner file, written right after it moved the route). Medians, with the worst run in brackets.\n")?;
    writeln!(md, "| configuration | failover | blackout | probes lost | VRRP | hook | TCP survived | TCP retransmissions |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    let mut medians = Vec::new();
    for (name, tweak) in configs {
        let mut opts = Opts::new(static_dir);
        tweak(&mut opts);
        eprintln!("failover bench: {name}");
        let mut nat = NatLab::up(opts)?;
        for hard in [false, true] {
            let mut runs = Vec::new();
            for k in 0..FAILOVER_RUNS {
                runs.push(one_failover(
                    &mut nat,
                    hard,
                    &format!("{}{k}", u8::from(hard)),
                )?);
            }
            let col = |f: fn(&Run) -> f64| {
                let mut v: Vec<f64> = runs.iter().map(f).collect();
                let worst = v.iter().copied().fold(f64::MIN, f64::max);
                (median(&mut v), worst)
            };
            let (bo, bo_w) = col(|r| r.blackout_ms);
            let (lost, lost_w) = col(|r| r.lost as f64);
            let (vr, vr_w) = col(|r| r.vrrp_ms);
            let (hk, hk_w) = col(|r| r.hook_ms);
            let ok = runs.iter().filter(|r| r.tcp_ok).count();
            let retrans: u64 = runs.iter().map(|r| r.retrans).sum();
            writeln!(
                md,
                "| {name} | {} | {bo:.1} ms ({bo_w:.1}) | {lost:.0} ({lost_w:.0}) | {vr:.1} ms ({vr_w:.1}) | {hk:.1} ms ({hk_w:.1}) | {ok}/{} | {retrans} in {} runs |",
                if hard { "hard" } else { "soft" },
                runs.len(),
                runs.len()
            )?;
            medians.push((name, hard, bo, hk));
        }
        nat.lab.teardown();
    }
    let get = |n: usize, hard: bool| {
        medians
            .iter()
            .filter(|m| m.1 == hard)
            .nth(n)
            .map_or(f64::NAN, |m| m.2)
    };
    let hook = |n: usize| {
        medians
            .iter()
            .filter(|m| m.1)
            .nth(n)
            .map_or(f64::NAN, |m| m.3)
    };
    writeln!(md, "\nHook (VIP up to the provider routing the floating IP), hard failovers, shell / hakit: **{:.1}x** ({:.1} ms vs {:.1} ms): hakit starts the provider claim right after the first GARP, on its own thread; the shell hook runs primary-backup.sh first.", hook(2) / hook(0), hook(2), hook(0))?;
    writeln!(md, "\nRatios of median blackouts, shell hook / hakit (fast profile): soft **{:.1}x**, hard **{:.1}x**. keepalived defaults / fast profile: soft {:.1}x, hard {:.1}x.", get(2, false) / get(0, false), get(2, true) / get(0, true), get(1, false) / get(0, false), get(1, true) / get(0, true))?;
    writeln!(
        md,
        "Targets with the fast profile: hard failover blackout ≤ 200 ms — {}; soft ≤ 15 ms — {}.\n",
        if get(0, true) <= 200.0 {
            "met"
        } else {
            "NOT met"
        },
        if get(0, false) <= 15.0 {
            "met"
        } else {
            "NOT met"
        }
    )?;
    Ok(())
}

const LINODE_RUNS: usize = 5;

/// Linode's routing (`hakit_lab::bgp`): a graceful failover with the announcement changed
/// three ways, side by side in one run.
fn linode(md: &mut String, static_dir: &Path) -> anyhow::Result<()> {
    use hakit_lab::{
        bgp::{Method, Opts as BgpOpts, Speaker},
        nat::{NatLab, Opts},
    };
    writeln!(
        md,
        "## Linode failover: the announcement in place vs restarting the speaker\n"
    )?;
    writeln!(md, "Method: the Linode lab of `make chaos --lab linode`: an FRR route server emulating Linode's (65000:1 over 65000:2 by local preference, the selected path kept between equals), Debian's gobgpd with lelastic's exact configuration on both gateways (the shared IP on `lo`), keepalived and nat-notify as shipped, conntrackd FTFW. Per method {LINODE_RUNS} graceful failovers (SIGTERM to keepalived on the master), each followed by a restore; a 1 ms UDP echo and a TCP stream through the NAT. *In place*: nat-notify's announcement step rewrites the community with the `gobgp` CLI. *Linode guide*: `up`/`down` commands restart lelastic on MASTER and stop it on BACKUP (a configured primary, b secondary). *Seed design*: restart lelastic `-primary` on MASTER, `-secondary` on BACKUP. Converged = keepalived's VIP, nat-notify's state and the route server's kernel route all on the new master. Medians, worst run in brackets.\n")?;
    writeln!(
        md,
        "| method | blackout | converged | probes lost | TCP survived |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    let mut medians = Vec::new();
    for method in [
        Method::InPlace,
        Method::RestartOnMaster,
        Method::RestartSwapped,
    ] {
        let mut opts = Opts::new(static_dir);
        opts.bgp = Some(BgpOpts {
            speaker: Speaker::Gobgp,
            method,
        });
        eprintln!("linode bench: {}", method.name());
        let mut nat = NatLab::up(opts)?;
        let timeout = Duration::from_secs(40);
        let mut runs: Vec<(f64, f64, u64, bool)> = Vec::new();
        for k in 0..LINODE_RUNS {
            let m = nat.measure(
                &format!("l{k}"),
                &["--tcp", "--udp-ms", "1"],
                1,
                true,
                timeout,
                |n| {
                    n.stop_keepalived(0);
                    Ok(())
                },
            )?;
            runs.push((
                m.blackout_ms(),
                m.converged_ms().unwrap_or(f64::NAN),
                m.lost(),
                m.tcp_ok(),
            ));
            nat.start_keepalived(0)?;
            nat.wait_converged(0, timeout)?;
        }
        let col = |f: fn(&(f64, f64, u64, bool)) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            let worst = v.iter().copied().fold(f64::MIN, f64::max);
            (median(&mut v), worst)
        };
        let (bo, bo_w) = col(|r| r.0);
        let (cv, cv_w) = col(|r| r.1);
        let (lost, lost_w) = col(|r| r.2 as f64);
        let ok = runs.iter().filter(|r| r.3).count();
        writeln!(
            md,
            "| {} | {bo:.1} ms ({bo_w:.1}) | {cv:.0} ms ({cv_w:.0}) | {lost:.0} ({lost_w:.0}) | {ok}/{} |",
            method.name(),
            runs.len()
        )?;
        medians.push(bo);
        nat.lab.teardown();
    }
    writeln!(
        md,
        "\nRatios of median blackouts: Linode guide / in place **{:.0}x**, seed design / in place **{:.0}x**. A crash is different: the route server keeps the dead node's path until its hold timer (9 s with lelastic's timers) expires, whatever the survivor does (`make chaos`, chaos-linode.md).\n",
        medians[1] / medians[0],
        medians[2] / medians[0]
    )?;
    Ok(())
}

/// A soak: the fast profile under full CPU load for `secs`; any VRRP transition is a
/// false failover.
fn soak(md: &mut String, static_dir: &Path, secs: u64) -> anyhow::Result<()> {
    use hakit_lab::nat::{NatLab, Opts, Watch};
    let nat = NatLab::up(Opts::new(static_dir))?;
    let cpus = thread::available_parallelism().map_or(2, |n| n.get());
    // Load: one busy process per CPU at normal priority (keepalived runs at its defaults).
    let mut hogs = Vec::new();
    for _ in 0..cpus {
        hogs.push(hakit_lab::Spawned(
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdout(Stdio::null())
                .spawn()
                .context("start a CPU hog")?,
        ));
    }
    let watches: Vec<Watch> = nat.nodes.iter().map(|n| Watch::start(&n.ns)).collect();
    let load0 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("soak: {secs} s under {cpus} CPU hogs");
    thread::sleep(Duration::from_secs(secs));
    let load1 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    drop(hogs);
    let events: Vec<(f64, String)> = watches.into_iter().flat_map(|w| w.finish()).collect();
    let logs: usize = nat
        .nodes
        .iter()
        .filter_map(|n| n.keepalived.as_ref())
        .map(|k| {
            std::fs::read_to_string(&k.log)
                .unwrap_or_default()
                .matches("Entering")
                .count()
        })
        .sum();
    writeln!(md, "## Soak: the fast profile under full CPU load\n")?;
    writeln!(md, "Method: the NAT lab with the fast profile (advert_int 0.04 s), idle traffic, {cpus} busy-loop processes (one per CPU, normal priority) for {secs} s. The VIP and floating IP on both nodes are polled every 1 ms; any change is a false failover. Load average before: {}, after: {}.\n", load0.split_whitespace().take(3).collect::<Vec<_>>().join(" "), load1.split_whitespace().take(3).collect::<Vec<_>>().join(" "))?;
    writeln!(md, "Result: **{} address changes** on either node in {secs} s ({} state-change lines in keepalived's logs, counting both nodes' start-up). {}\n", events.len(), logs, if events.is_empty() { "No false failover." } else { "FALSE FAILOVERS — see the events." })?;
    for (t, e) in events.iter().take(10) {
        writeln!(md, "- {t:.3}: {e}")?;
    }
    Ok(())
}

const UPLINK_RUNS: usize = 10;

/// Uplink loss (the master's WAN link down) under three health-check designs, side by
/// side in one run; then the monitor's own cost against pings at the same rate.
fn uplink(md: &mut String, static_dir: &Path) -> anyhow::Result<()> {
    use hakit_lab::nat::{NatLab, Opts};
    type Tweak = fn(&mut Opts);
    let configs: [(&str, Tweak); 3] = [
        (
            "ha-check monitor + keepalived track_file (the shipped templates)",
            |o| o.monitor = true,
        ),
        ("ha-check as a vrrp_script (interval 1, fall 2)", |_| {}),
        (
            "the seed's ha-check.sh (one ping, interval 2, fall 2)",
            |o| o.seed_check = true,
        ),
    ];
    writeln!(md, "## Uplink loss (`hakit-bench --only uplink`)\n")?;
    writeln!(md, "Method: the NAT lab's pair (fast profile: advert_int 0.04 s, preempt_delay 1 s); per design {UPLINK_RUNS} runs of: the master's WAN link set down, the LAN client's UDP echo every 1 ms measured until the backup has converged, the link restored and the master back. Blackout = the longest silence at the client beyond the 1 ms interval. Medians, worst run in brackets.\n")?;
    writeln!(md, "| health check | blackout | backup converged after |")?;
    writeln!(md, "|---|---|---|")?;
    let mut medians = Vec::new();
    let mut monitor_cost = None;
    for (name, tweak) in configs {
        let mut opts = Opts::new(static_dir);
        tweak(&mut opts);
        let monitor = opts.monitor;
        eprintln!("uplink bench: {name}");
        let mut nat = NatLab::up(opts)?;
        let (mut bo, mut conv) = (Vec::new(), Vec::new());
        for k in 0..UPLINK_RUNS {
            let m = nat.measure(
                &format!("up{k}"),
                &["--udp-ms", "1"],
                1,
                true,
                Duration::from_secs(20),
                |n| n.nodes[0].ns.ip(&["link", "set", "eth0", "down"]),
            )?;
            if let Err(e) = &m.converged {
                bail!("{name}, run {k}: {e}");
            }
            bo.push(m.blackout_ms());
            conv.push(m.converged_ms().unwrap_or(f64::NAN));
            let a = &nat.nodes[0].ns;
            a.ip(&["link", "set", "eth0", "up"])?;
            let _ = a.ip(&["route", "replace", "default", "via", hakit_lab::nat::SERVER]);
            let _ = a.ip(&[
                "route",
                "replace",
                &format!("{}/32", hakit_lab::nat::EXTERNAL),
                "via",
                hakit_lab::nat::SERVER,
            ]);
            nat.wait_converged(0, Duration::from_secs(30))?;
        }
        let worst = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
        let (bw, cw) = (worst(&bo), worst(&conv));
        let (bm, cm) = (median(&mut bo), median(&mut conv));
        writeln!(
            md,
            "| {name} | {bm:.0} ms ({bw:.0}) | {cm:.0} ms ({cw:.0}) |"
        )?;
        medians.push(bm);
        if monitor {
            monitor_cost = Some(monitor_cpu(&nat)?);
        }
        nat.lab.teardown();
    }
    writeln!(md, "\nRatios of median blackouts: vrrp_script / monitor **{:.0}x**, seed / monitor **{:.0}x**.\n", medians[1] / medians[0], medians[2] / medians[0])?;
    if let Some((secs, mon, ping, rss0, rss1)) = monitor_cost {
        writeln!(md, "The monitor's own cost, idle uplink, {secs:.0} s, side by side: `ha-check monitor` with the lab's probes (gateway ICMP and ARP and the external target every 20 ms; link and route on events and every 1 s; heartbeat every 250 ms) used **{mon:.2}%** of one core; three `ping -i 0.02` (the same three echo streams, nothing else) used {ping:.2}% together in the same seconds ({:.1}x). Resident memory {rss0} kB at the start, {rss1} kB at the end (the 10-minute lossy soak of `make chaos` reports its start, end and maximum: chaos-monitor.md). CPU is user+system from /proc/PID/stat; with veth the peer's replies are processed in the sender's system time, so both numbers include the gateway's side. Target: under 1% of a core — {}.\n", mon / ping, if mon < 1.0 { "met" } else { "NOT met here" })?;
    }
    Ok(())
}

/// CPU% of a's monitor over 60 s, and of three `ping -i 0.02` run beside it in a's
/// namespace to the same targets; RSS of the monitor at the start and end.
fn monitor_cpu(nat: &hakit_lab::nat::NatLab) -> anyhow::Result<(f64, f64, f64, u64, u64)> {
    let pid = nat.nodes[0].monitor.context("no monitor")?;
    let ticks = |pid: u32| -> f64 {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let f: Vec<String> = s
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
            })
            .unwrap_or(f64::NAN)
    };
    let rss = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    let secs = 60u64;
    let (t0, r0) = (ticks(pid), rss(pid));
    let start = std::time::Instant::now();
    let a = &nat.nodes[0].ns;
    let pings: Vec<_> = [
        hakit_lab::nat::SERVER,
        hakit_lab::nat::SERVER,
        hakit_lab::nat::EXTERNAL,
    ]
    .iter()
    .map(|t| {
        a.command(&["ping", "-q", "-i", "0.02", "-w", &secs.to_string(), t])
            .stdout(std::process::Stdio::null())
            .spawn()
    })
    .collect::<Result<_, _>>()?;
    let c0 = children_cpu_ms();
    for mut p in pings {
        let _ = p.wait();
    }
    let ping_ms = children_cpu_ms() - c0;
    let el = start.elapsed().as_secs_f64();
    let (t1, r1) = (ticks(pid), rss(pid));
    Ok((
        el,
        (t1 - t0) / 100.0 / el * 100.0,
        ping_ms / 1000.0 / el * 100.0,
        r0,
        r1,
    ))
}
