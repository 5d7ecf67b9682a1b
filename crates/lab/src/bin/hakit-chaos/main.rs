//! `make chaos`: the acceptance scenarios on the full NAT pair ([`hakit_lab::nat`]), each
//! with a measured result and a pass rule. Writes `chaos.json` and `chaos.md` to the output
//! directory, prints the table, and exits 1 if any scenario failed (2 on a usage error).
//!
//! Usage: hakit-chaos [--bin-dir DIR] [--out-dir DIR] [--only NAME[,NAME...]]
//!                    [--lab nat|l2|monitor|table|active|aws|hetzner|digitalocean|linode|linode-frr|linode-bird]
//!
//! `--lab l2`: bare metal with the L2 fast profile (the floating IP on-link, found by the
//! upstream through nat-notify's gratuitous ARP; `chaos-l2.*`). `--lab monitor`: the uplink monitor's profile (HAKIT_CHAOS_PROFILE=fast: the L2 fast
//! VRRP profile). `--lab table`: a production-sized connection table handed over
//! (HAKIT_CHAOS_TABLE_FLOWS, default 50,000; [`hakit_lab::nat::table`]).
//!
//! `--lab active`: active-active, two instances in opposite roles, each node MASTER of one,
//! conntrackd's external cache and a short PurgeTimeout (`chaos-active.*`).
//!
//! `--lab linode` runs Linode's routing for real ([`hakit_lab::bgp`]): an FRR route server,
//! lelastic's GoBGP configuration on both gateways, hakit rewriting the announcement's
//! community in place; `linode-frr` and `linode-bird` the same with FRR or BIRD 2 as the
//! gateways' speaker. Results go
//! to `chaos-<lab>.json` and `chaos-<lab>.md` (`chaos.*` for the NAT lab).

