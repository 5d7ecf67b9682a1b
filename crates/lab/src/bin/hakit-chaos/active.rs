//! Active-active (`--lab active`, #34 point 1): two instances in opposite roles, each node
//! MASTER of one, conntrackd syncing both ways with its external cache
//! ([`hakit_lab::nat::second`]). Instance B moves to a and back while A's flows go on:
//! nothing of A may be lost, also past conntrackd's PurgeTimeout after B's return (a node
//! going BACKUP for B while MASTER of A must not have conntrackd purge its table), and B's
//! own stream survives both moves.

use super::*;
use hakit_lab::nat::second::PURGE_TIMEOUT_S;

/// Role of each instance by `nat-notify status` on node `i`: (VI_1, VI_2).
fn roles(nat: &NatLab, i: usize) -> (String, String) {
    let v = nat.status(i).map(|(_, v)| v).unwrap_or(Value::Null);
    let state = |name: &str| {
        v["instances"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["instance"] == name))
            .and_then(|x| x["recorded_state"].as_str())
            .unwrap_or("?")
            .to_string()
    };
    (state("VI_1"), state("VI_2"))
}

pub(crate) fn active_lab(
    bin_dir: &std::path::Path,
    want: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<Row>> {
    let mut opts = Opts::new(bin_dir);
    opts.l2 = true;
    opts.active_active = true;
    let started = Instant::now();
    println!(
        "hakit chaos, active-active: VI_1 (a MASTER) and VI_2 (b MASTER), conntrackd FTFW with its external cache, PurgeTimeout {PURGE_TIMEOUT_S} s"
    );
    let mut nat = NatLab::up(opts)?;
    lab_up(started, &nat.lab);
    let mut rows = Vec::new();
    let a_udp = nat.traffic("a-udp", &["--udp-ms", "10"])?;
    let a_tcp = nat.traffic("a-tcp", &["--tcp"])?;
    let b_udp = nat.traffic_second("b-udp", &["--udp-ms", "10"])?;
    let b_tcp = nat.traffic_second("b-tcp", &["--tcp"])?;
    thread::sleep(Duration::from_millis(800));
    // Both forward at once: each node holds its instance and says so.
    let (ra, rb) = (roles(&nat, A), roles(&nat, B));
    let both = nat.converged(A).is_ok() && nat.holds_second(B).unwrap_or(false);
    rows.push(row(
        "active-active: both nodes forward at once",
        "a the converged MASTER of VI_1 (VIP, floating IP, SNAT), b of VI_2; each node's status says it",
        format!(
            "a: VI_1 {}, VI_2 {}; b: VI_1 {}, VI_2 {}; a converged for VI_1 and b holds VI_2: {}",
            ra.0,
            ra.1,
            rb.0,
            rb.1,
            if both { "yes" } else { "no" }
        ),
        both && ra == ("MASTER".into(), "BACKUP".into()) && rb == ("BACKUP".into(), "MASTER".into()),
        json!({"a": [ra.0, ra.1], "b": [rb.0, rb.1]}),
    ));
    if want("move") {
        // B to a (b's VI_2 held in FAULT), then back (preempt_delay 1 s), then past the
        // PurgeTimeout a -t on a would have armed. conntrackd's log on a says whether one
        // was: its scheduled flush empties a's kernel table of every entry the ignore
        // filter does not cover, VI_1's included (measured with the per-instance policy:
        // 22 entries to 6, the flows that live on re-created by their next packets).
        let log_a = |nat: &NatLab| {
            std::fs::read_to_string(&nat.nodes[A].conntrackd.log).unwrap_or_default()
        };
        let purges0 = log_a(&nat).matches("flushing conntrack table in").count();
        let t0 = Instant::now();
        nat.hold_second(B, true)?;
        let over = nat.wait_second(A, Duration::from_secs(15));
        let over_ms = t0.elapsed().as_secs_f64() * 1000.0;
        thread::sleep(Duration::from_secs(2));
        let t1 = Instant::now();
        nat.hold_second(B, false)?;
        let back = nat.wait_second(B, Duration::from_secs(15));
        let back_ms = t1.elapsed().as_secs_f64() * 1000.0;
        let wait = PURGE_TIMEOUT_S + 3;
        println!("  VI_2 moved to a and back; waiting {wait} s, past PurgeTimeout");
        thread::sleep(Duration::from_secs(wait));
        let a_held = nat.converged(A).is_ok();
        let log = log_a(&nat);
        let purges = log.matches("flushing conntrack table in").count() - purges0;
        let flushed = log
            .matches("flushing kernel conntrack table (scheduled)")
            .count();
        let (au, at) = (nat.stop_traffic(a_udp)?, nat.stop_traffic(a_tcp)?);
        let (bu, bt) = (nat.stop_traffic(b_udp)?, nat.stop_traffic(b_tcp)?);
        let (au, bu) = (&au["udp_10ms"], &bu["udp_10ms"]);
        let a_lost = au["lost"].as_u64().unwrap_or(u64::MAX);
        let alive = |t: &Value| {
            t["tcp"]["alive_at_end"] == true
                && t["tcp"]["connected"] == true
                && t["tcp"]["first_mismatch_offset"].is_null()
                && t["tcp"]["bytes"].as_u64().unwrap_or(0) > 0
        };
        let moved = over.is_ok() && back.is_ok();
        rows.push(row(
            "instance B fails over and back: instance A loses nothing, also past PurgeTimeout",
            "A's 10 ms UDP probe loses 0 datagrams and A's TCP stream is the same connection, byte-exact, PurgeTimeout + 3 s after B's return; a stays VI_1's converged MASTER, and its conntrackd never schedules a purge of its table (conntrackd -t) while it is",
            format!(
                "VI_2 on a after {over_ms:.0} ms, back on b after {back_ms:.0} ms; A: {a_lost} of {} probes lost, TCP {} ({} bytes, longest stall {:.0} ms); a still VI_1's MASTER: {}; purges scheduled on a: {purges}, kernel table flushes: {flushed}",
                au["sent"],
                if alive(&at) { "alive" } else { "BROKEN" },
                at["tcp"]["bytes"],
                at["tcp"]["longest_stall_ms"].as_f64().unwrap_or(0.0),
                if a_held { "yes" } else { "no" }
            ),
            moved
                && a_lost == 0
                && au["sent"].as_u64().unwrap_or(0) > 0
                && alive(&at)
                && a_held
                && purges == 0
                && flushed == 0,
            json!({"over_ms": over_ms, "back_ms": back_ms, "a_udp": au, "a_tcp": at["tcp"], "waited_s": wait, "purges_scheduled_on_a": purges, "kernel_flushes_on_a": flushed}),
        ));
        rows.push(row(
            "instance B's TCP stream survives its failover and failback",
            "the same connection, byte-exact, across both moves",
            format!(
                "B: TCP {} ({} bytes, longest stall {:.0} ms); UDP {} of {} lost (longest silence {:.0} ms)",
                if alive(&bt) { "alive" } else { "BROKEN" },
                bt["tcp"]["bytes"],
                bt["tcp"]["longest_stall_ms"].as_f64().unwrap_or(0.0),
                bu["lost"],
                bu["sent"],
                bu["blackout_ms"].as_f64().unwrap_or(0.0)
            ),
            moved && alive(&bt),
            json!({"b_udp": bu, "b_tcp": bt["tcp"]}),
        ));
    }
    nat.lab.teardown();
    Ok(rows)
}
