//! The lossy soak: loss and delay on both nodes' legs for a while, no false failover
//! (`HAKIT_CHAOS_SOAK_LOSS`, `HAKIT_CHAOS_SOAK_DELAY_MS`).

use super::*;

/// A number from the environment, `default` when unset or not a number.
pub(crate) fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The soak's length (s), loss (%) and delay (ms, and as much jitter): 600, 2 and 5 unless
/// the environment says otherwise.
pub(crate) fn soak_params() -> (u64, u64, u64) {
    (
        env_u64("HAKIT_CHAOS_SOAK_SECONDS", 600),
        env_u64("HAKIT_CHAOS_SOAK_LOSS", 2),
        env_u64("HAKIT_CHAOS_SOAK_DELAY_MS", 5),
    )
}

/// (e): 2% random loss and 5 ms +- 5 ms of delay on both gateways' uplinks (egress, as
/// netem), every core busy,
/// for HAKIT_CHAOS_SOAK_SECONDS (default 600): no false failover. Also the monitor's CPU
/// per second and its resident memory at the start and the end. HAKIT_CHAOS_SOAK_LOSS (%)
/// and HAKIT_CHAOS_SOAK_DELAY_MS raise the impairment to find the margin (BENCHMARKS.md).
pub(crate) fn soak(nat: &mut NatLab) -> anyhow::Result<Row> {
    let (secs, loss, delay) = soak_params();
    // What `tc qdisc add dev DEV root netem delay 5ms 5ms loss 2%` does on each gateway's
    // links, per link: the WAN (eth0, what the uplink probes cross) and the LAN (eth1, where
    // the VRRP adverts go). An egress qdisc: what the gateway sends. This machine's kernel
    // has no sch_netem (nor nfnetlink_queue): the loss is nftables' random numbers on the
    // device's egress, 2% of the frames; the delay, 5 ms +- 5 ms, a user-space forwarder in
    // the switch on the frames from the gateway's port (hakit_lab::impair). The sync link
    // (the monitors' reports, conntrackd) is left as it is: it is the pair's own cable.
    let jitter = impair(nat, loss, delay)?;
    let (rtt, avg) = ping_rtt(nat)?;
    let pid = nat.nodes[A].monitor.context("no monitor on a")?;
    let cpu = |pid: u32| Some(hakit_lab::nat::table::rss_cpu(pid).1);
    let rss = |pid: u32| Some(hakit_lab::nat::table::rss_cpu(pid).0);
    let faults0 = (faults(nat, A), faults(nat, B));
    let owner0 = nat.owner();
    // keepalived's own lines during the soak (state changes, its scripts, priorities):
    // whatever moves a failover, keepalived says it first.
    let ka_lines0 = [
        keepalived_log(nat, A).lines().count(),
        keepalived_log(nat, B).lines().count(),
    ];
    // A CPU hog in each node: a busy loop started in its namespace, as a runaway process
    // on a real gateway (two nodes, two cores: every core busy).
    let mut hogs = Vec::new();
    for i in [A, B] {
        let ns = nat.nodes[i].ns.clone();
        let log = format!("{}-hog", nat.nodes[i].role);
        hogs.push(
            nat.lab
                .spawn(&ns, &log, &["sh", "-c", "while :; do :; done"])?,
        );
    }
    let writes0 = provider_writes(nat);
    // Ten keepalived reloads (SIGHUP, as `systemctl reload keepalived`), alternating nodes,
    // spread over the soak.
    const RELOADS: u32 = 10;
    println!(
        "  soak: {loss}% loss and {delay} ms +- {delay} ms delay on each node's {} and {} egress (as netem: nftables, a user-space forwarder), a CPU hog in each node, {RELOADS} keepalived reloads, {secs} s",
        LINKS[0].0, LINKS[1].0
    );
    let (cpu0, rss0) = (cpu(pid), rss(pid));
    let soak_start = hakit_lab::nat::now_unix();
    let t0 = Instant::now();
    let mut ones = 0u32;
    let mut reloads = 0u32;
    let mut last = nat.track_value(A);
    let mut rss_max = rss0.unwrap_or(0);
    while t0.elapsed() < Duration::from_secs(secs) {
        thread::sleep(Duration::from_millis(50));
        let due = Duration::from_secs(secs) * (reloads + 1) / (RELOADS + 1);
        if reloads < RELOADS && t0.elapsed() >= due {
            nat.signal_keepalived(
                if reloads % 2 == 0 { A } else { B },
                nix::sys::signal::Signal::SIGHUP,
            );
            reloads += 1;
        }
        let v = nat.track_value(A);
        if v != last && v == "1" {
            ones += 1;
        }
        last = v;
        rss_max = rss_max.max(rss(pid).unwrap_or(0));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu1, rss1) = (cpu(pid), rss(pid));
    for h in hogs {
        nat.lab
            .signal_and_wait(h, nix::sys::signal::Signal::SIGKILL, Duration::from_secs(5));
    }
    let provider_writes = provider_writes(nat) - writes0;
    let (dropped, delayed) = unimpair(nat, jitter)?;
    let faults1 = (faults(nat, A), faults(nat, B));
    let cpu_pct = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (b - a) / elapsed * 100.0,
        _ => f64::NAN,
    };
    // Why a is not the converged MASTER any more, when it is not (the first CI failure of
    // this row could not say).
    let owner1 = nat.owner();
    let not_master = match nat.converged(A) {
        Err(e) => Some(format!("{e:#}")),
        Ok(_) if owner1 != owner0 => Some(format!("provider owner {owner1:?}, was {owner0:?}")),
        Ok(_) => None,
    };
    let master_kept = not_master.is_none();
    let (transitions, keepalived, downs) = diagnosis(nat, soak_start, ka_lines0);
    Ok(row(
        "(e) random loss and delay on the uplinks and the VRRP path (each node's WAN and LAN egress, as netem), a CPU hog in each node, ten keepalived reloads",
        "no false failover: a's track file never 1, no FAULT and no transition on either node, no provider write, a still the converged MASTER",
        format!(
            "{loss}% loss, {delay} ms +- {delay} ms delay: {elapsed:.0} s, {dropped} frames dropped on a's WAN and LAN, {delayed} frames delayed 0-{} ms (ping a -> gateway: rtt min/avg/max/mdev {rtt}); {reloads} keepalived reloads; track file went to 1: {ones} times; FAULTs a/b: {}/{}; nat-notify transitions: {transitions}; provider writes: {provider_writes}; a still master: {}; monitor CPU {cpu_pct:.2}% of a core; RSS {} kB at start, {} kB at end, {} kB max",
            2 * delay,
            faults1.0 - faults0.0,
            faults1.1 - faults0.1,
            if master_kept { "yes" } else { "no" },
            rss0.unwrap_or(0),
            rss1.unwrap_or(0),
            rss_max
        ),
        ones == 0
            && faults1 == faults0
            && transitions == 0
            && provider_writes == 0
            && reloads == RELOADS
            && master_kept
            && avg >= 3.0,
        json!({"seconds": elapsed, "track_ones": ones, "transitions": transitions, "provider_writes": provider_writes, "reloads": reloads, "frames_dropped_on_a": dropped, "frames_delayed": delayed, "ping_rtt": rtt, "monitor_downs": downs, "keepalived": keepalived, "not_master": not_master, "cpu_pct": cpu_pct, "rss_kb_start": rss0, "rss_kb_end": rss1, "rss_kb_max": rss_max}),
    ))
}