use std::{
    fmt::Write as _,
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use hakit_lab::{
    bgp,
    nat::{now_unix, Measured, NatLab, Opts},
};
use serde_json::{json, Value};

mod active;
mod cloud;
mod faults;
mod linode;
mod monitor;
mod soak;
use {active::*, cloud::*, faults::*, linode::*, monitor::*, soak::*};

const A: usize = 0;
const B: usize = 1;
/// Pass bounds from the acceptance table.
const SOFT_MS: f64 = 50.0;
const HARD_MS: f64 = 500.0;

struct Row {
    name: &'static str,
    rule: String,
    measured: String,
    pass: bool,
    data: Value,
}

fn row(name: &'static str, rule: &str, measured: String, pass: bool, data: Value) -> Row {
    println!(
        "  {} {name}: {measured}",
        if pass { "PASS" } else { "FAIL" }
    );
    Row {
        name,
        rule: rule.to_string(),
        measured,
        pass,
        data,
    }
}

/// A failover under a 1 ms UDP probe ([`NatLab::measure`]), with what the JSON keeps of it.
fn failover(
    nat: &mut NatLab,
    tag: &str,
    to: usize,
    peer_alive: bool,
    event: impl FnOnce(&mut NatLab) -> anyhow::Result<()>,
) -> anyhow::Result<(Measured, Value)> {
    let m = nat.measure(
        tag,
        &["--udp-ms", "1"],
        to,
        peer_alive,
        Duration::from_secs(15),
        event,
    )?;
    let u = &m.report["udp_1ms"];
    let data = json!({
        "converged_ms": m.converged_ms(),
        "error": m.converged.as_ref().err(),
        "moves": m.moves.iter().map(|(t, w)| json!({"ms": (t - m.t_event) * 1000.0, "what": w})).collect::<Vec<_>>(),
        "new_master_steps": nat.nodes[to].recorded()["steps"],
        "probe": {"sent": u["sent"], "lost": u["lost"], "blackout_ms": u["blackout_ms"],
                  "blackout_after": u["blackout_after"]},
    });
    Ok((m, data))
}

/// The long TCP stream's row: the same connection at the end, byte-exact throughout
/// (`retrans`: the server's retransmissions, where they were counted).
fn tcp_row(name: &'static str, report: &Value, retrans: Option<u64>, spans: &[&str]) -> Row {
    let tcp = &report["tcp"];
    let same = tcp["alive_at_end"] == true && tcp["connected"] == true;
    let exact = tcp["first_mismatch_offset"].is_null();
    row(
        name,
        "the same connection continues, byte-exact, across the failovers",
        format!(
            "same connection: {}; {} bytes, byte-exact: {}; longest stall {:.0} ms; {}across: {}",
            if same { "yes" } else { "no" },
            tcp["bytes"],
            if exact { "yes" } else { "no" },
            tcp["longest_stall_ms"].as_f64().unwrap_or(0.0),
            retrans.map_or(String::new(), |r| format!("{r} server retransmissions; ")),
            spans.join(", ")
        ),
        same && exact && tcp["bytes"].as_u64().unwrap_or(0) > 0,
        json!({"tcp": {"bytes": tcp["bytes"], "error": tcp["error"], "first_mismatch_offset": tcp["first_mismatch_offset"],
               "longest_stall_ms": tcp["longest_stall_ms"], "retransmissions": retrans}, "across": spans}),
    )
}

/// Says how long the lab took to come up, and its namespaces' prefix.
fn lab_up(started: Instant, lab: &hakit_lab::Lab) {
    println!(
        "  lab up in {:.1} s ({}-*)",
        started.elapsed().as_secs_f64(),
        lab.prefix()
    );
}

fn ms(v: Option<f64>) -> String {
    v.map_or("never".into(), |v| format!("{v:.0} ms"))
}

/// keepalived's log of node `i`'s running instance.
fn keepalived_log(nat: &NatLab, i: usize) -> String {
    nat.nodes[i]
        .keepalived
        .as_ref()
        .and_then(|k| std::fs::read_to_string(&k.log).ok())
        .unwrap_or_default()
}

fn main() -> std::process::ExitCode {
    if let Err(e) = hakit_lab::clean_up_on_signals() {
        eprintln!("{e:#}");
        return std::process::ExitCode::from(2);
    }
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("hakit-chaos: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The command line.
struct Args {
    bin_dir: PathBuf,
    out_dir: PathBuf,
    only: Option<Vec<String>>,
    which: String,
}

fn args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut bin_dir = PathBuf::from("target/release");
    let mut out_dir = PathBuf::from("target/chaos");
    let mut only: Option<Vec<String>> = None;
    let mut which = "nat".to_string();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--lab" => which = args.next().context("--lab needs nat, l2, monitor, table, active, aws, hetzner, digitalocean, linode, linode-frr or linode-bird")?,
            "--bin-dir" => bin_dir = args.next().context("--bin-dir needs a path")?.into(),
            "--out-dir" => out_dir = args.next().context("--out-dir needs a path")?.into(),
            "--only" => {
                only = Some(
                    args.next()
                        .context("--only needs names")?
                        .split(',')
                        .map(str::to_string)
                        .collect(),
                )
            }
            other => bail!(
                "unknown argument {other:?} (usage: hakit-chaos [--bin-dir DIR] [--out-dir DIR] [--only NAME,...] [--lab nat|l2|monitor|table|active|aws|hetzner|digitalocean|linode|linode-frr|linode-bird])"
            ),
        }
    }
    Ok(Args {
        bin_dir,
        out_dir,
        only,
        which,
    })
}

