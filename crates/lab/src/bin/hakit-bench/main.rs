//! `make bench`: measures hakit against the tools an operator would otherwise use, side by
//! side in one run, and rewrites BENCHMARKS.md with the method, the machine and the numbers.
//!
//! Timing never comes from the tool under test: frames are timestamped by the kernel of a
//! peer namespace (tcpdump capture), process start by this harness just before `spawn`,
//! both on CLOCK_REALTIME. Runs of the two tools are interleaved so drift in machine load
//! affects both alike.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context};
use hakit_lab::{capture::Capture, Lab};

mod check;
mod failover;
mod fip;
mod garp;
mod notify;
mod platforms;
mod profiles;
mod speakers;
mod stats;
mod table;
mod uplink;

use check::*;
use failover::*;
use fip::*;
use garp::*;
use notify::*;
use platforms::*;
use profiles::*;
use speakers::speakers;
use stats::*;
use table::*;
use uplink::*;

const RUNS: usize = 30;

const SPACING_RUNS: usize = 10;

const BINARIES: [(&str, u64); 4] = [
    ("garp-burst", 1 << 20),
    ("nat-notify", 5 << 19),
    ("ha-check", 5 << 19),
    ("fip-claim", 5 << 19),
];

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    format!(
        "{} cores ({cpu}), kernel {}, {}",
        thread::available_parallelism().map_or(0, |n| n.get()),
        sh("uname", &["-r"]),
        sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    )
}

fn main() -> std::process::ExitCode {
    if let Err(e) = hakit_lab::clean_up_on_signals() {
        eprintln!("{e:#}");
        return std::process::ExitCode::from(2);
    }
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hakit-bench: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut only: Option<String> = None;
    let mut soak_secs: u64 = 600;
    let (mut static_dir, mut out) = (
        PathBuf::from("target/x86_64-unknown-linux-musl/release"),
        PathBuf::from("BENCHMARKS.md"),
    );
    while let Some(a) = args.next() {
        match a.as_str() {
            "--static-dir" => {
                static_dir = PathBuf::from(args.next().context("--static-dir needs a path")?)
            }
            "--out" => out = PathBuf::from(args.next().context("--out needs a path")?),
            "--only" => {
                only = Some(
                    args.next()
                        .context("--only needs garp|notify|fifo|check|fip|failover|profiles|platforms|linode|speakers|uplink|soak|table")?,
                )
            }
            "--soak-secs" => {
                soak_secs = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .context("--soak-secs needs a number of seconds")?
            }
            other => bail!(
                "unknown argument {other:?} (usage: hakit-bench [--static-dir DIR] [--out FILE] [--only garp|notify|fifo|check|fip|failover|profiles|platforms|linode|speakers|uplink|soak|table] [--soak-secs N])"
            ),
        }
    }
    if !hakit_lab::available("hakit-bench") {
        bail!("benchmarks build network namespaces: run as root");
    }
    let mut md = String::new();
    writeln!(md, "# hakit benchmarks\n")?;
    writeln!(
        md,
        "Written by `make bench` (do not edit by hand). Machine: {}.\n",
        machine()
    )?;
    writeln!(md, "Performance is measured here, never asserted in tests. Every comparison runs the tools side by side in one run, interleaved.\n")?;
    sizes(&mut md, &static_dir)?;
    let want = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if want("garp") {
        garp(&mut md, &static_dir.join("garp-burst"))?;
    }
    if want("notify") {
        notify(&mut md, &static_dir.join("nat-notify"))?;
    }
    if want("fifo") {
        fifo_burst(&mut md, &static_dir.join("nat-notify"))?;
    }
    if want("check") {
        check(&mut md, &static_dir.join("ha-check"))?;
    }
    if want("fip") {
        fip(&mut md, &static_dir.join("fip-claim"))?;
    }
    if want("failover") {
        failover(&mut md, &static_dir)?;
    }
    if want("profiles") {
        profiles(&mut md, &static_dir)?;
    }
    if want("platforms") {
        platforms(&mut md, &static_dir)?;
    }
    if want("linode") {
        linode(&mut md, &static_dir)?;
    }
    if want("speakers") {
        speakers(&mut md, &static_dir)?;
    }
    if want("uplink") {
        uplink(&mut md, &static_dir)?;
    }
    if want("soak") {
        soak(&mut md, &static_dir, soak_secs)?;
    }
    if want("table") {
        table(&mut md, &static_dir)?;
    }
    std::fs::write(&out, &md).with_context(|| format!("write {}", out.display()))?;
    print!("{md}");
    Ok(())
}

fn sizes(md: &mut String, dir: &Path) -> anyhow::Result<()> {
    writeln!(md, "## Static binary sizes\n")?;
    writeln!(md, "`make static`: x86_64-unknown-linux-musl, release profile (LTO, one codegen unit, `opt-level = \"z\"`, strip, panic=abort), static and non-PIE (`.cargo/config.toml`: a static-pie binary carries ~50 KB of relocations; the cost is ASLR), without unwind tables (`scripts/drop-unwind-tables.sh`: `.eh_frame` and `.gcc_except_table`, ~300 KB each; they never unwind).\n")?;
    writeln!(md, "| binary | stripped size | budget | `file` says |")?;
    writeln!(md, "|---|---|---|---|")?;
    for (name, budget) in BINARIES {
        let p = dir.join(name);
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        let kind = sh("file", &["-b", &p.to_string_lossy()]);
        let kind = kind
            .split(", ")
            .find(|k| k.contains("linked"))
            .unwrap_or("?")
            .to_string();
        writeln!(
            md,
            "| {name} | {} bytes ({:.2} MiB) | {:.2} MiB | {kind} |",
            meta.len(),
            meta.len() as f64 / 1048576.0,
            budget as f64 / 1048576.0
        )?;
    }
    writeln!(md)?;
    Ok(())
}
