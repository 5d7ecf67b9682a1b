//! `fip-claim`: move a floating / elastic IP to this node at the cloud provider. Thin main:
//! parse, build the provider options, hand over to `hakit_fip`, map the outcome.

use std::{net::IpAddr, path::PathBuf};

use clap::Parser;
use hakit_core::{
    cli::{self, Common},
    config::{Fip, FipFile, Provider},
    usage_error, Exit, HDuration,
};
use hakit_fip::model::{Mode, Partial, Refused};

const IDENT: &str = "fip-claim";

/// Move a floating IP to this node through the provider's API (and, on AWS, the route
/// tables and the source/dest check), read-first and idempotently.
///
/// A node that already owns the IP makes no write and says "already converged". An IP held
/// by a node outside the pair (--peer) is refused unless --force: that is also the
/// shell's forced failover. --check only reads: exit 0 if this node owns the IP, 1 if not.
/// Credentials come from the environment or files, never from the command line.
#[derive(Debug, Parser)]
#[command(name = IDENT, version, after_help = AFTER_HELP)]
struct Cli {
    /// Cloud provider
    #[arg(long, env = "HAKIT_FIP_PROVIDER", value_enum)]
    provider: Option<Provider>,
    /// The floating / elastic IP
    #[arg(long, env = "HAKIT_FIP_IP", value_name = "ADDR")]
    ip: Option<IpAddr>,
    /// Hetzner: the Floating IP's ID (instead of --ip)
    #[arg(long, env = "HAKIT_FIP_FLOATING_IP_ID", value_name = "ID")]
    floating_ip_id: Option<u64>,
    /// Linode: move the address with /networking/ips/assign instead of sharing it
    #[arg(long)]
    assign: bool,
    /// File holding the API token (mode 0600) instead of the provider's variable
    #[arg(long, env = "HAKIT_FIP_TOKEN_FILE", value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// AWS: the Elastic IP's allocation ID (instead of --ip)
    #[arg(long, env = "HAKIT_FIP_ALLOCATION_ID", value_name = "ID")]
    allocation_id: Option<String>,
    /// This node's instance ID [default: from the metadata service]
    #[arg(long, env = "HAKIT_FIP_INSTANCE_ID", value_name = "ID")]
    instance_id: Option<String>,
    /// AWS: this node's network interface [default: from the metadata service]
    #[arg(long, env = "HAKIT_FIP_ENI", value_name = "ENI")]
    eni: Option<String>,
    /// AWS: region [default: from the metadata service]
    #[arg(long, env = "HAKIT_FIP_REGION", value_name = "REGION")]
    region: Option<String>,
    /// The other node(s) of the pair (repeatable): their IP and routes may be taken
    #[arg(
        long = "peer",
        env = "HAKIT_FIP_PEERS",
        value_delimiter = ',',
        value_name = "ID"
    )]
    peers: Vec<String>,
    /// AWS: route destinations to move [default: 0.0.0.0/0]
    #[arg(long = "route-destination", value_name = "CIDR")]
    destinations: Vec<String>,
    /// Provider API base URL (tests, regional endpoints)
    #[arg(
        long,
        alias = "api-url",
        env = "HAKIT_FIP_ENDPOINT_URL",
        value_name = "URL"
    )]
    endpoint_url: Option<String>,
    /// Metadata service base URL
    #[arg(long, env = "HAKIT_FIP_METADATA_URL", value_name = "URL")]
    metadata_url: Option<String>,
    /// Extra CA certificate (PEM) trusted besides the system bundle
    #[arg(long, env = "HAKIT_FIP_CA_FILE", value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// Connect/read timeout of each request [default: 3s]
    #[arg(long, env = "HAKIT_FIP_TIMEOUT", value_name = "DUR")]
    timeout: Option<HDuration>,
    /// Overall deadline for the whole operation, retries included [default: 30s]
    #[arg(long, env = "HAKIT_FIP_DEADLINE", value_name = "DUR")]
    deadline: Option<HDuration>,
    /// Attempts per request (429, 5xx, throttling and transport errors are retried) [default: 5]
    #[arg(long, env = "HAKIT_FIP_ATTEMPTS", value_name = "N")]
    attempts: Option<u32>,
    /// Read-only: exit 0 if this node owns the IP, 1 if not
    #[arg(long, conflicts_with = "release")]
    check: bool,
    /// Linode: remove the IP from this node's shared set
    #[arg(long)]
    release: bool,
    /// Take the IP even from a node outside the pair (forced failover)
    #[arg(long)]
    force: bool,
    /// Print the exact write requests it would send (secrets redacted); reads still happen
    #[arg(long)]
    dry_run: bool,
    /// Print what was found, what changed and every call with its time, as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: Common,
}

