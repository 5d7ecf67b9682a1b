//! The runtime directory: locks and recorded state that must survive between hook runs.
//!
//! keepalived starts notify hooks without waiting for them, so two hooks for the same
//! instance can run at once. They serialise on an exclusive `flock(2)` under the runtime
//! directory (default `/run/hakit`, a tmpfs: state does not outlive a reboot, and must not).
//! Files are replaced atomically (write to a temporary file, rename) so a reader, or a
//! crash in the middle, never sees half a file.

use std::{
    fs,
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};

/// Default runtime directory.
pub const DEFAULT_DIR: &str = "/run/hakit";

/// Creates `dir` (mode 0755, parents included) if it does not exist. The mode is set
/// explicitly: keepalived runs its scripts with umask 0177, which would otherwise make a
/// fresh `/run/hakit` `drw-------` (unusable, even for listing).
pub fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(0o755)))
        .with_context(|| format!("create runtime directory {}", dir.display()))
}

/// Creates `dir` like [`ensure_dir`] and refuses it (a usage error: nothing is written) when
/// another user could plant files or links in it: it must be a real directory, not a link,
/// owned by the caller (root) and not writable by group or others.
pub fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    ensure_dir(dir)?;
    let m = fs::symlink_metadata(dir).with_context(|| format!("stat {}", dir.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    use std::os::unix::fs::MetadataExt;
    let why = if m.file_type().is_symlink() {
        Some("is a symbolic link".to_string())
    } else if !m.is_dir() {
        Some("is not a directory".to_string())
    } else if m.uid() != me {
        Some(format!("belongs to uid {}, not {me}", m.uid()))
    } else if m.mode() & 0o022 != 0 {
        Some(format!(
            "is writable by group or others (mode {:o})",
            m.mode() & 0o7777
        ))
    } else {
        None
    };
    match why {
        Some(w) => Err(crate::usage_error(format!(
            "runtime directory {} {w}: refusing it (another user could plant files there)",
            dir.display()
        ))),
        None => Ok(()),
    }
}

/// How strictly [`read_file`] checks a file before reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Configuration: a regular file (a link to one is fine), not larger than the cap.
    Config,
    /// A secret (API token), as OpenSSH's StrictModes checks keys: a regular file that is
    /// not a link, owned by root or the caller, mode 0600 or stricter, in a directory no
    /// other user can write.
    Secret,
}

/// Reads a small file without ever blocking or following a planted link: the open is
/// non-blocking (a FIFO named as a config or token file once hung a claim past its
/// deadline), the type and size are checked on the open file (`/dev/zero` as a config file
/// exhausted memory), and at most `cap` bytes are read. Every refusal is a usage error.
pub fn read_file(path: &Path, cap: u64, trust: Trust) -> anyhow::Result<String> {
    let what = match trust {
        Trust::Config => "config",
        Trust::Secret => "token file",
    };
    read_checked(path, cap, trust, what)?
        .ok_or_else(|| crate::usage_error(format!("{what} {}: does not exist", path.display())))
}

/// [`read_file`] with [`Trust::Secret`]'s checks for a file that may be absent (`Ok(None)`),
/// named `what` in refusals: the AWS shared credentials and config files and the web
/// identity token, which say who fip-claim acts as.
pub fn read_secret_if_exists(path: &Path, cap: u64, what: &str) -> anyhow::Result<Option<String>> {
    read_checked(path, cap, Trust::Secret, what)
}

fn read_checked(path: &Path, cap: u64, trust: Trust, what: &str) -> anyhow::Result<Option<String>> {
    use std::{io::Read, os::unix::fs::MetadataExt};
    let refuse = |why: String| crate::usage_error(format!("{what} {}: {why}", path.display()));
    let mut flags = nix::fcntl::OFlag::O_NONBLOCK.bits();
    if trust == Trust::Secret {
        flags |= libc_o_nofollow();
    }
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                None
            } else if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
                Some(refuse("is a symbolic link (refused for secrets)".into()))
            } else {
                Some(refuse(e.to_string()))
            }
        });
    let mut f = match f {
        Ok(f) => f,
        Err(None) => return Ok(None),
        Err(Some(e)) => return Err(e),
    };
    let m = f.metadata().map_err(|e| refuse(e.to_string()))?;
    if !m.is_file() {
        return Err(refuse("is not a regular file".into()));
    }
    if m.len() > cap {
        return Err(refuse(format!("is {} bytes, more than {cap}", m.len())));
    }
    if trust == Trust::Secret {
        let me = nix::unistd::geteuid().as_raw();
        if m.uid() != 0 && m.uid() != me {
            return Err(refuse(format!("belongs to uid {}, not root", m.uid())));
        }
        if m.mode() & 0o077 != 0 {
            return Err(refuse(format!(
                "is readable by group or others (mode {:o}): chmod 600 it",
                m.mode() & 0o777
            )));
        }
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let pm = fs::metadata(parent).map_err(|e| refuse(e.to_string()))?;
        if pm.mode() & 0o022 != 0 || (pm.uid() != 0 && pm.uid() != me) {
            return Err(refuse(format!(
                "lies in {}, which another user can write",
                parent.display()
            )));
        }
    }
    let mut text = String::new();
    (&mut f)
        .take(cap + 1)
        .read_to_string(&mut text)
        .map_err(|e| refuse(e.to_string()))?;
    if text.len() as u64 > cap {
        return Err(refuse(format!("is more than {cap} bytes")));
    }
    Ok(Some(text))
}

