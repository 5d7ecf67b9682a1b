//! The Linode labs: the route server, the speakers' announcements moved in place, a dead
//! or refusing speaker, the crash, and per-IP roles ([`hakit_lab::bgp`]).

use super::*;

/// The Linode lab's acceptance scenarios (issue: Linode as it really fails over).
pub(crate) fn linode(
    bin_dir: &std::path::Path,
    speaker: bgp::Speaker,
    want: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<Row>> {
    const BLACKOUT_MS: f64 = 300.0;
    let mut opts = Opts::new(bin_dir);
    opts.bgp = Some(bgp::Opts {
        speaker,
        method: bgp::Method::InPlace,
    });
    let started = Instant::now();
    let name = speaker.name();
    println!(
        "hakit chaos, Linode lab: FRR route server, {name} on both gateways, VRRP v3 advert_int {} s",
        opts.advert_int
    );
    let mut nat = NatLab::up(opts)?;
    lab_up(started, &nat.lab);
    let mut rows = Vec::new();
    // IP Sharing is set up once (the union of each Linode's shared set and the IP), then
    // the API is declared down for the rest of the run: no failover may need it.
    let mut share = Vec::new();
    for i in [A, B] {
        share.push(node_run(&nat, i, "fip-claim", &[])?.0);
    }
    nat.api_outage(24.0 * 3600.0)?;
    let requests_before = nat.cloud_requests().len();

    let long = nat.traffic("long", &["--tcp"])?;
    thread::sleep(Duration::from_millis(800));
    let mut spans = Vec::new();
    let blackout_row = |tag: &'static str, what: &str, f: &Measured, data: Value| {
        row(
            tag,
            &format!("{what}; blackout <= {BLACKOUT_MS} ms"),
            format!(
                "converged after {}; blackout {:.1} ms, {} of {} probes lost",
                ms(f.converged_ms()),
                f.blackout_ms(),
                f.lost(),
                f.sent()
            ),
            f.converged.is_ok() && f.blackout_ms() <= BLACKOUT_MS,
            data,
        )
    };
    if want("soft") {
        let (f, data) = failover(&mut nat, "soft", B, true, |n| {
            n.stop_keepalived(A);
            Ok(())
        })?;
        rows.push(blackout_row(
            "graceful failover (stop keepalived on the master)",
            "b announces primary, a secondary; the route server routes to b",
            &f,
            data,
        ));
        spans.push("graceful failover");
        let (f, data) = failover(&mut nat, "return", A, true, |n| n.start_keepalived(A))?;
        rows.push(blackout_row(
            "node returns (keepalived restarted on a)",
            "a takes the primary role back after preempt_delay",
            &f,
            data,
        ));
        spans.push("return");
    }
    if want("health") {
        // The path beyond a's upstream breaks: the upstream drops a's health probes (its
        // BGP session, and so its announcement, stay up).
        let (f, data) = failover(&mut nat, "health", B, true, |n| {
            hakit_lab::run_ok(&mut n.inet.command(&[
                "nft", "add table inet hklab; add chain inet hklab in { type filter hook input priority 0; }; add rule inet hklab in ip saddr 203.0.113.2 icmp type echo-request drop",
            ]))
            .map(|_| ())
        })?;
        rows.push(blackout_row(
            "health failover (a's uplink check fails)",
            "ha-check fails on a, b takes over and announces primary",
            &f,
            data,
        ));
        spans.push("health failover");
        hakit_lab::run_ok(&mut nat.inet.command(&["nft", "delete table inet hklab"]))?;
        nat.wait_converged(A, Duration::from_secs(20))
            .context("a did not take the primary role back after its uplink check recovered")?;
    }
    thread::sleep(Duration::from_millis(500));
    let l = nat.stop_traffic(long)?;
    rows.push(tcp_row(
        "stateful TCP flow through the NAT",
        &l,
        None,
        &spans,
    ));
    if want("flap") {
        rows.push(flapping(&mut nat)?);
        // Back to a for what follows.
        if nat.wait_converged(A, Duration::from_secs(1)).is_err() {
            nat.stop_keepalived(B);
            nat.wait_converged(A, Duration::from_secs(15))?;
            nat.start_keepalived(B)?;
        }
    }
    if want("speaker") {
        linode_speaker(&mut nat, speaker, &mut rows)?;
    }
    if want("dead") && speaker == bgp::Speaker::Gobgp {
        linode_dead(&mut nat, &mut rows)?;
    }
    if want("refused") && speaker == bgp::Speaker::Frr {
        linode_refused(&mut nat, &mut rows)?;
    }
    if want("probe") {
        linode_probe(&mut nat, speaker, &mut rows)?;
    }
    if want("crash") {
        linode_crash(&mut nat, &mut rows)?;
    }
    if want("per-ip") {
        linode_per_ip(&mut nat, &mut rows)?;
    }
    // IP Sharing was set up once; no failover made a single API request.
    let during = nat.cloud_requests().len() - requests_before;
    std::fs::remove_file(nat.dir().join("cloud").join("outage_until"))?;
    let check: Vec<i32> = [A, B]
        .iter()
        .map(|&i| node_run(&nat, i, "fip-claim", &["--check"]).map_or(-1, |r| r.0))
        .collect();
    rows.push(row(
        "provider API down for the whole run",
        "no failover makes an API request; IP Sharing set once; fip-claim --check is 0 on the MASTER only",
        format!(
            "share set-up exit {share:?}; {during} API requests during the failovers; fip-claim --check: a {}, b {}",
            check[0], check[1]
        ),
        share == [0, 0] && during == 0 && check == [0, 1],
        json!({"share_exit": share, "requests_during": during, "check_exit": check}),
    ));
    nat.lab.teardown();
    Ok(rows)
}

