//! The namespace lab: real network topologies on one machine, for tests, `make demo` and
//! `make bench`.
//!
//! A [`Lab`] owns everything it creates: network namespaces named
//! `hakit-<pid>-<n>-<role>` (unique per process and per lab, so tests run in parallel),
//! the links inside them, the processes it started and a scratch directory. Dropping the
//! lab (on success, failure or panic) kills the processes and deletes the namespaces;
//! `make lab-clean` removes anything a killed run left behind, by the `hakit-` prefix.
//!
//! Links are created inside namespaces directly (`ip -n NS link add … netns PEER`), so the
//! host's own interfaces are never touched. Setting up topology uses iproute2 (`ip`): this
//! crate is test scaffolding, not product code, and `ip` is the reference tool. Reading
//! state back uses hakit's own netlink code inside the namespace ([`Ns::netlink`]), so a
//! poll costs a syscall rather than a process.
//!
//! Address plan: documentation ranges only (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
//! 2001:db8::/32).

pub mod bgp;
pub mod capture;
pub mod conntrackd;
pub mod digitalocean;
pub mod example;
pub mod hcloud;
pub mod imds;
pub mod impair;
pub mod keepalived;
pub mod nat;
mod process;
pub mod svg;
pub mod syslog;
pub mod vpc;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

pub use process::{run, run_ok, Spawned};

/// Namespace name prefix shared by everything the lab creates.
pub const PREFIX: &str = "hakit-";

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// Whether this process can build labs. Without root: `false` with a loud message, except
/// under CI (`CI=true`) where a skipped lab test is a failure, so this panics.
pub fn available(test: &str) -> bool {
    if std::env::var_os("HAKIT_UNIT_ONLY").is_some() {
        panic!(
            "{test} needs network namespaces but runs in make unit (root-free tests only): \
             mark it #[ignore = \"needs root (network namespaces): make integration\"]"
        );
    }
    let root = nix::unistd::geteuid().is_root();
    let ip = which("ip").is_some();
    if root && ip {
        return true;
    }
    let why = if !root {
        "namespace test, not running as root"
    } else {
        "namespace test, iproute2 (ip) not installed"
    };
    skip(test, why);
    false
}

/// Reports a test that cannot run here: a loud SKIPPED locally, a failure under CI
/// (`CI=true` or `CI=1`), where `make deps` has installed every prerequisite.
pub fn skip(test: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{test} cannot run ({why}) and CI is set: a skip is a failure");
    }
    eprintln!("\n!!!! SKIPPED {test}: {why} !!!!\n");
}

/// A program the test needs, or None after [`skip`] when it is not installed.
pub fn require(test: &str, prog: &str) -> Option<PathBuf> {
    let found = which(prog);
    if found.is_none() {
        skip(
            test,
            &format!("{prog} not installed (make deps installs it)"),
        );
    }
    found
}

/// Looks a program up on PATH (and the sbin directories, which non-login PATHs lack).
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let venv = VENV_BIN.to_string();
    let found = std::iter::once(venv.as_str())
        .chain(path.split(':'))
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.is_file());
    found
}

/// The checkout's virtual environment for the PyPI tools (moto, boto3, the AWS CLI):
/// `scripts/deps.sh` makes it (Debian 12's own pip refuses system-wide installs, PEP 668).
pub const VENV_BIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.tools/venv/bin");

/// The Python that has those tools: the virtual environment's, else the system's.
pub fn python3() -> String {
    let venv = Path::new(VENV_BIN).join("python3");
    if venv.is_file() {
        venv.to_string_lossy().into_owned()
    } else {
        "python3".into()
    }
}

/// A set of namespaces and processes, torn down on drop.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    dir: PathBuf,
    /// tmpfs mounted inside `dir` ([`Lab::tmpfs`]), unmounted at teardown.
    mounts: Vec<PathBuf>,
}

/// A network namespace of a [`Lab`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ns {
    pub name: String,
}

impl Lab {
    /// A new, empty lab with its own scratch directory.
    pub fn new() -> anyhow::Result<Lab> {
        // What a run killed with SIGKILL (or a stopped CI job) left behind is removed by
        // the next lab, whatever test, demo or benchmark starts it.
        static REAPED: std::sync::Once = std::sync::Once::new();
        REAPED.call_once(|| {
            let gone = reap_orphans();
            if !gone.is_empty() {
                eprintln!(
                    "lab: removed what exited runs left behind: {}",
                    gone.join(" ")
                );
            }
        });
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{PREFIX}{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Lab {
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
            dir,
            mounts: Vec::new(),
        })
    }