fn run() -> anyhow::Result<bool> {
    let Args {
        bin_dir,
        out_dir,
        only,
        which,
    } = args()?;
    if !hakit_lab::available("hakit-chaos") {
        bail!("the chaos lab builds network namespaces: run it as root");
    }
    let want = |n: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == n));
    let started = Instant::now();
    let speaker = match which.as_str() {
        "nat" | "l2" => None,
        "linode" => Some(bgp::Speaker::Gobgp),
        "linode-frr" => Some(bgp::Speaker::Frr),
        "linode-bird" => Some(bgp::Speaker::Bird),
        "monitor" | "table" | "active" | "aws" | "hetzner" | "digitalocean" => None,
        other => bail!(
            "--lab {other:?}: expected nat, l2, monitor, table, active, aws, hetzner, digitalocean, linode, linode-frr or linode-bird"
        ),
    };
    type LabFn = fn(&std::path::Path, &dyn Fn(&str) -> bool) -> anyhow::Result<Vec<Row>>;
    let one: Option<(LabFn, &str)> = match which.as_str() {
        "hetzner" => Some((hetzner_lab, "chaos-hetzner")),
        "aws" => Some((aws_lab, "chaos-aws")),
        "digitalocean" => Some((digitalocean_lab, "chaos-digitalocean")),
        "table" => Some((table_lab, "chaos-table")),
        "active" => Some((active_lab, "chaos-active")),
        _ => None,
    };
    if let Some((lab, file)) = one {
        return write_results(&lab(&bin_dir, &want)?, &out_dir, file, started);
    }
    if which == "monitor" {
        let rows = monitor_lab(&bin_dir, &out_dir, &want)?;
        return write_results(&rows, &out_dir, "chaos-monitor", started);
    }
    if let Some(speaker) = speaker {
        let rows = linode(&bin_dir, speaker, &want)?;
        return write_results(&rows, &out_dir, &format!("chaos-{which}"), started);
    }
    let (opts, file) = nat_opts(&which, &bin_dir);
    println!(
        "hakit chaos: NAT pair in namespaces, VRRP v3 advert_int {} s, preempt_delay {} s, conntrackd FTFW (external cache {})",
        opts.advert_int,
        opts.preempt_delay.unwrap_or(0),
        if opts.external_cache { "on" } else { "off" }
    );
    let mut nat = NatLab::up(opts)?;
    lab_up(started, &nat.lab);
    let mut rows: Vec<Row> = Vec::new();

    // The long-running flows: one TCP stream across every failover up to the uplink loss,
    // and UDP at 100 packets/s across the soft and hard failovers and both returns (an
    // uplink loss is a blackout for as long as detection takes, by design: interval x fall).
    let long = nat.traffic("long", &["--tcp"])?;
    let udp = nat.traffic("udp", &["--udp-ms", "10"])?;
    thread::sleep(Duration::from_millis(800));
    let retrans_before = nat.server_retransmits();
    let mut spans = Vec::new();

    if want("soft") {
        soft_and_return(&mut nat, &mut rows, &mut spans)?;
    }
    if want("hard") {
        hard_and_return(&mut nat, &mut rows, &mut spans)?;
    }

    let u = nat.stop_traffic(udp)?;
    let u = &u["udp_10ms"];
    let loss = u["loss_pct"].as_f64().unwrap_or(100.0);
    let udp_row = row(
        "UDP stream at 100 packets/s",
        "loss under 2% over the run",
        format!(
            "{} of {} lost ({loss:.2}%); longest silence {:.0} ms; across: {}",
            u["lost"],
            u["sent"],
            u["blackout_ms"].as_f64().unwrap_or(0.0),
            spans.join(", ")
        ),
        loss < 2.0 && u["sent"].as_u64().unwrap_or(0) > 0,
        json!({"sent": u["sent"], "lost": u["lost"], "loss_pct": loss, "longest_silence_ms": u["blackout_ms"], "across": spans}),
    );

    if want("uplink") {
        let (f, data) = failover(&mut nat, "uplink", B, true, |n| {
            n.nodes[A].ns.ip(&["link", "set", "eth0", "down"])
        })?;
        // What keepalived itself saw: the script failing and a's priority dropping by its
        // weight (150 - 60) below b's.
        let log = keepalived_log(&nat, A);
        let failed = log.contains("VRRP_Script(chk_gateway) failed");
        let dropped = log.contains("effective priority from 150 to 90");
        rows.push(row(
            "uplink loss on the master (WAN link down)",
            "ha-check fails, priority drops, backup takes over",
            format!(
                "keepalived on a: chk_gateway failed: {}, priority 150 -> 90: {}; b converged after {}; blackout {:.0} ms",
                if failed { "yes" } else { "no" },
                if dropped { "yes" } else { "no" },
                ms(f.converged_ms()),
                f.blackout_ms()
            ),
            failed && dropped && f.converged.is_ok(),
            data,
        ));
        spans.push("uplink loss");
        nat.nodes[A].ns.ip(&["link", "set", "eth0", "up"])?;
        let _ = nat.nodes[A]
            .ns
            .ip(&["route", "replace", "default", "via", hakit_lab::nat::SERVER]);
        nat.wait_converged(A, Duration::from_secs(15))
            .context("a did not take mastership back after its uplink returned")?;
    }

    thread::sleep(Duration::from_millis(500));
    let retrans = nat.server_retransmits().saturating_sub(retrans_before);
    let l = nat.stop_traffic(long)?;
    rows.push(tcp_row(
        "stateful TCP flow (a long-running stream through the NAT)",
        &l,
        Some(retrans),
        &spans,
    ));
    rows.push(udp_row);

    if want("flap") {
        rows.push(flapping(&mut nat)?);
    }
    if want("split") {
        rows.push(split_brain(&mut nat)?);
    }
    if want("api") {
        rows.push(api_down(&mut nat)?);
    }

    nat.lab.teardown();
    write_results(&rows, &out_dir, file, started)
}

