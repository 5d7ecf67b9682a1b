//! Per-instance files under the runtime directory.
//!
//! * `<inst>.intents`: the log of requested transitions, each with a generation number taken
//!   when its hook started (under a short lock), newest last. It decides which of several
//!   racing hooks is the newest.
//! * `<inst>.lock`: held for the whole transition: one transition at a time per instance.
//! * `<inst>.state`: what the last transition did: target state, generation, whether it
//!   converged, per-step results, counters for the metrics.
//!
//! Instance names come from keepalived's config; they are sanitised before becoming file
//! names so a name can never escape the directory.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use hakit_core::runtime::{ensure_private_dir, write_atomic, Lock, LockWait};
use serde::{Deserialize, Serialize};

use crate::{config::Instance, event::State};

/// How many recent intents the log keeps.
const INTENT_LOG: usize = 64;

/// One requested transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub generation: u64,
    pub state: State,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
struct IntentLog {
    next: u64,
    recent: Vec<Intent>,
}

/// The result of one step, as recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StepRecord {
    pub ok: bool,
    pub detail: String,
    pub seconds: f64,
    /// Nothing to do here (not configured for the instance, or superseded): no metric.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
}

/// What the last transition of an instance did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recorded {
    pub generation: u64,
    pub state: Option<State>,
    /// Every step of the transition succeeded (false while it runs or after a failure).
    pub converged: bool,
    pub superseded: bool,
    pub at_unix: f64,
    /// When a MASTER_RX_LOWER_PRI last re-announced (they are rate-limited).
    #[serde(default)]
    pub reasserted_unix: f64,
    pub duration_seconds: f64,
    /// conntrackd role hakit last commanded: `primary`, `backup` or `fault`.
    pub conntrackd: Option<String>,
    pub steps: BTreeMap<String, StepRecord>,
    /// Counters for the metrics textfile; they survive until reboot (tmpfs).
    pub transitions_total: BTreeMap<String, u64>,
    pub step_failures_total: BTreeMap<String, u64>,
}

/// The runtime directory.
#[derive(Debug, Clone)]
pub struct Runtime {
    dir: PathBuf,
}