/// The soak's links, per node: the WAN (what the uplink probes cross) and the LAN (where the
/// VRRP adverts go), with the switch's bridge each is on.
const LINKS: [(&str, &str, &str); 2] = [
    ("WAN (uplink probes)", "eth0", "brwan"),
    ("LAN (VRRP adverts)", "eth1", "brlan"),
];

/// `loss`% of each node's egress frames dropped on both links (nftables' random numbers),
/// and `delay` ms +- `delay` ms in the switch (a user-space forwarder per port).
fn impair(nat: &NatLab, loss: u64, delay: u64) -> anyhow::Result<Vec<hakit_lab::impair::Impair>> {
    let sw = hakit_lab::Ns {
        name: format!("{}-sw", nat.lab.prefix()),
    };
    let mut jitter = Vec::new();
    for n in &nat.nodes {
        for (_, _, bridge) in LINKS {
            jitter.push(hakit_lab::impair::Impair::start(
                &sw,
                bridge,
                &format!("{bridge}{}", n.role),
                Duration::from_millis(delay),
                Duration::from_millis(delay),
            )?);
        }
    }
    for n in &nat.nodes {
        hakit_lab::run_ok(
            &mut n
                .ns
                .command(&["nft", "add", "table", "netdev", "hakit_loss"]),
        )?;
        for (_, dev, _) in LINKS {
            hakit_lab::run_ok(&mut n.ns.command(&[
                "nft",
                &format!("add chain netdev hakit_loss out_{dev} {{ type filter hook egress device {dev} priority 0; }}"),
            ]))?;
            hakit_lab::run_ok(&mut n.ns.command(&[
                "nft",
                "add",
                "rule",
                "netdev",
                "hakit_loss",
                &format!("out_{dev}"),
                "numgen",
                "random",
                "mod",
                "100",
                "<",
                &loss.to_string(),
                "counter",
                "drop",
            ]))?;
        }
    }
    Ok(jitter)
}

