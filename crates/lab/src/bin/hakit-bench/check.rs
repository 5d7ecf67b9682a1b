//! ha-check: one run of the same checks against the shell script.

use super::*;

/// ha-check (three probes in parallel) versus the sequential shell check people write.
pub(crate) fn check(md: &mut String, ha_check: &Path) -> anyhow::Result<()> {
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
