//! The two VRRP profiles hakit-setup renders (`PROFILE_SPEED`), crash failovers interleaved
//! (`hakit-bench --only profiles`): standard (20 ms adverts, 6 missed, priorities 150/100)
//! and the L2 fast profile (10 ms adverts, 4 missed, priorities 254/253).

use super::*;
use hakit_lab::nat::{table::rss_cpu, NatLab, Opts};

pub(crate) const PROFILE_RUNS: usize = 20;

struct Profile {
    name: &'static str,
    advert_int: &'static str,
    down_timer_adverts: u32,
    priorities: [u8; 2],
}

const PROFILES: [Profile; 2] = [
    Profile {
        name: "standard (advert_int 0.02, 6 missed, priorities 150/100)",
        advert_int: "0.02",
        down_timer_adverts: 6,
        priorities: [150, 100],
    },
    Profile {
        name: "fast (advert_int 0.01, 4 missed, priorities 254/253)",
        advert_int: "0.01",
        down_timer_adverts: 4,
        priorities: [254, 253],
    },
];

/// CPU seconds so far of both keepalived processes (parent and VRRP child) of node `i`.
fn keepalived_cpu(nat: &NatLab, i: usize) -> f64 {
    let Some(k) = nat.nodes[i].keepalived.as_ref() else {
        return 0.0;
    };
    let child = std::fs::read_to_string(&k.vrrp_pid_file)
        .ok()
        .and_then(|t| t.trim().parse().ok());
    rss_cpu(k.pid).1 + child.map_or(0.0, |c| rss_cpu(c).1)
}

pub(crate) fn profiles(md: &mut String, static_dir: &Path) -> anyhow::Result<()> {
    writeln!(
        md,
        "## The VRRP profiles: standard and L2 fast (`hakit-bench --only profiles`)\n"
    )?;
    writeln!(md, "Method: two NAT labs up at once (the pair of the failover section above), one per profile as hakit-setup renders it (`PROFILE_SPEED=standard` / `fast`), both on L2 as bare metal routes (examples/bare-metal): the floating IP is on-link on the WAN segment and the upstream learns its holder from nat-notify's gratuitous ARP, no provider in the path; {PROFILE_RUNS} crash failovers per profile (every link of the master down, the LAN leg first, then SIGKILL to both keepalived processes: adverts and forwarding stop at once), alternating between the labs so machine load hits both alike, each followed by a restore. Blackout at the LAN client: a UDP echo every 1 ms through the NAT (longest silence beyond the interval), and a TCP stream per run checked byte by byte. VRRP = event to the VIP on the new master; FIP = the VIP up to the floating IP up there (nat-notify, from keepalived's notify FIFO; its gratuitous ARP follows at once). CPU: both keepalived processes of each node over 10 s idle with the pair up (at 50 and 100 adverts/s). Medians, worst run in brackets.\n")?;
    let mut labs = Vec::new();
    for p in &PROFILES {
        let mut opts = Opts::new(static_dir);
        opts.advert_int = p.advert_int.into();
        opts.down_timer_adverts = Some(p.down_timer_adverts);
        opts.priorities = p.priorities;
        opts.l2 = true;
        labs.push(NatLab::up(opts)?);
    }
    // Idle CPU first, both labs up (the same seconds for both).
    let before: Vec<[f64; 2]> = labs
        .iter()
        .map(|l| [keepalived_cpu(l, 0), keepalived_cpu(l, 1)])
        .collect();
    thread::sleep(Duration::from_secs(10));
    let cpu: Vec<[f64; 2]> = labs
        .iter()
        .zip(&before)
        .map(|(l, b)| {
            [
                (keepalived_cpu(l, 0) - b[0]) / 10.0 * 100.0,
                (keepalived_cpu(l, 1) - b[1]) / 10.0 * 100.0,
            ]
        })
        .collect();
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(), Vec::new()];
    for k in 0..PROFILE_RUNS {
        for (i, nat) in labs.iter_mut().enumerate() {
            runs[i].push(one_failover(nat, true, &format!("p{i}-{k}"))?);
        }
    }
    writeln!(md, "| profile | blackout | VRRP | FIP | probes lost | TCP survived | keepalived CPU, master / backup |")?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    let mut medians = Vec::new();
    for (i, p) in PROFILES.iter().enumerate() {
        let col = |f: fn(&Run) -> f64| {
            let mut v: Vec<f64> = runs[i].iter().map(f).collect();
            let worst = v.iter().copied().fold(f64::MIN, f64::max);
            (median(&mut v), worst)
        };
        let (bo, bo_w) = col(|r| r.blackout_ms);
        let (vr, vr_w) = col(|r| r.vrrp_ms);
        let (hk, hk_w) = col(|r| r.hook_ms);
        let (lost, lost_w) = col(|r| r.lost as f64);
        let ok = runs[i].iter().filter(|r| r.tcp_ok).count();
        let mut all: Vec<f64> = runs[i].iter().map(|r| r.blackout_ms).collect();
        all.sort_by(f64::total_cmp);
        writeln!(
            md,
            "| {} | {bo:.1} ms ({bo_w:.1}) | {vr:.1} ms ({vr_w:.1}) | {hk:.1} ms ({hk_w:.1}) | {lost:.0} ({lost_w:.0}) | {ok}/{} | {:.2}% / {:.2}% of a core |",
            p.name,
            runs[i].len(),
            cpu[i][0],
            cpu[i][1]
        )?;
        medians.push((bo, bo_w, all));
    }
    writeln!(md)?;
    for (p, (_, _, all)) in PROFILES.iter().zip(&medians) {
        let list: Vec<String> = all.iter().map(|b| format!("{b:.0}")).collect();
        writeln!(
            md,
            "Blackouts, {} (ms, sorted): {}.",
            p.name,
            list.join(", ")
        )?;
    }
    let (fast, fast_w) = (medians[1].0, medians[1].1);
    writeln!(
        md,
        "\nRatio of median blackouts, standard / fast: **{:.1}x**. Targets for the fast profile: median ≤ 40 ms — {}; worst ≤ 50 ms — {}.\n",
        medians[0].0 / fast,
        if fast <= 40.0 { "met" } else { "NOT met" },
        if fast_w <= 50.0 { "met" } else { "NOT met" }
    )?;
    for mut l in labs {
        l.lab.teardown();
    }
    Ok(())
}
