//! Packet capture in a lab namespace: tcpdump writes a pcap file, we read it back.
//!
//! tcpdump is the independent witness: what it captured is what the wire carried, decoded
//! by code nobody on this team wrote. [`read_pcap`] gives the raw frames and kernel
//! receive timestamps; [`decode`] gives tcpdump's own verbose decode (checksum verdicts).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use anyhow::{bail, Context};

use crate::Ns;

/// One captured frame.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Kernel receive time, seconds since the Unix epoch.
    pub ts: f64,
    pub data: Vec<u8>,
}

/// A running tcpdump.
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
}

impl Capture {
    /// Starts tcpdump on `iface` in `ns` with a BPF `filter`, writing to `file`; returns once
    /// tcpdump says it is listening.
    pub fn start(ns: &Ns, iface: &str, filter: &str, file: &Path) -> anyhow::Result<Capture> {
        let f = file.to_string_lossy().to_string();
        let mut argv = vec![
            "tcpdump",
            "-i",
            iface,
            "-nn",
            "-U",
            "--immediate-mode",
            "-w",
            &f,
        ];
        if !filter.is_empty() {
            argv.push(filter);
        }
        let mut child = ns
            .command(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("start tcpdump")?;
        let stderr = child.stderr.take().context("tcpdump stderr")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut cap = Capture {
            child: Some(child),
            file: file.to_path_buf(),
        };
        let mut said = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.contains("listening on") => return Ok(cap),
                Ok(line) => said.push(line),
                Err(_) => {
                    cap.kill();
                    bail!("tcpdump did not start listening: {}", said.join("; "));
                }
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops tcpdump (SIGINT, so it flushes) and reads what it captured.
    pub fn stop(mut self) -> anyhow::Result<Vec<Packet>> {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while c.try_wait()?.is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(5));
            }
        }
        read_pcap(&self.file)
    }

    pub fn file(&self) -> &Path {
        &self.file
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a classic pcap file (microsecond or nanosecond, either byte order).
pub fn read_pcap(path: &Path) -> anyhow::Result<Vec<Packet>> {
    let b = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    if b.len() < 24 {
        bail!("{} is not a pcap file ({} bytes)", path.display(), b.len());
    }
    let magic = [b[0], b[1], b[2], b[3]];
    let (le, nano) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        _ => bail!("{}: unknown pcap magic {magic:02x?}", path.display()),
    };
    let u32_at = |o: usize| -> u32 {
        let w = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let mut out = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let (sec, frac, caplen) = (u32_at(o), u32_at(o + 4), u32_at(o + 8) as usize);
        let start = o + 16;
        if start + caplen > b.len() {
            break; // truncated last record (capture killed mid-write)
        }
        let frac = if nano {
            f64::from(frac) / 1e9
        } else {
            f64::from(frac) / 1e6
        };
        out.push(Packet {
            ts: f64::from(sec) + frac,
            data: b[start..start + caplen].to_vec(),
        });
        o = start + caplen;
    }
    Ok(out)
}

/// tcpdump's own verbose decode of a capture file, one line per packet.
pub fn decode(path: &Path) -> anyhow::Result<String> {
    let out = crate::run_ok(
        std::process::Command::new("tcpdump")
            .args(["-r"])
            .arg(path)
            .args(["-nn", "-e", "-vv", "-tt"]),
    )?;
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}
