//! Whole failovers in the NAT lab (fake provider and Linode route server), and the soak.

use super::*;

/// One failover measured in the NAT lab.
pub(crate) struct Run {
    pub(crate) blackout_ms: f64,
    pub(crate) lost: u64,
    /// Event to VIP up on the new master (keepalived's own detection and takeover).
    pub(crate) vrrp_ms: f64,
    /// VIP up on the new master to the provider routing the floating IP there (L2: to the
    /// floating IP up there, announced by ARP at once): the hook.
    pub(crate) hook_ms: f64,
    pub(crate) retrans: u64,
    pub(crate) tcp_ok: bool,
}

pub(crate) fn owner_changed_at(nat: &hakit_lab::nat::NatLab) -> Option<f64> {
    std::fs::metadata(nat.control.join("owner"))
        .ok()?
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// Soft (`hard` false) or hard failover from a to b, measured, then a restored as MASTER.
pub(crate) fn one_failover(
    nat: &mut hakit_lab::nat::NatLab,
    hard: bool,
    tag: &str,
) -> anyhow::Result<Run> {
    let timeout = Duration::from_secs(30);
    let m = nat.measure(tag, &["--tcp", "--udp-ms", "1"], 1, !hard, timeout, |n| {
        if hard {
            n.crash(0)
        } else {
            n.stop_keepalived(0);
            Ok(())
        }
    })?;
    if let Err(e) = &m.converged {
        bail!("{tag}: {e}");
    }
    let vip_up = m
        .first("VIP up on b")
        .context("the VIP never came up on b")?;
    // L2: nat-notify sends its gratuitous ARP as soon as the address is up.
    let routed = if nat.opts.l2 {
        m.first("FIP up on b")
            .context("the floating IP never came up on b")?
    } else {
        owner_changed_at(nat).context("the provider never moved the floating IP")?
    };
    // Restore a as MASTER.
    if hard {
        nat.links_up(0)?;
    }
    nat.start_keepalived(0)?;
    nat.wait_converged(0, timeout)?;
    Ok(Run {
        blackout_ms: m.blackout_ms(),
        lost: m.lost(),
        vrrp_ms: (vip_up - m.t_event) * 1000.0,
        hook_ms: (routed - vip_up) * 1000.0,
        retrans: m.retrans,
        tcp_ok: m.tcp_ok(),
    })
}

pub(crate) const FAILOVER_RUNS: usize = 10;

pub(crate) fn failover(md: &mut String, static_dir: &Path) -> anyhow::Result<()> {
    use hakit_lab::nat::{NatLab, Opts};
    type Tweak = fn(&mut Opts);
    let configs: [(&str, Tweak); 4] = [
        (
            "hakit, standard profile (advert_int 0.02 s, 6 missed)",
            |_| {},
        ),
        ("hakit, keepalived defaults (advert_int 1 s)", |o| {
            o.advert_int = "1".into()
        }),
        (
            "shell hook (primary-backup.sh, ip, arping, nft, curl), standard profile",
            |o| o.shell_hook = true,
        ),
        (
            "hakit, standard profile, conntrackd external cache on (commit on MASTER)",
            |o| o.external_cache = true,
        ),
    ];
    writeln!(md, "## Failover in the NAT lab (`hakit_lab::nat`)\n")?;
    writeln!(md, "Method: the full pair of `make demo`/`make chaos` (keepalived VRRP v3, nat-notify on the notify FIFO, ha-check, the shipped strict nftables ruleset, conntrackd FTFW, a fake provider that routes the floating IP to its owner). Per configuration {FAILOVER_RUNS} soft failovers (SIGTERM to keepalived on the master) and {FAILOVER_RUNS} hard ones (every link down, the LAN leg first, then SIGKILL both keepalived processes), each followed by a restore. The LAN client measures through the NAT: a UDP echo every 1 ms (blackout = longest silence beyond the 1 ms interval) and a fresh TCP stream per run checked byte by byte; TCP retransmissions are the server's (`ss -ti`) during the run. VRRP = event to the VIP on the new master (netlink, polled every 1 ms inside its namespace); hook = VIP up to the provider routing the floating IP to the new master (the fake provider's owner file, written right after it moved the route). Medians, with the worst run in brackets.\n")?;
    writeln!(md, "| configuration | failover | blackout | probes lost | VRRP | hook | TCP survived | TCP retransmissions |")?;
    writeln!(md, "|---|---|---|---|---|---|---|---|")?;
    let mut medians = Vec::new();
    for (name, tweak) in configs {
        let mut opts = Opts::new(static_dir);
        tweak(&mut opts);
        eprintln!("failover bench: {name}");
        let mut nat = NatLab::up(opts)?;
        for hard in [false, true] {
            let mut runs = Vec::new();
            for k in 0..FAILOVER_RUNS {
                runs.push(one_failover(
                    &mut nat,
                    hard,
                    &format!("{}{k}", u8::from(hard)),
                )?);
            }
            let col = |f: fn(&Run) -> f64| {
                let mut v: Vec<f64> = runs.iter().map(f).collect();
                let worst = v.iter().copied().fold(f64::MIN, f64::max);
                (median(&mut v), worst)
            };
            let (bo, bo_w) = col(|r| r.blackout_ms);
            let (lost, lost_w) = col(|r| r.lost as f64);
            let (vr, vr_w) = col(|r| r.vrrp_ms);
            let (hk, hk_w) = col(|r| r.hook_ms);
            let ok = runs.iter().filter(|r| r.tcp_ok).count();
            let retrans: u64 = runs.iter().map(|r| r.retrans).sum();
            writeln!(
                md,
                "| {name} | {} | {bo:.1} ms ({bo_w:.1}) | {lost:.0} ({lost_w:.0}) | {vr:.1} ms ({vr_w:.1}) | {hk:.1} ms ({hk_w:.1}) | {ok}/{} | {retrans} in {} runs |",
                if hard { "hard" } else { "soft" },
                runs.len(),
                runs.len()
            )?;
            medians.push((name, hard, bo, hk));
        }
        nat.lab.teardown();
    }
    let get = |n: usize, hard: bool| {
        medians
            .iter()
            .filter(|m| m.1 == hard)
            .nth(n)
            .map_or(f64::NAN, |m| m.2)
    };
    let hook = |n: usize| {
        medians
            .iter()
            .filter(|m| m.1)
            .nth(n)
            .map_or(f64::NAN, |m| m.3)
    };
    writeln!(md, "\nHook (VIP up to the provider routing the floating IP), hard failovers, shell / hakit: **{:.1}x** ({:.1} ms vs {:.1} ms): hakit starts the provider claim right after the first GARP, on its own thread; the shell hook runs primary-backup.sh first.", hook(2) / hook(0), hook(2), hook(0))?;
    writeln!(md, "\nRatios of median blackouts, shell hook / hakit (standard profile): soft **{:.1}x**, hard **{:.1}x**. keepalived defaults / standard profile: soft {:.1}x, hard {:.1}x.", get(2, false) / get(0, false), get(2, true) / get(0, true), get(1, false) / get(0, false), get(1, true) / get(0, true))?;
    writeln!(
        md,
        "Targets with the standard profile: hard failover blackout ≤ 200 ms — {}; soft ≤ 15 ms — {}.\n",
        if get(0, true) <= 200.0 {
            "met"
        } else {
            "NOT met"
        },
        if get(0, false) <= 15.0 {
            "met"
        } else {
            "NOT met"
        }
    )?;
    Ok(())
}

pub(crate) const LINODE_RUNS: usize = 5;

/// Linode's routing (`hakit_lab::bgp`): a graceful failover with the announcement changed
/// three ways, side by side in one run.
pub(crate) fn linode(md: &mut String, static_dir: &Path) -> anyhow::Result<()> {
    use hakit_lab::{
        bgp::{Method, Opts as BgpOpts, Speaker},
        nat::{NatLab, Opts},
    };
    writeln!(
        md,
        "## Linode failover: the announcement in place vs restarting the speaker\n"
    )?;
    writeln!(md, "Method: the Linode lab of `make chaos --lab linode`: an FRR route server emulating Linode's (65000:1 over 65000:2 by local preference, the selected path kept between equals), Debian's gobgpd with lelastic's exact configuration on both gateways (the shared IP on `lo`), keepalived and nat-notify as shipped, conntrackd FTFW. Per method {LINODE_RUNS} graceful failovers (SIGTERM to keepalived on the master), each followed by a restore; a 1 ms UDP echo and a TCP stream through the NAT. *In place*: nat-notify's announcement step rewrites the community with the `gobgp` CLI. *Linode guide*: `up`/`down` commands restart lelastic on MASTER and stop it on BACKUP (a configured primary, b secondary). *Seed design*: restart lelastic `-primary` on MASTER, `-secondary` on BACKUP. Converged = keepalived's VIP, nat-notify's state and the route server's kernel route all on the new master. Medians, worst run in brackets.\n")?;
    writeln!(
        md,
        "| method | blackout | converged | probes lost | TCP survived |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    let mut medians = Vec::new();
    for method in [
        Method::InPlace,
        Method::RestartOnMaster,
        Method::RestartSwapped,
    ] {
        let mut opts = Opts::new(static_dir);
        opts.bgp = Some(BgpOpts {
            speaker: Speaker::Gobgp,
            method,
        });
        eprintln!("linode bench: {}", method.name());
        let mut nat = NatLab::up(opts)?;
        let timeout = Duration::from_secs(40);
        let mut runs: Vec<(f64, f64, u64, bool)> = Vec::new();
        for k in 0..LINODE_RUNS {
            let m = nat.measure(
                &format!("l{k}"),
                &["--tcp", "--udp-ms", "1"],
                1,
                true,
                timeout,
                |n| {
                    n.stop_keepalived(0);
                    Ok(())
                },
            )?;
            runs.push((
                m.blackout_ms(),
                m.converged_ms().unwrap_or(f64::NAN),
                m.lost(),
                m.tcp_ok(),
            ));
            nat.start_keepalived(0)?;
            nat.wait_converged(0, timeout)?;
        }
        let col = |f: fn(&(f64, f64, u64, bool)) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            let worst = v.iter().copied().fold(f64::MIN, f64::max);
            (median(&mut v), worst)
        };
        let (bo, bo_w) = col(|r| r.0);
        let (cv, cv_w) = col(|r| r.1);
        let (lost, lost_w) = col(|r| r.2 as f64);
        let ok = runs.iter().filter(|r| r.3).count();
        writeln!(
            md,
            "| {} | {bo:.1} ms ({bo_w:.1}) | {cv:.0} ms ({cv_w:.0}) | {lost:.0} ({lost_w:.0}) | {ok}/{} |",
            method.name(),
            runs.len()
        )?;
        medians.push(bo);
        nat.lab.teardown();
    }
    writeln!(
        md,
        "\nRatios of median blackouts: Linode guide / in place **{:.0}x**, seed design / in place **{:.0}x**. A crash is different: the route server keeps the dead node's path until its hold timer (9 s with lelastic's timers) expires, whatever the survivor does (`make chaos`, chaos-linode.md).\n",
        medians[1] / medians[0],
        medians[2] / medians[0]
    )?;
    Ok(())
}

/// A soak: the standard profile under full CPU load for `secs`; any VRRP transition is a
/// false failover.
pub(crate) fn soak(md: &mut String, static_dir: &Path, secs: u64) -> anyhow::Result<()> {
    use hakit_lab::nat::{NatLab, Opts, Watch};
    let nat = NatLab::up(Opts::new(static_dir))?;
    let cpus = thread::available_parallelism().map_or(2, |n| n.get());
    // Load: one busy process per CPU at normal priority (keepalived runs at its defaults).
    let mut hogs = Vec::new();
    for _ in 0..cpus {
        hogs.push(hakit_lab::Spawned(
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdout(Stdio::null())
                .spawn()
                .context("start a CPU hog")?,
        ));
    }
    let watches: Vec<Watch> = nat.nodes.iter().map(|n| Watch::start(&n.ns)).collect();
    let load0 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("soak: {secs} s under {cpus} CPU hogs");
    thread::sleep(Duration::from_secs(secs));
    let load1 = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    drop(hogs);
    let events: Vec<(f64, String)> = watches.into_iter().flat_map(|w| w.finish()).collect();
    let logs: usize = nat
        .nodes
        .iter()
        .filter_map(|n| n.keepalived.as_ref())
        .map(|k| {
            std::fs::read_to_string(&k.log)
                .unwrap_or_default()
                .matches("Entering")
                .count()
        })
        .sum();
    writeln!(md, "## Soak: the standard profile under full CPU load\n")?;
    writeln!(md, "Method: the NAT lab with the standard profile (advert_int 0.02 s, 6 missed), idle traffic, {cpus} busy-loop processes (one per CPU, normal priority) for {secs} s. The VIP and floating IP on both nodes are polled every 1 ms; any change is a false failover. Load average before: {}, after: {}.\n", load0.split_whitespace().take(3).collect::<Vec<_>>().join(" "), load1.split_whitespace().take(3).collect::<Vec<_>>().join(" "))?;
    writeln!(md, "Result: **{} address changes** on either node in {secs} s ({} state-change lines in keepalived's logs, counting both nodes' start-up). {}\n", events.len(), logs, if events.is_empty() { "No false failover." } else { "FALSE FAILOVERS — see the events." })?;
    for (t, e) in events.iter().take(10) {
        writeln!(md, "- {t:.3}: {e}")?;
    }
    Ok(())
}