/// The speaker restarted behind hakit's back on the MASTER: lelastic and FRR come back
/// with the role they were started with (status reports it, the next transitions heal it);
/// BIRD reads the roles file hakit last wrote.
pub(crate) fn linode_speaker(
    nat: &mut NatLab,
    speaker: bgp::Speaker,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    if speaker == bgp::Speaker::Bird {
        // BIRD restarted behind hakit's back on the MASTER: it reads the roles file hakit
        // last wrote, so it comes back primary and nothing needs healing.
        nat.start_speaker(A, "secondary")?;
        nat.wait_session(A, Duration::from_secs(30))?;
        let routed = nat.wait_converged(A, Duration::from_secs(10));
        let (code, report) = nat.status(A)?;
        rows.push(row(
            "speaker restarted behind hakit's back (on the master)",
            "BIRD reads the roles file hakit wrote: a announces primary again, the route server routes to a, status exits 0",
            format!(
                "a announces {}; converged on a: {}; status exit {code}",
                nat.announced(A),
                if routed.is_ok() { "yes" } else { "no" }
            ),
            routed.is_ok() && code == 0,
            json!({"status_exit": code, "problems": report["instances"][0]["problems"],
                   "error": routed.err().map(|e| format!("{e:#}"))}),
        ));
    } else {
        // lelastic restarted behind hakit's back on the MASTER: it comes back announcing
        // the role it was started with (secondary).
        nat.start_speaker(A, "secondary")?;
        nat.wait_session(A, Duration::from_secs(30))?;
        thread::sleep(Duration::from_millis(500));
        let (code, report) = nat.status(A)?;
        let problems = report["instances"][0]["problems"].to_string();
        let reported = code == 1 && problems.contains("MASTER but the");
        // The next transition heals it: a failover to b and back.
        nat.stop_keepalived(A);
        let to_b = nat.wait_converged(B, Duration::from_secs(15));
        nat.start_keepalived(A)?;
        let back = nat.wait_converged(A, Duration::from_secs(20));
        let (code_after, _) = nat.status(A)?;
        rows.push(row(
            "speaker restarted behind hakit's back (on the master)",
            "nat-notify status exits 1 naming the role; the next transitions heal it",
            format!(
                "status exit {code} ({}); after a failover to b and back: a converged {}, status exit {code_after}",
                if reported { "reports MASTER announcing secondary" } else { "did not report it" },
                if back.is_ok() && to_b.is_ok() { "yes" } else { "no" }
            ),
            reported && to_b.is_ok() && back.is_ok() && code_after == 0,
            json!({"status_exit": code, "problems": report["instances"][0]["problems"],
                   "status_exit_after": code_after,
                   "error": back.err().or(to_b.err()).map(|e| format!("{e:#}"))}),
        ));
    }
    Ok(())
}

