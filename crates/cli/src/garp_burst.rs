//! garp-burst's command line. Kept apart from main so `hakit-docgen` can render the man
//! page and shell completions from the very same clap definitions.

use std::net::IpAddr;

use clap::Parser;
use hakit_core::{cli::Common, exit::EXIT_CODES_HELP, HDuration};

pub const IDENT: &str = "garp-burst";
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
    version = hakit_core::version!(),
    after_help = EXIT_CODES_HELP,
    after_long_help = LONG_AFTER_HELP,
)]
pub struct Cli {
    /// Interface to send on
    #[arg(short, long, env = "HAKIT_GARP_INTERFACE", value_name = "DEV")]
    pub interface: Option<String>,

    /// Address to announce (repeatable) [default: every global address on DEV]
    #[arg(
        long = "ip",
        env = "HAKIT_GARP_IPS",
        value_delimiter = ',',
        value_name = "ADDR"
    )]
    pub ips: Vec<IpAddr>,

    /// Frames per address [default: 5]
    #[arg(short, long, env = "HAKIT_GARP_COUNT", value_name = "N")]
    pub count: Option<u32>,

    /// Time between rounds, e.g. 10ms, 200ms, 1s [default: 200ms]
    #[arg(long, env = "HAKIT_GARP_INTERVAL", value_name = "DUR")]
    pub interval: Option<HDuration>,

    /// Also send the ARP-reply form for IPv4 addresses
    #[arg(long, env = "HAKIT_GARP_REPLY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub reply: Option<bool>,

    /// Announce addresses that are not on DEV, and send on NOARP links
    #[arg(long)]
    pub force: bool,

    /// Set the Router flag in neighbour advertisements [default: DEV's IPv6 forwarding]
    #[arg(long, value_name = "BOOL")]
    pub router: Option<bool>,

    /// Validate and print the frames that would be sent; send nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Print the result as JSON on stdout
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub common: Common,
}

pub const LONG_AFTER_HELP: &str = "\
Examples:
  garp-burst -i eth0                         announce every global address of eth0
  garp-burst -i eth0 --ip 203.0.113.10 -c 3  three GARPs for one address
  garp-burst -i eth0 --ip 2001:db8::10 --interval 50ms --json

Exit codes:
  0  every frame was sent
  1  sending failed (socket refused, interface went away mid-burst)
  2  usage or configuration error (unknown or down interface, address not on the
     interface without --force, malformed address or duration, count 0); nothing sent";