/// Why [`Lock::acquire_unless`] returned without the lock.
#[derive(Debug)]
pub enum LockWait {
    /// The caller's check said to give way (its reason).
    GaveWay(String),
    /// The lock file cannot be opened or created (read-only or full file system).
    Unavailable(anyhow::Error),
    Failed(anyhow::Error),
}

/// [`read_file`] for binary content (a PEM bundle): a regular file, at most `cap` bytes,
/// opened without blocking. Refusals are usage errors.
pub fn read_file_bytes(path: &Path, cap: u64) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let refuse = |why: String| crate::usage_error(format!("{}: {why}", path.display()));
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(|e| refuse(e.to_string()))?;
    let m = f.metadata().map_err(|e| refuse(e.to_string()))?;
    if !m.is_file() || m.len() > cap {
        return Err(refuse(format!("not a regular file of at most {cap} bytes")));
    }
    let mut v = Vec::new();
    (&mut f)
        .take(cap + 1)
        .read_to_end(&mut v)
        .map_err(|e| refuse(e.to_string()))?;
    Ok(v)
}

/// An exclusive lock held until dropped.
#[derive(Debug)]
pub struct Lock {
    _flock: Flock<fs::File>,
}

impl Lock {
    /// Takes the exclusive lock on `path` (created 0600 if missing), waiting at most `wait`.
    pub fn acquire(path: &Path, wait: Duration) -> anyhow::Result<Lock> {
        Lock::acquire_unless(path, wait, &|| None).map_err(|e| match e {
            LockWait::Failed(e) | LockWait::Unavailable(e) => e,
            LockWait::GaveWay(why) => anyhow::anyhow!("{why}"),
        })
    }

    /// Like [`Lock::acquire`], but gives way (without the lock) as soon as `give_way` says
    /// why, checked every 20 ms while waiting: a hook that a newer state superseded must
    /// not keep waiting, and so must not give up the newer one later.
    pub fn acquire_unless(
        path: &Path,
        wait: Duration,
        give_way: &dyn Fn() -> Option<String>,
    ) -> Result<Lock, LockWait> {
        let deadline = Instant::now() + wait;
        let mut next_check = Instant::now() + Duration::from_millis(20);
        let mut file = open_lock_file(path).map_err(LockWait::Unavailable)?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(flock) => {
                    return Ok(Lock { _flock: flock });
                }
                Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                    if Instant::now() >= deadline {
                        return Err(LockWait::Failed(anyhow::anyhow!(
                            "lock {} is still held after {wait:?}",
                            path.display()
                        )));
                    }
                    if Instant::now() >= next_check {
                        next_check = Instant::now() + Duration::from_millis(20);
                        if let Some(why) = give_way() {
                            return Err(LockWait::GaveWay(why));
                        }
                    }
                    file = f;
                    thread::sleep(Duration::from_millis(2));
                }
                Err((_, e)) => {
                    return Err(LockWait::Failed(
                        anyhow::Error::from(e).context(format!("lock {}", path.display())),
                    ));
                }
            }
        }
    }
}

fn open_lock_file(path: &Path) -> anyhow::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        // A link planted at the lock's name is refused (ELOOP), never followed.
        .custom_flags(libc_o_nofollow())
        .open(path)
        .with_context(|| format!("open lock file {}", path.display()))
}

/// Replaces `path` with `data` atomically, with exactly the given mode.
///
/// The temporary file gets an unpredictable name and is created with `O_EXCL|O_NOFOLLOW`,
/// so a link planted in a directory another user can write (node_exporter's textfile
/// directory belongs to `prometheus`) is never followed; the mode is set with `fchmod`, so
/// the caller's umask (keepalived runs scripts with 0177) cannot make a metrics file
/// unreadable to the exporter. `rename(2)` replaces a link at `path` itself, never its
/// target.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let mut last = None;
    for _ in 0..8 {
        let tmp = dir.join(format!(
            ".{}.tmp.{:016x}",
            name.to_string_lossy(),
            random_u64()
        ));
        let mut f = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc_o_nofollow())
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("write {}", path.display())),
        };
        let res = (|| {
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            // No fsync: these files live on tmpfs (/run) and must not outlive a reboot
            // anyway; the rename alone keeps readers and crashed writers consistent. An
            // fsync cost a millisecond on the failover path when the directory sat on disk.
            f.write_all(data)?;
            fs::rename(&tmp, path)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        return res.with_context(|| format!("write {}", path.display()));
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
        .with_context(|| format!("write {}", path.display()))
}

fn libc_o_nofollow() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits()
}

