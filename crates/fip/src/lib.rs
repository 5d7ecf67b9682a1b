//! Moving a floating IP at the cloud provider: the library behind `fip-claim`, and the
//! provider step of `nat-notify` and the `fip-owner` probe of `ha-check`.
//!
//! * [`aws`]: Elastic IP, route tables, source/dest check (EC2 Query API, [`sigv4`], [`xml`],
//!   [`aws_query`]: encoding, error texts and IMDSv2, shared with the credential chain);
//!   [`aws_credentials`]: the AWS CLI's credential chain (role profiles, web identity, IMDS).
//! * [`linode`]: IP Sharing (the union rule), assign, release.
//! * [`hetzner`]: Floating IP assign + action polling.
//! * [`digitalocean`]: Reserved IP assign + action polling.
//! * [`http`]: timeouts, one deadline, retries with backoff and jitter, verified TLS, call log.
//! * [`rest`]: bearer tokens (env or a 0600 file) and provider error texts.
//! * [`provider`]: the claim flow every provider shares, the trait each implements, and
//!   the recipe for adding one.
//! * [`Session`]: a provider resolved once (agent, token, this node's identity), run as
//!   often as a retry loop needs.

pub mod aws;
pub mod aws_credentials;
pub mod aws_query;
pub mod config;
pub mod digitalocean;
pub mod hetzner;
pub mod http;
pub mod linode;
pub mod model;
pub mod provider;
pub mod rest;
pub mod sigv4;
pub mod xml;

use std::time::Duration;

use hakit_core::usage_error;

use crate::{
    config::{Fip, Provider as Kind},
    provider::Provider,
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
    Session::new(f, speaker)?.run(mode, dry_run, force)
}

/// A provider resolved once: the TLS agent, the token, and (after the first run) this
/// node's identity, kept across runs. nat-notify's claim retries run the same session;
/// each run gets the configured deadline and attempts afresh.
pub struct Session {
    agent: ureq::Agent,
    deadline: Duration,
    attempts: u32,
    /// The other node(s) of the pair: their IP may be taken.
    peers: Vec<String>,
    provider: Box<dyn Provider + Send>,
}

impl Session {
    pub fn new(f: &Fip, speaker: Option<&hakit_bgp::Speaker>) -> anyhow::Result<Session> {
        let kind = f.provider.ok_or_else(|| {
            usage_error(
                "no provider: give --provider (or HAKIT_FIP_PROVIDER, or provider in [fip])",
            )
        })?;
        let timeout = f.timeout.map_or(Duration::from_secs(3), |d| d.get());
        // The others take a bearer token, from hakit's variable or the provider CLI's, and
        // a numeric ID; AWS signs with its own credentials.
        let token = |env: &[&str]| {
            rest::Token::load(env, f.token_file.as_deref())
                .map_err(|e| usage_error(format!("{e:#}")))
        };
        let id = || match f.instance_id.as_deref().map(str::parse::<u64>) {
            None => Ok(None),
            Some(Ok(n)) => Ok(Some(n)),
            Some(Err(_)) => Err(usage_error(
                "instance_id must be a number for this provider",
            )),
        };
        let provider: Box<dyn Provider + Send> = match kind {
            Kind::Aws => Box::new(aws::Aws::new(aws::Options {
                ip: f.ip,
                allocation_id: f.allocation_id.clone(),
                instance_id: f.instance_id.clone(),
                eni: f.eni.clone(),
                lan_ip: f.lan_ip,
                private_ip: f.private_ip,
                region: f.region.clone(),
                peers: f.peers.clone(),
                destinations: f.route_destinations.clone(),
                endpoint_url: f.endpoint_url.clone(),
                metadata_url: f.metadata_url.clone(),
            })),
            Kind::Linode => Box::new(linode::Linode::new(
                linode::Options {
                    ip: f.ip,
                    linode_id: id()?,
                    assign: f.assign.unwrap_or(false),
                    api_url: f.endpoint_url.clone(),
                    metadata_url: f.metadata_url.clone(),
                    speaker: speaker.cloned(),
                },
                token(linode::TOKEN_VARS)?,
            )?),
            Kind::Hetzner => Box::new(hetzner::Hetzner::new(
                hetzner::Options {
                    ip: f.ip,
                    floating_ip_id: f.floating_ip_id,
                    server_id: id()?,
                    api_url: f.endpoint_url.clone(),
                    metadata_url: f.metadata_url.clone(),
                    network: match (f.network_id, f.lan_ip) {
                        (Some(id), Some(via)) => Some(hetzner::NetworkRoutes {
                            id,
                            via,
                            peers: f.peer_lan_ips.clone(),
                            destinations: if f.route_destinations.is_empty() {
                                vec!["0.0.0.0/0".into()]
                            } else {
                                f.route_destinations.clone()
                            },
                        }),
                        (Some(_), None) => {
                            return Err(usage_error(
                                "network_id needs lan_ip: this node's address on the network, the routes' gateway",
                            ))
                        }
                        (None, _) => None,
                    },
                },
                token(hetzner::TOKEN_VARS)?,
            )?),
            Kind::Digitalocean => Box::new(digitalocean::DigitalOcean::new(
                digitalocean::Options {
                    ip: f.ip,
                    droplet_id: id()?,
                    api_url: f.endpoint_url.clone(),
                    metadata_url: f.metadata_url.clone(),
                },
                token(digitalocean::TOKEN_VARS)?,
            )?),
        };
        Ok(Session {
            agent: http::agent(timeout, timeout, f.ca_file.as_deref())?,
            deadline: f.deadline.map_or(Duration::from_secs(30), |d| d.get()),
            attempts: f.attempts.unwrap_or(5),
            peers: f.peers.clone(),
            provider,
        })
    }

    /// One run of `mode`, under its own deadline.
    pub fn run(
        &mut self,
        mode: model::Mode,
        dry_run: bool,
        force: bool,
    ) -> anyhow::Result<model::Report> {
        let client = http::Client::new(self.agent.clone(), self.deadline, self.attempts);
        provider::run(
            self.provider.as_mut(),
            &client,
            &self.peers,
            mode,
            dry_run,
            force,
        )
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use crate::config::{Fip, Provider};

    /// Every variable a provider reads a credential from is one the children never get
    /// (`hakit_core::exec::is_secret`): a provider whose token variable the rule missed
    /// would hand it to `nft`, `systemctl` and every user command. Every provider of the
    /// enum is built, so a new one is held to it without an edit here: `Token::load`
    /// refuses such a variable as a hakit bug before anything is read.
    #[test]
    fn every_credential_variable_is_kept_from_children() {
        let dir = std::env::temp_dir().join(format!("hakit-fip-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "t0ken\n").unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        for p in Provider::value_variants() {
            let f = Fip {
                provider: Some(*p),
                ip: Some("203.0.113.10".parse().unwrap()),
                instance_id: Some("7".into()),
                token_file: Some(file.clone()),
                ..Fip::default()
            };
            // Built, so its token variables passed the check (AWS signs with its own).
            if let Err(e) = crate::Session::new(&f, None) {
                panic!("{p:?}: {e:#}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
        for v in crate::aws_credentials::SECRET_ENV {
            assert!(hakit_core::exec::is_secret(v), "{v}");
        }
        let err = crate::rest::Token::load(&["VULTR_ID"], Some(&dir))
            .err()
            .unwrap();
        assert!(format!("{err}").contains("hakit bug"), "{err}");
    }
}
