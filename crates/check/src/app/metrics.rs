//! The Prometheus textfile of a run or of the monitor: the verdict, each probe, the quorum
//! groups, the nft counters, the run counters and the VRRP path as the monitor hears it.

use hakit_core::metrics::{Kind, Textfile};
use hakit_net::nft::{Counter, NftTable};

use crate::runner::Verdict;

/// The run and failure counters the alerts read (`increase(...)` over a window).
pub(super) fn add_counters(t: &mut Textfile, runs: u64, failures: u64) {
    t.add(
        "hakit_ha_check_runs_total",
        Kind::Counter,
        "Runs of the configured checks.",
        &[],
        runs as f64,
    );
    t.add(
        "hakit_ha_check_failures_total",
        Kind::Counter,
        "Runs whose verdict was unhealthy.",
        &[],
        failures as f64,
    );
}

/// The VRRP path as the monitor hears it (see `split.rs`); the names beside keepalived's
/// exporters' are in the README ("VRRP path metrics").
pub(super) fn vrrp_metrics(t: &mut Textfile, p: &crate::split::PathReport) {
    t.add(
        "hakit_vrrp_path_cut",
        Kind::Gauge,
        "1 while this node stands down because only the VRRP path is cut: the peer reports MASTER over the sync link, its adverts do not arrive.",
        &[],
        f64::from(u8::from(p.standing_down)),
    );
    if !p.listening {
        return;
    }
    let counters = [
        (
            "hakit_vrrp_adverts_received_total",
            "VRRP adverts heard from the peer.",
            p.received,
        ),
        (
            "hakit_vrrp_adverts_missed_total",
            "VRRP adverts the peer's announced interval promised and that did not arrive.",
            p.missed,
        ),
        (
            "hakit_vrrp_priority_zero_received_total",
            "Priority-0 adverts from the peer (its keepalived resigning).",
            p.priority_zero,
        ),
    ];
    for (name, help, n) in counters {
        t.add(name, Kind::Counter, help, &[], n as f64);
    }
    if let Some(iv) = p.interval {
        t.add(
            "hakit_vrrp_advert_interval_seconds",
            Kind::Gauge,
            "The advert interval the peer announces.",
            &[],
            iv.as_secs_f64(),
        );
    }
    if let Some(g) = p.gaps {
        let gaps = [
            (
                "hakit_vrrp_advert_gap_max_seconds",
                "The longest gap between the peer's adverts since the last write.",
                g.max,
            ),
            (
                "hakit_vrrp_advert_gap_p99_seconds",
                "The 99th percentile of the gaps between the peer's adverts since the last write.",
                g.p99,
            ),
        ];
        for (name, help, d) in gaps {
            t.add(name, Kind::Gauge, help, &[], d.as_secs_f64());
        }
    }
}

/// The verdict, its probes and groups, and the nft counters if they were read.
pub(super) fn metrics(
    pair: Option<&str>,
    v: &Verdict,
    nft: Option<&(NftTable, Option<Vec<Counter>>)>,
) -> Textfile {
    let mut t = Textfile::for_pair(pair);
    t.add(
        "hakit_ha_check_healthy",
        Kind::Gauge,
        "1 if the last run was healthy.",
        &[],
        f64::from(u8::from(v.healthy)),
    );
    t.add(
        "hakit_ha_check_run_duration_seconds",
        Kind::Gauge,
        "Duration of the last run.",
        &[],
        v.ms / 1000.0,
    );
    let now = hakit_core::clock::unix_secs();
    t.add(
        "hakit_ha_check_last_run_timestamp_seconds",
        Kind::Gauge,
        "Unix time of the last run.",
        &[],
        now,
    );
    for o in &v.probes {
        let labels = [("probe", o.name.as_str()), ("kind", o.kind)];
        t.add(
            "hakit_ha_check_probe_up",
            Kind::Gauge,
            "1 if the probe passed in the last run.",
            &labels,
            f64::from(u8::from(o.ok)),
        );
        t.add(
            "hakit_ha_check_probe_latency_seconds",
            Kind::Gauge,
            "Probe duration in the last run.",
            &labels,
            o.ms / 1000.0,
        );
    }
    // Configured quorum groups only: a probe's implicit group of one repeats its probe_up.
    for g in v.groups.iter().filter(|g| !g.name.starts_with("probe:")) {
        t.add(
            "hakit_ha_check_group_passed",
            Kind::Gauge,
            "Probes of the group that passed.",
            &[("group", g.name.as_str())],
            g.passed as f64,
        );
    }
    if let Some((table, read)) = nft {
        let table = table.to_string();
        t.add(
            "hakit_ha_check_nft_table_readable",
            Kind::Gauge,
            "1 if the nftables table's named counters could be read in the last run.",
            &[("table", table.as_str())],
            f64::from(u8::from(read.is_some())),
        );
        for c in read.iter().flatten() {
            let labels = [("table", table.as_str()), ("counter", c.name.as_str())];
            t.add(
                "hakit_ha_check_nft_packets_total",
                Kind::Counter,
                "Packets counted by the named nftables counter since the ruleset was loaded.",
                &labels,
                c.packets as f64,
            );
            t.add(
                "hakit_ha_check_nft_bytes_total",
                Kind::Counter,
                "Bytes counted by the named nftables counter since the ruleset was loaded.",
                &labels,
                c.bytes as f64,
            );
        }
    }
    t
}
