//! A production-sized connection table handed over (`hakit-bench --only table`): 10k, 100k
//! and 1M flows through the NAT pair, hakit's shipped configuration beside conntrack-tools'
//! own `primary-backup.sh` on the same table (`hakit_lab::nat::table`).

use std::time::Instant;

use super::*;
use hakit_lab::nat::{table, NatLab, Opts};

/// The host's `nf_conntrack_max` raised for the run (every namespace's table is bounded by
/// it) and put back when dropped, also after a failure.
struct KernelMax {
    was: u64,
}

const MAX_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_max";

impl KernelMax {
    fn raise_to(want: u64) -> anyhow::Result<KernelMax> {
        let was = hakit_lab::conntrackd::kernel_max();
        if want > was {
            hakit_lab::restore_on_signal(Path::new(MAX_PATH), &was.to_string());
            std::fs::write(MAX_PATH, want.to_string())
                .with_context(|| format!("raise {MAX_PATH} to {want}"))?;
        }
        Ok(KernelMax { was })
    }
}

impl Drop for KernelMax {
    fn drop(&mut self) {
        let _ = std::fs::write(MAX_PATH, self.was.to_string());
    }
}

struct Setup {
    name: &'static str,
    external_cache: bool,
    shell_hook: bool,
    crash: bool,
}

const SETUPS: [Setup; 4] = [
    Setup {
        name: "hakit as shipped (kernel table is the replica), crash",
        external_cache: false,
        shell_hook: false,
        crash: true,
    },
    Setup {
        name: "hakit as shipped, graceful (keepalived stopped)",
        external_cache: false,
        shell_hook: false,
        crash: false,
    },
    Setup {
        name: "hakit with the external cache (nat-notify commits), crash",
        external_cache: true,
        shell_hook: false,
        crash: true,
    },
    Setup {
        name: "conntrack-tools' primary-backup.sh (external cache), crash",
        external_cache: true,
        shell_hook: true,
        crash: true,
    },
];

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("never".into(), |v| format!("{v:.0} ms"))
}

pub(crate) fn table(md: &mut String, static_dir: &Path) -> anyhow::Result<()> {
    let sizes: Vec<u32> = std::env::var("HAKIT_BENCH_TABLE_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let biggest = u64::from(sizes.iter().copied().max().unwrap_or(0));
    // Both nodes' tables hold the flows, each bounded by the host's limit; and headroom.
    let _max = KernelMax::raise_to((biggest + biggest / 2).max(262_144))?;
    writeln!(
        md,
        "## A production-sized connection table (`hakit-bench --only table`)\n"
    )?;
    writeln!(
        md,
        "The NAT lab's pair with N UDP flows opened through node a (client port x server port, \
         each answered once by the server; UDP timeouts 600 s on both nodes so the flows stay \
         established), synchronised to b by conntrackd (the shipped template, its caches sized \
         from the host's nf_conntrack_max = {} for the run, as hakit-setup sizes them from \
         CONNTRACK_MAX), held 65 s after b's last transition (conntrackd's PurgeTimeout: a flush \
         scheduled by `conntrackd -t` has run by then), then failed over to b. 500 established TCP connections beside them; after the failover the \
         server sends one byte on each, which the client must read (reset or silent: lost). 2,000 flows sampled \
         over the whole table: the server sends each its next reply to the floating IP and port \
         it saw; a flow survived when the client's socket of that flow received it. A new flow \
         every 2 ms from just before the failover until its end: the longest time between two answered ones. conntrackd RSS and \
         CPU are read from /proc after the table reached b; sync bytes are a's sync-link TX. \
         Compared: hakit as shipped (`DisableExternalCache on`, no `-t`), hakit with the \
         external cache (nat-notify commits with `-c` and waits for it), and conntrack-tools' \
         own `primary-backup.sh` (external cache, commit before anything else) as keepalived \
         notify scripts.\n",
        hakit_lab::conntrackd::kernel_max()
    )?;
    writeln!(
        md,
        "| flows | setup | filled (s) | on b after (s) | b held | converged | commit done | longest gap in new flows | sampled flows surviving | TCP connections surviving (reset) | conntrackd RSS a / b | CPU a / b (fill+sync) | sync bytes |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    // HAKIT_BENCH_TABLE_SETUPS: which rows (0-3, comma-separated), all by default.
    let rows: Vec<usize> = std::env::var("HAKIT_BENCH_TABLE_SETUPS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| (0..SETUPS.len()).collect());
    for &flows in &sizes {
        for s in rows.iter().filter_map(|&i| SETUPS.get(i)) {
            let mut opts = Opts::new(static_dir);
            opts.external_cache = s.external_cache;
            opts.shell_hook = s.shell_hook;
            let started = Instant::now();
            let result = NatLab::up(opts).and_then(|mut nat| {
                let settle = Duration::from_secs(65).saturating_sub(started.elapsed());
                table::handover(&mut nat, flows, 2_000, 50_000, settle, s.crash)
            });
            let h = match result {
                Ok(h) => h,
                Err(e) => {
                    writeln!(md, "| {flows} | {} | failed: {e:#} ||||||||||||", s.name)?;
                    continue;
                }
            };
            let v = &h.survival;
            writeln!(
                md,
                "| {flows} | {} | {:.1} | {} | {} | {} | {} | {} | {}/{} ({:.2} %) | {}/{} ({}) | {:.0} / {:.0} MiB | {:.1} / {:.1} s | {:.1} MB |",
                s.name,
                h.fill.seconds,
                h.sync_s.map_or("never".into(), |t| format!("{t:.1}")),
                h.backup_held,
                opt_ms(h.converged_ms),
                if s.external_cache { opt_ms(h.commit_ms) } else { "no commit".into() },
                opt_ms(h.new_flow_gap_ms),
                v.survived,
                v.sampled,
                v.share() * 100.0,
                h.tcp.survived,
                h.tcp.total,
                h.tcp.reset,
                h.rss_kib[0] as f64 / 1024.0,
                h.rss_kib[1] as f64 / 1024.0,
                h.cpu_s[0],
                h.cpu_s[1],
                h.sync_bytes as f64 / 1e6,
            )?;
            eprintln!(
                "table: {flows} flows, {}: {}/{} survived; {}",
                s.name, v.survived, v.sampled, h.commit_log
            );
        }
    }
    // The kernel's side of the memory cost: one slab object per tracked flow.
    let slab = std::fs::read_to_string("/proc/slabinfo").unwrap_or_default();
    let objsize = slab
        .lines()
        .find(|l| l.starts_with("nf_conntrack "))
        .and_then(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok());
    writeln!(
        md,
        "\nMemory per tracked flow: the kernel's nf_conntrack object is {} bytes (/proc/slabinfo; NAT and other extensions are allocated beside it), on each node that holds the flow; conntrackd's resident size is in the table (its internal cache on the master, its external cache on the backup when there is one; with the shipped `DisableExternalCache on` the backup's replica is in its kernel table instead).\n",
        objsize.map_or("?".into(), |b| b.to_string())
    )?;
    Ok(())
}
