//! conntrackd's role changes, as conntrack-tools' own `primary-backup.sh` performs them.
//!
//! * primary (MASTER): commit the external cache into the kernel (`-c`) first, before
//!   traffic arrives, so returning packets of existing flows find their NAT state; then
//!   flush the caches (`-f`), resync the internal cache from the kernel (`-R`) and send a
//!   bulk update to the peer (`-B`). `-c` answers when the commit has run (1.2 s for
//!   100,000 flows, 19 s for a million: it runs on its own thread, see `steps`), but a `-f`
//!   sent before the daemon clears its "committing" flag is refused: the flush waits for
//!   the log, and is retried, bounded.
//! * backup: check conntrackd answers (`-s`); if not, start it (through systemd where it is
//!   the init system, else `-d` after removing a stale lock; never on STOP); shorten kernel
//!   timers to expire zombie entries (`-t`, with an external cache only: see
//!   [`Conntrackd::fault`]); request a resync (`-n`).
//! * fault: shorten kernel timers (`-t`, with an external cache only).

use std::{
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use hakit_core::debug;
use hakit_core::exec;
use log::warn;

/// How long a commit may take before the flush gives up waiting for it: 19 s for a
/// million flows on the bench machine (BENCHMARKS.md).
const COMMIT_WAIT: Duration = Duration::from_secs(120);

/// How the backup sequence starts a conntrackd that does not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Starter {
    /// Not at all (STOP).
    Never,
    /// `systemctl start UNIT` (systemd is the init system).
    Systemd { systemctl: String, unit: String },
    /// `conntrackd -d` (no service manager).
    Daemon,
}

impl Starter {
    /// The way to start conntrackd on this node: through systemd when it is the init
    /// system (sd_booted(3): `/run/systemd/system` exists), else as a daemon.
    pub fn for_this_node(systemctl: &str) -> Starter {
        if Path::new("/run/systemd/system").is_dir() {
            Starter::Systemd {
                systemctl: systemctl.to_string(),
                unit: "conntrackd.service".into(),
            }
        } else {
            Starter::Daemon
        }
    }
}

#[derive(Clone)]
pub struct Conntrackd<'a> {
    pub prog: String,
    pub config: PathBuf,
    pub timeout: Duration,
    /// Stops a running `conntrackd` client, and the wait for a commit (a newer state
    /// superseded the transition).
    pub stop: exec::Stop<'a>,
}