    /// Makes `dir` (inside the scratch directory) a tmpfs of its own: for what a node keeps
    /// in /run, a tmpfs on the real thing (nat-notify's runtime directory, the monitor's
    /// track file and heartbeat). On a disk they would share its stalls (a rename that
    /// frees blocks waits for a synchronous discard here), which a node never sees.
    pub fn tmpfs(&mut self, dir: &Path) -> anyhow::Result<()> {
        anyhow::ensure!(
            dir.starts_with(&self.dir),
            "{} is not in the lab",
            dir.display()
        );
        fs::create_dir_all(dir)?;
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs"])
                .arg(dir),
        )?;
        self.mounts.push(dir.to_path_buf());
        Ok(())
    }

    /// Scratch directory (config files, captures, logs), removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Creates namespace `<prefix>-<role>` with loopback up.
    pub fn ns(&mut self, role: &str) -> anyhow::Result<Ns> {
        let name = format!("{}-{role}", self.prefix);
        run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        self.namespaces.push(name.clone());
        let ns = Ns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A veth pair: `a_if` in `a`, `b_if` in `b`, both up.
    pub fn veth(&self, a: &Ns, a_if: &str, b: &Ns, b_if: &str) -> anyhow::Result<()> {
        a.ip(&[
            "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
        ])?;
        a.ip(&["link", "set", a_if, "up"])?;
        b.ip(&["link", "set", b_if, "up"])
    }

    /// A bridge `br` in `sw`, and one veth per member: `<ifname>` in the member, a port
    /// named `<role>` (truncated) on the bridge.
    pub fn bridge(&self, sw: &Ns, br: &str, members: &[(&Ns, &str)]) -> anyhow::Result<()> {
        if !sw.link_exists(br) {
            sw.ip(&[
                "link",
                "add",
                br,
                "type",
                "bridge",
                "forward_delay",
                "0",
                "stp_state",
                "0",
            ])?;
            sw.ip(&["link", "set", br, "up"])?;
        }
        for (ns, ifname) in members {
            let role = ns.name.rsplit('-').next().unwrap_or("x");
            let port: String = format!("{br}{role}").chars().take(15).collect();
            self.veth(sw, &port, ns, ifname)?;
            sw.ip(&["link", "set", &port, "master", br])?;
        }
        Ok(())
    }

    /// Starts `argv` inside `ns`; killed when the lab drops. Output goes to
    /// `<dir>/<log>.log`.
    pub fn spawn(&mut self, ns: &Ns, log: &str, argv: &[&str]) -> anyhow::Result<u32> {
        let path = self.dir.join(format!("{log}.log"));
        let out = fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
        let child = ns
            .command(argv)
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("start {argv:?} in {}", ns.name))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Sends `sig` to a process started by [`Lab::spawn`] and waits (at most `timeout`) for
    /// it to exit; returns whether it did.
    pub fn signal_and_wait(
        &mut self,
        pid: u32,
        sig: nix::sys::signal::Signal,
        timeout: Duration,
    ) -> bool {
        let Some(pos) = self.children.iter().position(|c| c.id() == pid) else {
            return true;
        };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(_)) = self.children[pos].try_wait() {
                // Already reaped by try_wait; wait() returns the cached status at once.
                let _ = self.children.remove(pos).wait();
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills every process this lab started and every process still inside its
    /// namespaces, then deletes the namespaces. Idempotent.
    pub fn teardown(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
        for ns in self.namespaces.drain(..) {
            kill_namespace(&ns);
        }
        for m in self.mounts.drain(..).rev() {
            unmount(&m);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Kills every process in namespace `name` and deletes it. The scan repeats until the
/// namespace is empty: a hook still running when the scan starts can start a daemon
/// (nat-notify restarting conntrackd with `-d`) that would otherwise outlive the namespace.
pub fn kill_namespace(name: &str) {
    for _ in 0..50 {
        let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() else {
            break;
        };
        let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    // A namespace whose last process is still exiting can refuse deletion briefly.
    for _ in 0..50 {
        let ok = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok || !Path::new("/run/netns").join(name).exists() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// For the lab's own programs (demo, chaos, bench): on SIGINT, SIGTERM or SIGHUP, remove
/// what this process created (its `hakit-<pid>-*` namespaces with every process in them,
/// its scratch directories) and exit 128+signal, instead of leaving it for `make
/// lab-clean`. Call it first in `main`, before any thread exists: the signals are blocked
/// in every thread and taken by one waiting thread (children start with an empty mask:
/// std's Command resets it).
pub fn clean_up_on_signals() -> anyhow::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(sig);
    }
    set.thread_block().context("block SIGINT/SIGTERM/SIGHUP")?;
    thread::Builder::new()
        .name("lab-signals".into())
        .spawn(move || {
            let Ok(sig) = set.wait() else { return };
            let mine = format!("{PREFIX}{}-", std::process::id());
            eprintln!("{sig}: removing this run's namespaces ({mine}*) and scratch directories");
            if let Ok(entries) = fs::read_dir("/run/netns") {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if name.starts_with(&mine) {
                        kill_namespace(&name);
                    }
                }
            }
            unmount_labs(&mine);
            for (path, value) in RESTORE.lock().map(|r| r.clone()).unwrap_or_default() {
                let _ = fs::write(&path, value);
            }
            if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().starts_with(&mine) {
                        let _ = fs::remove_dir_all(e.path());
                    }
                }
            }
            std::process::exit(128 + sig as i32);
        })
        .context("signal thread")?;
    Ok(())
}

/// Host settings a run changed (a /proc/sys file and its old value), written back by the
/// signal handler of [`clean_up_on_signals`]; the run itself restores them when it ends.
static RESTORE: std::sync::Mutex<Vec<(PathBuf, String)>> = std::sync::Mutex::new(Vec::new());

/// Notes that `path` held `value` before this run changed it: a signal puts it back.
pub fn restore_on_signal(path: &Path, value: &str) {
    if let Ok(mut r) = RESTORE.lock() {
        r.push((path.to_path_buf(), value.to_string()));
    }
}

/// Unmounts (lazily) `dir`.
fn unmount(dir: &Path) {
    let _ = Command::new("umount")
        .arg("-l")
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status();
}

/// Unmounts every mount inside a scratch directory whose name starts with `prefix`
/// (a killed run's tmpfs), so the directories can be removed.
pub fn unmount_labs(prefix: &str) {
    let base = std::env::temp_dir().join(prefix);
    let base = base.to_string_lossy().to_string();
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&base))
        .collect();
    // Deepest first.
    points.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in points {
        unmount(Path::new(m));
    }
}

