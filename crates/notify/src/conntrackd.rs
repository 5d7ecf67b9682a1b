//! conntrackd's role changes, as conntrack-tools' own `primary-backup.sh` performs them.
//!
//! * primary (MASTER): commit the external cache into the kernel (`-c`) first, before
//!   traffic arrives, so returning packets of existing flows find their NAT state; then
//!   flush the caches (`-f`), resync the internal cache from the kernel (`-R`) and send a
//!   bulk update to the peer (`-B`). `-c` returns before the commit has finished, and a
//!   `-f` sent meanwhile is refused ("commit still in progress"): it is retried, bounded.
//! * backup: check conntrackd answers (`-s`); if not, remove a stale lock file and start it
//!   (`-d`); shorten kernel timers to expire zombie entries (`-t`); request a resync (`-n`).
//! * fault: shorten kernel timers (`-t`).

use std::{
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use hakit_core::exec;
use log::{debug, warn};

/// How long `-f` is retried while a commit is still running.
const COMMIT_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Conntrackd {
    pub prog: String,
    pub config: PathBuf,
    pub timeout: Duration,
}

impl Conntrackd {
    fn cmd(&self, flag: &str) -> Vec<String> {
        vec![
            self.prog.clone(),
            "-C".into(),
            self.config.to_string_lossy().into_owned(),
            flag.into(),
        ]
    }

    fn run(&self, flag: &str) -> anyhow::Result<exec::Ran> {
        exec::run_ok(&self.cmd(flag), None, self.timeout)
            .with_context(|| format!("conntrackd {flag}"))
    }

    /// `-c`: commit the external cache to the kernel.
    pub fn commit(&self) -> anyhow::Result<()> {
        self.run("-c").map(|_| ())
    }

    /// `-f`, retried while the previous commit is still in progress; then `-R`, `-B`.
    pub fn primary(&self) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let ran = exec::run(&self.cmd("-f"), None, self.timeout)?;
            if ran.success() {
                break;
            }
            let text = format!("{}{}", ran.stdout, ran.stderr);
            if text.contains("in progress") && start.elapsed() < COMMIT_WAIT {
                debug!("conntrackd -f: commit still in progress (try {tries}), waiting");
                thread::sleep(Duration::from_millis(20));
                continue;
            }
            bail!(
                "conntrackd -f: {} ({}) after {tries} tries",
                ran.status,
                ran.first_error_line()
            );
        }
        self.run("-R")?;
        self.run("-B")?;
        Ok(())
    }

    /// Whether conntrackd answers (`-s`).
    pub fn running(&self) -> bool {
        exec::run(&self.cmd("-s"), None, self.timeout).is_ok_and(|r| r.success())
    }

    /// Statistics text (`-s`), for `nat-notify status`.
    pub fn stats(&self) -> anyhow::Result<String> {
        Ok(self.run("-s")?.stdout)
    }

    /// The backup sequence.
    pub fn backup(&self) -> anyhow::Result<()> {
        if !self.running() {
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
            let up = Instant::now();
            while !self.running() {
                if up.elapsed() > self.timeout {
                    bail!("conntrackd started with -d but does not answer -s");
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        self.run("-t")?;
        self.run("-n")?;
        Ok(())
    }

    /// The fault sequence.
    pub fn fault(&self) -> anyhow::Result<()> {
        self.run("-t").map(|_| ())
    }
}

/// `LockFile` from a conntrackd configuration, if set.
pub fn lock_file(config: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(config).ok()?;
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "LockFile")
                .then(|| w.next().map(PathBuf::from))
                .flatten()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        std::fs::write(&p, "General {\n}\n").unwrap();
        assert_eq!(lock_file(&p), None);
        let _ = std::fs::remove_dir_all(&d);
    }
}
