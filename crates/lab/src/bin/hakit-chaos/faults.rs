//! Faults on the NAT pair beyond a failover: flapping, split brain, the provider's API
//! down, and short blips of the shared upstream both nodes see.

use super::*;

/// `ping -q`'s summary: (transmitted, received).
pub(crate) fn ping_counts(summary: &str) -> (u64, u64) {
    let line = summary
        .lines()
        .find(|l| l.contains("transmitted"))
        .unwrap_or("");
    let num = |word: &str| {
        line.split(',')
            .find(|p| p.contains(word))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (num("transmitted"), num("received"))
}

/// Several forced transitions within a second: a's VRRP link flaps six times, 150 ms apart.
/// After it settles, keepalived's final MASTER (the node holding the VIP) must hold the
/// floating IP, the SNAT rule and conntrackd's primary role, the provider must route to
/// it, and the other node must hold none of it.
pub(crate) fn flapping(nat: &mut NatLab) -> anyhow::Result<Row> {
    let t0 = Instant::now();
    for k in 0..6 {
        let up = if k % 2 == 0 { "down" } else { "up" };
        nat.nodes[A].ns.ip(&["link", "set", "eth1", up])?;
        thread::sleep(Duration::from_millis(150));
    }
    let flaps = t0.elapsed().as_secs_f64();
    // Settled: the same node holds the VIP for 2 s and everything agrees with it.
    let mut agree = Err(anyhow::anyhow!("never settled"));
    let mut holder = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(2000));
        let h: Vec<usize> = (0..2).filter(|&i| nat.nodes[i].has_vip()).collect();
        if h.len() == 1 && holder == Some(h[0]) {
            agree = nat.wait_converged(h[0], Duration::from_secs(5)).map(|_| ());
            if agree.is_ok() {
                break;
            }
        }
        holder = h.first().copied();
    }
    let who = holder.map_or("nobody".into(), |i| nat.nodes[i].role.clone());
    let transitions: usize = (0..2)
        .map(|i| nat.nodes[i].recorded()["generation"].as_u64().unwrap_or(0) as usize)
        .sum();
    Ok(row(
        "flapping (six forced transitions within a second)",
        "the final owner of the floating IP, SNAT and conntrackd mode agree with keepalived's final state",
        format!(
            "a's VRRP link toggled 6 times in {flaps:.2} s; final MASTER {who}; {}",
            match &agree {
                Ok(()) => "FIP, SNAT, conntrackd primary, provider route all on it and none on the peer".to_string(),
                Err(e) => format!("disagree: {e:#}"),
            }
        ),
        agree.is_ok(),
        json!({"final_master": who, "recorded_generations": transitions,
               "error": agree.err().map(|e| format!("{e:#}"))}),
    ))
}

/// VRRP cut between the nodes (both drop protocol 112): both become MASTER.
pub(crate) fn split_brain(nat: &mut NatLab) -> anyhow::Result<Row> {
    // Start from a as MASTER.
    nat.wait_converged(A, Duration::from_secs(15))?;
    for i in [A, B] {
        nat.nodes[i].ns.exec(&[
            "nft",
            "insert",
            "rule",
            "inet",
            "hakit_filter",
            "input",
            "ip",
            "protocol",
            "vrrp",
            "drop",
            "comment",
            "\"chaos-split\"",
        ])?;
    }
    let both = hakit_lab::wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        nat.nodes[A].has_vip() && nat.nodes[B].has_vip()
    });
    // Let both claim.
    let claims = hakit_lab::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        nat.nodes[B].recorded()["state"] == "MASTER" && nat.nodes[B].recorded()["converged"] == true
    });
    thread::sleep(Duration::from_millis(300));
    let owner = nat.owner();
    let route = nat.fip_route_via();
    let (ca, sa) = nat.status(A)?;
    let (cb, sb) = nat.status(B)?;
    let conflict = |s: &Value| {
        s["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|i| i["problems"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| p.as_str().map(str::to_string))
            .filter(|p| p.contains("split brain"))
            .collect::<Vec<_>>()
    };
    let (pa, pb) = (conflict(&sa), conflict(&sb));
    // The MASTER the provider does not route to must also see it from the provider's side.
    let loser = owner.and_then(|o| nat.by_id(o)).map(|i| 1 - i);
    let provider_seen = loser
        .map(|i| if i == A { &pa } else { &pb })
        .is_some_and(|p| p.iter().any(|l| l.contains("provider routes")));
    let single = owner.is_some()
        && route
            .zip(owner.and_then(|o| nat.by_id(o)))
            .is_some_and(|(r, i)| nat.nodes[i].wan.parse() == Ok(r));
    // Heal: VRRP flows again; b yields to a, and a must end up owning everything.
    for i in [A, B] {
        let out = nat.nodes[i].ns.exec(&[
            "nft",
            "-a",
            "list",
            "chain",
            "inet",
            "hakit_filter",
            "input",
        ])?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        for l in text.lines().filter(|l| l.contains("chaos-split")) {
            if let Some(h) = l.rsplit("handle ").next() {
                nat.nodes[i].ns.exec(&[
                    "nft",
                    "delete",
                    "rule",
                    "inet",
                    "hakit_filter",
                    "input",
                    "handle",
                    h.trim(),
                ])?;
            }
        }
    }
    let healed = nat.wait_converged(A, Duration::from_secs(15));
    let pass = provider_seen
        && both.is_some()
        && claims.is_some()
        && single
        && !pa.is_empty()
        && !pb.is_empty()
        && ca != 0
        && cb != 0
        && healed.is_ok();
    Ok(row(
        "split brain (VRRP cut, both nodes MASTER)",
        "`nat-notify status` on each node reports the conflict; the provider shows a single owner",
        format!(
            "both MASTER: {}; provider owner node {} (FIP routed via {}); status a (exit {ca}): {}; status b (exit {cb}): {}; healed to a: {}",
            if both.is_some() { "yes" } else { "no" },
            owner.map_or("none".into(), |o| o.to_string()),
            route.map_or("nothing".into(), |r| r.to_string()),
            if pa.is_empty() { "no conflict reported".into() } else { pa.join(" / ") },
            if pb.is_empty() { "no conflict reported".into() } else { pb.join(" / ") },
            if healed.is_ok() { "yes" } else { "no" }
        ),
        pass,
        json!({"owner": owner, "route_via": route.map(|r| r.to_string()), "status_a": sa, "status_b": sb,
               "healed": healed.err().map(|e| format!("{e:#}"))}),
    ))
}

