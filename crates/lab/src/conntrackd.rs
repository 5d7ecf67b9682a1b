//! Debian's conntrackd inside a lab namespace, in FTFW mode over a dedicated sync link.
//!
//! Each node gets its own config, lock file, control socket and log file under the lab
//! directory: the defaults collide between namespaces.

use std::{fs, path::PathBuf, time::Duration};

use anyhow::Context;

use crate::{Lab, Ns};

/// A conntrackd started by [`start`].
pub struct Conntrackd {
    pub conf: PathBuf,
    pub log: PathBuf,
    pub pid: u32,
}

/// The host's `nf_conntrack_max`: every namespace's table is bounded by it.
pub fn kernel_max() -> u64 {
    fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(262_144)
}

/// The configuration for a node whose sync address is `local`, its peer's `peer`, on
/// `iface`: the shipped template with per-node lock, socket and log under `dir/name.*`,
/// its caches sized from the host's `nf_conntrack_max` as hakit-setup sizes them from
/// CONNTRACK_MAX (twice it, a quarter of it).
pub fn conf(
    dir: &std::path::Path,
    name: &str,
    local: &str,
    peer: &str,
    iface: &str,
) -> anyhow::Result<String> {
    let run = dir.join(format!("{name}.conntrackd"));
    let _ = fs::create_dir_all(&run);
    let max = kernel_max();
    crate::render(
        "conntrackd.conf.in",
        &[
            ("CONNTRACK_HASHLIMIT", &(max * 2).to_string()),
            ("CONNTRACK_HASHSIZE", &(max / 4).to_string()),
            ("LOCAL", local),
            ("PEER", peer),
            ("SYNC_IF", iface),
            ("RUN", &run.to_string_lossy()),
        ],
    )
}

/// Writes the config and starts conntrackd in the foreground in `ns`; waits until it answers.
pub fn start(
    lab: &mut Lab,
    ns: &Ns,
    name: &str,
    local: &str,
    peer: &str,
    iface: &str,
) -> anyhow::Result<Conntrackd> {
    start_with(lab, ns, name, local, peer, iface, |c| c)
}

/// [`start`] with the rendered configuration passed through `edit` first.
pub fn start_with(
    lab: &mut Lab,
    ns: &Ns,
    name: &str,
    local: &str,
    peer: &str,
    iface: &str,
    edit: impl FnOnce(String) -> String,
) -> anyhow::Result<Conntrackd> {
    let dir = lab.dir().to_path_buf();
    let conf_path = dir.join(format!("{name}.conntrackd.conf"));
    fs::write(&conf_path, edit(conf(&dir, name, local, peer, iface)?))?;
    let c = conf_path.to_string_lossy().to_string();
    let pid = lab.spawn(
        ns,
        &format!("{name}.conntrackd.out"),
        &["conntrackd", "-C", &c],
    )?;
    let ok = crate::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        ns.command(&["conntrackd", "-C", &c, "-s"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    ok.with_context(|| {
        let out =
            fs::read_to_string(dir.join(format!("{name}.conntrackd.out.log"))).unwrap_or_default();
        format!("conntrackd {name} did not answer -s: {out}")
    })?;
    Ok(Conntrackd {
        conf: conf_path,
        log: dir
            .join(format!("{name}.conntrackd"))
            .join("conntrackd.log"),
        pid,
    })
}

impl Conntrackd {
    /// conntrackd's own log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `conntrackd -s` output.
    pub fn stats(&self, ns: &Ns) -> String {
        let c = self.conf.to_string_lossy().to_string();
        ns.command(&["conntrackd", "-C", &c, "-s"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default()
    }
}
