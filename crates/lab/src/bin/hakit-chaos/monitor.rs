//! The uplink monitor's lab: the VRRP path cut, its decisions against provider writes and
//! FAULTs, and the monitor's scenarios (`--lab monitor`).

use super::*;

/// (g) Only the VRRP path cut (#29 point 4): a's nftables drop VRRP (IP protocol 112) in
/// and out, nothing else; the sync link and the data path stay up. b stops hearing adverts
/// and becomes MASTER; its nat-notify holds the provider claim (a's monitor says, over the
/// sync link, that a is MASTER), and its monitor, which hears a's reports but not a's
/// adverts, stands b down (track file 1: FAULT, the LAN VIP removed) until the adverts
/// return. The provider's owner never changes; the LAN VIP is on both nodes for less than
/// one master-down interval; b's heartbeat says it stands down (the alert's input) within
/// 2 s; when the path returns, b stands again as BACKUP: one MASTER, a.
pub(crate) fn vrrp_cut(nat: &mut NatLab, cuts: u32, secs: u64) -> anyhow::Result<Row> {
    let owner0 = nat.owner();
    let writes0 = provider_writes(nat);
    let start = hakit_lab::nat::now_unix();
    let recorded = |nat: &NatLab, i: usize| {
        nat.status(i).ok().and_then(|(_, v)| {
            v["instances"][0]["recorded_state"]
                .as_str()
                .map(str::to_string)
        })
    };
    let vip = |nat: &NatLab, i: usize| {
        nat.nodes[i]
            .ns
            .has_addr("eth1", hakit_lab::nat::VIP.parse().unwrap())
            .unwrap_or(false)
    };
    let b_beat = hakit_core::heartbeat::path(&nat.nodes[B].track_file);
    let standing = || {
        std::fs::read_to_string(&b_beat)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v["standing_down"].is_string())
    };
    // b's textfile: what the monitor says of the VRRP path (adverts heard, missed).
    let b_prom = nat.nodes[B].track_file.with_extension("prom");
    let counter = |name: &str| -> f64 {
        std::fs::read_to_string(&b_prom)
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix(name)?;
                (rest.starts_with('{') || rest.starts_with(' '))
                    .then(|| rest.rsplit(' ').next()?.parse().ok())?
            })
            .unwrap_or(-1.0)
    };
    let (received0, missed0) = (
        counter("hakit_vrrp_adverts_received_total"),
        counter("hakit_vrrp_adverts_missed_total"),
    );
    let mut alert_ms = Vec::new();
    let mut healed_ms = Vec::new();
    let mut both_vip_ms = Vec::new();
    let mut b_master_ms = Vec::new();
    let a_ns = nat.nodes[A].ns.clone();
    for _ in 0..cuts {
        hakit_lab::run_ok(&mut a_ns.command(&[
            "nft",
            "add table inet hakit_cut; add chain inet hakit_cut in { type filter hook input priority -300; }; add chain inet hakit_cut out { type filter hook output priority -300; }; add rule inet hakit_cut in ip protocol vrrp drop; add rule inet hakit_cut out ip protocol vrrp drop",
        ]))?;
        let t0 = Instant::now();
        let mut alert = None;
        let mut both_vip = Duration::ZERO;
        let mut b_master = Duration::ZERO;
        let mut last = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            let (a, b) = (vip(nat, A), vip(nat, B));
            let dt = last.elapsed();
            last = Instant::now();
            if a && b {
                both_vip += dt;
            }
            if b {
                b_master += dt;
            }
            if alert.is_none() && standing() {
                alert = Some(t0.elapsed());
            }
            thread::sleep(Duration::from_millis(10));
        }
        hakit_lab::run_ok(&mut a_ns.command(&["nft", "delete", "table", "inet", "hakit_cut"]))?;
        let t1 = Instant::now();
        let healed =
            hakit_lab::wait_until(Duration::from_secs(15), Duration::from_millis(20), || {
                recorded(nat, B).as_deref() == Some("BACKUP") && !vip(nat, B) && vip(nat, A)
            });
        alert_ms.push(alert.map_or(-1.0, |d| d.as_secs_f64() * 1000.0));
        healed_ms.push(healed.map_or(-1.0, |_| t1.elapsed().as_secs_f64() * 1000.0));
        both_vip_ms.push(both_vip.as_secs_f64() * 1000.0);
        b_master_ms.push(b_master.as_secs_f64() * 1000.0);
        nat.wait_converged(A, Duration::from_secs(15))
            .context("a is not the converged MASTER after the VRRP path returned")?;
    }
    let _ = nat.syslog.sync(Duration::from_secs(2));
    let lines = nat.syslog.since(start);
    let held = lines
        .iter()
        .filter(|(_, l)| l.contains("not claiming the provider IP yet"))
        .count();
    let stood = lines
        .iter()
        .filter(|(_, l)| l.contains("the VRRP path is cut: no advert from the peer"))
        .count();
    for (_, l) in lines
        .iter()
        .filter(|(_, l)| l.contains("VRRP") || l.contains("standing"))
    {
        println!("    {l}");
    }
    // The counters as published after the last heal (the standing-again write).
    let adverts_missed = counter("hakit_vrrp_adverts_missed_total") - missed0;
    let adverts_received = counter("hakit_vrrp_adverts_received_total") - received0;
    let owner1 = nat.owner();
    let provider_writes = provider_writes(nat) - writes0;
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // keepalived's master-down interval for b in this lab: its missed adverts plus the
    // skew, (256 - priority) / 256 adverts.
    let advert_ms = nat.opts.advert_int.parse::<f64>().unwrap_or(1.0) * 1000.0;
    let missed = f64::from(nat.opts.down_timer_adverts.unwrap_or(3));
    let mdi_ms = (missed + (256.0 - f64::from(nat.opts.priorities[B])) / 256.0) * advert_ms;
    // Each cut hides secs / advert_int adverts from b; its textfile must count them.
    let lost = f64::from(cuts) * (secs as f64 * 1000.0 / advert_ms - 1.0);
    let counted = adverts_missed >= 0.9 * lost && adverts_missed <= 1.1 * lost + 10.0;
    Ok(row(
        "(g) only the VRRP path cut (a drops IP protocol 112 in and out; sync link and data path up)",
        &format!("the provider's owner never changes and nothing is written to it; b stands down (heartbeat, the alert's input) within 2 s; the LAN VIP on both nodes for less than one master-down interval ({mdi_ms:.0} ms) per cut; one MASTER (a) again when the path returns; b's textfile counts the adverts the cuts hid ({lost:.0} +- 10 %)"),
        format!(
            "{cuts} cuts of {secs} s: b stood down after {} ms ({stood} times in its log); LAN VIP on both for {} ms, on b for {} ms; b's claim held {held} times; provider writes {provider_writes}, owner {owner0:?} -> {owner1:?}; healed to a alone after {} ms; b's textfile: {adverts_received} adverts heard, {adverts_missed} missed",
            fmt(&alert_ms),
            fmt(&both_vip_ms),
            fmt(&b_master_ms),
            fmt(&healed_ms),
        ),
        owner0 == owner1
            && provider_writes == 0
            && stood as u32 >= cuts
            && alert_ms.iter().all(|&m| (0.0..=2000.0).contains(&m))
            && both_vip_ms.iter().all(|&m| m < mdi_ms)
            && healed_ms.iter().all(|&m| m >= 0.0)
            && counted,
        json!({"cuts": cuts, "seconds": secs, "adverts_missed": adverts_missed, "adverts_received": adverts_received, "alert_ms": alert_ms, "healed_ms": healed_ms, "both_vip_ms": both_vip_ms, "b_vip_ms": b_master_ms, "master_down_ms": mdi_ms, "held": held, "stood": stood, "provider_writes": provider_writes}),
    ))
}