/// The provider's API is down for 5 s when the failover happens.
pub(crate) fn api_down(nat: &mut NatLab) -> anyhow::Result<Row> {
    nat.wait_converged(A, Duration::from_secs(15))?;
    let before = nat.cloud_requests().len();
    nat.api_outage(5.0)?;
    let api_back = Instant::now() + Duration::from_secs(5);
    nat.stop_keepalived(A);
    // Meanwhile: b's local data plane is up while the provider still routes to a.
    let local = hakit_lab::wait_until(Duration::from_secs(4), Duration::from_millis(10), || {
        let b = &nat.nodes[B];
        b.has_vip() && b.has_fip() && b.snat()
    });
    let still_a = nat.owner() == Some(nat.nodes[A].id);
    let conv = nat.wait_converged(B, Duration::from_secs(30));
    let after = Instant::now()
        .saturating_duration_since(api_back)
        .as_secs_f64()
        * 1000.0;
    let tries = nat.cloud_requests()[before..]
        .iter()
        .filter(|r| r.starts_with("POST"))
        .count();
    let gets = nat.cloud_requests().len() - before;
    // Back to a for whatever runs next.
    nat.start_keepalived(A)?;
    let _ = nat.wait_converged(A, Duration::from_secs(15));
    Ok(row(
        "provider API down for 5 s during failover",
        "fip-claim retries and converges after the API returns; the local data plane was up meanwhile",
        format!(
            "b had VIP, FIP and SNAT after {} while the provider still routed to a: {}; {gets} API requests ({tries} assign); converged {after:.0} ms after the API returned",
            ms(local.map(|d| d.as_secs_f64() * 1000.0)),
            if still_a { "yes" } else { "no" }
        ),
        local.is_some() && still_a && conv.is_ok() && gets > 2,
        json!({"local_up_ms": local.map(|d| d.as_secs_f64() * 1000.0), "requests": gets,
               "converged_after_api_back_ms": after, "error": conv.err().map(|e| format!("{e:#}"))}),
    ))
}

/// nft in `inet`: drop what node `i` sends (by its WAN MAC), optionally only to `daddr`.
pub(crate) fn upstream_drops(nat: &NatLab, i: usize, daddr: Option<&str>) -> anyhow::Result<()> {
    let mac = String::from_utf8(
        nat.nodes[i]
            .ns
            .exec(&["cat", "/sys/class/net/eth0/address"])?
            .stdout,
    )?
    .trim()
    .to_string();
    let inet = &nat.inet;
    hakit_lab::run_ok(&mut inet.command(&["nft", "add", "table", "netdev", "hakit_chaos"]))?;
    hakit_lab::run_ok(&mut inet.command(&[
        "nft",
        "add chain netdev hakit_chaos in { type filter hook ingress device eth0 priority 0; }",
    ]))?;
    let mut rule = vec![
        "nft",
        "add",
        "rule",
        "netdev",
        "hakit_chaos",
        "in",
        "ether",
        "saddr",
        &mac,
    ];
    if let Some(d) = daddr {
        rule.extend(["ip", "daddr", d]);
    }
    rule.push("drop");
    hakit_lab::run_ok(&mut inet.command(&rule))?;
    Ok(())
}

