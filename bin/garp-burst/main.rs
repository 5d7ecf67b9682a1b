//! `garp-burst`: announce addresses on a link with gratuitous ARPs (IPv4) and unsolicited
//! neighbour advertisements (IPv6). Thin main: parse, resolve the configuration layers,
//! call `hakit_net::garp`, map the outcome to an exit code.

use std::{net::IpAddr, time::Duration};

use clap::Parser;
use hakit_core::{
    cli::{self, Common},
    config::{pick, GarpFile},
    exit::EXIT_CODES_HELP,
    usage_error, Exit, HDuration,
};
use hakit_net::{garp, Netlink};

const IDENT: &str = "garp-burst";
const DEFAULT_COUNT: u32 = 5;
const DEFAULT_INTERVAL: Duration = Duration::from_millis(200);
const MAX_COUNT: u32 = 10_000;

/// Send a burst of gratuitous ARPs and unsolicited neighbour advertisements.
///
/// After a floating address moves to this node, switches and neighbours still send its
/// traffic to the old owner until their caches expire. garp-burst tells them at once: for
/// each IPv4 address an ARP request with sender = target = the address (plus the ARP-reply
/// form with --reply), for each IPv6 address a neighbour advertisement to ff02::1 with the
/// Override flag. The first frame leaves immediately, the rest at --interval.
///
/// Every key can also come from the [garp] table of the config file or from
/// HAKIT_GARP_* environment variables; precedence: flag > env > file > default.
#[derive(Debug, Parser)]
#[command(
    name = IDENT,
    version,
    after_help = EXIT_CODES_HELP,
    after_long_help = LONG_AFTER_HELP,
)]
struct Cli {
    /// Interface to send on
    #[arg(short, long, env = "HAKIT_GARP_INTERFACE", value_name = "DEV")]
    interface: Option<String>,

    /// Address to announce (repeatable) [default: every global address on DEV]
    #[arg(
        long = "ip",
        env = "HAKIT_GARP_IPS",
        value_delimiter = ',',
        value_name = "ADDR"
    )]
    ips: Vec<IpAddr>,

    /// Frames per address [default: 5]
    #[arg(short, long, env = "HAKIT_GARP_COUNT", value_name = "N")]
    count: Option<u32>,

    /// Time between rounds, e.g. 10ms, 200ms, 1s [default: 200ms]
    #[arg(long, env = "HAKIT_GARP_INTERVAL", value_name = "DUR")]
    interval: Option<HDuration>,

    /// Also send the ARP-reply form for IPv4 addresses
    #[arg(long, env = "HAKIT_GARP_REPLY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    reply: Option<bool>,

    /// Announce addresses that are not on DEV, and send on NOARP links
    #[arg(long)]
    force: bool,

    /// Set the Router flag in neighbour advertisements [default: DEV's IPv6 forwarding]
    #[arg(long, value_name = "BOOL")]
    router: Option<bool>,

    /// Validate and print the frames that would be sent; send nothing
    #[arg(long)]
    dry_run: bool,

    /// Print the result as JSON on stdout
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    common: Common,
}

const LONG_AFTER_HELP: &str = "\
Examples:
  garp-burst -i eth0                         announce every global address of eth0
  garp-burst -i eth0 --ip 203.0.113.10 -c 3  three GARPs for one address
  garp-burst -i eth0 --ip 2001:db8::10 --interval 50ms --json

Exit codes:
  0  every frame was sent
  1  sending failed (socket refused, interface went away mid-burst)
  2  usage or configuration error (unknown or down interface, address not on the
     interface without --force, malformed address or duration, count 0); nothing sent";

fn run(cli: Cli) -> anyhow::Result<Exit> {
    let file: GarpFile = cli.common.init(IDENT)?;
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
            println!("{}", serde_json::json!({ "dry_run": true, "burst": burst }));
        } else {
            let mac = burst.link.mac.map(|m| m.to_string()).unwrap_or_default();
            println!(
                "would send {} round(s) every {} on {} ({mac}):",
                burst.count,
                HDuration(burst.interval),
                burst.link.name
            );
            for f in &burst.frames {
                println!("  {:<12} {}", f.kind, f.ip);
            }
        }
        return Ok(Exit::Ok);
    }
    let report = burst.send()?;
    if cli.json {
        println!(
            "{}",
            serde_json::json!({ "dry_run": false, "report": report })
        );
    }
    Ok(Exit::Ok)
}

#[global_allocator]
static ALLOC: hakit_core::alloc::Arena = hakit_core::alloc::Arena;

fn main() -> std::process::ExitCode {
    let cli: Cli = cli::parse(IDENT);
    cli::finish(IDENT, run(cli))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