/// Removes every namespace with the lab prefix (for `make lab-clean`), and unmounts what
/// killed runs left mounted in their scratch directories.
/// The `hakit-<pid>-` prefix of a lab name whose process no longer runs (`None` for a
/// live process's lab, or a name not of that shape).
fn orphan_prefix(name: &str) -> Option<String> {
    let pid: i32 = name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()?;
    if pid <= 0 {
        return None;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Err(nix::errno::Errno::ESRCH) => Some(format!("{PREFIX}{pid}-")),
        _ => None,
    }
}

/// Removes the namespaces (and the processes in them), tmpfs mounts and scratch directories
/// of labs whose process has exited without cleaning up: named `hakit-<pid>-…` for a pid
/// that no longer runs. Labs of running processes are left alone, so concurrent runs are
/// safe. Returns the namespaces removed.
pub fn reap_orphans() -> Vec<String> {
    let names = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect()
    };
    let mut removed = Vec::new();
    for name in names(Path::new("/run/netns")) {
        if orphan_prefix(&name).is_some() {
            kill_namespace(&name);
            removed.push(name);
        }
    }
    let tmp = std::env::temp_dir();
    for name in names(&tmp) {
        if let Some(prefix) = orphan_prefix(&name) {
            unmount_labs(&prefix);
            let _ = fs::remove_dir_all(tmp.join(&name));
        }
    }
    removed
}

pub fn clean_all() -> Vec<String> {
    unmount_labs(PREFIX);
    let mut removed = Vec::new();
    if let Ok(entries) = fs::read_dir("/run/netns") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(PREFIX) {
                kill_namespace(&name);
                removed.push(name);
            }
        }
    }
    removed
}