/// 64 unpredictable bits for a temporary name (the kernel's CSPRNG; a clock-derived
/// fallback only if /dev/urandom cannot be read, where `O_EXCL` still keeps us safe).
fn random_u64() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return u64::from_ne_bytes(b);
    }
    let t = crate::clock::since_epoch();
    (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hakit-rt-{tag}-{}", std::process::id()));
        ensure_dir(&d).unwrap();
        d
    }

    #[test]
    fn lock_is_exclusive_until_dropped() {
        let d = tmpdir("lock");
        let p = d.join("vi_1.lock");
        let held = Lock::acquire(&p, Duration::ZERO).unwrap();
        let err = Lock::acquire(&p, Duration::from_millis(20)).unwrap_err();
        assert!(format!("{err:#}").contains("still held"), "{err:#}");
        drop(held);
        Lock::acquire(&p, Duration::ZERO).unwrap();
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmpdir("atomic");
        let p = d.join("state");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(&d).unwrap().count(),
            1,
            "no temporary file left"
        );
        let _ = fs::remove_dir_all(&d);
    }

    /// keepalived runs hooks with umask 0177: the metrics file must still come out 0644,
    /// or node_exporter (user prometheus) cannot read it.
    #[test]
    fn atomic_write_mode_ignores_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmpdir("umask");
        let p = d.join("m.prom");
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let res = write_atomic(&p, b"x 1\n", 0o644);
        let sub = d.join("run-hakit");
        let made = ensure_dir(&sub);
        nix::sys::stat::umask(old);
        res.unwrap();
        made.unwrap();
        assert_eq!(
            fs::metadata(&sub).unwrap().permissions().mode() & 0o777,
            0o755,
            "a runtime directory created under keepalived's umask"
        );
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn files_are_read_without_blocking_following_or_exhausting() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmpdir("files");
        let tok = d.join("token");
        fs::write(&tok, "abc\n").unwrap();
        fs::set_permissions(&tok, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_file(&tok, 4096, Trust::Secret).unwrap(), "abc\n");
        // A link to a root-only file is not a token.
        let link = d.join("link");
        std::os::unix::fs::symlink(&tok, &link).unwrap();
        let e = read_file(&link, 4096, Trust::Secret).unwrap_err();
        assert!(format!("{e:#}").contains("symbolic link"), "{e:#}");
        // Readable by others, too large, a FIFO, a device: refused at once.
        fs::set_permissions(&tok, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            format!("{:#}", read_file(&tok, 4096, Trust::Secret).unwrap_err())
                .contains("group or others")
        );
        assert!(
            format!("{:#}", read_file(&tok, 2, Trust::Config).unwrap_err()).contains("more than 2")
        );
        let fifo = d.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let t = Instant::now();
        assert!(
            format!("{:#}", read_file(&fifo, 4096, Trust::Config).unwrap_err())
                .contains("not a regular file")
        );
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(read_file(Path::new("/dev/zero"), 4096, Trust::Config).is_err());
        // A token in a directory others can write is refused.
        fs::set_permissions(&tok, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            format!("{:#}", read_file(&tok, 4096, Trust::Secret).unwrap_err())
                .contains("another user can write")
        );
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn runtime_dirs_others_can_write_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmpdir("private");
        let open = d.join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure_private_dir(&open).unwrap_err();
        assert!(
            format!("{e:#}").contains("writable by group or others"),
            "{e:#}"
        );
        let link = d.join("link");
        std::os::unix::fs::symlink(&open, &link).unwrap();
        assert!(format!("{:#}", ensure_private_dir(&link).unwrap_err()).contains("symbolic link"));
        ensure_private_dir(&d.join("fresh")).unwrap();
        // A lock file planted as a link is refused, and its target stays untouched.
        let victim = d.join("victim");
        fs::write(&victim, b"x").unwrap();
        std::os::unix::fs::symlink(&victim, d.join("vi.lock")).unwrap();
        assert!(Lock::acquire(&d.join("vi.lock"), Duration::ZERO).is_err());
        let _ = fs::remove_dir_all(&d);
    }

    /// A link planted where the final file goes is replaced, never followed: its target
    /// keeps its content.
    #[test]
    fn atomic_write_never_follows_a_planted_link() {
        let d = tmpdir("link");
        let victim = d.join("victim");
        fs::write(&victim, b"secret").unwrap();
        let p = d.join("m.prom");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        write_atomic(&p, b"x 1\n", 0o644).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"secret");
        assert!(!fs::symlink_metadata(&p).unwrap().file_type().is_symlink());
        let _ = fs::remove_dir_all(&d);
    }
}
