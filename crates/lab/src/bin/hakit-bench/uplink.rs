//! Uplink loss: the monitor against vrrp_script profiles, and the monitor's own cost.

use super::*;

pub(crate) const UPLINK_RUNS: usize = 10;

/// Uplink loss (the master's WAN link down) under three health-check designs, side by
/// side in one run; then the monitor's own cost against pings at the same rate.
pub(crate) fn uplink(md: &mut String, static_dir: &Path) -> anyhow::Result<()> {
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
    writeln!(md, "Method: the NAT lab's pair (standard profile: advert_int 0.02 s, 6 missed, preempt_delay 1 s); per design {UPLINK_RUNS} runs of: the master's WAN link set down, the LAN client's UDP echo every 1 ms measured until the backup has converged, the link restored and the master back. Blackout = the longest silence at the client beyond the 1 ms interval. Medians, worst run in brackets.\n")?;
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
                hakit_lab::nat::EXTERNALS,
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
pub(crate) fn monitor_cpu(
    nat: &hakit_lab::nat::NatLab,
) -> anyhow::Result<(f64, f64, f64, u64, u64)> {
    let pid = nat.nodes[0].monitor.context("no monitor")?;
    let cpu_rss = |pid: u32| {
        let (rss, cpu) = hakit_lab::nat::table::rss_cpu(pid);
        (cpu, rss)
    };
    let secs = 60u64;
    let (t0, r0) = cpu_rss(pid);
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
    let (t1, r1) = cpu_rss(pid);
    Ok((
        el,
        (t1 - t0) / el * 100.0,
        ping_ms / 1000.0 / el * 100.0,
        r0,
        r1,
    ))
}