impl Ns {
    /// A command that runs `argv` inside this namespace.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Runs `argv` here with a timeout and returns its output, whatever the status.
    pub fn exec(&self, argv: &[&str]) -> anyhow::Result<Output> {
        run(&mut self.command(argv), Duration::from_secs(60))
    }

    /// `ip -n NS ARGS…`, failing on a non-zero status.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        run_ok(Command::new("ip").arg("-n").arg(&self.name).args(args)).map(|_| ())
    }

    fn link_exists(&self, name: &str) -> bool {
        self.netlink(|nl| nl.link_by_name(name))
            .ok()
            .flatten()
            .is_some()
    }

    /// Runs `f` with a netlink socket opened inside this namespace (on a helper thread
    /// that joined the namespace, so the caller's own namespace is untouched).
    pub fn netlink<R: Send>(
        &self,
        f: impl FnOnce(&hakit_net::Netlink) -> anyhow::Result<R> + Send,
    ) -> anyhow::Result<R> {
        self.within(|| f(&hakit_net::Netlink::open()?))
    }

    /// Moves the calling thread into this namespace (for a thread of its own).
    pub fn enter(&self) -> anyhow::Result<()> {
        let path = Path::new("/run/netns").join(&self.name);
        let fd = fs::File::open(&path).with_context(|| format!("open {}", path.display()))?;
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("enter namespace {}", self.name))
    }

    /// Runs `f` on a thread inside this namespace.
    pub fn within<R: Send>(
        &self,
        f: impl FnOnce() -> anyhow::Result<R> + Send,
    ) -> anyhow::Result<R> {
        thread::scope(|s| {
            s.spawn(|| {
                self.enter()?;
                f()
            })
            .join()
            .unwrap_or_else(|_| bail!("thread inside {} panicked", self.name))
        })
    }

    /// Whether `ip` is on `ifname` here.
    pub fn has_addr(&self, ifname: &str, ip: std::net::IpAddr) -> anyhow::Result<bool> {
        self.netlink(|nl| {
            let Some(link) = nl.link_by_name(ifname)? else {
                return Ok(false);
            };
            Ok(nl.addresses(Some(link.index))?.iter().any(|a| a.addr == ip))
        })
    }

    /// The MAC of `ifname` here.
    pub fn mac(&self, ifname: &str) -> anyhow::Result<hakit_net::Mac> {
        self.netlink(|nl| {
            nl.link_by_name(ifname)?
                .and_then(|l| l.mac)
                .with_context(|| format!("{ifname} has no MAC"))
        })
    }

    /// The neighbour entry for `ip` here, if any.
    pub fn neighbour(&self, ip: std::net::IpAddr) -> anyhow::Result<Option<hakit_net::Neighbour>> {
        self.netlink(|nl| Ok(nl.neighbours(None)?.into_iter().find(|n| n.addr == ip)))
    }
}

/// `keepalived/render`, the one renderer of hakit's templates: hakit-setup renders a node's
/// files with it, an operator their own, and the lab and the tests theirs.
pub const RENDER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../keepalived/render");

/// `template` (a path, or a name under `keepalived/`) rendered by [`RENDER`] with exactly
/// its variables: a missing one or one it does not use is an error, as for an operator.
pub fn render(template: &str, vars: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut argv = vec![RENDER.to_string(), template.to_string()];
    argv.extend(vars.iter().map(|(k, v)| format!("{k}={v}")));
    let out = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .with_context(|| format!("run {RENDER}"))?;
    if !out.status.success() {
        bail!(
            "render {template}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).context("render: not UTF-8")
}

/// Polls `cond` every `step` until it holds or `timeout` passes; returns the time it took.
pub fn wait_until(
    timeout: Duration,
    step: Duration,
    mut cond: impl FnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return None;
        }
        thread::sleep(step);
    }
}

/// A scratch directory for one test, `$TMPDIR/hakit-<tag>-<pid>`, empty at the start and
/// removed when dropped: also when the test fails (an assertion unwinds through the drop).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("hakit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Unix time now, in seconds.
pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    /// make unit runs only root-free tests: a namespace test that is not #[ignore]d
    /// reaches `available` there and fails, instead of passing as a skip.
    #[test]
    #[should_panic(expected = "runs in make unit")]
    fn a_namespace_test_left_in_make_unit_fails() {
        std::env::set_var("HAKIT_UNIT_ONLY", "1");
        super::available("a_namespace_test_left_in_make_unit_fails");
    }
}
