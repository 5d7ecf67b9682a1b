//! `make demo`: a real HA NAT gateway pair in network namespaces fails over, twice, while a
//! client behind it streams TCP and probes with UDP through the NAT; with timings, a table
//! and a timeline picture.
//!
//! The lab ([`hakit_lab::nat`]): two gateways running keepalived (VRRP v3, 40 ms adverts),
//! `nat-notify` on keepalived's notify FIFO, `ha-check` as the `vrrp_script`, the shipped
//! nftables ruleset (stateful, SNAT to the floating IP) and conntrackd (FTFW on a sync
//! link); a LAN client; an "internet" server; and a fake cloud provider that routes the
//! floating IP to whichever gateway claimed it last.
//!
//! `--linode`: the same pair as Linode routes it ([`hakit_lab::bgp`]): the shared IP on `lo`
//! of both gateways, lelastic's GoBGP on each, an FRR route server routing the IP by the
//! announcement's community, which nat-notify rewrites in place; no provider call.
//!
//! Scenarios: a soft failover (keepalived stopped on the master), the master returning
//! (preempting after 1 s), a hard failover (both keepalived processes SIGKILLed and every
//! link down), and the crashed node returning. Each is measured by the client itself: a UDP
//! probe every millisecond (the blackout is its longest silence) and a TCP stream checked
//! byte by byte.

