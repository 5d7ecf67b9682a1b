//! Running the programs that own their domain (`nft`, `conntrackd`, `systemctl`, user
//! commands): found with `which`, started without a shell, bounded by a timeout.
//!
//! keepalived never kills a notify hook, so a hung child must not hang us: on timeout the
//! child's whole process group is SIGKILLed. Output is captured; on failure the error names
//! the command, its exit status and the first line of its stderr, so one log line is enough
//! to act on.

use std::{
    io::{Read, Write},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context};
use log::debug;

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Ran {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The first non-empty stderr line (or stdout line), for one-line error messages.
    pub fn first_error_line(&self) -> &str {
        self.stderr
            .lines()
            .chain(self.stdout.lines())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
    }
}

/// Resolves `prog` like a shell would, without a shell: a path is taken as is, a bare name
/// is looked up on PATH (plus the sbin directories hooks often lack).
pub fn find(prog: &str) -> anyhow::Result<PathBuf> {
    if prog.contains('/') {
        return Ok(PathBuf::from(prog));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for extra in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        if !dirs.iter().any(|d| d.as_os_str() == extra) {
            dirs.push(PathBuf::from(extra));
        }
    }
    let joined = std::env::join_paths(dirs).unwrap_or_default();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    which::which_in(prog, Some(joined), cwd)
        .map_err(|_| anyhow!("{prog}: program not found on PATH"))
}

/// Runs `argv` with optional `stdin`, killing it after `timeout`. Errors only when it could
/// not run or timed out; a non-zero exit is returned in [`Ran`] (see [`run_ok`]).
pub fn run(argv: &[String], stdin: Option<&[u8]>, timeout: Duration) -> anyhow::Result<Ran> {
    let (prog, args) = argv.split_first().context("empty command")?;
    let path = find(prog)?;
    let shown = argv.join(" ");
    debug!("run: {shown}");
    let start = Instant::now();
    let mut child = Command::new(&path)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group, so a timeout kills the command and everything it started.
        .process_group(0)
        .spawn()
        .with_context(|| format!("start {shown}"))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let out_t = thread::spawn(move || drain(out_pipe.as_mut()));
    let err_t = thread::spawn(move || drain(err_pipe.as_mut()));
    let mut pause = Duration::from_micros(50);
    let status = loop {
        if let Some(s) = child
            .try_wait()
            .with_context(|| format!("wait for {shown}"))?
        {
            break s;
        }
        if start.elapsed() >= timeout {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            bail!("{shown}: timed out after {timeout:?}, killed");
        }
        thread::sleep(pause);
        // Most commands finish in a few ms; back off to 2 ms polls for slow ones.
        pause = (pause * 2).min(Duration::from_millis(2));
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    let ran = Ran {
        status,
        stdout,
        stderr,
        elapsed: start.elapsed(),
    };
    debug!("run: {shown}: {} in {:?}", ran.status, ran.elapsed);
    Ok(ran)
}

fn drain<R: Read>(r: Option<&mut R>) -> String {
    let mut v = Vec::new();
    if let Some(r) = r {
        let _ = r.read_to_end(&mut v);
    }
    String::from_utf8_lossy(&v).into_owned()
}

/// Like [`run`], but a non-zero exit is an error naming the status and the first stderr line.
pub fn run_ok(argv: &[String], stdin: Option<&[u8]>, timeout: Duration) -> anyhow::Result<Ran> {
    let ran = run(argv, stdin, timeout)?;
    if !ran.success() {
        bail!(
            "{}: {} ({})",
            argv.join(" "),
            ran.status,
            ran.first_error_line()
        );
    }
    Ok(ran)
}

/// Builds an argv from string slices.
pub fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let r = run(
            &argv(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(r.status.code(), Some(3));
        assert_eq!(r.stdout, "out\n");
        assert_eq!(r.first_error_line(), "err");
        let e = run_ok(
            &argv(&["sh", "-c", "echo boom >&2; exit 1"]),
            None,
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "sh -c echo boom >&2; exit 1: exit status: 1 (boom)"
        );
    }

    #[test]
    fn feeds_stdin() {
        let r = run_ok(
            &argv(&["cat"]),
            Some(b"table ip t {}\n"),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(r.stdout, "table ip t {}\n");
    }

    #[test]
    fn kills_the_whole_group_on_timeout() {
        let start = Instant::now();
        let e = run(
            &argv(&["sh", "-c", "sleep 30 & sleep 30"]),
            None,
            Duration::from_millis(100),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("timed out after 100ms"), "{e:#}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timeout did not stop the wait"
        );
    }

    #[test]
    fn missing_program_is_named() {
        let e = run(
            &argv(&["hakit-no-such-program"]),
            None,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "hakit-no-such-program: program not found on PATH"
        );
    }
}