/// lelastic killed on the MASTER: status says so, STOP does not start it, the next
/// transition starts it through its unit.
pub(crate) fn linode_dead(nat: &mut NatLab, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    // lelastic dies on the MASTER: its path goes, the route server sends the traffic to
    // b (secondary, BACKUP). The next transitions find the speaker dead, say so, start
    // it through its unit (never on STOP) and set the role.
    nat.kill_speaker(A);
    thread::sleep(Duration::from_millis(300));
    let (code, report) = nat.status(A)?;
    let said = report["instances"][0]["problems"].to_string();
    let reported = code == 1 && said.contains("does not answer");
    let log = nat.dir().join("a-systemctl.log");
    let _ = std::fs::remove_file(&log);
    nat.stop_keepalived(A);
    let to_b = nat.wait_converged(B, Duration::from_secs(15));
    let started_on_stop = std::fs::read_to_string(&log).unwrap_or_default();
    nat.start_keepalived(A)?;
    let back = nat.wait_converged(A, Duration::from_secs(30));
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let started = calls.lines().any(|l| l == "start lelastic.service");
    let loud = nat
        .syslog
        .since(0.0)
        .iter()
        .any(|(_, l)| l.contains("the bgp speaker is not running"));
    rows.push(row(
        "speaker dead on the master (lelastic killed)",
        "status exits 1; STOP does not start it; the next transition starts it through its unit, says so, and a converges",
        format!(
            "status exit {code}; systemctl calls on STOP: {}; after a's restart: {}; logged: {}; a converged: {}",
            if started_on_stop.contains("start") { "start (wrong)" } else { "no start" },
            calls.lines().collect::<Vec<_>>().join(", "),
            if loud { "yes" } else { "no" },
            if back.is_ok() { "yes" } else { "no" }
        ),
        reported && to_b.is_ok() && !started_on_stop.contains("start") && started && loud && back.is_ok(),
        json!({"status_exit": code, "problems": report["instances"][0]["problems"], "systemctl": calls,
               "error": back.err().or(to_b.err()).map(|e| format!("{e:#}"))}),
    ));
    Ok(())
}

/// A role FRR does not take (the secondary route-map missing on b): the step reads back,
/// names it and fails; a keeps the traffic.
pub(crate) fn linode_refused(nat: &mut NatLab, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    // A role FRR does not take: the secondary route-map does not exist on b. The
    // announcement step reads back, says so, fails (exit 1); the peer keeps the traffic.
    let n = &nat.nodes[B];
    let text = std::fs::read_to_string(&n.config)?;
    let bad = nat.dir().join("b-refused.toml");
    std::fs::write(
        &bad,
        text.replace(
            "frr_asn = 65001\n",
            "frr_asn = 65001\nfrr_secondary_route_map = \"nosuch\"\n",
        ),
    )?;
    // b's announcement withdrawn behind hakit's back, so the BACKUP transition must
    // write it again.
    if let Some(d) = &n.daemon {
        bgp::Frr { dir: d.dir.clone() }.vtysh(
            &n.ns,
            &[
                "configure terminal",
                "router bgp 65001",
                "address-family ipv4 unicast",
                &format!("no network {}/32", hakit_lab::nat::FIP),
            ],
        )?;
    }
    // FRR applies the withdrawal in its own time: wait until b's RIB shows it.
    hakit_lab::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        nat.announced(B) == "withdrawn"
    })
    .context("b's announcement was not withdrawn")?;
    let prog = nat
        .opts
        .bin_dir
        .join("nat-notify")
        .to_string_lossy()
        .to_string();
    let b = bad.to_string_lossy().to_string();
    let t0 = now_unix();
    let out = hakit_lab::run(
        &mut n
            .ns
            .command(&[&prog, "--config", &b, "INSTANCE", "VI_1", "BACKUP", "100"]),
        Duration::from_secs(60),
    )?;
    let code = out.status.code().unwrap_or(-1);
    // nat-notify logs to the lab's syslog socket (the config's syslog_socket).
    let logged: Vec<String> = nat
        .syslog
        .since(t0)
        .into_iter()
        .map(|(_, l)| l)
        .filter(|l| l.contains("bgp_announce"))
        .collect();
    let named = logged.iter().any(|l| l.contains("did not take"));
    let still_a = nat.converged(A);
    let (fixed, _, _) = node_run(nat, B, "nat-notify", &["INSTANCE", "VI_1", "BACKUP", "100"])?;
    let after = nat.announced(B);
    rows.push(row(
        "a role the speaker refuses (route-map missing on b)",
        "the step reads back, names what the speaker announces, fails (exit 1); a keeps the traffic; the right config restores it",
        format!(
            "exit {code}, {}; a still converged: {}; with the right config: exit {fixed}, b announces {after}",
            if named { "named the refusal" } else { "did not name it" },
            if still_a.is_ok() { "yes" } else { "no" }
        ),
        code == 1 && named && still_a.is_ok() && fixed == 0 && after == "secondary",
        json!({"log": logged}),
    ));
    Ok(())
}