use std::{
    fmt::Write as _,
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use hakit_lab::{
    nat::{self, Measured, NatLab, Opts},
    svg::{lanes, text_width, Svg},
};

const A: usize = 0;
const B: usize = 1;

/// One measured failover, with what the timeline needs.
struct Panel {
    name: &'static str,
    m: Measured,
    /// The event, what moved, and nat-notify's milestones (Unix seconds, label).
    marks: Vec<(f64, String)>,
}

fn scenario(
    nat: &mut NatLab,
    name: &'static str,
    tag: &str,
    to: usize,
    peer_alive: bool,
    event: impl FnOnce(&mut NatLab) -> anyhow::Result<()>,
) -> anyhow::Result<Panel> {
    let m = nat.measure(
        tag,
        &["--tcp", "--udp-ms", "1"],
        to,
        peer_alive,
        // A crash under BGP lasts until the route server's hold timer (9 s) expires.
        Duration::from_secs(if nat.opts.bgp.is_some() { 30 } else { 15 }),
        event,
    )?;
    if let Err(e) = &m.converged {
        bail!("{name}: {e}");
    }
    let mut marks = vec![(m.t_event, "event".to_string())];
    marks.extend(m.moves.iter().cloned());
    for (t, line) in nat.syslog.since(m.t_event) {
        if line.contains("MASTER: fip_claim") {
            marks.push((t, "provider claim done".into()));
        } else if line.contains("converged to MASTER") {
            marks.push((t, "nat-notify converged".into()));
        } else if line.contains("MASTER: address_add") {
            marks.push((t, "nat-notify FIP added".into()));
        } else if line.contains("MASTER: bgp_announce") {
            marks.push((t, "nat-notify announced primary".into()));
        }
    }
    marks.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(Panel { name, m, marks })
}

fn print_panel(p: &Panel) {
    println!("    what moved, from the event:");
    for (t, m) in &p.marks {
        if m != "event" {
            println!("      {:>7.1} ms  {m}", (t - p.m.t_event) * 1000.0);
        }
    }
    println!(
        "    client saw: blackout {:.1} ms, {} of {} probes lost, TCP stream {}",
        p.m.blackout_ms(),
        p.m.lost(),
        p.m.sent(),
        if p.m.tcp_ok() {
            "intact (same connection, byte-exact)"
        } else {
            "BROKEN"
        }
    );
}

fn main() -> std::process::ExitCode {
    if let Err(e) = hakit_lab::clean_up_on_signals() {
        eprintln!("{e:#}");
        return std::process::ExitCode::from(2);
    }
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
    let mut out_dir = PathBuf::from("target/demo");
    let mut linode = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--linode" => linode = true,
            "--bin-dir" => bin_dir = args.next().context("--bin-dir needs a path")?.into(),
            "--out-dir" => out_dir = args.next().context("--out-dir needs a path")?.into(),
            other => bail!(
                "unknown argument {other:?} (usage: hakit-demo [--bin-dir DIR] [--out-dir DIR] [--linode])"
            ),
        }
    }
    if !hakit_lab::available("hakit-demo") {
        bail!("the demo builds network namespaces: run it as root");
    }
    let started = Instant::now();
    let mut opts = Opts::new(&bin_dir);
    if linode {
        opts.bgp = Some(hakit_lab::bgp::Opts {
            speaker: hakit_lab::bgp::Speaker::Gobgp,
            method: hakit_lab::bgp::Method::InPlace,
        });
    }
    println!(
        "hakit demo: an HA NAT gateway pair in network namespaces{}\n",
        if linode {
            ", routed as on Linode (BGP)"
        } else {
            ""
        }
    );
    println!(
        "  client {}  --LAN--  gateways a (priority 150) / b (100), VIP {}",
        nat::CLIENT,
        nat::VIP
    );
    println!(
        "  gateways  --WAN--  server {}, fake cloud API {}",
        nat::SERVER,
        nat::CLOUD
    );
    if linode {
        println!(
            "  shared IP {} on lo of both (LAN SNATed to it); lelastic's GoBGP on each announces it to an",
            nat::FIP
        );
        println!("  FRR route server (65000:1 primary over 65000:2 secondary); nat-notify rewrites the role in place");
    } else {
        println!(
            "  floating IP {} (LAN SNATed to it), routed by the provider to its owner",
            nat::FIP
        );
    }
    println!(
        "  keepalived VRRP v3 advert_int {} s, preempt_delay 1 s; nat-notify on the notify FIFO;",
        opts.advert_int
    );
    println!(
        "  ha-check as vrrp_script; nftables stateful ruleset; conntrackd FTFW on a sync link\n"
    );
    let mut nat = NatLab::up(opts)?;
    println!(
        "lab up in {:.1} s ({}-*): a is MASTER and owns the floating IP at the provider",
        started.elapsed().as_secs_f64(),
        nat.lab.prefix()
    );

    // Traffic through the NAT.
    let t = nat.traffic("flow", &["--tcp", "--udp-ms", "1"])?;
    thread::sleep(Duration::from_secs(1));
    let r = nat.stop_traffic(t)?;
    println!(
        "client -> server through a: {} of {} UDP probes answered in 1 s, TCP {} KB streamed\n",
        r["udp_1ms"]["received"],
        r["udp_1ms"]["sent"],
        r["tcp"]["bytes"].as_u64().unwrap_or(0) / 1000
    );

    let mut panels = Vec::new();
    println!("[1] soft failover: SIGTERM to keepalived on a");
    let p = scenario(
        &mut nat,
        "soft failover (stop keepalived on a)",
        "soft",
        B,
        true,
        |n| {
            n.stop_keepalived(A);
            Ok(())
        },
    )?;
    print_panel(&p);
    panels.push(p);

    println!("\n[2] a returns: keepalived restarted; BACKUP for preempt_delay, then MASTER again");
    let p = scenario(
        &mut nat,
        "a returns (preempts after 1 s)",
        "return",
        A,
        true,
        |n| n.start_keepalived(A),
    )?;
    print_panel(&p);
    panels.push(p);

    println!(
        "\n[3] hard failover: all of a's links down, then SIGKILL both keepalived processes on a"
    );
    let p = scenario(&mut nat, "hard failover (crash a)", "hard", B, false, |n| {
        n.crash(A)
    })?;
    print_panel(&p);
    panels.push(p);

    println!("\n[4] a returns after the crash: links up, keepalived restarted");
    let p = scenario(
        &mut nat,
        "a returns after the crash",
        "return2",
        A,
        true,
        |n| {
            n.links_up(A)?;
            if n.opts.bgp.is_some() {
                // lelastic comes back with the node, announcing secondary until hakit
                // promotes it; GoBGP waits 5-9 s before it connects.
                n.start_speaker(A, "secondary")?;
            }
            n.start_keepalived(A)
        },
    )?;
    print_panel(&p);
    panels.push(p);

    std::fs::create_dir_all(&out_dir)?;
    let svg = out_dir.join("failover-timeline.svg");
    std::fs::write(&svg, timeline(&[&panels[0], &panels[2]]))
        .with_context(|| format!("write {}", svg.display()))?;

    let mut md = String::new();
    writeln!(md, "| scenario | blackout | packets lost (1 ms probes) | TCP connection survived | converged after |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    for p in &panels {
        writeln!(
            md,
            "| {} | {:.1} ms | {} / {} | {} | {} |",
            p.name,
            p.m.blackout_ms(),
            p.m.lost(),
            p.m.sent(),
            if p.m.tcp_ok() {
                "yes, byte-exact"
            } else {
                "NO"
            },
            p.m.converged_ms()
                .map_or("—".into(), |c| format!("{c:.0} ms"))
        )?;
    }
    println!("\n{md}");
    println!("Blackout: the client's longest silence in a UDP echo every 1 ms through the NAT.");
    if linode {
        println!("Converged: until VIP, SNAT, conntrackd role, announced role and the route server's route all agree (polled).");
        println!("A crash lasts until the route server's hold timer drops the dead node's path: nothing the survivor does shortens it.");
    } else {
        println!("Converged: until VIP, floating IP, SNAT, conntrackd role, provider route all agree (polled).");
    }
    println!(
        "Timeline (UDP echoes per 10 ms around both failovers): {}",
        svg.display()
    );
    nat.lab.teardown();
    println!(
        "lab torn down; demo took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if panels.iter().any(|p| !p.m.tcp_ok()) {
        bail!("a TCP connection did not survive a failover");
    }
    Ok(())
}