/// The graceful failover (keepalived stopped on the master) and the node's return.
fn soft_and_return(
    nat: &mut NatLab,
    rows: &mut Vec<Row>,
    spans: &mut Vec<&'static str>,
) -> anyhow::Result<()> {
    let (f, data) = failover(nat, "soft", B, true, |n| {
        n.stop_keepalived(A);
        Ok(())
    })?;
    rows.push(row(
        "soft failover (stop keepalived on the master)",
        &format!("VIP and floating IP on the backup; blackout < {SOFT_MS} ms"),
        format!(
            "converged after {}; blackout {:.1} ms, {} of the 1 ms probes lost",
            ms(f.converged_ms()),
            f.blackout_ms(),
            f.lost()
        ),
        f.converged.is_ok() && f.blackout_ms() < SOFT_MS,
        data,
    ));
    spans.push("soft failover");
    // The node returns: BACKUP during preempt_delay, then takes mastership back.
    let mut held = Err(anyhow::anyhow!("not looked at"));
    let (f, mut data) = failover(nat, "return", A, true, |n| {
        n.start_keepalived(A)?;
        thread::sleep(Duration::from_millis(600));
        held = n.converged(B);
        Ok(())
    })?;
    let took = f.converged_ms().unwrap_or(0.0);
    data["b_held"] = json!(held.as_ref().err().map(|e| format!("{e:#}")));
    rows.push(row(
        "node returns (restart the stopped node)",
        &format!("rejoins as BACKUP, takes mastership back after preempt_delay (1 s); blackout < {SOFT_MS} ms"),
        format!(
            "b still MASTER 0.6 s after a's restart: {}; a MASTER after {}; blackout {:.1} ms",
            if held.is_ok() { "yes" } else { "no" },
            ms(f.converged_ms()),
            f.blackout_ms()
        ),
        held.is_ok() && took >= 1000.0 && f.blackout_ms() < SOFT_MS,
        data,
    ));
    spans.push("return");
    Ok(())
}