impl Conntrackd<'_> {
    fn cmd(&self, flag: &str) -> Vec<String> {
        vec![
            self.prog.clone(),
            "-C".into(),
            self.config.to_string_lossy().into_owned(),
            flag.into(),
        ]
    }

    fn run(&self, flag: &str) -> anyhow::Result<exec::Ran> {
        exec::run_ok_until(
            &self.cmd(flag),
            None,
            self.timeout,
            exec::OUTPUT_CAP,
            self.stop,
        )
        .with_context(|| format!("conntrackd {flag}"))
    }

    /// `-c`: commit the external cache to the kernel; with `expect`, then `-c expect`, the
    /// expectations (a helper's FTP data or SIP media flow keeps its way through).
    pub fn commit(&self, expect: bool) -> anyhow::Result<()> {
        self.run("-c")?;
        if expect {
            self.run_args(&["-c", "expect"])?;
        }
        Ok(())
    }

    /// `DisableExternalCache on`: the peer's state goes straight into the kernel table,
    /// there is nothing to commit (and conntrackd logs no "commit has taken").
    pub fn external_cache_disabled(&self) -> bool {
        external_cache_disabled(&self.config)
    }

    /// Flush, then `-R`, `-B`.
    ///
    /// Two conntrackd behaviours shape the flush. `-c` returns before the daemon has
    /// cleared its "committing" flag, and a flush that arrives meanwhile is dropped with
    /// only a line in conntrackd's own log ("ignoring flush command, commit still in
    /// progress"): the `-f` client exits 0 either way. And conntrackd 1.4.7 (Debian 12)
    /// never clears that flag after a commit, so every later full flush is dropped the
    /// same way until it restarts. So: wait until the log says the commit finished, send
    /// `-f`, verify it by the log (or, without a log file, by the external cache being
    /// empty); if it was dropped, flush the internal cache (`-f internal`, which the flag
    /// does not block) and warn, rather than report a flush that did not happen.
    ///
    /// Without `flush_external` (another instance of this node is the peer's: active-active)
    /// only the internal cache is flushed: the external cache backs the flows the peer
    /// forwards, and a flush would leave this node nothing to commit when the peer dies.
    pub fn primary(&self, flush_external: bool) -> anyhow::Result<()> {
        if !flush_external {
            self.run_args(&["-f", "internal"])?;
            self.run("-R")?;
            self.run("-B")?;
            return Ok(());
        }
        let log = log_file(&self.config);
        if let Some(l) = log.as_ref().filter(|_| !self.external_cache_disabled()) {
            let start = Instant::now();
            while !commit_finished(&log_tail(l)) {
                if let Some(why) = (self.stop)() {
                    bail!("superseded while conntrackd committed: {why}");
                }
                if start.elapsed() > COMMIT_WAIT {
                    bail!(
                        "conntrackd: commit not finished after {COMMIT_WAIT:?} (per {})",
                        l.display()
                    );
                }
                thread::sleep(Duration::from_millis(5));
            }
        }
        let mut dropped = false;
        for attempt in 0..3 {
            let before = log
                .as_deref()
                .and_then(|l| std::fs::metadata(l).ok())
                .map_or(0, |m| m.len());
            self.run("-f")?;
            dropped = match &log {
                Some(l) => log_since(l, before).contains("ignoring flush command"),
                None => self.external_entries()? > 0,
            };
            if !dropped {
                break;
            }
            debug!(
                "conntrackd -f dropped (attempt {}), commit flag still set",
                attempt + 1
            );
            thread::sleep(Duration::from_millis(20));
        }
        if dropped {
            self.run_args(&["-f", "internal"])?;
            warn!(
                "conntrackd dropped the full flush (its commit flag stays set after a commit, \
                 a conntrackd 1.4.7 defect): flushed the internal cache only; the external \
                 cache is cleared when conntrackd restarts"
            );
        }
        self.run("-R")?;
        self.run("-B")?;
        Ok(())
    }

    fn run_args(&self, flags: &[&str]) -> anyhow::Result<exec::Ran> {
        let mut argv = vec![
            self.prog.clone(),
            "-C".into(),
            self.config.to_string_lossy().into_owned(),
        ];
        argv.extend(flags.iter().map(|f| f.to_string()));
        exec::run_ok_until(&argv, None, self.timeout, exec::OUTPUT_CAP, self.stop)
            .with_context(|| format!("conntrackd {}", flags.join(" ")))
    }

    /// Entries in the external cache, from `-s`.
    pub fn external_entries(&self) -> anyhow::Result<u64> {
        let stats = self.run("-s")?.stdout;
        external_entries(&stats).context("conntrackd -s: no external cache in the statistics")
    }

    /// Whether conntrackd answers (`-s`).
    pub fn running(&self) -> bool {
        exec::run_until(
            &self.cmd("-s"),
            None,
            self.timeout,
            exec::OUTPUT_CAP,
            self.stop,
        )
        .is_ok_and(|r| r.success())
    }

    /// Statistics text (`-s`), for `nat-notify status`.
    pub fn stats(&self) -> anyhow::Result<String> {
        Ok(self.run("-s")?.stdout)
    }

    /// The backup sequence. A conntrackd that does not answer is started as `start` says:
    /// never on STOP (keepalived is going down, usually with the whole node: a daemon
    /// started now would outlive its service manager's view of it), through systemd where
    /// systemd is the init system (a `conntrackd -d` started from a hook lives in
    /// keepalived's cgroup, blocks `conntrackd.service` with its lock file and dies with
    /// `systemctl stop keepalived`), and with `-d` only where there is no service manager.
    ///
    /// Returns false when conntrackd was down and left down (STOP).
    /// Without `purge` no `-t`: another instance of this node is MASTER (active-active), and
    /// `-t`'s scheduled flush would delete its live flows PurgeTimeout seconds later.
    pub fn backup(&self, start: &Starter, purge: bool) -> anyhow::Result<bool> {
        if !self.running() {
            match start {
                Starter::Never => return Ok(false),
                Starter::Systemd { systemctl, unit } => {
                    warn!("conntrackd does not answer; starting {unit} through systemd");
                    exec::run_ok_until(
                        &exec::argv(&[systemctl, "start", unit]),
                        None,
                        self.timeout,
                        exec::OUTPUT_CAP,
                        self.stop,
                    )
                    .with_context(|| format!("systemctl start {unit}"))?;
                }
                Starter::Daemon => {
                    if let Some(lock) = lock_file(&self.config) {
                        if lock.exists() {
                            warn!(
                                "conntrackd does not answer; removing stale lock {}",
                                lock.display()
                            );
                            let _ = std::fs::remove_file(&lock);
                        }
                    }
                    self.run("-d")?;
                }
            }
            let up = Instant::now();
            while !self.running() {
                if up.elapsed() > self.timeout {
                    bail!("conntrackd was started but does not answer -s");
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        if purge {
            self.shorten_timers()?;
        }
        self.run("-n")?;
        Ok(true)
    }

    /// The fault sequence: `-t` when `purge` (see [`Conntrackd::backup`]).
    pub fn fault(&self, purge: bool) -> anyhow::Result<()> {
        if purge {
            self.shorten_timers()?;
        }
        Ok(())
    }

    /// `-t`, only where the kernel table is not the replica. With an external cache the
    /// peer's state lives in conntrackd and this node's kernel table holds only its own
    /// flows from when it was MASTER: zombies, which `-t` has conntrackd flush once its
    /// PurgeTimeout (60 s) has passed. With `DisableExternalCache on` the peer's state is
    /// injected into this kernel table, and that same scheduled flush deletes all of it:
    /// measured (make test's table scenario, 20,000 flows), the backup held 29 of them 65 s
    /// after its transition and not one sampled flow survived the next failover.
    fn shorten_timers(&self) -> anyhow::Result<()> {
        if self.external_cache_disabled() {
            debug!(
                "conntrackd -t skipped: the kernel table is the replica (DisableExternalCache on)"
            );
            return Ok(());
        }
        self.run("-t").map(|_| ())
    }
}

/// Whether the configuration at `config` syncs expectations (`ExpectationSync on`).
pub fn expectation_sync(config: &Path) -> bool {
    config_value(config, "ExpectationSync")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "on" | "yes"))
}

