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

/// The configuration for a node whose sync address is `local`, its peer's `peer`, on `iface`.
pub fn conf(dir: &std::path::Path, name: &str, local: &str, peer: &str, iface: &str) -> String {
    let d = dir.display();
    format!(
        r#"Sync {{
    Mode FTFW {{
        DisableExternalCache off
    }}
    UDP {{
        IPv4_address {local}
        IPv4_Destination_Address {peer}
        Port 3780
        Interface {iface}
        SndSocketBuffer 1249280
        RcvSocketBuffer 1249280
        Checksum on
    }}
}}
General {{
    Systemd off
    HashSize 8192
    HashLimit 65535
    LogFile {d}/{name}.conntrackd.log
    Syslog off
    LockFile {d}/{name}.conntrackd.lock
    UNIX {{
        Path {d}/{name}.conntrackd.ctl
    }}
    NetlinkBufferSize 2097152
    NetlinkBufferSizeMaxGrowth 8388608
    Filter From Userspace {{
        Protocol Accept {{
            TCP
            UDP
            ICMP
        }}
        Address Ignore {{
            IPv4_address 127.0.0.1
            IPv4_address {local}
        }}
    }}
}}
"#
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
    let dir = lab.dir().to_path_buf();
    let conf_path = dir.join(format!("{name}.conntrackd.conf"));
    fs::write(&conf_path, conf(&dir, name, local, peer, iface))?;
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
        log: dir.join(format!("{name}.conntrackd.log")),
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
