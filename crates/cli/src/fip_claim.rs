//! fip-claim's command line. Kept apart from main so `hakit-docgen` can render the man
//! page and shell completions from the very same clap definitions.

use std::{net::IpAddr, path::PathBuf};

use clap::Parser;
use hakit_core::{cli::Common, HDuration};
use hakit_fip::config::Provider;

pub const IDENT: &str = "fip-claim";

/// Move a floating IP to this node through the provider's API (and, on AWS, the route
/// tables and the source/dest check), read-first and idempotently.
///
/// A node that already owns the IP makes no write and says "already converged". An IP held
/// by a node outside the pair (--peer) is refused unless --force: that is also the
/// shell's forced failover. --check only reads: exit 0 if this node owns the IP, 1 if not,
/// 3 if it could not tell.
/// Credentials come from the environment or files, never from the command line.
#[derive(Debug, Parser)]
#[command(name = IDENT, version = hakit_core::version!(), after_help = AFTER_HELP)]
pub struct Cli {
    /// Cloud provider
    #[arg(long, env = "HAKIT_FIP_PROVIDER", value_enum)]
    pub provider: Option<Provider>,
    /// The floating / elastic IP
    #[arg(long, env = "HAKIT_FIP_IP", value_name = "ADDR")]
    pub ip: Option<IpAddr>,
    /// Hetzner: the Floating IP's ID (instead of --ip)
    #[arg(long, env = "HAKIT_FIP_FLOATING_IP_ID", value_name = "ID")]
    pub floating_ip_id: Option<u64>,
    /// Linode: move the address with /networking/ips/assign instead of sharing it
    #[arg(long)]
    pub assign: bool,
    /// File holding the API token (mode 0600) instead of the provider's variable
    #[arg(long, env = "HAKIT_FIP_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// AWS: the Elastic IP's allocation ID (instead of --ip)
    #[arg(long, env = "HAKIT_FIP_ALLOCATION_ID", value_name = "ID")]
    pub allocation_id: Option<String>,
    /// This node's instance ID [default: from the metadata service]
    #[arg(long, env = "HAKIT_FIP_INSTANCE_ID", value_name = "ID")]
    pub instance_id: Option<String>,
    /// AWS: this node's network interface [default: from the metadata service]
    #[arg(long, env = "HAKIT_FIP_ENI", value_name = "ENI")]
    pub eni: Option<String>,
    /// This node's LAN address, where the LAN's default route should point (AWS: names the LAN ENI, whose source/dest check goes off; Hetzner: the network route's gateway)
    #[arg(long, env = "HAKIT_FIP_LAN_IP", value_name = "ADDR")]
    pub lan_ip: Option<std::net::Ipv4Addr>,
    /// Hetzner: the Cloud Network whose default route follows the Floating IP (to --lan-ip)
    #[arg(long, env = "HAKIT_FIP_NETWORK_ID", value_name = "ID")]
    pub network_id: Option<u64>,
    /// Hetzner: a peer's address on that network (repeatable): a route through it may be taken
    #[arg(long = "peer-lan-ip", value_name = "ADDR")]
    pub peer_lan_ips: Vec<std::net::Ipv4Addr>,
    /// AWS: the secondary private IPv4 (of the WAN ENI) the Elastic IP is on and both nodes SNAT to: moved here with its association
    #[arg(long, env = "HAKIT_FIP_PRIVATE_IP", value_name = "ADDR")]
    pub private_ip: Option<std::net::Ipv4Addr>,
    /// AWS: region [default: AWS_REGION, AWS_DEFAULT_REGION, else the metadata service]
    #[arg(long, env = "HAKIT_FIP_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// The other node(s) of the pair (repeatable): their IP and routes may be taken
    #[arg(
        long = "peer",
        env = "HAKIT_FIP_PEERS",
        value_delimiter = ',',
        value_name = "ID"
    )]
    pub peers: Vec<String>,
    /// AWS: route destinations to move [default: 0.0.0.0/0]
    #[arg(long = "route-destination", value_name = "CIDR")]
    pub destinations: Vec<String>,
    /// Provider API base URL (tests, regional endpoints)
    #[arg(
        long,
        alias = "api-url",
        env = "HAKIT_FIP_ENDPOINT_URL",
        value_name = "URL"
    )]
    pub endpoint_url: Option<String>,
    /// Metadata service base URL
    #[arg(long, env = "HAKIT_FIP_METADATA_URL", value_name = "URL")]
    pub metadata_url: Option<String>,
    /// Extra CA certificate (PEM) trusted besides the system bundle
    #[arg(long, env = "HAKIT_FIP_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// Connect/read timeout of each request [default: 3s]
    #[arg(long, env = "HAKIT_FIP_TIMEOUT", value_name = "DUR")]
    pub timeout: Option<HDuration>,
    /// Overall deadline for the whole operation, retries included [default: 30s]
    #[arg(long, env = "HAKIT_FIP_DEADLINE", value_name = "DUR")]
    pub deadline: Option<HDuration>,
    /// Attempts per request (429, 5xx, throttling and transport errors are retried) [default: 5]
    #[arg(long, env = "HAKIT_FIP_ATTEMPTS", value_name = "N")]
    pub attempts: Option<u32>,
    /// Read-only: exit 0 if this node owns the IP, 1 if not, 3 if it could not tell
    #[arg(long, conflicts_with = "release")]
    pub check: bool,
    /// Linode: remove the IP from this node's shared set
    #[arg(long)]
    pub release: bool,
    /// Take the IP even from a node outside the pair (forced failover)
    #[arg(long)]
    pub force: bool,
    /// Print the exact write requests it would send (secrets redacted); reads still happen
    #[arg(long)]
    pub dry_run: bool,
    /// Print what was found, what changed and every call with its time, as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: Common,
}

pub const AFTER_HELP: &str = "\
Credentials (never on the command line):
  aws           as the AWS CLI finds them: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
                [/AWS_SESSION_TOKEN]; a role profile (AWS_PROFILE or default: role_arn
                with source_profile, credential_source or web_identity_token_file);
                AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN; the profile's keys in
                ~/.aws/credentials or ~/.aws/config; the instance role from IMDSv2.
                Roles are assumed through STS (AWS_ENDPOINT_URL_STS) for 15 minutes
  linode        LINODE_TOKEN or LINODE_CLI_TOKEN, or --token-file (mode 0600)
  hetzner       HCLOUD_TOKEN, or --token-file (mode 0600)
  digitalocean  DIGITALOCEAN_TOKEN or DIGITALOCEAN_ACCESS_TOKEN, or --token-file (0600)

Exit codes:
  0  this node owns the IP (claimed, or already converged; --check: owns it)
  1  the claim failed (--check: this node does not own the IP)
  2  usage error, or refused: the IP belongs to a node outside the pair (use --force)
  3  partially applied: some changes were made and a later one failed (listed);
     --check: could not tell (the provider or metadata service did not answer)";
