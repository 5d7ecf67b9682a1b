//! `[bgp]` as the file has it, and the checks of its values (each a configuration error:
//! exit 2, naming the key).

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use hakit_core::{config::Cidr, duration::HDuration};
use serde::Deserialize;

use crate::Community;

/// `[bgp]`: the local BGP speaker that announces the shared addresses.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `gobgp` (lelastic, or any GoBGP daemon), `frr` or `bird` (BIRD 2).
    pub speaker: Option<Kind>,
    /// The prefixes this pair announces (lelastic: each address on `lo`, IPv4 as /32,
    /// IPv6 as /64 or /56).
    #[serde(default)]
    pub prefixes: Vec<Cidr>,
    /// Communities of the two roles [default: 65000:1 and 65000:2, Linode's].
    pub primary: Option<String>,
    /// The secondary role's community [default: 65000:2].
    pub secondary: Option<String>,
    /// What FAULT and STOP do to the announcement: `secondary` (default: the peer's
    /// primary path wins, and this node still carries traffic if the peer has none) or
    /// `withdraw`.
    pub fault: Option<Demote>,
    /// What STOP does to the announcement (as `fault`).
    pub stop: Option<Demote>,
    /// gobgp: the GoBGP API, host:port [default: 127.0.0.1:50051, lelastic's].
    pub gobgp_api: Option<String>,
    /// frr: the local AS of `router bgp` (required for frr).
    pub frr_asn: Option<u32>,
    /// frr: route-maps that set each role's community [default: primary, secondary].
    pub frr_primary_route_map: Option<String>,
    /// frr: the route-map of the secondary role [default: secondary].
    pub frr_secondary_route_map: Option<String>,
    /// frr: vtysh's `--vty_socket` directory (default: FRR's own).
    pub frr_vty_socket: Option<PathBuf>,
    /// bird: the roles file hakit writes and bird.conf includes (`include "FILE";` at the
    /// top level) [default: /etc/bird/hakit-roles.conf].
    pub bird_roles_file: Option<PathBuf>,
    /// bird: birdc's control socket (`-s`) [default: BIRD's own].
    pub bird_socket: Option<PathBuf>,
    /// The speaker's systemd unit (e.g. `lelastic.service`, `frr.service`): started, never
    /// restarted, when the speaker does not answer.
    pub unit: Option<String>,
    /// The `gobgp`, `vtysh` or `birdc` program, found on PATH unless a path [default: by speaker].
    pub program: Option<String>,
    /// Timeout of each speaker command [default: 2s].
    pub timeout: Option<HDuration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Gobgp,
    Frr,
    Bird,
}

/// What FAULT/STOP do to the announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Demote {
    Secondary,
    Withdraw,
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !s.starts_with('-')
}

/// The announced prefixes: at least one, each a network (no host bits).
pub(crate) fn networks(prefixes: &[Cidr]) -> Result<(), String> {
    if prefixes.is_empty() {
        return Err("[bgp] prefixes is empty: list the shared addresses announced".into());
    }
    for p in prefixes {
        let net_ok = match p.addr {
            IpAddr::V4(a) => {
                let m = u32::MAX.checked_shl(32 - u32::from(p.prefix)).unwrap_or(0);
                u32::from(a) & !m == 0
            }
            IpAddr::V6(a) => {
                let m = u128::MAX
                    .checked_shl(128 - u32::from(p.prefix))
                    .unwrap_or(0);
                u128::from(a) & !m == 0
            }
        };
        if !net_ok {
            return Err(format!(
                "[bgp] prefixes: {p} has host bits set (a speaker announces networks)"
            ));
        }
    }
    Ok(())
}

/// A role's community, `key`'s value or the default.
pub(crate) fn community(v: &Option<String>, d: Community, key: &str) -> Result<Community, String> {
    match v {
        Some(s) => s
            .parse::<Community>()
            .map_err(|e| format!("[bgp] {key}: {e}")),
        None => Ok(d),
    }
}

/// A route-map name (it goes into vtysh's configuration commands).
pub(crate) fn route_map(v: &Option<String>, d: &str, key: &str) -> Result<String, String> {
    let m = v.clone().unwrap_or_else(|| d.to_string());
    if name_ok(&m) {
        Ok(m)
    } else {
        Err(format!(
            "[bgp] {key}: {m:?} is not a route-map name (letters, digits, _ . -)"
        ))
    }
}

/// A BIRD path (`key`'s value): absolute, nothing BIRD's `include` string or birdc's
/// argument could misread.
pub(crate) fn bird_path(p: &Path, key: &str) -> Result<PathBuf, String> {
    if path_ok(p) {
        Ok(p.to_path_buf())
    } else {
        Err(format!(
            "[bgp] {key}: {:?} is not an absolute file path (no .., quotes or control characters)",
            p.display().to_string()
        ))
    }
}

/// The speaker's unit (a `systemctl` argument).
pub(crate) fn unit(u: Option<&str>) -> Result<(), String> {
    match u {
        Some(u) if !name_ok(u.trim_end_matches(".service")) || u.contains("..") => {
            Err(format!("[bgp] unit: {u:?} is not a unit name"))
        }
        _ => Ok(()),
    }
}

/// `[bgp] bird_roles_file` and `bird_socket`: absolute paths, nothing BIRD's `include`
/// string or birdc's argument could misread.
pub(crate) fn path_ok(p: &std::path::Path) -> bool {
    let s = p.to_string_lossy();
    p.is_absolute()
        && !s.contains(['"', '\n', '\0', '\\'])
        && !p.components().any(|c| c == std::path::Component::ParentDir)
        && p.file_name().is_some()
}
