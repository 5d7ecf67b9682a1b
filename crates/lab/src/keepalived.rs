//! Debian's keepalived inside a lab namespace.
//!
//! Each instance gets its own config, pid and VRRP-child pid files under the lab directory
//! (the defaults collide between namespaces), runs in the foreground (`-n`) with console
//! logging into `<dir>/<name>.log`, and is stopped or crashed explicitly:
//!
//! * [`Keepalived::stop`]: SIGTERM to the parent, the graceful path (the VRRP child sends a
//!   priority-0 advert and the backup takes over at once).
//! * [`Keepalived::crash`]: SIGKILL to both parent and VRRP child. Killing only the parent
//!   lets the child hand over gracefully; killing only the child makes the parent restart it.

use std::{fs, path::PathBuf, time::Duration};

use anyhow::Context;
use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

use crate::{Lab, Ns};

/// A keepalived started by [`start`].
pub struct Keepalived {
    pub name: String,
    pub conf: PathBuf,
    pub pid_file: PathBuf,
    pub vrrp_pid_file: PathBuf,
    pub log: PathBuf,
    pub pid: u32,
}

/// Writes `conf` and starts keepalived in `ns`.
pub fn start(lab: &mut Lab, ns: &Ns, name: &str, conf: &str) -> anyhow::Result<Keepalived> {
    start_with(lab, ns, name, conf, false)
}

/// [`start`], real-time as hakit's keepalived.service drop-in starts it (`realtime`):
/// SCHED_RR 20 inherited, RLIMIT_RTTIME 1 s (packaging/keepalived-realtime.conf).
pub fn start_with(
    lab: &mut Lab,
    ns: &Ns,
    name: &str,
    conf: &str,
    realtime: bool,
) -> anyhow::Result<Keepalived> {
    let dir = lab.dir().to_path_buf();
    let conf_path = dir.join(format!("{name}.keepalived.conf"));
    fs::write(&conf_path, conf).with_context(|| format!("write {}", conf_path.display()))?;
    let pid_file = dir.join(format!("{name}.keepalived.pid"));
    let vrrp_pid_file = dir.join(format!("{name}.vrrp.pid"));
    let (c, p, r) = (
        conf_path.to_string_lossy().to_string(),
        pid_file.to_string_lossy().to_string(),
        vrrp_pid_file.to_string_lossy().to_string(),
    );
    let log_name = format!("{name}.keepalived");
    let mut argv = vec![
        "keepalived",
        "-f",
        &c,
        "-p",
        &p,
        "-r",
        &r,
        "--no-syslog",
        "-l",
        "-D",
        "-n",
    ];
    if realtime {
        // What systemd does for CPUSchedulingPolicy=rr, CPUSchedulingPriority=20 and
        // LimitRTTIME=1s, with util-linux's tools (each execs the next).
        argv.splice(
            0..0,
            ["prlimit", "--rttime=1000000:1000000", "chrt", "-r", "20"],
        );
    }
    let pid = lab.spawn(ns, &log_name, &argv)?;
    Ok(Keepalived {
        name: name.to_string(),
        conf: conf_path,
        pid_file,
        vrrp_pid_file,
        log: dir.join(format!("{log_name}.log")),
        pid,
    })
}

impl Keepalived {
    /// PID of the VRRP child, once it has written its pid file.
    pub fn vrrp_pid(&self) -> Option<i32> {
        fs::read_to_string(&self.vrrp_pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Waits until the VRRP child is up.
    pub fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        crate::wait_until(timeout, Duration::from_millis(10), || {
            self.vrrp_pid().is_some()
        })
        .map(|_| ())
        .with_context(|| {
            format!(
                "keepalived {} did not start: {}",
                self.name,
                self.log_tail()
            )
        })
    }

    /// Graceful stop (SIGTERM to the parent).
    pub fn stop(&self) {
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
    }

    /// Crash: SIGKILL to the VRRP child and the parent.
    pub fn crash(&self) {
        if let Some(child) = self.vrrp_pid() {
            let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
        }
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// The lab's VRRP template (a lab tool, not shipped), rendered by the one renderer.
pub const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/vrrp.conf.in");

/// One instance `VI_1` of [`TEMPLATE`], VRRP version 3; fields left at their default
/// render as nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vrrp<'a> {
    pub router_id: &'a str,
    pub iface: &'a str,
    pub priority: u8,
    pub advert_int: &'a str,
    /// The virtual address, CIDR.
    pub vip: &'a str,
    /// Lines inside the instance (notify hooks, track_script, preempt_delay).
    pub extra: &'a str,
    /// Lines inside `global_defs` (notify FIFO settings).
    pub global: &'a str,
    /// Top-level blocks (`vrrp_script` for `track_script`).
    pub scripts: &'a str,
}

impl Vrrp<'_> {
    pub fn render(&self) -> anyhow::Result<String> {
        crate::render(
            TEMPLATE,
            &[
                ("SCRIPTS", self.scripts),
                ("GLOBAL", self.global),
                ("ROUTER_ID", self.router_id),
                ("IFACE", self.iface),
                ("PRIORITY", &self.priority.to_string()),
                ("ADVERT_INT", self.advert_int),
                ("VIP", self.vip),
                ("EXTRA", self.extra),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn template_renders_every_variable() {
        let c = super::Vrrp {
            router_id: "a",
            iface: "eth0",
            priority: 150,
            advert_int: "0.1",
            vip: "192.0.2.100/24",
            extra: "    notify_master \"/bin/true\"",
            global: "    vrrp_garp_master_delay 1",
            // An & stays an & (bash 5.2 put the match in its place, unquoted).
            scripts: "vrrp_script s {\n    script \"/bin/sh -c 'sleep 1 &'\"\n}",
        }
        .render()
        .unwrap();
        assert!(!c.contains('@'), "unrendered variable:\n{c}");
        for want in [
            "priority 150",
            "192.0.2.100/24 dev eth0",
            "notify_master \"/bin/true\"",
            "vrrp_garp_master_delay 1",
            "vrrp_script s {",
            "'sleep 1 &'",
        ] {
            assert!(c.contains(want), "no {want:?} in:\n{c}");
        }
    }
}