const AFTER_HELP: &str = "\
Credentials (never on the command line):
  aws           AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN], the shared
                credentials file (AWS_PROFILE), or the instance role from IMDSv2
  linode        LINODE_TOKEN, or --token-file (mode 0600)
  hetzner       HCLOUD_TOKEN, or --token-file (mode 0600)
  digitalocean  DIGITALOCEAN_TOKEN, or --token-file (mode 0600)

Exit codes:
  0  this node owns the IP (claimed, or already converged; --check: owns it)
  1  the claim failed (--check: this node does not own the IP)
  2  usage error, or refused: the IP belongs to a node outside the pair (use --force)
  3  partially applied: some changes were made and a later one failed (listed)";

fn run(cli: Cli) -> anyhow::Result<Exit> {
    let file: FipFile = cli.common.init(IDENT)?;
    // Layers: flag or env (clap), then the [fip] table, then the library's defaults.
    let f = file.fip;
    let cfg = Fip {
        provider: cli.provider.or(f.provider),
        ip: cli.ip.or(f.ip),
        allocation_id: cli.allocation_id.or(f.allocation_id),
        floating_ip_id: cli.floating_ip_id.or(f.floating_ip_id),
        instance_id: cli.instance_id.or(f.instance_id),
        eni: cli.eni.or(f.eni),
        region: cli.region.or(f.region),
        peers: if cli.peers.is_empty() {
            f.peers
        } else {
            cli.peers
        },
        route_destinations: if cli.destinations.is_empty() {
            f.route_destinations
        } else {
            cli.destinations
        },
        assign: Some(cli.assign || f.assign.unwrap_or(false)),
        endpoint_url: cli.endpoint_url.or(f.endpoint_url),
        metadata_url: cli.metadata_url.or(f.metadata_url),
        ca_file: cli.ca_file.or(f.ca_file),
        token_file: cli.token_file.or(f.token_file),
        timeout: cli.timeout.or(f.timeout),
        deadline: cli.deadline.or(f.deadline),
        attempts: cli.attempts.or(f.attempts),
    };
    let mode = if cli.check {
        Mode::Check
    } else if cli.release {
        Mode::Release
    } else {
        Mode::Claim
    };
    let out = hakit_fip::run(&cfg, mode, cli.dry_run, cli.force);
    let out = match out {
        Ok(o) => o,
        Err(e) if e.downcast_ref::<Refused>().is_some() => {
            return Err(usage_error(format!("{e:#}")))
        }
        Err(e) if e.downcast_ref::<Partial>().is_some() => {
            hakit_core::logging::report_fatal(IDENT, &e);
            return Ok(Exit::Partial);
        }
        Err(e) => return Err(e),
    };
    if cli.json {
        println!("{}", serde_json::to_string(&out)?);
    } else if cli.dry_run {
        for p in &out.planned {
            println!("would send: {p}");
        }
        if out.planned.is_empty() {
            println!("nothing to send: already converged");
        }
    }
    let ip = out.ip.map_or("the IP".to_string(), |i| i.to_string());
    if mode == Mode::Check {
        log::info!(
            "{ip}: {} by this node ({})",
            if out.owned { "owned" } else { "NOT owned" },
            out.this_node
        );
        return Ok(if out.owned { Exit::Ok } else { Exit::Failed });
    }
    if out.already_converged {
        log::info!("{ip} already converged on {}: no write made", out.this_node);
    } else if !cli.dry_run {
        log::info!(
            "{ip} claimed for {}: {}",
            out.this_node,
            out.changed.join("; ")
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
