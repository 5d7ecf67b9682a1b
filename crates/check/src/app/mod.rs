//! `ha-check`'s run: the configuration layers resolved and validated (exit 2, one line),
//! then one of its modes, one file each: a single parallel run judged by the quorum groups
//! or one probe by hand ([`once`]), the continuous monitor ([`track`]), monitor-alive
//! ([`alive`]), drain and undrain ([`drain`]), the peer watch ([`peer_watch`]). The probes
//! are validated once, before any mode runs ([`probes`]); what runs remember is in
//! [`state`], what they export in [`metrics`].

use std::{path::PathBuf, time::Duration};

use hakit_cli::ha_check::{Cli, Cmd, IDENT};
use hakit_core::{config::pick, runtime::DEFAULT_DIR, usage_error, Exit, HDuration};
use hakit_net::nft::NftTable;
use log::info;

use crate::config::{CheckFile, Probe};

mod alive;
mod drain;
mod metrics;
mod once;
mod peer_watch;
mod probes;
mod signals;
mod state;
mod track;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs what the command line asks: the probes once (keepalived's `vrrp_script`), one
/// ad-hoc probe, the monitor, monitor-alive, drain, undrain or the peer watch.
///
/// `shortcut` is the probe a kind's subcommand names (`ha-check icmp 192.0.2.1`), parsed by
/// [`crate::shortcut`].
pub fn run(cli: Cli, shortcut: Option<Probe>) -> anyhow::Result<Exit> {
    let file: CheckFile<hakit_bgp::Config> = cli.common.init(IDENT)?;
    let c = &file.check;
    let interval = pick(cli.interval, c.interval, HDuration(DEFAULT_INTERVAL)).get();
    let deadline = pick(cli.deadline, c.deadline, HDuration(interval * 4 / 5)).get();
    if deadline.is_zero() {
        return Err(usage_error("the deadline must be longer than 0"));
    }
    let drain_file = c
        .drain_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(hakit_core::heartbeat::DRAIN_FILE));
    let rt = pick(
        cli.runtime_dir.clone(),
        file.general.runtime_dir.clone(),
        PathBuf::from(DEFAULT_DIR),
    );
    let track_file = |given: Option<PathBuf>| {
        given.or(c.track_file.clone()).ok_or_else(|| {
            usage_error("no track file: set track_file in [check] or give --track-file")
        })
    };
    let monitor = match cli.cmd {
        Some(Cmd::Drain { reason }) => return drain::drain(&reason, &drain_file),
        Some(Cmd::Undrain) => return drain::undrain(&drain_file),
        Some(cmd @ Cmd::Watch { .. }) => return peer_watch::run(cmd, c.watch_peer),
        Some(Cmd::MonitorAlive {
            track_file: t,
            max_age,
        }) => return Ok(alive::run(&track_file(t)?, max_age.get(), &rt)),
        Some(Cmd::Monitor {
            track_file: t,
            textfile_interval,
            duration,
            rt_priority,
        }) => {
            let track = track_file(t)?;
            let rt_priority = rt_priority.or(c.monitor_rt_priority).unwrap_or(10);
            track::check(&track, rt_priority)?;
            let peer = c
                .peer
                .as_ref()
                .map(|p| crate::peer::PeerConfig::from_table(p, rt.clone()))
                .transpose()
                .map_err(usage_error)?;
            Some(track::Args {
                track,
                every: textfile_interval.get(),
                duration: duration.map(HDuration::get),
                rt_priority,
                peer,
                drain_file,
            })
        }
        None => None,
    };
    let by_hand = shortcut.is_some();
    let (list, groups) = match shortcut {
        Some(p) => (vec![p], Vec::new()),
        None => (c.probes.clone(), c.groups.clone()),
    };
    let resolved = probes::resolve(
        list,
        groups,
        c,
        probes::Context {
            deadline,
            monitor: monitor.is_some(),
            runtime_dir: rt.clone(),
            pair: file.general.pair.as_deref(),
            bgp: &file.bgp,
            fip: &file.fip,
        },
    )?;
    // A one-shot run while the monitor runs (an operator's `ha-check -v`) disturbs
    // nothing: the monitor owns the metrics (the same textfile and run counters), so the run
    // writes none of them unless told where with --textfile.
    let monitor_runs = monitor.is_none()
        && cli.textfile.is_none()
        && c.track_file
            .as_ref()
            .is_some_and(|t| crate::monitor::alive(t, hakit_core::heartbeat::STALE).is_ok());
    if monitor_runs {
        info!("the uplink monitor runs and writes the metrics: this run leaves them alone");
    }
    let textfile = cli
        .textfile
        .or(c.textfile.clone())
        .or_else(|| {
            file.general
                .textfile_dir
                .as_ref()
                .map(|d| d.join("hakit_ha_check.prom"))
        })
        .filter(|_| !monitor_runs);
    let nft_table = cli
        .nft_counters
        .or(c.nft_counters.clone())
        .map(|s| s.parse::<NftTable>().map_err(usage_error))
        .transpose()?;
    let pair = file.general.pair.clone();
    match monitor {
        Some(m) => track::run(m, resolved, textfile, pair, rt),
        None => once::run(
            once::Args {
                deadline,
                interval,
                by_hand,
                textfile,
                nft_table,
                pair,
                rt,
                json: cli.json,
                verbose: cli.common.verbose > 0,
            },
            resolved,
        ),
    }
}
