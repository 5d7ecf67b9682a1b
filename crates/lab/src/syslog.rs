//! A syslog socket for the lab: every hakit binary logs to `--syslog-socket`/`syslog_socket`
//! as it would to /dev/log, and tests, the NAT lab and the demo read what it said here. One
//! listener for all of them: lines are stamped with Unix time on arrival, and [`Syslog::sync`]
//! makes "everything a finished process logged" exact (no sleep, no race).

use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::Context;

use crate::now_unix;

/// The marker [`Syslog::sync`] sends through the socket itself.
const SYNC: &str = "hakit-lab-syslog-sync ";

/// Log lines received on a datagram socket, stamped with Unix time on arrival.
#[derive(Clone)]
pub struct Syslog {
    lines: Arc<Mutex<Vec<(f64, String)>>>,
    pub path: PathBuf,
    /// Lines already handed out by [`Syslog::take`].
    taken: Arc<Mutex<usize>>,
}

impl Syslog {
    /// Binds `path` and collects what arrives on a thread of its own.
    pub fn listen(path: &Path) -> anyhow::Result<Syslog> {
        let sock = UnixDatagram::bind(path).with_context(|| format!("bind {}", path.display()))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let t = now_unix();
                let line = String::from_utf8_lossy(&buf[..n]).to_string();
                if let Ok(mut l) = sink.lock() {
                    l.push((t, line));
                }
            }
        });
        Ok(Syslog {
            lines,
            path: path.to_path_buf(),
            taken: Arc::default(),
        })
    }

    /// Lines received at or after `since` (Unix seconds), message part only.
    pub fn since(&self, since: f64) -> Vec<(f64, String)> {
        self.lines
            .lock()
            .map(|l| {
                l.iter()
                    .filter(|(t, _)| *t >= since)
                    .filter(|(_, m)| !m.starts_with(SYNC))
                    .map(|(t, m)| (*t, m.split("]: ").nth(1).unwrap_or(m).to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until every datagram sent before this call has been collected: a marker sent
    /// through the socket arrives after them (a datagram socket's queue is in order).
    pub fn sync(&self, timeout: Duration) -> anyhow::Result<()> {
        let marker = format!("{SYNC}{}-{:?}", std::process::id(), Instant::now());
        UnixDatagram::unbound()?
            .send_to(marker.as_bytes(), &self.path)
            .with_context(|| format!("send to {}", self.path.display()))?;
        let until = Instant::now() + timeout;
        loop {
            if self
                .lines
                .lock()
                .is_ok_and(|l| l.iter().any(|(_, m)| *m == marker))
            {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < until,
                "the syslog listener did not catch up within {timeout:?}"
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// The first whole line matching `want` (from any time), waiting up to `timeout` for it:
    /// for what a process this test did not start logs (keepalived's hooks).
    pub fn wait_for(&self, timeout: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        let find = || {
            self.lines
                .lock()
                .ok()
                .and_then(|l| l.iter().map(|(_, m)| m).find(|m| want(m)).cloned())
        };
        crate::wait_until(timeout, Duration::from_millis(5), || find().is_some())?;
        find()
    }

    /// The whole lines (`<PRI>ident[pid]: message`) that arrived since the last `take`,
    /// after [`Syslog::sync`]: exactly what the processes that have finished logged.
    pub fn take(&self) -> anyhow::Result<Vec<String>> {
        self.sync(Duration::from_secs(10))?;
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let new: Vec<String> = lines[*taken..]
            .iter()
            .map(|(_, m)| m.clone())
            .filter(|m| !m.starts_with(SYNC))
            .collect();
        *taken = lines.len();
        Ok(new)
    }
}