/// Whether the configuration at `config` says `DisableExternalCache on`.
pub fn external_cache_disabled(config: &Path) -> bool {
    config_value(config, "DisableExternalCache")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "on" | "yes"))
}

/// The protocols a conntrackd configuration's `Protocol Accept` / `Protocol Ignore` block
/// names that `protocols` (the text of /etc/protocols) does not know. conntrackd resolves
/// each name with getprotobyname(3) and, for one it cannot find, only logs a warning and
/// leaves it out of the filter: with `Protocol Accept { TCP UDP ICMP }` and no
/// /etc/protocols (a minimal image without netbase) it synchronises nothing at all, and
/// every flow is lost at the next failover (the systemd lab's containers did exactly this).
/// Names are matched as getprotobyname does: exactly, against the name and its aliases.
pub fn unknown_filter_protocols(config: &str, protocols: &str) -> Vec<String> {
    let known: std::collections::HashSet<&str> = protocols
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next();
            let _number = w.next();
            name.into_iter().chain(w)
        })
        .collect();
    let mut unknown = Vec::new();
    let mut inside = false;
    for line in config
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
    {
        let mut words = line.split_whitespace().peekable();
        if !inside {
            if words.next() == Some("Protocol") && matches!(words.next(), Some("Accept" | "Ignore"))
            {
                inside = true;
            } else {
                continue;
            }
        }
        for w in words {
            match w {
                "{" => {}
                "}" => inside = false,
                p if inside && !known.contains(p) => unknown.push(p.to_string()),
                _ => {}
            }
        }
    }
    unknown
}

/// The value of a `Key value` line in a conntrackd configuration.
fn config_value(config: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(config).ok()?;
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == key)
                .then(|| w.next().map(str::to_string))
                .flatten()
        })
}

/// `LockFile` from a conntrackd configuration, if set.
pub fn lock_file(config: &Path) -> Option<PathBuf> {
    config_value(config, "LockFile").map(PathBuf::from)
}

/// `LogFile` from a conntrackd configuration, if it names a file (`on` means the default
/// path, `off` none).
pub fn log_file(config: &Path) -> Option<PathBuf> {
    match config_value(config, "LogFile")?
        .to_ascii_lowercase()
        .as_str()
    {
        "off" => None,
        "on" => Some(PathBuf::from("/var/log/conntrackd.log")),
        _ => config_value(config, "LogFile").map(PathBuf::from),
    }
}

/// The last 64 KiB of conntrackd's log.
fn log_tail(path: &Path) -> String {
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    log_since(path, len.saturating_sub(64 * 1024))
}

/// Whether the last commit the log mentions has finished ("commit has taken" after the
/// last "committing"); true when the log mentions no commit at all.
pub fn commit_finished(log: &str) -> bool {
    let started = log
        .rfind("committing all external caches")
        .or_else(|| log.rfind("committing conntrack cache"));
    match started {
        None => true,
        Some(at) => log[at..].contains("commit has taken"),
    }
}

/// What was appended to `path` after byte `from`.
fn log_since(path: &Path, from: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut out = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.take(1 << 20).read_to_string(&mut out);
        }
    }
    out
}