/// ha-check's bgp probe against the real speaker.
pub(crate) fn linode_probe(
    nat: &mut NatLab,
    speaker: bgp::Speaker,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    // ha-check's bgp probe against the real speaker: lelastic lists two route
    // servers, one of which never answers.
    let d = nat.dir().to_path_buf();
    let n = &nat.nodes[A];
    let base = std::fs::read_to_string(&n.config)?;
    let bgp_table = base
        .split("\n[bgp]\n")
        .nth(1)
        .and_then(|t| t.split("\n[").next())
        .unwrap_or_default()
        .to_string();
    let probe = |extra: &str| -> anyhow::Result<(i32, String)> {
        let path = d.join("probe.toml");
        std::fs::write(
            &path,
            format!("[bgp]\n{bgp_table}\n\n[check]\ndeadline = \"3s\"\n\n[[check.probe]]\nkind = \"bgp\"\ntarget = \"{}\"\n{extra}", hakit_lab::nat::FIP),
        )?;
        let prog = nat
            .opts
            .bin_dir
            .join("ha-check")
            .to_string_lossy()
            .to_string();
        let p = path.to_string_lossy().to_string();
        let out = hakit_lab::run(
            &mut n.ns.command(&[&prog, "--config", &p, "--json"]),
            Duration::from_secs(20),
        )?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        ))
    };
    let (one, one_out) = probe("sessions = 1\ncommunity = \"65000:1\"\n")?;
    let (all, all_out) = match speaker {
        bgp::Speaker::Gobgp => probe("")?,
        // FRR's and BIRD's gateways list one route server only: ask for a second that
        // is not there.
        bgp::Speaker::Frr | bgp::Speaker::Bird => probe("sessions = 2\n")?,
    };
    let (wrong, wrong_out) = probe("community = \"65000:2\"\n")?;
    let pass = one == 0 && all == 1 && all_out.contains("1 of") && wrong == 1;
    rows.push(row(
        "ha-check bgp probe against the speaker",
        "passes with 1 session needed and the primary community; fails when more sessions or another community are required",
        format!("exit {one} (1 session, 65000:1), {all} (more sessions than established), {wrong} (65000:2 expected)"),
        pass,
        json!({"one": one_out, "all": all_out, "wrong": wrong_out}),
    ));
    Ok(())
}

/// A crash of the master: the route server drops its path at the hold timer.
pub(crate) fn linode_crash(nat: &mut NatLab, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let (f, data) = nat.measure(
        "crash",
        &["--udp-ms", "1"],
        B,
        false,
        Duration::from_secs(25),
        |n| n.crash(A),
    ).map(|m| {
        let d = json!({"converged_ms": m.converged_ms(), "error": m.converged.as_ref().err(),
            "probe": {"sent": m.report["udp_1ms"]["sent"], "lost": m.report["udp_1ms"]["lost"], "blackout_ms": m.report["udp_1ms"]["blackout_ms"]}});
        (m, d)
    })?;
    let bound = (bgp::HOLD_S + 1.0) * 1000.0;
    rows.push(row(
        "crash of the master (SIGKILL keepalived and the speaker, links down)",
        &format!("b takes over; the route server drops a's path at its hold timer: blackout <= hold time + 1 s ({bound:.0} ms)"),
        format!(
            "converged after {}; blackout {:.0} ms (the hold-timer bound: nothing b does can shorten it)",
            ms(f.converged_ms()),
            f.blackout_ms()
        ),
        f.converged.is_ok() && f.blackout_ms() <= bound,
        data,
    ));
    nat.links_up(A)?;
    nat.start_speaker(A, "secondary")?;
    nat.start_keepalived(A)?;
    nat.wait_converged(A, Duration::from_secs(40))
        .context("a did not return after the crash")?;
    Ok(())
}

