//! `[bgp]` validated into a [`Speaker`] (every error a configuration error, exit 2): the
//! one place that knows the speakers, each a file behind [`Dialect`].

use std::{net::SocketAddr, sync::Arc};

use hakit_core::duration::HDuration;

use crate::{
    bird::Bird, frr::Frr, gobgp::Gobgp, Config, Demote, Dialect, Kind, Speaker, BIRD_ROLES,
    GOBGP_API, PRIMARY, SECONDARY, TIMEOUT,
};

impl Speaker {
    /// Validates `[bgp]` (every error is a configuration error: exit 2).
    pub fn new(c: &Config) -> Result<Speaker, String> {
        let kind = c
            .speaker
            .ok_or("[bgp] speaker is required (gobgp, frr or bird)")?;
        crate::config::networks(&c.prefixes)?;
        let primary = crate::config::community(&c.primary, PRIMARY, "primary")?;
        let secondary = crate::config::community(&c.secondary, SECONDARY, "secondary")?;
        if primary == secondary {
            return Err("[bgp] primary and secondary are the same community".into());
        }
        let api: SocketAddr = c
            .gobgp_api
            .as_deref()
            .unwrap_or(GOBGP_API)
            .parse()
            .map_err(|_| "[bgp] gobgp_api: expected host:port, e.g. 127.0.0.1:50051".to_string())?;
        let map = crate::config::route_map;
        let maps = [
            map(&c.frr_primary_route_map, "primary", "frr_primary_route_map")?,
            map(
                &c.frr_secondary_route_map,
                "secondary",
                "frr_secondary_route_map",
            )?,
        ];
        // The one place that knows the speakers: each is a file behind `Dialect`.
        let dialect: Arc<dyn Dialect> = match kind {
            Kind::Gobgp => Arc::new(Gobgp { api }),
            Kind::Frr => Arc::new(Frr {
                asn: c
                    .frr_asn
                    .filter(|a| *a != 0)
                    .ok_or("[bgp] frr_asn is required for speaker = \"frr\" (router bgp ASN)")?,
                maps,
                vty_socket: c.frr_vty_socket.clone(),
            }),
            Kind::Bird => Arc::new(Bird {
                roles: crate::config::bird_path(
                    c.bird_roles_file
                        .as_deref()
                        .unwrap_or(std::path::Path::new(BIRD_ROLES)),
                    "bird_roles_file",
                )?,
                socket: c
                    .bird_socket
                    .as_deref()
                    .map(|s| crate::config::bird_path(s, "bird_socket"))
                    .transpose()?,
            }),
        };
        crate::config::unit(c.unit.as_deref())?;
        let program = c
            .program
            .clone()
            .unwrap_or_else(|| dialect.program().to_string());
        if program.is_empty() || program.starts_with('-') || program.contains('\0') {
            return Err(format!("[bgp] program: {program:?} is not a program"));
        }
        Ok(Speaker {
            kind,
            program,
            dialect,
            primary,
            secondary,
            prefixes: c.prefixes.clone(),
            fault: c.fault.unwrap_or(Demote::Secondary),
            stop: c.stop.unwrap_or(Demote::Secondary),
            unit: c.unit.clone(),
            timeout: c.timeout.map_or(TIMEOUT, HDuration::get),
        })
    }
}
