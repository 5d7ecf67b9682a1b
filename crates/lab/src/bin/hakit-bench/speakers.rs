//! The three BGP speakers a Linode pair runs, driven in place by hakit in the route-server
//! lab: graceful failovers (distribution), session resets, and the crash bound.

use super::*;

/// Graceful failovers per speaker (each followed by a restore).
const GRACEFUL_RUNS: usize = 20;
/// The graceful goal (issue #32): the route server switched within this, p99.
const GOAL_MS: f64 = 200.0;
/// Crashes per speaker (each takes the hold timer, ~9 s).
const CRASH_RUNS: usize = 3;

/// Sessions the route server has dropped, summed over its neighbours (FRR's
/// `connectionsDropped`): a session reset during a failover shows here.
fn rs_drops(nat: &hakit_lab::nat::NatLab) -> u64 {
    let rs = hakit_lab::bgp::Frr {
        dir: nat.dir().join("frr-rs"),
    };
    rs.vtysh(&nat.inet, &["show bgp neighbors json"])
        .ok()
        .and_then(|o| serde_json::from_str::<serde_json::Value>(&o).ok())
        .and_then(|v| {
            v.as_object().map(|m| {
                m.values()
                    .filter_map(|n| n["connectionsDropped"].as_u64())
                    .sum()
            })
        })
        .unwrap_or(0)
}

/// When the route server first routed the shared IP to `to` after `since` (NaN: never).
fn first_via(seen: &[(f64, Option<String>)], since: f64, to: &hakit_lab::nat::Node) -> f64 {
    seen.iter()
        .find(|(t, via)| {
            *t >= since
                && (via.as_deref() == Some(to.wan6.as_str())
                    || via.as_deref() == Some(to.wan_ll.as_str()))
        })
        .map_or(f64::NAN, |(t, _)| *t)
}

pub(crate) fn speakers(md: &mut String, static_dir: &Path) -> anyhow::Result<()> {
    use hakit_lab::{
        bgp::{Method, Opts as BgpOpts, RouteWatch, Speaker, HOLD_S},
        nat::{NatLab, Opts, FIP},
    };
    writeln!(md, "## Linode: the three speakers driven in place\n")?;
    writeln!(md, "Method: the Linode lab (`make chaos --lab linode|linode-frr|linode-bird`): an FRR route server emulating Linode's, the gateways' speaker Debian's gobgpd with lelastic's configuration, FRR as in Linode's FRR guide, or BIRD 2 (hakit's roles file, `birdc configure`), all with hold time {HOLD_S:.0} s and keepalive 3 s. Per speaker {GRACEFUL_RUNS} graceful failovers (SIGTERM to keepalived on the master, then a restored) with a 1 ms UDP echo and a TCP stream through the NAT, and {CRASH_RUNS} crashes (the master's links down, then keepalived and the speaker SIGKILLed: no NOTIFICATION or FIN reaches the route server). *Route server switched*: from the SIGTERM until the route server's kernel routes the shared IP to the new master (its next hop sampled every ~3 ms; nothing else reads the speakers for 1.5 s, then the lab checks that VIP, nat-notify's state, the announcements and the route agree on the new master). *Session resets*: the route server's `connectionsDropped` over the graceful runs. Crash: the route server keeps the dead node's path until its hold timer drops the session (at most {HOLD_S:.0} s after the last keepalive it received, so 6–9 s; nothing the survivor does can shorten it), so the bound is the hold time itself.\n")?;
    writeln!(md, "| speaker | graceful: route server switched p50 / p99 (goal p99 <= {GOAL_MS:.0} ms) | graceful blackout p50 / p99 | probes lost (total) | TCP survived | session resets | crash: route server switched p50 / max (hold {HOLD_S:.0} s) |")?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    let timeout = Duration::from_secs(40);
    for speaker in [Speaker::Gobgp, Speaker::Frr, Speaker::Bird] {
        let mut opts = Opts::new(static_dir);
        opts.bgp = Some(BgpOpts {
            speaker,
            method: Method::InPlace,
        });
        eprintln!("speakers bench: {}", speaker.name());
        let mut nat = NatLab::up(opts)?;
        let (mut blackout, mut lost, mut tcp) = (Vec::new(), 0, 0);
        let mut switched = Vec::new();
        let drops0 = rs_drops(&nat);
        for k in 0..GRACEFUL_RUNS {
            let watch = RouteWatch::start(&nat.inet, FIP);
            let t = nat.traffic(&format!("g{k}"), &["--tcp", "--udp-ms", "1"])?;
            thread::sleep(Duration::from_millis(600));
            let t_event = now_unix();
            nat.stop_keepalived(0);
            // Nothing reads the speakers while the route server switches: a vtysh call
            // costs ~30 ms of CPU on these two cores, and the lab's own polling would be
            // what is measured.
            thread::sleep(Duration::from_millis(1500));
            nat.wait_converged(1, timeout)?;
            thread::sleep(Duration::from_millis(300));
            let report = nat.stop_traffic(t)?;
            let b = &nat.nodes[1];
            switched.push((first_via(&watch.finish(), t_event, b) - t_event) * 1000.0);
            let probe = &report["udp_1ms"];
            blackout.push(probe["blackout_ms"].as_f64().unwrap_or(f64::INFINITY));
            lost += probe["lost"].as_u64().unwrap_or(0);
            let tcp_ok = report["tcp"]["alive_at_end"] == true
                && report["tcp"]["first_mismatch_offset"].is_null();
            tcp += usize::from(tcp_ok);
            nat.start_keepalived(0)?;
            nat.wait_converged(0, timeout)?;
        }
        let resets = rs_drops(&nat).saturating_sub(drops0);
        let mut crash = Vec::new();
        for _ in 0..CRASH_RUNS {
            let watch = RouteWatch::start(&nat.inet, FIP);
            let t_event = now_unix();
            nat.crash(0)?;
            nat.wait_converged(1, timeout)?;
            let t_switch = first_via(&watch.finish(), t_event, &nat.nodes[1]);
            crash.push((t_switch - t_event) * 1000.0);
            nat.links_up(0)?;
            nat.start_speaker(0, "secondary")?;
            nat.start_keepalived(0)?;
            nat.wait_converged(0, timeout)?;
        }
        let worst = crash.iter().copied().fold(f64::MIN, f64::max);
        let p99 = pct(&mut switched, 0.99);
        writeln!(
            md,
            "| {} | {:.0} / {:.0} ms ({}) | {:.1} / {:.1} ms | {lost} | {tcp}/{GRACEFUL_RUNS} | {resets} | {:.2} / {:.2} s |",
            speaker.name(),
            pct(&mut switched, 0.5),
            p99,
            if p99 <= GOAL_MS { "met" } else { "NOT met" },
            pct(&mut blackout, 0.5),
            pct(&mut blackout, 0.99),
            median(&mut crash) / 1000.0,
            worst / 1000.0,
        )?;
        nat.lab.teardown();
    }
    writeln!(md, "\nThe Linode guide's way (restart lelastic on MASTER) takes the speaker's restart, GoBGP's 5–9 s before its first connect: see the table above. \n")?;
    Ok(())
}
