//! GARP: garp-burst against iputils arping, timed on the wire (first frame, spacing).

use super::*;

pub(crate) fn garp(md: &mut String, garp_burst: &Path) -> anyhow::Result<()> {
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
