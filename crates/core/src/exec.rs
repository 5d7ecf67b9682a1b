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

/// Whether an environment variable holds a secret, by its name: a token, a secret key, a
/// password, credentials (every provider's: `HCLOUD_TOKEN`, `LINODE_CLI_TOKEN`,
/// `DIGITALOCEAN_ACCESS_TOKEN`, `AWS_SECRET_ACCESS_KEY`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SESSION_TOKEN`...). A rule, not a list: a provider declares the variables it reads
/// in its own file, and a new one is kept from children without an edit here (the
/// provider crate's test holds each of them to this rule).
pub fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "ACCESS_KEY",
        "API_KEY",
        "APIKEY",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// Asked every 50 ms while a child runs: `Some(reason)` stops it, its whole process
/// group, at once (a transition that a newer state superseded must not keep the instance
/// lock, nor finish after the newer one, for the rest of a slow command).
pub type Stop<'a> = &'a dyn Fn() -> Option<String>;

/// The [`Stop`] of a command nothing supersedes.
pub fn never() -> Option<String> {
    None
}

/// Runs `argv` with optional `stdin`, killing it after `timeout`. Errors only when it could
/// not run or timed out; a non-zero exit is returned in [`Ran`] (see [`run_ok`]).
///
/// The timeout bounds the whole call: once the command has exited, output still held open
/// by something it left running (`sh -c 'daemon &'`, init scripts) is read only as far as
/// it is already there, never waited for.
///
/// Output is read to the end; a command that prints more than [`OUTPUT_CAP`] on stdout is
/// an error, never a cut text handed to a parser (see [`run_until`] for another limit).
pub fn run(argv: &[String], stdin: Option<&[u8]>, timeout: Duration) -> anyhow::Result<Ran> {
    run_until(argv, stdin, timeout, OUTPUT_CAP, &never)
}

/// [`run`] with its own stdout limit `cap` (`nft -j list ruleset` on a gateway with big
/// sets may legitimately print more than the default; over `cap` is an error naming it),
/// stopped as soon as `stop` gives a reason.
pub fn run_until(
    argv: &[String],
    stdin: Option<&[u8]>,
    timeout: Duration,
    cap: usize,
    stop: Stop,
) -> anyhow::Result<Ran> {
    spawn_and_wait(argv, stdin, timeout, false, stop, cap)
}

/// [`run_until`] that fails on a non-zero exit, like [`run_ok`].
pub fn run_ok_until(
    argv: &[String],
    stdin: Option<&[u8]>,
    timeout: Duration,
    cap: usize,
    stop: Stop,
) -> anyhow::Result<Ran> {
    ok_or_error(argv, run_until(argv, stdin, timeout, cap, stop)?)
}

/// [`run_ok`] for the one kind of child documented to need the provider credentials:
/// `ha-check watch`'s takeover command (typically `fip-claim`, which reads them).
pub fn run_ok_with_credentials(argv: &[String], timeout: Duration) -> anyhow::Result<Ran> {
    ok_or_error(
        argv,
        spawn_and_wait(argv, None, timeout, true, &never, OUTPUT_CAP)?,
    )
}

