//! `fip-claim`: move a floating / elastic IP to this node at the cloud provider. Thin main:
//! parse, build the provider options, hand over to `hakit_fip`, map the outcome.

use hakit_cli::fip_claim::{Cli, IDENT};
use hakit_core::{
    cli::{self},
    usage_error, Exit,
};
use hakit_fip::{
    config::{Fip, FipFile},
    model::{Mode, Partial, Refused},
};

fn run(cli: Cli) -> anyhow::Result<Exit> {
    let file: FipFile<hakit_bgp::Config> = cli.common.init(IDENT)?;
    let speaker = if file.bgp == hakit_bgp::Config::default() {
        None
    } else {
        Some(hakit_bgp::Speaker::new(&file.bgp).map_err(usage_error)?)
    };
    // Layers: flag or env (clap), then the [fip] table, then the library's defaults.
    let f = file.fip;
    let cfg = Fip {
        provider: cli.provider.or(f.provider),
        ip: cli.ip.or(f.ip),
        allocation_id: cli.allocation_id.or(f.allocation_id),
        floating_ip_id: cli.floating_ip_id.or(f.floating_ip_id),
        instance_id: cli.instance_id.or(f.instance_id),
        eni: cli.eni.or(f.eni),
        lan_ip: cli.lan_ip.or(f.lan_ip),
        private_ip: cli.private_ip.or(f.private_ip),
        network_id: cli.network_id.or(f.network_id),
        peer_lan_ips: if cli.peer_lan_ips.is_empty() {
            f.peer_lan_ips
        } else {
            cli.peer_lan_ips
        },
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
    let out = hakit_fip::run_with(&cfg, mode, cli.dry_run, cli.force, speaker.as_ref());
    let out = match out {
        Ok(o) => o,
        Err(e) if e.downcast_ref::<Refused>().is_some() => {
            return Err(usage_error(format!("{e:#}")))
        }
        Err(e) if e.downcast_ref::<Partial>().is_some() => {
            hakit_core::logging::report_fatal(IDENT, &e);
            return Ok(Exit::Partial);
        }
        // --check could not tell (the API or metadata did not answer): 3, never 1, which
        // says "not the owner" and would make a runbook hand the role over on a blip.
        Err(e) if mode == Mode::Check && Exit::of_error(&e) != Exit::Usage => {
            hakit_core::logging::report_fatal(IDENT, &e);
            return Ok(Exit::Partial);
        }
        Err(e) => return Err(e),
    };
    if cli.json {
        hakit_core::outln!("{}", serde_json::to_string(&out)?);
    } else if cli.dry_run {
        for p in &out.planned {
            hakit_core::outln!("would send: {p}");
        }
        if out.planned.is_empty() {
            hakit_core::outln!("nothing to send: already converged");
        }
    }
    let ip = out.ip.map_or("the IP".to_string(), |i| i.to_string());
    if mode == Mode::Check {
        log::info!(
            "{ip}: {} by this node ({}){}",
            if out.owned { "owned" } else { "NOT owned" },
            out.this_node,
            out.announced
                .as_deref()
                .map_or(String::new(), |a| format!("; announced {a}"))
        );
        for (peer, has) in out.peers_have.iter().flatten() {
            if *has {
                log::info!(
                    "{ip}: on peer {peer} too (assigned or shared): a failover can move it there"
                );
            } else {
                log::warn!(
                    "{ip}: NOT on peer {peer}: a failover cannot move it there (fip-claim --peer {peer} on the node that has it shares it)"
                );
            }
        }
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

fn main() -> std::process::ExitCode {
    let cli: Cli = cli::parse(IDENT);
    cli::finish(IDENT, run(cli))
}
