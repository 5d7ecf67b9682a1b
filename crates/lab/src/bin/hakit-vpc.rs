//! The AWS VPC model of `make chaos` (`hakit_lab::vpc`, each rule cited from AWS's
//! documentation there), around machines built elsewhere: the systemd lab's two containers.
//!
//! Usage: hakit-vpc --vpc-ns NS --switch-ns NS... --port IFNAME=ENI_KEY... --world FILE
//!                  --log FILE
//!
//! Namespace `--vpc-ns` must have the ports `lan0` (on the LAN subnet's bridge), `wan0` (on
//! the WAN subnet's bridge) and `igw0` (towards the internet). hakit-vpc does these steps:
//! 1. It makes that namespace the VPC router, the internet gateway and the EC2 endpoint
//!    (moto, from the source tree's tests/aws, which must be the working directory).
//! 2. It sets up the AWS example's world in moto. This is what the console does once:
//!    instances, ENIs, the LAN table's route, the Elastic IP on the shared secondary address.
//! 3. It writes that world as JSON to `--world`: the IDs and MACs the machines take.
//! 4. It serves IMDSv2 per node and applies EC2's state every 20 ms: the LAN route, the
//!    Elastic IP's translation, and each ENI's source/destination check on the ports of every
//!    `--switch-ns` (each `--port` names a bridge port and the world's key of the ENI behind
//!    it, e.g. `hksd1a1=primary_lan_eni`).
//!
//! What the model applies goes to `--log`. It runs until SIGTERM or SIGINT, then stops moto.

use std::{
    process::ExitCode,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::Context;
use hakit_lab::{vpc, Ns};

static STOP: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hakit-vpc: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let all = |name: &str| -> Vec<String> {
        args.windows(2)
            .filter(|w| w[0] == name)
            .map(|w| w[1].clone())
            .collect()
    };
    let one = |name: &str| -> anyhow::Result<String> {
        all(name)
            .pop()
            .with_context(|| format!("{name} missing (see the usage at the top of hakit-vpc.rs)"))
    };
    let vpc_ns = Ns {
        name: one("--vpc-ns")?,
    };
    let (world_path, log_path) = (one("--world")?, one("--log")?);
    let mut ports = Vec::new();
    for p in all("--port") {
        let (ifname, key) = p
            .split_once('=')
            .with_context(|| format!("--port {p}: IFNAME=ENI_KEY"))?;
        ports.push((ifname.to_string(), key.to_string()));
    }
    let fabric = vpc::Fabric {
        switches: all("--switch-ns")
            .into_iter()
            .map(|name| Ns { name })
            .collect(),
        ports,
    };
    anyhow::ensure!(!fabric.switches.is_empty(), "--switch-ns missing");
    // SIGTERM and SIGINT blocked in every thread and taken by one (sigwait): no handler.
    let mut sigs = nix::sys::signal::SigSet::empty();
    sigs.add(nix::sys::signal::Signal::SIGTERM);
    sigs.add(nix::sys::signal::Signal::SIGINT);
    sigs.thread_block()?;
    std::thread::spawn(move || {
        let _ = sigs.wait();
        STOP.store(true, Ordering::Relaxed);
    });

    vpc::router(&vpc_ns)?;
    fabric.apply_empty()?;
    let argv = vpc::moto_argv()?;
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut moto = vpc_ns
        .command(&argv)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting moto")?;
    let result = serve(&vpc_ns, fabric, &world_path, &log_path);
    let _ = moto.kill();
    let _ = moto.wait();
    result
}

fn serve(vpc_ns: &Ns, fabric: vpc::Fabric, world_path: &str, log_path: &str) -> anyhow::Result<()> {
    let host = vpc::EC2_URL.trim_start_matches("http://");
    hakit_lab::wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        vpc_ns
            .within(|| Ok(std::net::TcpStream::connect(host).is_ok()))
            .unwrap_or(false)
    })
    .context("moto did not start")?;
    let world = vpc::ec2_world(vpc_ns, vpc::EC2_URL)?;
    let tmp = format!("{world_path}.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&world)?)?;
    std::fs::rename(&tmp, world_path)?;
    let stop = Arc::new(AtomicBool::new(false));
    let applied = Arc::new(Mutex::new(Vec::new()));
    let threads = vpc::serve(vpc_ns, fabric, &world, stop.clone(), applied.clone())?;
    let mut written = 0;
    while !STOP.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let lines: Vec<String> = applied
            .lock()
            .map(|a| {
                a[written..]
                    .iter()
                    .map(|(t, l)| format!("{t:.3} {l}\n"))
                    .collect()
            })
            .unwrap_or_default();
        if !lines.is_empty() {
            written += lines.len();
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_path)?;
            f.write_all(lines.concat().as_bytes())?;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
