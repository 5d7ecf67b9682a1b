//! The processes on this host, read from `/proc`: what `nat-notify stop --all` (is any
//! keepalived left?), `nat-notify status` (the FIFO readers) and the monitor's `service`
//! probe look for. Kernel threads (no argv) and processes that vanish while being read are
//! skipped.

/// Every PID in `/proc`.
pub fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc").map_or_else(
        |_| Vec::new(),
        |d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .collect()
        },
    )
}

/// The first process whose `comm` (the kernel's 15-byte name) is `name`.
pub fn find_comm(name: &str) -> Option<u32> {
    pids().into_iter().find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == name)
    })
}

/// Every process's PID and argv.
pub fn with_argv() -> Vec<(u32, Vec<String>)> {
    pids()
        .into_iter()
        .filter_map(|pid| {
            let c = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv: Vec<String> = c
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (!argv.is_empty()).then_some((pid, argv))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_found_by_name_and_argv() {
        // By PID, not /proc/self: under qemu-user (the arm64 tests) /proc/self is the
        // emulator's view, /proc/PID the kernel's, whose argv starts with qemu.
        let me = std::process::id();
        assert!(pids().contains(&me));
        let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).unwrap();
        assert!(find_comm(comm.trim_end()).is_some());
        assert_eq!(find_comm("no-such-process-name"), None);
        let ours = with_argv().into_iter().find(|(p, _)| *p == me);
        let (_, argv) = ours.expect("this process listed");
        let exe = std::env::args().next().unwrap();
        assert!(argv.contains(&exe), "{argv:?} lacks {exe}");
    }
}
