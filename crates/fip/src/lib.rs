//! Moving a floating IP at the cloud provider: the library behind `fip-claim`, and the
//! provider step of `nat-notify` and the `fip-owner` probe of `ha-check`.
//!
//! * [`aws`]: Elastic IP, route tables, source/dest check (EC2 Query API, [`sigv4`], [`xml`]);
//!   [`aws_credentials`]: the AWS CLI's credential chain (role profiles, web identity, IMDS).
//! * [`linode`]: IP Sharing (the union rule), assign, release.
//! * [`hetzner`]: Floating IP assign + action polling.
//! * [`digitalocean`]: Reserved IP assign + action polling.
//! * [`http`]: timeouts, one deadline, retries with backoff and jitter, verified TLS, call log.
//! * [`rest`]: bearer tokens (env or a 0600 file) and provider error texts.

pub mod aws;
pub mod aws_credentials;
pub mod digitalocean;
pub mod hetzner;
pub mod http;
pub mod linode;
pub mod model;
pub mod rest;
pub mod sigv4;
pub mod xml;

use std::time::Duration;

use hakit_core::{
    config::{Fip, Provider},
    usage_error,
};

/// Runs `mode` for the provider and settings of a `[fip]` configuration (flags already
/// layered over it): the entry point of `fip-claim` and of ha-check's `fip-owner` probe.
pub fn run(
    f: &Fip,
    mode: model::Mode,
    dry_run: bool,
    force: bool,
) -> anyhow::Result<model::Report> {
    run_with(f, mode, dry_run, force, None)
}

/// [`run`] where a BGP speaker announces the address (Linode with lelastic or FRR): the
/// check then answers from the speaker's announced role (primary) plus the share set.
pub fn run_with(
    f: &Fip,
    mode: model::Mode,
    dry_run: bool,
    force: bool,
    speaker: Option<&hakit_bgp::Speaker>,
) -> anyhow::Result<model::Report> {
    let provider = f.provider.ok_or_else(|| {
        usage_error("no provider: give --provider (or HAKIT_FIP_PROVIDER, or provider in [fip])")
    })?;
    let timeout = f.timeout.map_or(Duration::from_secs(3), |d| d.get());
    let deadline = f.deadline.map_or(Duration::from_secs(30), |d| d.get());
    let client = http::Client::new(
        http::agent(timeout, timeout, f.ca_file.as_deref())?,
        deadline,
        f.attempts.unwrap_or(5),
    );
    // AWS signs with its own credentials; the others take a bearer token, from hakit's
    // variable or the provider CLI's, and a numeric ID.
    let token = |env: &[&str]| {
        rest::Token::load(env, f.token_file.as_deref()).map_err(|e| usage_error(format!("{e:#}")))
    };
    let id = || match f.instance_id.as_deref().map(str::parse::<u64>) {
        None => Ok(None),
        Some(Ok(n)) => Ok(Some(n)),
        Some(Err(_)) => Err(usage_error(
            "instance_id must be a number for this provider",
        )),
    };
    match provider {
        Provider::Aws => aws::run(
            &client,
            &aws::Options {
                ip: f.ip,
                allocation_id: f.allocation_id.clone(),
                instance_id: f.instance_id.clone(),
                eni: f.eni.clone(),
                region: f.region.clone(),
                peers: f.peers.clone(),
                destinations: f.route_destinations.clone(),
                endpoint_url: f.endpoint_url.clone(),
                metadata_url: f.metadata_url.clone(),
                force,
                dry_run,
            },
            mode,
        ),
        Provider::Linode => linode::run(
            &client,
            &token(&["LINODE_TOKEN", "LINODE_CLI_TOKEN"])?,
            &linode::Options {
                ip: f.ip,
                linode_id: id()?,
                peers: f.peers.clone(),
                assign: f.assign.unwrap_or(false),
                api_url: f.endpoint_url.clone(),
                metadata_url: f.metadata_url.clone(),
                force,
                dry_run,
                speaker: speaker.cloned(),
            },
            mode,
        ),
        Provider::Hetzner => hetzner::run(
            &client,
            &token(&["HCLOUD_TOKEN"])?,
            &hetzner::Options {
                ip: f.ip,
                floating_ip_id: f.floating_ip_id,
                server_id: id()?,
                peers: f.peers.clone(),
                api_url: f.endpoint_url.clone(),
                metadata_url: f.metadata_url.clone(),
                force,
                dry_run,
            },
            mode,
        ),
        Provider::Digitalocean => digitalocean::run(
            &client,
            &token(&["DIGITALOCEAN_TOKEN", "DIGITALOCEAN_ACCESS_TOKEN"])?,
            &digitalocean::Options {
                ip: f.ip,
                droplet_id: id()?,
                peers: f.peers.clone(),
                api_url: f.endpoint_url.clone(),
                metadata_url: f.metadata_url.clone(),
                force,
                dry_run,
            },
            mode,
        ),
    }
}