/// The impairment as a ping from a sees it: the round trip's min/avg/max/mdev, and its
/// average (ms).
fn ping_rtt(nat: &NatLab) -> anyhow::Result<(String, f64)> {
    let ping = String::from_utf8_lossy(
        &nat.nodes[A]
            .ns
            .exec(&[
                "ping",
                "-q",
                "-c",
                "50",
                "-i",
                "0.02",
                "-I",
                "eth0",
                hakit_lab::nat::SERVER,
            ])?
            .stdout,
    )
    .to_string();
    let rtt = ping
        .lines()
        .find_map(|l| l.split_once("= ").map(|(_, v)| v.to_string()))
        .unwrap_or_default();
    let avg: f64 = rtt
        .split('/')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Ok((rtt, avg))
}

/// Ends the impairment: the frames dropped on a's links and those delayed.
fn unimpair(nat: &NatLab, jitter: Vec<hakit_lab::impair::Impair>) -> anyhow::Result<(u64, u64)> {
    let dropped = String::from_utf8_lossy(
        &nat.nodes[A]
            .ns
            .exec(&["nft", "list", "table", "netdev", "hakit_loss"])?
            .stdout,
    )
    .split("packets ")
    .skip(1)
    .filter_map(|t| t.split_whitespace().next()?.parse::<u64>().ok())
    .sum::<u64>();
    for n in &nat.nodes {
        let _ = hakit_lab::run_ok(&mut n.ns.command(&[
            "nft",
            "delete",
            "table",
            "netdev",
            "hakit_loss",
        ]));
    }
    let mut delayed = 0;
    for j in jitter {
        delayed += j.frames.load(std::sync::atomic::Ordering::Relaxed);
        j.stop()?;
    }
    Ok((dropped, delayed))
}

/// The transitions nat-notify ran during the soak (any is a failover, however brief), and
/// for a failure's diagnosis: keepalived's own lines and what the monitors said went down.
fn diagnosis(
    nat: &NatLab,
    soak_start: f64,
    ka_lines0: [usize; 2],
) -> (usize, Vec<String>, Vec<String>) {
    // What the monitors said went down and every transition nat-notify ran (their logs),
    // for a failure's diagnosis.
    // Any transition nat-notify ran on either node during the soak is a failover, however
    // brief (a split second of b as MASTER moves the VIP and the provider's route).
    let transitions = nat
        .syslog
        .since(soak_start)
        .iter()
        .filter(|(_, l)| l.contains(" converged to ") || l.contains(" did not converge to "))
        .count();
    let keepalived: Vec<String> = [A, B]
        .iter()
        .flat_map(|&i| {
            keepalived_log(nat, i)
                .lines()
                .skip(ka_lines0[i])
                .filter(|l| {
                    l.contains("Entering")
                        || l.contains("Script")
                        || l.contains("priority from")
                        || l.contains("Master received")
                })
                .map(|l| format!("{}: {l}", nat.nodes[i].role))
                .collect::<Vec<_>>()
        })
        .take(60)
        .collect();
    let downs: Vec<String> = nat
        .syslog
        .since(soak_start)
        .into_iter()
        .filter(|(_, l)| {
            l.contains(" down after ")
                || l.contains(" down: ")
                || l.contains(" converged to ")
                || l.contains(" did not converge to ")
                || l.contains("heartbeat")
                || l.contains("monitor")
        })
        .take(40)
        .map(|(t, l)| format!("{:.3} {l}", t - soak_start))
        .collect();
    (transitions, keepalived, downs)
}