/// Keeps `[A-Za-z0-9_.-]`, replaces the rest, so names map to safe file names.
pub fn file_stem(instance: &str) -> String {
    let s: String = instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

pub use hakit_core::clock::unix_secs as now_unix;

impl Runtime {
    /// Creates (or checks) the directory and returns it.
    pub fn open(dir: &Path) -> anyhow::Result<Runtime> {
        let rt = Runtime::at(dir);
        rt.create()?;
        Ok(rt)
    }

    /// The directory, untouched: reading from it works whether or not it exists (nothing
    /// recorded yet), so `status`, `--dry-run` and usage errors create nothing.
    pub fn at(dir: &Path) -> Runtime {
        Runtime {
            dir: dir.to_path_buf(),
        }
    }

    /// Creates the directory (mode 0755), refusing one another user could write into.
    pub fn create(&self) -> anyhow::Result<()> {
        ensure_private_dir(&self.dir)
    }

    fn path(&self, instance: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", file_stem(instance)))
    }

    /// Whether the peer's monitor said, within `fresh`, that the peer's keepalived is
    /// MASTER of `instance` (`peer.report`, written by `ha-check monitor` from the reports
    /// the monitors exchange on the sync link): `Some(why)`, for the provider claim to
    /// hold. A file that is old, absent or unreadable says nothing.
    pub fn peer_is_master(&self, instance: &str, fresh: Duration) -> Option<String> {
        let path = self.dir.join("peer.report");
        let meta = std::fs::symlink_metadata(&path).ok()?;
        let age = meta.modified().ok()?.elapsed().ok()?;
        if !meta.is_file() || age > fresh {
            return None;
        }
        let text =
            hakit_core::runtime::read_file(&path, 4096, hakit_core::runtime::Trust::Config).ok()?;
        let line = format!("{} 1", file_stem(instance));
        text.lines().any(|l| l == line).then(|| {
            format!(
                "the peer's keepalived is MASTER of {instance} and its monitor answers on the sync link ({} ms ago): the VRRP path is cut, the peer is not dead",
                age.as_millis()
            )
        })
    }

    /// Records a new intent and returns its generation (strictly increasing per instance).
    pub fn register(&self, instance: &str, state: State) -> anyhow::Result<u64> {
        let _g = Lock::acquire(
            &self.path(instance, "intents.lock"),
            Duration::from_secs(10),
        )?;
        let path = self.path(instance, "intents");
        let mut log: IntentLog = read_json(&path)?.unwrap_or_default();
        log.next += 1;
        let generation = log.next;
        log.recent.push(Intent { generation, state });
        if log.recent.len() > INTENT_LOG {
            log.recent.drain(..log.recent.len() - INTENT_LOG);
        }
        write_atomic(&path, &serde_json::to_vec(&log)?, 0o644)?;
        Ok(generation)
    }

    /// Intents newer than `generation`.
    pub fn newer_intents(&self, instance: &str, generation: u64) -> anyhow::Result<Vec<Intent>> {
        let log: IntentLog = read_json(&self.path(instance, "intents"))?.unwrap_or_default();
        Ok(log
            .recent
            .into_iter()
            .filter(|i| i.generation > generation)
            .collect())
    }

    /// Takes the instance's transition lock, giving way (`Ok(Err(reason))`) as soon as
    /// `give_way` says this transition is superseded.
    pub fn lock(
        &self,
        instance: &str,
        wait: Duration,
        give_way: &dyn Fn() -> Option<String>,
    ) -> anyhow::Result<Result<Option<Lock>, String>> {
        match Lock::acquire_unless(&self.path(instance, "lock"), wait, give_way) {
            Ok(l) => Ok(Ok(Some(l))),
            Err(LockWait::GaveWay(why)) => Ok(Err(why)),
            Err(LockWait::Unavailable(e)) => {
                // A full, read-only or missing runtime directory: the data plane still
                // moves, unserialised (keepalived's VIPs still tell stale hooks apart).
                log::warn!("instance {instance}: no transition lock ({e:#}): going on without it");
                Ok(Ok(None))
            }
            Err(LockWait::Failed(e)) => Err(e.context(format!(
                "instance {instance}: another transition still runs"
            ))),
        }
    }

    pub fn recorded(&self, instance: &str) -> anyhow::Result<Recorded> {
        Ok(read_json(&self.path(instance, "state"))?.unwrap_or_default())
    }

    pub fn record(&self, instance: &str, r: &Recorded) -> anyhow::Result<()> {
        write_atomic(
            &self.path(instance, "state"),
            &serde_json::to_vec_pretty(r)?,
            0o644,
        )
    }

    /// The instances of `all` beside `inst` that share its conntrackd, and how many of them are
    /// MASTER here as their records say (the FIFO reader runs transitions one at a time, so the
    /// record of an earlier event is written before a later one reads it). An unreadable
    /// record counts as MASTER: a flush or a purge that is not needed costs flows, one left out
    /// costs nothing but stale entries.
    pub fn siblings(&self, all: &[Instance], inst: &Instance) -> Siblings {
        let Some(cfg) = &inst.conntrackd_config else {
            return Siblings::default();
        };
        let others: Vec<&Instance> = all
            .iter()
            .filter(|i| i.name != inst.name && i.conntrackd_config.as_ref() == Some(cfg))
            .collect();
        let master = others
            .iter()
            .filter(|i| match self.recorded(&i.name) {
                Ok(r) => matches!(r.state, Some(State::Master | State::MasterRxLowerPri)),
                Err(_) => true,
            })
            .count();
        Siblings {
            count: others.len(),
            master,
        }
    }
}

/// This node's other instances that share the instance's conntrackd (active-active: two
/// instances in opposite roles, each node MASTER of one), as their last transitions
/// recorded them. conntrackd's commands are per node, not per instance: a purge or a flush
/// for one instance reaches the other's flows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Siblings {
    /// How many (0: the one-instance profile).
    pub count: usize,
    /// How many of them are MASTER here.
    pub master: usize,
}

impl Siblings {
    /// No other instance is MASTER here: the node's kernel table holds no live flow of its
    /// own once this instance goes down, and `-t` may purge it.
    pub fn none_master(self) -> bool {
        self.master == 0
    }

    /// Every other instance is MASTER here: the peer forwards nothing, every flow is in
    /// this kernel table once committed, and the external cache may be flushed.
    pub fn all_master(self) -> bool {
        self.master == self.count
    }
}

