//! Running helper programs with a timeout, and tracking background ones.

use std::{
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

/// Runs `cmd` to completion, killing it after `timeout`; returns its output.
pub fn run(cmd: &mut Command, timeout: Duration) -> anyhow::Result<Output> {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {desc}"))?;
    // Drain pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = thread::spawn(move || read_all(out.as_mut()));
    let t_err = thread::spawn(move || read_all(err.as_mut()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{desc} timed out after {timeout:?}");
        }
        thread::sleep(Duration::from_millis(2));
    };
    Ok(Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    })
}

fn read_all<R: std::io::Read>(r: Option<&mut R>) -> Vec<u8> {
    let mut v = Vec::new();
    if let Some(r) = r {
        let _ = r.read_to_end(&mut v);
    }
    v
}

/// Runs `cmd` (30 s timeout) and fails with its stderr unless it exits 0.
pub fn run_ok(cmd: &mut Command) -> anyhow::Result<Output> {
    let desc = format!("{cmd:?}");
    let out = run(cmd, Duration::from_secs(30))?;
    if !out.status.success() {
        bail!(
            "{desc} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// A background process killed on drop (for use outside a [`crate::Lab`]).
pub struct Spawned(pub Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