pub(crate) fn upstream_heals(nat: &NatLab) {
    let _ = hakit_lab::run_ok(&mut nat.inet.command(&[
        "nft",
        "delete",
        "table",
        "netdev",
        "hakit_chaos",
    ]));
}

/// (f) A failure both nodes see: the shared upstream gateway drops everything from both
/// nodes, then only what goes to the shared external target, for 50 to 500 ms each, in one
/// nft transaction (both nodes from the same instant). Neither node is better off, so the
/// monitors compare notes ([check.peer]) and hold: no track file ever 1, no FAULT, no
/// transition, a still the converged MASTER and the provider's owner unchanged.
pub(crate) fn shared_blips(nat: &mut NatLab) -> anyhow::Result<Row> {
    let faults0 = (faults(nat, A), faults(nat, B));
    let owner0 = nat.owner();
    let start = hakit_lab::nat::now_unix();
    let mut ones = [0u32; 2];
    let mut last = [nat.track_value(A), nat.track_value(B)];
    let mut watch = |nat: &NatLab, ones: &mut [u32; 2], d: Duration| {
        let t0 = Instant::now();
        while t0.elapsed() < d {
            for (i, l) in last.iter_mut().enumerate() {
                let v = nat.track_value(i);
                if v != *l && v == "1" {
                    ones[i] += 1;
                }
                *l = v;
            }
            thread::sleep(Duration::from_millis(5));
        }
    };
    let mut blips = Vec::new();
    let short: &[u64] = &[50, 150, 300, 500];
    for (what, daddr, lengths) in [
        ("the upstream gateway", None, short),
        (
            "both external targets",
            Some(hakit_lab::nat::EXTERNALS),
            short,
        ),
        // One of the two silent for long: the quorum group holds, nothing goes down.
        (
            "one of the two external targets",
            Some(hakit_lab::nat::EXTERNAL),
            &[3000],
        ),
    ] {
        for &ms in lengths {
            let inet = &nat.inet;
            hakit_lab::run_ok(&mut inet.command(&[
                "nft",
                "add",
                "table",
                "netdev",
                "hakit_chaos",
            ]))?;
            hakit_lab::run_ok(&mut inet.command(&[
                "nft",
                "add chain netdev hakit_chaos in { type filter hook ingress device eth0 priority 0; }",
            ]))?;
            let mut rule = vec!["nft", "add", "rule", "netdev", "hakit_chaos", "in"];
            if let Some(d) = daddr {
                rule.extend(["ip", "daddr", d]);
            }
            rule.push("drop");
            hakit_lab::run_ok(&mut inet.command(&rule))?;
            watch(nat, &mut ones, Duration::from_millis(ms));
            upstream_heals(nat);
            watch(nat, &mut ones, Duration::from_millis(1500));
            blips.push(format!("{what} {ms} ms"));
        }
    }
    let _ = nat.syslog.sync(Duration::from_secs(2));
    let lines = nat.syslog.since(start);
    let count = |pat: &str| lines.iter().filter(|(_, l)| l.contains(pat)).count();
    let transitions = count(" converged to ") + count(" did not converge to ");
    let holds = count("holding the role");
    let faults1 = (faults(nat, A), faults(nat, B));
    let converged = nat.converged(A);
    let owner1 = nat.owner();
    let said: Vec<String> = lines
        .iter()
        .filter(|(_, l)| {
            l.contains("holding") || l.contains("written 1") || l.contains(" down after ")
        })
        .take(40)
        .map(|(t, l)| format!("{:.3} {l}", t - start))
        .collect();
    Ok(row(
        "(f) a failure both nodes see: the shared upstream, then both shared external targets, silent for 50, 150, 300 and 500 ms for both nodes at once; then one of the two external targets for 3 s",
        "0 transitions: no track file ever 1, no FAULT on either node, a still the converged MASTER, the provider's owner unchanged; the monitors held the role (peer reports)",
        format!(
            "{}; track file went to 1: a {} b {} times; FAULTs a/b: {}/{}; nat-notify transitions: {transitions}; monitors' holds: {holds}; a converged MASTER: {}; provider owner {:?} -> {:?}",
            blips.join(", "),
            ones[0],
            ones[1],
            faults1.0 - faults0.0,
            faults1.1 - faults0.1,
            converged.as_ref().map_or_else(|e| format!("no ({e:#})"), |_| "yes".into()),
            owner0,
            owner1,
        ),
        ones == [0, 0]
            && faults1 == faults0
            && transitions == 0
            && holds > 0
            && converged.is_ok()
            && owner0 == owner1,
        json!({"blips": blips, "track_ones": ones, "transitions": transitions, "holds": holds, "lines": said}),
    ))
}
