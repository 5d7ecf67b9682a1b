//! `make demo`: a real keepalived VIP failover between two namespaces, with timings.
//!
//! Topology (documentation addresses only):
//!
//! ```text
//!   node a 192.0.2.1 ─┐                 ┌─ client 192.0.2.50 (pings the VIP every 10 ms)
//!                     ├── bridge (sw) ──┤
//!   node b 192.0.2.2 ─┘                 │
//!          VIP 192.0.2.100/24 (VRRP v3, advert 100 ms; garp-burst as notify_master)
//! ```
//!
//! Scenarios: a graceful stop of the master, the old master returning (preemption), a
//! crash (both keepalived processes SIGKILLed and the links set down), and a stale
//! neighbour cache repaired by a manual garp-burst. Each prints what moved and how long it
//! took, measured from the event to what the kernel shows (netlink) and what the client saw
//! (its ping replies and its neighbour cache).

use std::{
    net::IpAddr,
    os::unix::net::UnixDatagram,
    path::PathBuf,
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context};
use hakit_lab::{keepalived, wait_until, Lab, Ns};
use nix::sys::signal::Signal;

const VIP: &str = "192.0.2.100";

struct Row {
    scenario: &'static str,
    vip_moved: Option<Duration>,
    client_arp: Option<Duration>,
    lost: u64,
    sent: u64,
    longest_gap: Option<Duration>,
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("—".into(), |d| {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    })
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// A client-side ping at 100 packets/s whose output we read back.
struct Ping {
    pid: u32,
    log: PathBuf,
}

fn start_ping(lab: &mut Lab, client: &Ns, tag: &str) -> anyhow::Result<Ping> {
    let pid = lab.spawn(
        client,
        tag,
        &["ping", "-D", "-n", "-i", "0.01", "-W", "1", VIP],
    )?;
    thread::sleep(Duration::from_millis(300));
    Ok(Ping {
        pid,
        log: lab.dir().join(format!("{tag}.log")),
    })
}

/// Stops the ping; returns (sent, received, longest gap between replies after `since`).
fn stop_ping(lab: &mut Lab, p: Ping, since: f64) -> anyhow::Result<(u64, u64, Option<Duration>)> {
    lab.signal_and_wait(p.pid, Signal::SIGINT, Duration::from_secs(5));
    let text = std::fs::read_to_string(&p.log)?;
    let (mut sent, mut recv) = (0, 0);
    let mut stamps = Vec::new();
    for line in text.lines() {
        if line.contains("packets transmitted") {
            let nums: Vec<u64> = line
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|t| t.parse().ok())
                .collect();
            if nums.len() >= 2 {
                (sent, recv) = (nums[0], nums[1]);
            }
        } else if line.starts_with('[') && line.contains("bytes from") {
            if let Some(ts) = line[1..]
                .split(']')
                .next()
                .and_then(|t| t.parse::<f64>().ok())
            {
                stamps.push(ts);
            }
        }
    }
    // The longest silence that spans the event: from the last reply before it to the first after.
    let gap = stamps
        .windows(2)
        .filter(|w| w[1] >= since)
        .map(|w| w[1] - w[0])
        .fold(None, |m: Option<f64>, g| Some(m.map_or(g, |m| m.max(g))));
    Ok((sent, recv, gap.map(Duration::from_secs_f64)))
}