/// "current active connections" of the external cache in `conntrackd -s` output.
pub fn external_entries(stats: &str) -> Option<u64> {
    let ext = &stats[stats.find("cache external:")?..];
    let line = ext
        .lines()
        .find(|l| l.contains("current active connections"))?;
    line.rsplit(|c: char| c == ':' || c.is_whitespace())
        .find(|w| !w.is_empty())?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    /// The shipped template's filter against Debian's /etc/protocols, a file without ICMP,
    /// and none at all (the minimal image).
    #[test]
    fn filter_protocols_are_checked_as_getprotobyname_finds_them() {
        let conf = include_str!("../../../keepalived/conntrackd.conf.in");
        let debian = "ip\t0\tIP\t\t# internet protocol\nicmp\t1\tICMP\ntcp\t6\tTCP\nudp\t17\tUDP\n";
        assert!(super::unknown_filter_protocols(conf, debian).is_empty());
        assert_eq!(
            super::unknown_filter_protocols(conf, "tcp 6 TCP\nudp 17 UDP\n"),
            ["ICMP"]
        );
        assert_eq!(
            super::unknown_filter_protocols(conf, ""),
            ["TCP", "UDP", "ICMP"]
        );
        // Exact, as getprotobyname: "tcp" is not "TCP" unless listed as its alias.
        assert_eq!(
            super::unknown_filter_protocols("Protocol Accept {\n TCP\n}\n", "tcp 6\n"),
            ["TCP"]
        );
        // Blocks on one line, and Ignore as well as Accept.
        assert_eq!(
            super::unknown_filter_protocols("Protocol Ignore { sctp }\nUDP\n", "udp 17 UDP\n"),
            ["sctp"]
        );
    }

    use super::*;

    // conntrackd 1.4.7 `-s`, abridged.
    const STATS: &str = "cache internal:\ncurrent active connections:\t           4\nconnections created:\t\t           9\tfailed:\t           0\n\ncache external:\ncurrent active connections:\t          17\nconnections created:\t\t          17\tfailed:\t           0\n";

    #[test]
    fn commit_progress_from_the_log() {
        assert!(commit_finished(""));
        assert!(!commit_finished(
            "[notice] committing all external caches\n"
        ));
        assert!(commit_finished("[notice] committing all external caches\n[notice] Committed 0 new entries\n[notice] commit has taken 0.000025 seconds\n"));
        assert!(!commit_finished(
            "commit has taken 1 seconds\n[notice] committing all external caches\n"
        ));
    }

    #[test]
    fn reads_external_cache_size() {
        assert_eq!(external_entries(STATS), Some(17));
        assert_eq!(external_entries("cache internal:\n"), None);
    }

    /// `-t` only with an external cache: with `DisableExternalCache on` the flush it
    /// schedules would delete the peer's state from the kernel table (#35). The program is
    /// one that cannot run: asking for `-t` is an error, not asking is not.
    #[test]
    fn timers_shortened_only_with_an_external_cache() {
        let d = std::env::temp_dir().join(format!("hakit-ctd-t-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("conntrackd.conf");
        let c = Conntrackd {
            prog: d.join("no-conntrackd").display().to_string(),
            config: p.clone(),
            timeout: Duration::from_secs(1),
            stop: &exec::never,
        };
        std::fs::write(
            &p,
            "Sync {\n  Mode FTFW {\n    DisableExternalCache on\n  }\n}\n",
        )
        .unwrap();
        assert!(c.fault(true).is_ok());
        std::fs::write(
            &p,
            "Sync {\n  Mode FTFW {\n    DisableExternalCache off\n  }\n}\n",
        )
        .unwrap();
        assert!(c.fault(true).is_err());
        // Another instance is MASTER here (active-active): no -t asked, nothing run.
        assert!(c.fault(false).is_ok());
        std::fs::write(&p, "Sync {\n  Mode FTFW {\n  }\n}\n").unwrap();
        assert!(c.fault(true).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn finds_the_lock_file() {
        let d = std::env::temp_dir().join(format!("hakit-ctd-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("conntrackd.conf");
        std::fs::write(
            &p,
            "General {\n  # LockFile /nope\n  LockFile /run/x.lock # here\n}\n",
        )
        .unwrap();
        assert_eq!(lock_file(&p), Some(PathBuf::from("/run/x.lock")));
        std::fs::write(&p, "General {\n  LogFile /run/c.log\n}\n").unwrap();
        assert_eq!(lock_file(&p), None);
        assert_eq!(log_file(&p), Some(PathBuf::from("/run/c.log")));
        std::fs::write(&p, "General {\n  LogFile off\n}\n").unwrap();
        assert_eq!(log_file(&p), None);
        let _ = std::fs::remove_dir_all(&d);
    }
}