fn spawn_and_wait(
    argv: &[String],
    stdin: Option<&[u8]>,
    timeout: Duration,
    credentials: bool,
    stop: Stop,
    cap: usize,
) -> anyhow::Result<Ran> {
    let (prog, args) = argv.split_first().context("empty command")?;
    let path = find(prog)?;
    let shown = argv.join(" ");
    crate::debug!("run: {shown}");
    let start = Instant::now();
    let mut cmd = Command::new(&path);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group, so a timeout kills the command and everything it started.
        .process_group(0);
    if !credentials {
        // Read once by hakit, never handed to a child (`nft`, `systemctl`, a conntrackd
        // daemon that would keep them for life, user commands).
        for (name, _) in std::env::vars_os() {
            if is_secret(&name.to_string_lossy()) {
                cmd.env_remove(name);
            }
        }
    }
    default_signals(&mut cmd);
    let mut child = cmd.spawn().with_context(|| format!("start {shown}"))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let mut out = Output::new(child.stdout.take(), cap);
    let mut err = Output::new(child.stderr.take(), STDERR_CAP);
    let mut pause = Duration::from_micros(50);
    let mut next_stop_check = start + Duration::from_millis(50);
    let kill = |child: &mut std::process::Child| {
        let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
    };
    let status = loop {
        if let Some(s) = child
            .try_wait()
            .with_context(|| format!("wait for {shown}"))?
        {
            break s;
        }
        if start.elapsed() >= timeout {
            kill(&mut child);
            bail!("{shown}: timed out after {timeout:?}, killed");
        }
        if Instant::now() >= next_stop_check {
            next_stop_check = Instant::now() + Duration::from_millis(50);
            if let Some(why) = stop() {
                kill(&mut child);
                bail!("{shown}: stopped, {why}");
            }
        }
        // Wait for output or the next status check, whichever comes first.
        wait_and_read(&mut out, &mut err, pause);
        // Most commands finish in a few ms; back off to 2 ms polls for slow ones.
        pause = (pause * 2).min(Duration::from_millis(2));
    };
    // The command has exited: take what its output pipes already hold (a background child
    // may keep them open for ever), up to the rest of the timeout for a writer that is
    // still flushing.
    let grace = Instant::now()
        + timeout
            .saturating_sub(start.elapsed())
            .min(Duration::from_millis(50));
    while !(out.done && err.done) && Instant::now() < grace {
        wait_and_read(&mut out, &mut err, Duration::from_millis(5));
    }
    if out.over > 0 {
        bail!(
            "{shown}: printed more than {cap} bytes ({} in all): not used",
            cap + out.over
        );
    }
    let ran = Ran {
        status,
        stdout: out.text(),
        stderr: err.text(),
        elapsed: start.elapsed(),
    };
    crate::debug!("run: {shown}: {} in {:?}", ran.status, ran.elapsed);
    Ok(ran)
}

/// Children start with the default disposition of the signals a FIFO reader ignores
/// (SIG_IGN survives exec: a daemon an `up` command starts could not be stopped with
/// SIGTERM) and with no signal blocked.
fn default_signals(cmd: &mut Command) {
    use nix::sys::signal::Signal;
    hakit_sys::signal::defaults_in_child(
        cmd,
        &[
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGINT,
            Signal::SIGPIPE,
        ],
    );
}

/// A child's output pipe, read without blocking, to the end: up to `cap` bytes are kept,
/// the rest counted in `over` (stdout over its cap is an error; stderr is only ever shown,
/// and a cut message is still a message).
struct Output<R> {
    pipe: Option<R>,
    data: Vec<u8>,
    cap: usize,
    over: usize,
    done: bool,
}

/// The default limit of a command's stdout.
pub const OUTPUT_CAP: usize = 1 << 20;
/// What is kept of a command's stderr (for error messages).
const STDERR_CAP: usize = 64 << 10;