/// Per-IP roles (Linode pairs that share several addresses, a primary each): a second VRRP
/// instance (on the LAN too, b preferred) moves the /56 range alone, while VI_1 keeps the
/// shared IPv4 address and the /64. Failing VI_1 over (a's LAN link down) must leave the
/// /56 where it is: its route at the route server never moves and a ping to it loses
/// nothing. The pair's configuration is restored afterwards.
pub(crate) fn linode_per_ip(nat: &mut NatLab, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let (own, other) = (bgp::RANGES6[1], bgp::RANGES6[0]);
    // An address of the /56, on lo of both nodes (the lab's set-up).
    let target = own.replace("::/56", "::1");
    let saved: Vec<(String, String)> = nat
        .nodes
        .iter()
        .map(|n| {
            Ok((
                std::fs::read_to_string(&n.config)?,
                n.keepalived_conf.clone(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    for (i, (conf, kconf)) in saved.iter().enumerate() {
        let fip = hakit_lab::nat::FIP;
        let vi1 = format!("announce = true\nannounce_prefixes = [\"{fip}/32\", \"{other}\"]\n");
        let vi2 = format!("\n[[notify.instance]]\nname = \"VI_2\"\nannounce = true\nannounce_prefixes = [\"{own}\"]\n");
        std::fs::write(
            &nat.nodes[i].config,
            conf.replacen("announce = true\n", &vi1, 1) + &vi2,
        )?;
        nat.nodes[i].keepalived_conf = format!(
            "{kconf}\nvrrp_instance VI_2 {{\n    state BACKUP\n    interface eth1\n    virtual_router_id 52\n    priority {}\n    advert_int 0.1\n    virtual_ipaddress {{\n        198.51.100.9/32 dev eth1\n    }}\n}}\n",
            if i == A { 100 } else { 150 }
        );
        // The checker hakit-setup runs: the two-instance file loads and plans.
        let (code, _, err) = node_run(
            nat,
            i,
            "nat-notify",
            &["--dry-run", "--instance", "VI_2", "master"],
        )?;
        anyhow::ensure!(code == 0, "per-IP configuration refused on node {i}: {err}");
    }
    let restart = |nat: &mut NatLab| -> anyhow::Result<()> {
        nat.stop_keepalived(A);
        nat.stop_keepalived(B);
        nat.start_keepalived(A)?;
        nat.start_keepalived(B)?;
        nat.wait_converged(A, Duration::from_secs(30)).map(|_| ())
    };
    nat.moved6 = vec![other];
    restart(nat)?;
    let routed = |nat: &NatLab, i: usize| {
        let via = bgp::routed_via(&nat.inet, own);
        via.as_deref() == Some(nat.nodes[i].wan6.as_str())
            || via.as_deref() == Some(nat.nodes[i].wan_ll.as_str())
    };
    let to_b = hakit_lab::wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        routed(nat, B)
    });
    // The /56's route sampled at the route server and a ping to it, across VI_1's failover.
    let watch = bgp::RouteWatch::start(&nat.inet, own);
    let ping = nat
        .inet
        .command(&[
            "ping", "-6", "-q", "-i", "0.002", "-c", "5000", "-W", "1", &target,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    thread::sleep(Duration::from_millis(500));
    nat.nodes[A].ns.ip(&["link", "set", "eth1", "down"])?;
    let vi1_b = nat.wait_converged(B, Duration::from_secs(15));
    nat.nodes[A].ns.ip(&["link", "set", "eth1", "up"])?;
    let vi1_a = nat.wait_converged(A, Duration::from_secs(30));
    let out = ping.wait_with_output()?;
    let seen: Vec<String> = watch
        .finish()
        .into_iter()
        .map(|(_, v)| v.unwrap_or_else(|| "none".into()))
        .collect();
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    let (sent, got) = ping_counts(&summary);
    let b_route = nat.nodes[B].wan6.clone();
    let b_ll = nat.nodes[B].wan_ll.clone();
    let only_b = seen.iter().all(|v| *v == b_route || *v == b_ll);
    rows.push(row(
        "per-IP roles: two instances in opposite roles",
        "VI_1 (IPv4 address, /64) fails over a to b and back; the /56 (VI_2, b primary) stays on b: its route never moves and a 2 ms ping to it loses 0",
        format!(
            "VI_1 to b: {}, back to a: {}; /56 routed via {:?}; ping {got} of {sent} answered",
            if vi1_b.is_ok() { "yes" } else { "no" },
            if vi1_a.is_ok() { "yes" } else { "no" },
            seen
        ),
        to_b.is_some() && vi1_b.is_ok() && vi1_a.is_ok() && only_b && sent > 0 && got == sent,
        json!({"routes": seen, "ping": summary, "error": vi1_b.err().or(vi1_a.err()).map(|e| format!("{e:#}"))}),
    ));
    for (i, (conf, kconf)) in saved.into_iter().enumerate() {
        std::fs::write(&nat.nodes[i].config, conf)?;
        nat.nodes[i].keepalived_conf = kconf;
    }
    nat.moved6 = bgp::RANGES6.to_vec();
    restart(nat)
}
