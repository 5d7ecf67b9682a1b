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
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use nix::fcntl::{Flock, FlockArg};

/// Default runtime directory.
pub const DEFAULT_DIR: &str = "/run/hakit";

/// Creates `dir` (mode 0755, parents included) if it does not exist.
pub fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("create runtime directory {}", dir.display()))
}

/// An exclusive lock held until dropped.
#[derive(Debug)]
pub struct Lock {
    _flock: Flock<fs::File>,
    path: PathBuf,
}

impl Lock {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the exclusive lock on `path` (created 0600 if missing), waiting at most `wait`.
    pub fn acquire(path: &Path, wait: Duration) -> anyhow::Result<Lock> {
        let deadline = Instant::now() + wait;
        let mut file = open_lock_file(path)?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(flock) => {
                    return Ok(Lock {
                        _flock: flock,
                        path: path.to_path_buf(),
                    });
                }
                Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                    if Instant::now() >= deadline {
                        bail!("lock {} is still held after {wait:?}", path.display());
                    }
                    file = f;
                    thread::sleep(Duration::from_millis(2));
                }
                Err((_, e)) => {
                    return Err(e).with_context(|| format!("lock {}", path.display()));
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
        .open(path)
        .with_context(|| format!("open lock file {}", path.display()))
}

/// Replaces `path` with `data` atomically, with the given mode.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // No fsync: these files live on tmpfs (/run) and must not outlive a reboot anyway;
        // the rename alone keeps readers and crashed writers consistent. An fsync cost a
        // millisecond on the failover path when the directory sat on disk.
        f.write_all(data)?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