/// Reads a bookkeeping file leniently: bookkeeping must never keep the data plane from
/// moving. Missing or unknown fields (another version's schema) are tolerated; a file that
/// is not JSON at all, or cannot be read, counts as absent (with a warning) and is
/// replaced by the next write.
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Option<T>> {
    let text =
        match hakit_core::runtime::read_file(path, 1 << 20, hakit_core::runtime::Trust::Config) {
            Ok(t) => t,
            Err(_) if !path.exists() => return Ok(None),
            Err(e) => {
                log::warn!("{e:#}: ignored, starting afresh");
                return Ok(None);
            }
        };
    match serde_json::from_str(&text) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            log::warn!(
                "{} is not readable bookkeeping ({e}): ignored, starting afresh",
                path.display()
            );
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The siblings of an instance are the others sharing its conntrackd configuration,
    /// MASTER as their records say (none recorded yet: not MASTER).
    #[test]
    fn siblings_are_read_from_the_records() {
        let dir = std::env::temp_dir().join(format!("hakit-siblings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = Runtime::at(&dir);
        let inst = |name: &str, ctd: Option<&str>| Instance {
            name: name.into(),
            conntrackd_config: ctd.map(Into::into),
            ..Instance::default()
        };
        let all = [
            inst("VI_A", Some("/etc/conntrackd/conntrackd.conf")),
            inst("VI_B", Some("/etc/conntrackd/conntrackd.conf")),
            inst("VI_C", Some("/etc/conntrackd/other.conf")),
            inst("VI_D", None),
        ];
        assert_eq!(
            rt.siblings(&all, &all[1]),
            Siblings {
                count: 1,
                master: 0
            }
        );
        rt.record(
            "VI_A",
            &Recorded {
                state: Some(State::Master),
                ..Recorded::default()
            },
        )
        .unwrap();
        assert_eq!(
            rt.siblings(&all, &all[1]),
            Siblings {
                count: 1,
                master: 1
            }
        );
        assert_eq!(rt.siblings(&all, &all[2]), Siblings::default());
        assert_eq!(rt.siblings(&all, &all[3]), Siblings::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use std::time::SystemTime;

    /// The claim's second path: the peer's roles as the monitor wrote them, fresh or not.
    #[test]
    fn peer_is_master_only_when_said_so_recently() {
        let d = std::env::temp_dir().join(format!("hakit-notify-peer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let rt = Runtime::open(&d).unwrap();
        let fresh = Duration::from_millis(300);
        assert_eq!(
            rt.peer_is_master("VI_1", fresh),
            None,
            "no file says nothing"
        );
        let file = d.join("peer.report");
        std::fs::write(&file, "VI_1 1\nVI_2 0\n").unwrap();
        assert!(rt
            .peer_is_master("VI_1", fresh)
            .is_some_and(|w| w.contains("VRRP path is cut")));
        assert_eq!(rt.peer_is_master("VI_2", fresh), None);
        assert_eq!(rt.peer_is_master("VI_3", fresh), None);
        // Old news: the peer's monitor stopped hearing it (or stopped).
        let old = SystemTime::now() - Duration::from_secs(2);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(rt.peer_is_master("VI_1", fresh), None);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn generations_increase_and_newer_are_found() {
        let d = std::env::temp_dir().join(format!("hakit-notify-rt-{}", std::process::id()));
        let rt = Runtime::open(&d).unwrap();
        let g1 = rt.register("VI_1", State::Master).unwrap();
        let g2 = rt.register("VI_1", State::Backup).unwrap();
        assert_eq!(g2, g1 + 1);
        let newer = rt.newer_intents("VI_1", g1).unwrap();
        assert_eq!(
            newer,
            vec![Intent {
                generation: g2,
                state: State::Backup
            }]
        );
        assert!(rt.newer_intents("VI_1", g2).unwrap().is_empty());
        assert!(rt.newer_intents("other", 0).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn names_cannot_escape_the_directory() {
        assert_eq!(file_stem("../../etc/passwd"), "_.._.._etc_passwd");
        assert_eq!(file_stem("VI_1"), "VI_1");
        assert_eq!(file_stem("G 1"), "G_1");
    }
}