/// Runs `event` while the client pings the VIP; measures from the event until the VIP is
/// on `new_master` and the client's cache points at `new_mac`, and what the pings saw.
#[allow(clippy::too_many_arguments)]
fn scenario<T>(
    lab: &mut Lab,
    client: &Ns,
    vip: IpAddr,
    new_master: &Ns,
    new_mac: hakit_net::Mac,
    name: &'static str,
    event: impl FnOnce(&mut Lab) -> anyhow::Result<T>,
) -> anyhow::Result<(Row, Instant, T)> {
    let tag = name.split_whitespace().next().unwrap_or("ping").to_string();
    let ping = start_ping(
        lab,
        client,
        &format!(
            "ping-{tag}-{}",
            lab.dir().read_dir().map_or(0, |d| d.count())
        ),
    )?;
    let since = now_unix();
    let t0 = Instant::now();
    let out = event(lab)?;
    let vip_moved = wait_until(Duration::from_secs(10), Duration::from_millis(1), || {
        new_master.has_addr("eth0", vip).unwrap_or(false)
    })
    .map(|_| t0.elapsed());
    let client_arp = wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
        client.neighbour(vip).ok().flatten().and_then(|n| n.mac) == Some(new_mac)
    })
    .map(|_| t0.elapsed());
    thread::sleep(Duration::from_millis(500));
    let (sent, recv, gap) = stop_ping(lab, ping, since)?;
    let row = Row {
        scenario: name,
        vip_moved,
        client_arp,
        lost: sent - recv,
        sent,
        longest_gap: gap,
    };
    Ok((row, t0, out))
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hakit-demo: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut bin_dir = PathBuf::from("target/release");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bin-dir" => bin_dir = PathBuf::from(args.next().context("--bin-dir needs a path")?),
            other => bail!("unknown argument {other:?} (usage: hakit-demo [--bin-dir DIR])"),
        }
    }
    let garp = std::fs::canonicalize(bin_dir.join("garp-burst")).context("garp-burst not built")?;
    if !hakit_lab::available("hakit-demo") {
        bail!("the demo builds network namespaces: run it as root");
    }
    for tool in ["keepalived", "ping", "ip"] {
        hakit_lab::which(tool).with_context(|| format!("{tool} is not installed (make deps)"))?;
    }
    let started = Instant::now();
    let mut lab = Lab::new()?;
    println!(
        "hakit demo: keepalived VRRP failover in network namespaces ({}-*)\n",
        lab.prefix()
    );
    let sw = lab.ns("sw")?;
    let a = lab.ns("a")?;
    let b = lab.ns("b")?;
    let c = lab.ns("client")?;
    lab.bridge(&sw, "br0", &[(&a, "eth0"), (&b, "eth0"), (&c, "eth0")])?;
    a.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"])?;
    b.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"])?;
    c.ip(&["addr", "add", "192.0.2.50/24", "dev", "eth0"])?;
    let (mac_a, mac_b) = (a.mac("eth0")?, b.mac("eth0")?);
    println!("  node a   192.0.2.1   {mac_a}   priority 150");
    println!("  node b   192.0.2.2   {mac_b}   priority 100");
    println!("  client   192.0.2.50  pings VIP {VIP} every 10 ms");
    println!(
        "  VRRP v3, advert_int 100 ms; notify_master runs garp-burst (3 GARPs, 20 ms apart)\n"
    );

    // garp-burst logs to our socket: the demo shows when the hook ran.
    let sock = lab.dir().join("syslog.sock");
    let syslog = HookLog::listen(UnixDatagram::bind(&sock)?);
    let hook = format!(
        "    notify_master \"{} -i eth0 --ip {VIP} -c 3 --interval 20ms --syslog-socket {}\"",
        garp.display(),
        sock.display()
    );
    let conf = |id: &str, prio: u8| {
        keepalived::vrrp_conf(id, "eth0", prio, "0.1", &format!("{VIP}/24"), &hook)
    };
    let vip: IpAddr = VIP.parse()?;

    let ka = keepalived::start(&mut lab, &a, "a", &conf("a", 150))?;
    let kb = keepalived::start(&mut lab, &b, "b", &conf("b", 100))?;
    ka.wait_ready(Duration::from_secs(10))?;
    kb.wait_ready(Duration::from_secs(10))?;
    wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        a.has_addr("eth0", vip).unwrap_or(false)
    })
    .with_context(|| format!("node a never became MASTER:\n{}", ka.log_tail()))?;
    println!("a is MASTER and holds {VIP}");
    thread::sleep(Duration::from_millis(200));
    syslog.take_since(Instant::now());

    let mut rows = Vec::new();
    let cref = &c;
    let client_sees =
        |mac| move || cref.neighbour(vip).ok().flatten().and_then(|n| n.mac) == Some(mac);

    // 1. Soft failover.
    let (row, t0, ()) = scenario(
        &mut lab,
        &c,
        vip,
        &b,
        mac_b,
        "soft failover (stop master)",
        |_| {
            ka.stop();
            Ok(())
        },
    )?;
    println!("\n[1] soft failover: SIGTERM to keepalived on a");
    syslog.print_since(t0);
    rows.push(row);

    // 2. a comes back and preempts.
    let (row, t0, ka2) = scenario(
        &mut lab,
        &c,
        vip,
        &a,
        mac_a,
        "old master returns (preempt)",
        |lab| keepalived::start(lab, &a, "a2", &conf("a", 150)),
    )?;
    println!("\n[2] a returns (keepalived restarted, priority 150 preempts b)");
    syslog.print_since(t0);
    rows.push(row);

    // 3. Hard failover: both keepalived processes SIGKILLed and the node's link down.
    ka2.wait_ready(Duration::from_secs(5))?;
    thread::sleep(Duration::from_millis(300));
    let (row, t0, ()) = scenario(
        &mut lab,
        &c,
        vip,
        &b,
        mac_b,
        "hard failover (crash + link down)",
        |_| {
            ka2.crash();
            a.ip(&["link", "set", "eth0", "down"])
        },
    )?;
    println!("\n[3] hard failover: SIGKILL both keepalived processes on a, a's link down");
    syslog.print_since(t0);
    rows.push(row);

    // 4. A neighbour that missed every announcement: garp-burst repairs it.
    c.ip(&[
        "neigh",
        "replace",
        VIP,
        "lladdr",
        &mac_a.to_string(),
        "dev",
        "eth0",
        "nud",
        "stale",
    ])?;
    println!("\n[4] client's cache poisoned back to a's MAC ({mac_a}); running garp-burst on b");
    let t0 = Instant::now();
    let out = hakit_lab::run(
        &mut b.command(&[
            &garp.to_string_lossy(),
            "-i",
            "eth0",
            "--ip",
            VIP,
            "-c",
            "1",
            "--json",
        ]),
        Duration::from_secs(10),
    )?;
    let fixed = wait_until(
        Duration::from_secs(2),
        Duration::from_millis(1),
        client_sees(mac_b),
    )
    .map(|_| t0.elapsed());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let first = report["report"]["first_frame_after"]
        .as_f64()
        .map_or("?".into(), |v| format!("{:.3}", v));
    println!(
        "    garp-burst exit {}: first frame {first} ms after its burst started; client cache fixed after {}",
        out.status.code().unwrap_or(-1),
        ms(fixed)
    );

    println!("\n| scenario | VIP on new master after | client ARP → new MAC after | pings lost / sent | longest reply gap |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} / {} | {} |",
            r.scenario,
            ms(r.vip_moved),
            ms(r.client_arp),
            r.lost,
            r.sent,
            ms(r.longest_gap)
        );
    }
    println!("\nPings every 10 ms: a reply gap of ~10 ms means no visible interruption.");
    println!(
        "Times are measured from the event (signal sent) to what netlink shows in each namespace."
    );
    lab.teardown();
    println!(
        "lab torn down; demo took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.vip_moved.is_none() || r.client_arp.is_none())
        .map(|r| r.scenario)
        .collect();
    if !failed.is_empty() || fixed.is_none() {
        bail!("scenarios did not complete: {failed:?}");
    }
    Ok(())
}

/// Receives the garp-burst hook's syslog lines on a thread, stamping each on arrival.
struct HookLog {
    lines: std::sync::Arc<std::sync::Mutex<Vec<(Instant, String)>>>,
}

impl HookLog {
    fn listen(sock: UnixDatagram) -> HookLog {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok(n) = sock.recv(&mut buf) {
                let line = String::from_utf8_lossy(&buf[..n]).to_string();
                let msg = line.split("]: ").nth(1).unwrap_or(&line).to_string();
                if let Ok(mut l) = sink.lock() {
                    l.push((Instant::now(), msg));
                }
            }
        });
        HookLog { lines }
    }

    fn take_since(&self, t0: Instant) -> Vec<(Duration, String)> {
        let mut l = self
            .lines
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        l.retain(|(t, _)| *t >= t0 - Duration::from_secs(1));
        l.into_iter()
            .map(|(t, m)| (t.saturating_duration_since(t0), m))
            .collect()
    }

    fn print_since(&self, t0: Instant) {
        for (d, msg) in self.take_since(t0) {
            println!(
                "    notify_master hook (garp-burst) done at {}: {msg}",
                ms(Some(d))
            );
        }
    }
}
