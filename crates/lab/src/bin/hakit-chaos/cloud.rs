//! The modelled clouds (AWS, Hetzner, DigitalOcean: failovers through each provider's
//! network model) and the production-sized connection table.

use super::*;

/// Flows in the production-sized table scenario (`HAKIT_CHAOS_TABLE_FLOWS`; make bench runs
/// 10k, 100k and 1M).
pub(crate) fn table_flows() -> u32 {
    std::env::var("HAKIT_CHAOS_TABLE_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

/// A production-sized connection table handed over (make test's size: 50,000 flows): the
/// shipped conntrackd configuration on the NAT pair, the table filled through node a,
/// synchronised to b, held for longer than conntrackd's PurgeTimeout (60 s: a flush of
/// b's table scheduled by a backup transition would have run), then a crash failover, and
/// 2,000 flows sampled over the whole table checked end to end.
/// `--lab aws`: the AWS example, rendered by hakit-setup from one values file, in a VPC
/// modelled from AWS's documentation and driven by EC2's state in moto
/// ([`hakit_lab::vpc`]).
pub(crate) fn aws_lab(
    bin_dir: &std::path::Path,
    want: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<Row>> {
    if !want("aws") {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    let mut v = hakit_lab::vpc::Vpc::up(bin_dir, bin_dir, hakit_lab::vpc::PAIR_VALUES)?;
    println!(
        "hakit chaos: the AWS example in a modelled VPC; lab up in {:.1} s ({}-*)",
        started.elapsed().as_secs_f64(),
        v.pair.lab.prefix()
    );
    Ok(vec![modelled_failovers(
        "aws",
        "the AWS example as hakit-setup renders it, in a VPC model (routes to one ENI, per-ENI source/dest check, a 1:1 internet gateway, no multicast, EC2 behind an interface endpoint)",
        "EC2 (moto) moves the Elastic IP and the LAN route",
        hakit_lab::vpc::EIP,
        &mut v,
        bin_dir,
    )?])
}

/// `--lab hetzner`: the Hetzner example, rendered by hakit-setup from one values file, on a
/// Cloud Network modelled from Hetzner's documentation and driven by the API's state
/// ([`hakit_lab::hcloud`]).
pub(crate) fn hetzner_lab(
    bin_dir: &std::path::Path,
    want: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<Row>> {
    if !want("hetzner") {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    let mut h = hakit_lab::hcloud::HCloud::up(bin_dir, bin_dir, hakit_lab::hcloud::PAIR_VALUES)?;
    println!(
        "hakit chaos: the Hetzner example on a modelled Cloud Network; lab up in {:.1} s ({}-*)",
        started.elapsed().as_secs_f64(),
        h.pair.lab.prefix()
    );
    Ok(vec![modelled_failovers(
        "hetzner",
        "the Hetzner example as hakit-setup renders it, on a Cloud Network model (routed: each server reaches others only through the network's gateway, only allocated addresses delivered, the network's routes steer the rest; the Floating IP delivered to its server only)",
        "the API moves the Floating IP and the network's route 0.0.0.0/0",
        hakit_lab::hcloud::FIP,
        &mut h,
        bin_dir,
    )?])
}

/// `--lab digitalocean`: the DigitalOcean example, rendered by hakit-setup from one values
/// file, behind DigitalOcean's two gateways modelled from its documentation and driven by
/// the API's state ([`hakit_lab::digitalocean`]).
pub(crate) fn digitalocean_lab(
    bin_dir: &std::path::Path,
    want: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<Row>> {
    if !want("digitalocean") {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    let mut m = hakit_lab::digitalocean::DoCloud::up(
        bin_dir,
        bin_dir,
        hakit_lab::digitalocean::PAIR_VALUES,
    )?;
    println!(
        "hakit chaos: the DigitalOcean example behind a modelled anchor gateway; lab up in {:.1} s ({}-*)",
        started.elapsed().as_secs_f64(),
        m.pair.lab.prefix()
    );
    Ok(vec![modelled_failovers(
        "digitalocean",
        "the DigitalOcean example as hakit-setup renders it, behind a model of DigitalOcean's edge (the Reserved IP translated to and from the assigned droplet's anchor IP at the anchor gateway only, the public gateway forwarding public addresses only, a droplet's frames carrying its own addresses only, no multicast in the VPC)",
        "the API moves the Reserved IP (the anchor gateway translates for its droplet)",
        hakit_lab::digitalocean::FIP,
        &mut m,
        bin_dir,
    )?])
}

/// A provider's network model with the example's pair in it: a graceful failover to b, a
/// back as BACKUP, and a crash of b back to a. Each must move the provider's state to the
/// new MASTER, leave its nat-notify status clean, and carry a new TCP stream from the LAN
/// client to the server, seen from `public`; the stream established before the first
/// failover must carry on through both (byte for byte, no silence of 5 s or more).
pub(crate) fn modelled_failovers(
    name: &'static str,
    model: &str,
    moves: &str,
    public: &str,
    m: &mut dyn hakit_lab::example::Modelled,
    bin_dir: &std::path::Path,
) -> anyhow::Result<Row> {
    let converged = |m: &dyn hakit_lab::example::Modelled, i: usize, secs: u64| {
        hakit_lab::wait_until(Duration::from_secs(secs), Duration::from_millis(20), || {
            m.points_at(i)
        })
        .is_some()
    };
    // A new TCP stream from the LAN client: byte-exact for a second, seen from `public`.
    let fresh = |m: &mut dyn hakit_lab::example::Modelled,
                 tag: &str|
     -> anyhow::Result<(bool, Vec<String>)> {
        let t = m.pair_mut().traffic(tag, &["--tcp"])?;
        thread::sleep(Duration::from_millis(1000));
        let peers = m.pair().server_peers()?;
        let r = m.pair_mut().stop_traffic(t)?;
        let ok = r["tcp"]["connected"] == true
            && r["tcp"]["first_mismatch_offset"].is_null()
            && r["tcp"]["bytes"].as_u64().unwrap_or(0) > 100_000
            && peers.iter().any(|p| p == public)
            && peers.iter().all(|p| p == public);
        Ok((ok, peers))
    };
    let status = |m: &dyn hakit_lab::example::Modelled, i: usize| m.pair().status(i, bin_dir);
    let a_master =
        hakit_lab::wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
            status(m, A).is_ok_and(|(c, t)| c == 0 && t.contains("MASTER"))
        })
        .is_some();
    let up_ok = a_master && converged(m, A, 10);
    let (fresh0, _) = fresh(m, &format!("{name}-start"))?;
    let long = m.pair_mut().traffic(&format!("{name}-long"), &["--tcp"])?;
    thread::sleep(Duration::from_millis(1000));
    // Graceful: keepalived stopped on a.
    m.pair().nodes[A].keepalived.stop();
    let t0 = Instant::now();
    let to_b = converged(m, B, 30);
    let graceful_s = t0.elapsed().as_secs_f64();
    thread::sleep(Duration::from_millis(500));
    let b_status = status(m, B)?;
    let (fresh_b, peers_b) = fresh(m, &format!("{name}-b"))?;
    // a comes back (BACKUP during preempt_delay), then b, the MASTER, dies.
    let conf = std::fs::read_to_string(&m.pair().nodes[A].keepalived.conf)?;
    let ns = m.pair().nodes[A].ns.clone();
    let ka = hakit_lab::keepalived::start_with(&mut m.pair_mut().lab, &ns, "a2", &conf, true)?;
    ka.wait_ready(Duration::from_secs(10))?;
    thread::sleep(Duration::from_millis(3000));
    let b_kept = m.points_at(B);
    m.pair_mut().crash(B)?;
    let t1 = Instant::now();
    let to_a = converged(m, A, 30);
    let crash_s = t1.elapsed().as_secs_f64();
    thread::sleep(Duration::from_millis(500));
    let a_status = status(m, A)?;
    let (fresh_a, peers_a) = fresh(m, &format!("{name}-a"))?;
    let report = m.pair_mut().stop_traffic(long)?;
    let bins: Vec<u64> = report["tcp"]["bins_bytes"]
        .as_array()
        .map(|b| b.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let flowing_at_end = bins.iter().rev().take(50).sum::<u64>() > 0;
    // The longest silence of the established stream (10 ms bins).
    let longest_stall_ms = bins
        .split(|&b| b > 0)
        .map(|run| run.len() * 10)
        .max()
        .unwrap_or(0);
    let long_ok = flowing_at_end && report["tcp"]["first_mismatch_offset"].is_null();
    // Where the provider translates per node (DigitalOcean's anchor), the established
    // stream cannot leave through b: it must fall silent for b's whole tenure (> 3 s),
    // which is what the example's README promises; a stream that went on would mean the
    // model lets a droplet send with its peer's address.
    let keeps = m.keeps_established();
    let long_as_documented = if keeps {
        long_ok && longest_stall_ms < 5000
    } else {
        longest_stall_ms >= 2000
    };
    let pass = up_ok
        && fresh0
        && to_b
        && b_status.0 == 0
        && fresh_b
        && b_kept
        && to_a
        && a_status.0 == 0
        && fresh_a
        && long_as_documented;
    Ok(row(
        name,
        &format!("{model}: a graceful failover to b and a crash of b back to a each: {moves} to the new MASTER, nat-notify status is clean there, and a new TCP stream from the LAN client reaches the server from {public}, byte for byte; {}",
            if keeps { "the stream established before the first failover carries on through both (byte for byte, no silence of 5 s or more)" } else { "the stream established through a before the first failover falls silent while b holds the role (2 s or more), as the example's README says" }),
        format!(
            "a MASTER at start {up_ok}, new stream {fresh0}; graceful: provider on b after {graceful_s:.2} s, status exit {}, new stream {fresh_b} (server saw {peers_b:?}); a back as BACKUP, b kept the role {b_kept}; crash of b: provider on a after {crash_s:.2} s, status exit {}, new stream {fresh_a} (server saw {peers_a:?}); the established stream {}",
            b_status.0,
            a_status.0,
            match (keeps, long_ok) {
                (true, true) => format!("survived both (longest silence {longest_stall_ms} ms)"),
                (true, false) => format!("stalled and never resumed ({} bytes)", report["tcp"]["bytes"]),
                (false, _) => format!("fell silent for {longest_stall_ms} ms while b held the role (as documented: a flow keeps the anchor of the node that opened it), resumed at the end: {flowing_at_end}"),
            }
        ),
        pass,
        json!({"graceful_s": graceful_s, "crash_s": crash_s, "b_status": b_status.1, "a_status": a_status.1,
               "established_stream_survived": long_ok, "established_longest_stall_ms": longest_stall_ms,
               "established_tcp": {"bytes": report["tcp"]["bytes"], "alive_at_end": report["tcp"]["alive_at_end"]},
               "model": m.applied()}),
    ))
}

pub(crate) fn table_lab(
    bin_dir: &std::path::Path,
    want: &dyn Fn(&str) -> bool,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    if !want("table-crash") {
        return Ok(rows);
    }
    let flows = table_flows();
    let started = Instant::now();
    let mut nat = NatLab::up(Opts::new(bin_dir))?;
    println!(
        "hakit chaos: {flows} flows through the NAT pair; lab up in {:.1} s ({}-*)",
        started.elapsed().as_secs_f64(),
        nat.lab.prefix()
    );
    // b became BACKUP when the lab started: wait out the purge window from then.
    let settle = Duration::from_secs(65).saturating_sub(started.elapsed());
    let h = hakit_lab::nat::table::handover(&mut nat, flows, 2_000, 50_000, settle, true)?;
    let s = &h.survival;
    rows.push(row(
        "table-crash",
        "every sampled flow's next reply is translated by the new MASTER, more than 60 s after the backup's last transition, and every one of 500 established TCP connections carries the server's next byte",
        format!(
            "{} flows filled in {:.1} s, on b after {}; b held {} at the crash; converged after {}; {}/{} sampled flows survived{}; TCP connections {}/{} (reset {}, silent {})",
            h.flows,
            h.fill.seconds,
            h.sync_s.map_or("never".into(), |s| format!("{s:.1} s")),
            h.backup_held,
            ms(h.converged_ms),
            s.survived,
            s.sampled,
            if s.lost.is_empty() { String::new() } else { format!(" (lost e.g. {:?})", &s.lost[..s.lost.len().min(5)]) },
            h.tcp.survived, h.tcp.total, h.tcp.reset, h.tcp.silent
        ),
        s.sampled > 0 && s.survived == s.sampled && h.converged_ms.is_some() && h.tcp.total > 0 && h.tcp.survived == h.tcp.total,
        json!({
            "flows": h.flows, "fill_s": h.fill.seconds, "answered": h.fill.answered,
            "sync_s": h.sync_s, "backup_held": h.backup_held,
            "converged_ms": h.converged_ms, "commit_ms": h.commit_ms, "new_flow_gap_ms": h.new_flow_gap_ms, "commit_log": h.commit_log,
            "sampled": s.sampled, "survived": s.survived, "lost": s.lost,
            "tcp": {"total": h.tcp.total, "survived": h.tcp.survived, "reset": h.tcp.reset, "silent": h.tcp.silent},
            "conntrackd_rss_kib": h.rss_kib, "conntrackd_cpu_s": h.cpu_s, "sync_bytes": h.sync_bytes,
        }),
    ));
    Ok(rows)
}