/// Requests that could change something at the provider (all but reads), so far.
pub(crate) fn provider_writes(nat: &NatLab) -> usize {
    nat.cloud_requests()
        .iter()
        .filter(|r| !r.starts_with("GET "))
        .count()
}

/// Lines of keepalived's log on node `i` that say it entered FAULT.
pub(crate) fn faults(nat: &NatLab, i: usize) -> usize {
    keepalived_log(nat, i)
        .matches("Entering FAULT STATE")
        .count()
}

/// The uplink monitor (`ha-check monitor` + keepalived `track_file`): the acceptance
/// scenarios of uplink loss, a dead monitor and a lossy, loaded uplink.
pub(crate) fn monitor_lab(
    bin_dir: &std::path::Path,
    out_dir: &std::path::Path,
    want: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<Row>> {
    const BLACKOUT_MS: f64 = 200.0;
    let mut opts = Opts::new(bin_dir);
    opts.monitor = true;
    // HAKIT_CHAOS_PROFILE=fast: the L2 fast profile as hakit-setup renders it (make
    // chaos-soak soaks both profiles).
    if std::env::var("HAKIT_CHAOS_PROFILE").as_deref() == Ok("fast") {
        opts.fast_profile();
    }
    let started = Instant::now();
    println!(
        "hakit chaos: NAT pair, uplink health by ha-check monitor (20 ms probes) and keepalived track_file; advert_int {} s, master down after {:?} adverts, priorities {:?}",
        opts.advert_int, opts.down_timer_adverts, opts.priorities
    );
    let mut nat = NatLab::up(opts)?;
    lab_up(started, &nat.lab);
    let mut rows = Vec::new();
    let long = nat.traffic("long", &["--tcp"])?;
    thread::sleep(Duration::from_millis(800));
    let retrans_before = nat.server_retransmits();
    let mut spans = Vec::new();

    type Event = fn(&mut NatLab) -> anyhow::Result<()>;
    type Heal = fn(&mut NatLab) -> anyhow::Result<()>;
    let cases: [(&str, &'static str, Event, Heal); 3] = [
        (
            "wan-down",
            "(a) WAN link down on the master",
            |n| n.nodes[A].ns.ip(&["link", "set", "eth0", "down"]),
            |n| {
                n.nodes[A].ns.ip(&["link", "set", "eth0", "up"])?;
                let _ = n.nodes[A].ns.ip(&[
                    "route",
                    "replace",
                    "default",
                    "via",
                    hakit_lab::nat::SERVER,
                ]);
                let _ = n.nodes[A].ns.ip(&[
                    "route",
                    "replace",
                    hakit_lab::nat::EXTERNALS,
                    "via",
                    hakit_lab::nat::SERVER,
                ]);
                Ok(())
            },
        ),
        (
            "gateway-dead",
            "(b) upstream gateway dead, link up (it drops everything from the master)",
            |n| upstream_drops(n, A, None),
            |n| {
                upstream_heals(n);
                Ok(())
            },
        ),
        (
            "path-dead",
            "(c) the path beyond the gateway dead (both external targets lost, gateway alive)",
            |n| upstream_drops(n, A, Some(hakit_lab::nat::EXTERNALS)),
            |n| {
                upstream_heals(n);
                Ok(())
            },
        ),
    ];
    for (tag, name, event, heal) in cases {
        if !want(tag) {
            continue;
        }
        let faults0 = faults(&nat, A);
        let (f, data) = failover(&mut nat, tag, B, true, event)?;
        let fault = faults(&nat, A) > faults0;
        let track = nat.track_value(A);
        let blackout = f.blackout_ms();
        rows.push(row(
            name,
            &format!("the monitor writes 1, keepalived on a enters FAULT, b takes over; blackout at the LAN client <= {BLACKOUT_MS:.0} ms"),
            format!(
                "a's track file {track}; a entered FAULT: {}; b converged after {}; blackout {blackout:.0} ms",
                if fault { "yes" } else { "no" },
                ms(f.converged_ms()),
            ),
            track == "1" && fault && f.converged.is_ok() && blackout <= BLACKOUT_MS,
            data,
        ));
        spans.push(tag);
        heal(&mut nat)?;
        nat.wait_converged(A, Duration::from_secs(15))
            .with_context(|| {
                format!("{tag}: a did not take mastership back after the uplink healed")
            })?;
    }
    thread::sleep(Duration::from_millis(500));
    let retrans = nat.server_retransmits().saturating_sub(retrans_before);
    let l = nat.stop_traffic(long)?;
    rows.push(tcp_row(
        "stateful TCP flow across (a)-(c)",
        &l,
        Some(retrans),
        &spans,
    ));

    if want("shared-blip") {
        rows.push(shared_blips(&mut nat)?);
    }

    if want("vrrp-cut") {
        let (cuts, secs) = (
            env_u64("HAKIT_CHAOS_VRRP_CUTS", 2) as u32,
            env_u64("HAKIT_CHAOS_VRRP_CUT_SECONDS", 5),
        );
        rows.push(vrrp_cut(&mut nat, cuts, secs)?);
    }

    if want("monitor-killed") {
        rows.push(monitor_killed(&mut nat)?);
    }

    if want("soak") {
        let row = soak(&mut nat)?;
        if !row.pass {
            keep_logs(&nat, &out_dir.join("soak-logs"));
        }
        rows.push(row);
    }
    nat.lab.teardown();
    Ok(rows)
}

/// (d): SIGKILL, and no restart for a while (a unit in a crash loop): the track file keeps
/// its last value (no FAULT, no flap), the heartbeat goes stale, keepalived's
/// chk_hakit_monitor fails and a's priority drops by 60 below b's: one handover. Then the
/// "unit" starts it again: a is healthy and takes mastership back.
fn monitor_killed(nat: &mut NatLab) -> anyhow::Result<Row> {
    let faults0 = faults(nat, A);
    let monitor_line = |nat: &NatLab| -> (i32, String, String) {
        let (code, v) = nat.status(A).unwrap_or((-1, Value::Null));
        let line = v["instances"][0]["uplink_monitor"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let problems = v["instances"][0]["problems"].to_string();
        (code, line, problems)
    };
    let before = monitor_line(nat);
    let t0 = Instant::now();
    nat.kill_monitor(A);
    let demoted = nat.wait_converged(B, Duration::from_secs(15));
    let demoted_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let log = keepalived_log(nat, A);
    let failed = log.contains("VRRP_Script(chk_hakit_monitor) failed");
    let dropped = log.contains("effective priority from 150 to 90");
    let track = nat.track_value(A);
    let no_fault = faults(nat, A) == faults0;
    let during = monitor_line(nat);
    // nat-notify status: the verdict and its age while alive, the stale heartbeat after.
    let status_ok = before.0 == 0
        && before.1.starts_with("healthy")
        && during.0 == 1
        && during.2.contains("uplink monitor: heartbeat");
    let t1 = Instant::now();
    nat.start_monitor(A)?;
    let back = nat.wait_converged(A, Duration::from_secs(15));
    Ok(row(
        "(d) the monitor SIGKILLed on the master",
        "no FAULT (the track file keeps its value); chk_hakit_monitor fails, a's priority 150 -> 90, b takes over; the restarted monitor brings a back",
        format!(
            "track file {track}; a entered FAULT: {}; chk_hakit_monitor failed: {}; priority 150 -> 90: {}; b master after {demoted_ms:.0} ms; a back {:.1} s after the restart; nat-notify status before: \"{}\" (exit {}), after the kill: exit {} naming the stale heartbeat: {}",
            if no_fault { "no" } else { "yes" },
            if failed { "yes" } else { "no" },
            if dropped { "yes" } else { "no" },
            t1.elapsed().as_secs_f64(),
            before.1,
            before.0,
            during.0,
            if status_ok { "yes" } else { "no" }
        ),
        track == "0" && no_fault && failed && dropped && demoted.is_ok() && back.is_ok() && status_ok,
        json!({"demoted_ms": demoted_ms, "error": demoted.err().map(|e| format!("{e:#}")), "back_error": back.err().map(|e| format!("{e:#}"))}),
    ))
}

/// The lab's logs (keepalived, the provider's requests, the monitors) kept in `keep`: they
/// outlive the lab for the diagnosis.
fn keep_logs(nat: &NatLab, keep: &std::path::Path) {
    let _ = std::fs::create_dir_all(keep);
    for e in std::fs::read_dir(nat.lab.dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".log") {
            let _ = std::fs::copy(e.path(), keep.join(&name));
        }
    }
    println!("  soak logs kept in {}", keep.display());
}
