//! The `[fip]` table: fip-claim's settings, which nat-notify's provider step and ha-check's
//! fip-owner probe reuse (hakit-core loads the file; the table lives with its user).

use std::path::PathBuf;

use hakit_core::{
    config::{File, Skip},
    HDuration,
};
use serde::Deserialize;

/// What `fip-claim` reads.
pub type FipFile<B = Skip> = File<Skip, Skip, Skip, Fip, B>;

/// A cloud provider of floating IPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Aws,
    Linode,
    Hetzner,
    Digitalocean,
}

/// `[fip]`: `fip-claim` (and the provider step and probe that reuse it). Tokens are never
/// keys here: they come from the provider's environment variable or `token_file` (0600).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fip {
    /// The cloud: `aws`, `linode`, `hetzner` or `digitalocean`.
    pub provider: Option<Provider>,
    /// The floating / elastic / reserved IP to claim.
    pub ip: Option<std::net::IpAddr>,
    /// aws: the Elastic IP's allocation ID (instead of `ip`).
    pub allocation_id: Option<String>,
    /// hetzner: the Floating IP's ID (instead of `ip`).
    pub floating_ip_id: Option<u64>,
    /// This node's instance, Linode, server or droplet ID [default: from the metadata service].
    pub instance_id: Option<String>,
    /// aws: associate with this network interface instead of the instance.
    pub eni: Option<String>,
    /// This node's private IPv4 on the LAN side, where the LAN's default route should point.
    /// aws: it names the LAN ENI: the private route tables are pointed at that interface and
    /// its source/destination check is turned off [default: the interface the Elastic IP is
    /// on]. hetzner: the gateway of `network_id`'s routes.
    pub lan_ip: Option<std::net::Ipv4Addr>,
    /// hetzner: the Cloud Network whose routes (`route_destinations`, default 0.0.0.0/0)
    /// follow the Floating IP: their gateway becomes `lan_ip` (a Cloud Network is routed:
    /// a LAN VIP moved by GARP reaches nobody).
    pub network_id: Option<u64>,
    /// hetzner: the peers' addresses on that network: a route through one of them is taken,
    /// a route through any other server refused.
    #[serde(default)]
    pub peer_lan_ips: Vec<std::net::Ipv4Addr>,
    /// aws: a secondary private IPv4 of the WAN ENI that the Elastic IP is associated with and
    /// both nodes SNAT to: it moves to this node's ENI with its association
    /// (`AssignPrivateIpAddresses` `AllowReassignment`), so a flow synchronised from the peer
    /// keeps its address [default: none: the Elastic IP on the ENI's primary address].
    pub private_ip: Option<std::net::Ipv4Addr>,
    /// aws: the region [default: from the metadata service].
    pub region: Option<String>,
    /// The other node(s) of the pair by ID: an IP they hold may be taken; one held by anyone else is refused unless --force.
    #[serde(default)]
    pub peers: Vec<String>,
    /// aws: route destinations moved to this node when they target a peer [default: 0.0.0.0/0 and ::/0].
    #[serde(default)]
    pub route_destinations: Vec<String>,
    /// linode: move the address (`/networking/ips/assign`) instead of IP Sharing.
    pub assign: Option<bool>,
    /// The provider API's base URL [default: the provider's public endpoint].
    pub endpoint_url: Option<String>,
    /// The metadata service's base URL [default: http://169.254.169.254]; never reached through a proxy.
    pub metadata_url: Option<String>,
    /// Extra CA certificate file (PEM) trusted beside the system bundle.
    pub ca_file: Option<PathBuf>,
    /// File holding the API token (mode 0600; refused if others can read it).
    pub token_file: Option<PathBuf>,
    /// Connect and read timeout of each request [default: 3s].
    pub timeout: Option<HDuration>,
    /// Overall deadline of a run, retries included [default: 30s].
    pub deadline: Option<HDuration>,
    /// Attempts per request for retriable failures [default: 5].
    pub attempts: Option<u32>,
}