/// The crash (links down, keepalived killed) and the node's return.
fn hard_and_return(
    nat: &mut NatLab,
    rows: &mut Vec<Row>,
    spans: &mut Vec<&'static str>,
) -> anyhow::Result<()> {
    let (f, data) = failover(nat, "hard", B, false, |n| n.crash(A))?;
    rows.push(row(
        "hard failover (links down, then SIGKILL both keepalived processes)",
        &format!("backup takes over on its own; blackout < {HARD_MS} ms"),
        format!(
            "converged after {}; blackout {:.1} ms, {} probes lost",
            ms(f.converged_ms()),
            f.blackout_ms(),
            f.lost()
        ),
        f.converged.is_ok() && f.blackout_ms() < HARD_MS,
        data,
    ));
    spans.push("hard failover");
    let (f, data) = failover(nat, "return-crash", A, true, |n| {
        n.links_up(A)?;
        n.start_keepalived(A)
    })?;
    rows.push(row(
        "node returns after a crash (links up, keepalived restarted)",
        &format!("cleans up as BACKUP, takes mastership back after preempt_delay; blackout < {SOFT_MS} ms"),
        format!(
            "a MASTER again after {}; blackout {:.1} ms",
            ms(f.converged_ms()),
            f.blackout_ms()
        ),
        f.converged.is_ok() && f.blackout_ms() < SOFT_MS,
        data,
    ));
    spans.push("return after crash");
    Ok(())
}

/// The NAT lab's pair (`nat`: the provider routes the floating IP), or `l2`: bare metal
/// with the L2 fast profile (PROFILE_SPEED=fast), the floating IP found by ARP. With the
/// file its results go to.
fn nat_opts(which: &str, bin_dir: &std::path::Path) -> (Opts, &'static str) {
    let mut opts = Opts::new(bin_dir);
    if which != "l2" {
        return (opts, "chaos");
    }
    opts.l2 = true;
    opts.fast_profile();
    (opts, "chaos-l2")
}

/// Writes `<name>.json` and `<name>.md`, prints the table; whether every row passed.
fn write_results(
    rows: &[Row],
    out_dir: &std::path::Path,
    name: &str,
    started: Instant,
) -> anyhow::Result<bool> {
    let took = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(out_dir)?;
    let mut md = String::new();
    writeln!(
        md,
        "| scenario | pass when | measured | result |\n|---|---|---|---|"
    )?;
    for r in rows {
        writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.name,
            r.rule,
            r.measured,
            if r.pass { "pass" } else { "**FAIL**" }
        )?;
    }
    let passed = rows.iter().all(|r| r.pass);
    let json = json!({
        "passed": passed,
        "seconds": took,
        "finished_unix": now_unix(),
        "scenarios": rows.iter().map(|r| json!({
            "scenario": r.name, "pass_when": r.rule, "measured": r.measured, "pass": r.pass, "data": r.data
        })).collect::<Vec<_>>(),
    });
    std::fs::write(
        out_dir.join(format!("{name}.json")),
        serde_json::to_vec_pretty(&json)?,
    )?;
    std::fs::write(out_dir.join(format!("{name}.md")), &md)?;
    println!("\n{md}");
    println!(
        "{} of {} scenarios passed in {took:.0} s; results in {}/{name}.json and {name}.md",
        rows.iter().filter(|r| r.pass).count(),
        rows.len(),
        out_dir.display()
    );
    Ok(passed)
}

/// A hakit binary run inside node `i`'s namespace with its config: (exit code, stdout,
/// stderr).
fn node_run(
    nat: &NatLab,
    i: usize,
    bin: &str,
    args: &[&str],
) -> anyhow::Result<(i32, String, String)> {
    let n = &nat.nodes[i];
    let prog = nat.opts.bin_dir.join(bin).to_string_lossy().to_string();
    let cfg = n.config.to_string_lossy().to_string();
    let mut argv = vec![prog.as_str(), "--config", cfg.as_str()];
    argv.extend_from_slice(args);
    let out = hakit_lab::run(&mut n.ns.command(&argv), Duration::from_secs(30))?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    ))
}