impl<R: Read + std::os::fd::AsFd> Output<R> {
    fn new(pipe: Option<R>, cap: usize) -> Self {
        if let Some(p) = &pipe {
            use nix::fcntl::{fcntl, FcntlArg, OFlag};
            let fd = p.as_fd();
            if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
                let _ = fcntl(
                    fd,
                    FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
                );
            }
        }
        let done = pipe.is_none();
        Output {
            pipe,
            data: Vec::new(),
            cap,
            over: 0,
            done,
        }
    }

    fn read_available(&mut self) {
        let Some(p) = self.pipe.as_mut() else { return };
        let mut buf = [0u8; 8192];
        loop {
            match p.read(&mut buf) {
                Ok(0) => {
                    self.done = true;
                    self.pipe = None;
                    return;
                }
                Ok(n) => {
                    let room = self.cap.saturating_sub(self.data.len());
                    self.data.extend_from_slice(&buf[..n.min(room)]);
                    self.over = self.over.saturating_add(n.saturating_sub(room));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.done = true;
                    self.pipe = None;
                    return;
                }
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.pipe.as_ref().filter(|_| !self.done).map(|p| p.as_fd())
    }
}

/// Waits up to `wait` for either pipe to be readable, then reads what both hold.
fn wait_and_read<A, B>(a: &mut Output<A>, b: &mut Output<B>, wait: Duration)
where
    A: Read + std::os::fd::AsFd,
    B: Read + std::os::fd::AsFd,
{
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    {
        let mut fds: Vec<PollFd> = [a.fd(), b.fd()]
            .into_iter()
            .flatten()
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        if fds.is_empty() {
            thread::sleep(wait);
        } else {
            let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
            let _ = poll(&mut fds, PollTimeout::from(ms));
        }
    }
    a.read_available();
    b.read_available();
}

/// Like [`run`], but a non-zero exit is an error naming the status and the first stderr line.
pub fn run_ok(argv: &[String], stdin: Option<&[u8]>, timeout: Duration) -> anyhow::Result<Ran> {
    ok_or_error(argv, run(argv, stdin, timeout)?)
}

fn ok_or_error(argv: &[String], ran: Ran) -> anyhow::Result<Ran> {
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

    /// A command that leaves a background child holding its stdout open (init scripts,
    /// `sh -c 'daemon &'`) returns when the command exits, not when the child lets go.
    #[test]
    fn a_background_child_holding_the_pipes_does_not_hold_us() {
        let start = Instant::now();
        let r = run(
            &argv(&["sh", "-c", "echo started; sleep 5 & exit 0"]),
            None,
            Duration::from_secs(3),
        )
        .unwrap();
        assert!(r.success());
        assert_eq!(r.stdout, "started\n");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "waited {:?} for the background child",
            start.elapsed()
        );
    }

    /// Children get SIGTERM back even when we ignore it (the FIFO reader does), and none of
    /// the provider secrets in our environment.
    #[test]
    fn children_get_default_signals_and_no_secrets() {
        use nix::sys::signal::Signal;
        let old = hakit_sys::signal::ignore(Signal::SIGHUP).unwrap();
        // Secrets in our own environment, as token variables would be (no other test of
        // this binary reads or writes them): a provider's, and one of a provider hakit does
        // not have yet (the rule keeps it too).
        std::env::set_var("HCLOUD_TOKEN", "hakit-test-secret");
        std::env::set_var("EXAMPLECLOUD_API_TOKEN", "hakit-test-secret-2");
        std::env::set_var("HAKIT_TEST_PLAIN", "hakit-test-plain");
        let r = run(
            &argv(&["sh", "-c", "grep -E '^SigIgn' /proc/self/status; env"]),
            None,
            Duration::from_secs(5),
        );
        let _ = hakit_sys::signal::restore(Signal::SIGHUP, old);
        let r = r.unwrap();
        let ign = r
            .stdout
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap();
        let mask = u64::from_str_radix(ign, 16).unwrap();
        assert_eq!(
            mask & (1 << (libc_sighup() - 1)),
            0,
            "SIGHUP still ignored: {ign}"
        );
        for v in ["HCLOUD_TOKEN", "EXAMPLECLOUD_API_TOKEN"] {
            assert!(
                !r.stdout.contains(&format!("{v}=")),
                "{v} reached the child"
            );
        }
        assert!(!r.stdout.contains("hakit-test-secret"));
        // Not everything is removed: a variable that is no secret reaches the child.
        assert!(r.stdout.contains("HAKIT_TEST_PLAIN=hakit-test-plain"));
    }

    fn libc_sighup() -> i32 {
        nix::sys::signal::Signal::SIGHUP as i32
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

    /// Output over the limit is an error, never a cut text for a parser; under a larger
    /// limit the same output is read whole (and the child is never left blocked on a full
    /// pipe: the 2 MiB are read to the end either way).
    #[test]
    fn output_over_the_limit_fails_loudly() {
        let big = argv(&["sh", "-c", "head -c 2097152 /dev/zero | tr '\\0' x"]);
        let e = run(&big, None, Duration::from_secs(10)).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("printed more than 1048576 bytes (2097152 in all): not used"),
            "{e}"
        );
        let r = run_until(&big, None, Duration::from_secs(10), 4 << 20, &never).unwrap();
        assert_eq!(r.stdout.len(), 2 << 20);
        assert!(r.stdout.bytes().all(|b| b == b'x'));
    }
}