const W: f64 = 1100.0;
const PANEL_H: f64 = 350.0;
const LEFT: f64 = 70.0;
const BEFORE: f64 = 0.1;
const AFTER: f64 = 0.4;

fn colour(label: &str) -> &'static str {
    if label == "event" {
        "#c81e1e"
    } else if label.starts_with("VIP") {
        "#1e5ac8"
    } else if label.starts_with("FIP") || label.contains("FIP") {
        "#148c3c"
    } else if label.contains("provider") {
        "#dc7800"
    } else {
        "#8232a0"
    }
}

/// Packets per 10 ms around each failover, with the events marked (labels in lanes, so
/// marks a few milliseconds apart stay readable).
fn timeline(panels: &[&Panel]) -> String {
    let mut c = Svg::new(W, PANEL_H * panels.len() as f64 + 10.0);
    let plot_w = W - LEFT - 20.0;
    let bins = ((BEFORE + AFTER) / 0.01).round() as i64;
    let bar = plot_w / bins as f64;
    let x_of = |dt: f64| LEFT + (dt + BEFORE) / 0.01 * bar;
    for (k, p) in panels.iter().enumerate() {
        let top = k as f64 * PANEL_H + 10.0;
        let base = top + 250.0;
        c.text(
            10.0,
            top + 16.0,
            &format!(
                "{}: blackout {:.1} ms, {} of {} probes lost, TCP {}",
                p.name,
                p.m.blackout_ms(),
                p.m.lost(),
                p.m.sent(),
                if p.m.tcp_ok() { "survived" } else { "broken" }
            ),
            16.0,
            "black",
            "start",
        );
        let t_event = p.m.t_event;
        let start = p.m.report["start_unix"].as_f64().unwrap_or(t_event);
        let counts: Vec<u64> = p.m.report["udp_1ms"]["bins"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0)).collect())
            .unwrap_or_default();
        let first = ((t_event - BEFORE - start) / 0.01).floor() as i64;
        let scale = 10.0; // y pixels per packet: 10 per bin is the steady state
        for i in 0..bins {
            let n = usize::try_from(first + i)
                .ok()
                .and_then(|j| counts.get(j))
                .copied()
                .unwrap_or(0);
            let h = ((n as f64) * scale).clamp(2.0, 120.0);
            let col = if n == 0 { "#e65050" } else { "#78a0dc" };
            c.rect(LEFT + i as f64 * bar, base - h, bar - 1.0, h, col);
        }
        let right = LEFT + bins as f64 * bar;
        c.line((LEFT, base), (right, base), "black", 0.0);
        c.line(
            (LEFT, base - 10.0 * scale),
            (right, base - 10.0 * scale),
            "#c8c8c8",
            0.0,
        );
        c.text(
            LEFT - 6.0,
            base - 10.0 * scale + 4.0,
            "10 / 10 ms",
            11.0,
            "#5a5a5a",
            "end",
        );
        for ms in (-100i64..=400).step_by(50) {
            let x = x_of(ms as f64 / 1000.0);
            c.line((x, base), (x, base + 5.0), "black", 0.0);
            c.text(x, base + 18.0, &ms.to_string(), 11.0, "black", "middle");
        }
        c.text(
            right,
            base + 34.0,
            "ms from the event",
            12.0,
            "black",
            "end",
        );
        // Marks inside the window, labelled in lanes above the bars.
        let marks: Vec<(f64, String, &str)> = p
            .marks
            .iter()
            .map(|(t, label)| (t - t_event, label))
            .filter(|(dt, _)| (-BEFORE..=AFTER).contains(dt))
            .map(|(dt, label)| {
                (
                    x_of(dt),
                    format!("{label} {:.0} ms", dt * 1000.0),
                    colour(label),
                )
            })
            .collect();
        let spans: Vec<(f64, f64)> = marks
            .iter()
            .map(|(x, text, _)| (*x, text_width(text, 11.0) + 3.0))
            .collect();
        let lane = lanes(&spans, 6.0);
        for ((x, text, col), lane) in marks.iter().zip(lane) {
            let y = top + 36.0 + (lane as f64) * 13.0;
            c.line((*x, y - 10.0), (*x, base), col, 4.0);
            c.text(x + 3.0, y, text, 11.0, col, "start");
        }
    }
    c.finish()
}
