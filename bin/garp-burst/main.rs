//! `garp-burst`: announce addresses on a link with gratuitous ARPs (IPv4) and unsolicited
//! neighbour advertisements (IPv6). Thin main: parse, resolve the configuration layers,
//! call `hakit_net::garp`, map the outcome to an exit code.

use std::time::Duration;

use hakit_cli::garp_burst::{Cli, IDENT};
use hakit_core::{
    cli::{self},
    config::pick,
    usage_error, Exit, HDuration,
};
use hakit_net::{garp, Netlink};

const DEFAULT_COUNT: u32 = 5;
const DEFAULT_INTERVAL: Duration = Duration::from_millis(200);
const MAX_COUNT: u32 = 10_000;

fn run(cli: Cli) -> anyhow::Result<Exit> {
    let file: garp::GarpFile = cli.common.init(IDENT)?;
    let f = file.garp;
    let interface = pick(cli.interface, f.interface, String::new());
    if interface.is_empty() {
        return Err(usage_error(
            "no interface: give -i DEV (or HAKIT_GARP_INTERFACE, or interface in [garp])",
        ));
    }
    let ips = if cli.ips.is_empty() {
        f.ips.unwrap_or_default()
    } else {
        cli.ips
    };
    let count = pick(cli.count, f.count, DEFAULT_COUNT);
    if count > MAX_COUNT {
        return Err(usage_error(format!(
            "count {count} is too large (at most {MAX_COUNT})"
        )));
    }
    let plan = garp::Plan {
        interface,
        ips,
        count,
        interval: pick(cli.interval, f.interval, HDuration(DEFAULT_INTERVAL)).get(),
        reply: pick(cli.reply, f.reply, false),
        force: cli.force,
        router: cli.router,
    };
    let nl = Netlink::open()?;
    let burst = garp::resolve(&nl, &plan)?;
    if cli.dry_run {
        if cli.json {
            hakit_core::outln!("{}", serde_json::json!({ "dry_run": true, "burst": burst }));
        } else {
            let mac = burst.link.mac.map(|m| m.to_string()).unwrap_or_default();
            hakit_core::outln!(
                "would send {} round(s) every {} on {} ({mac}):",
                burst.count,
                HDuration(burst.interval),
                burst.link.name
            );
            for f in &burst.frames {
                hakit_core::outln!("  {:<12} {}", f.kind, f.ip);
            }
        }
        return Ok(Exit::Ok);
    }
    let report = burst.send()?;
    if cli.json {
        hakit_core::outln!(
            "{}",
            serde_json::json!({ "dry_run": false, "report": report })
        );
    }
    Ok(Exit::Ok)
}

fn main() -> std::process::ExitCode {
    let cli: Cli = cli::parse(IDENT);
    cli::finish(IDENT, run(cli))
}
