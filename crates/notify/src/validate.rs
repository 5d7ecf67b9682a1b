//! What an instance's names and numbers may be, checked when the configuration is loaded
//! (exit 2, nothing touched), because every one of them reaches a root-run program:
//! interface and table names go into the `nft -f` script, instance names become file
//! names under the runtime directory, unit names are `systemctl` arguments. An interface
//! name with a quote and a newline once ran `flush ruleset` as root.

use crate::config::Instance;

/// Longest instance name: keepalived's own names are short, and the name becomes a file
/// name (a 300-byte name failed every transition with ENAMETOOLONG).
pub const MAX_NAME: usize = 64;
/// More GARP rounds than this only keep a hook (and its lock) busy.
pub const MAX_GARP_COUNT: u32 = 100;
/// Addresses per list: VRRP and floating addresses are a handful, not thousands.
pub const MAX_ADDRESSES: usize = 64;
/// Extra attempts of a failed step.
pub const MAX_RETRIES: u32 = 10;

/// A keepalived instance (or sync group) name hakit accepts: letters, digits, `_ . -`, not
/// starting with a dot. Names that differ stay different files (no two names collide).
pub fn instance_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    ok.then_some(()).ok_or_else(|| {
        format!(
            "instance name {:?}: use 1 to {MAX_NAME} letters, digits, '_', '.' or '-' (not starting with '.')",
            shown(s)
        )
    })
}

/// A Linux interface name as nft may quote it: 1 to 15 bytes, no '/', whitespace, quotes
/// or control characters, not "." or "..".
pub fn interface(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@'));
    ok.then_some(()).ok_or_else(|| {
        format!(
            "interface {:?}: not a Linux interface name (1 to 15 letters, digits, '_', '.', '-', '@')",
            shown(s)
        )
    })
}

/// An nftables identifier (table name): a letter, then letters, digits or '_', at most 32.
pub fn nft_identifier(s: &str) -> Result<(), String> {
    let mut b = s.bytes();
    let ok = s.len() <= 32
        && b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_');
    ok.then_some(())
        .ok_or_else(|| format!("snat_table {:?}: not an nftables identifier", shown(s)))
}

/// A systemd unit name given to `systemctl`: never something it would read as an option.
pub fn unit(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 256
        && !s.starts_with('-')
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@' | b':' | b'\\')
        });
    ok.then_some(())
        .ok_or_else(|| format!("unit {:?}: not a systemd unit name", shown(s)))
}

/// Every check of one instance; the error names the instance and the value.
pub fn instance(i: &Instance) -> Result<(), String> {
    instance_name(&i.name)?;
    let name = &i.name;
    if let Some(dev) = &i.interface {
        interface(dev).map_err(|e| format!("instance {name}: {e}"))?;
    }
    if let Some(t) = &i.snat_table {
        nft_identifier(t).map_err(|e| format!("instance {name}: {e}"))?;
    }
    for u in &i.units {
        unit(u).map_err(|e| format!("instance {name}: {e}"))?;
    }
    if i.garp_count.is_some_and(|c| c > MAX_GARP_COUNT) {
        return Err(format!(
            "instance {name}: garp_count is at most {MAX_GARP_COUNT}"
        ));
    }
    if i.vrrp_vips.len() > MAX_ADDRESSES || i.floating_ips.len() > MAX_ADDRESSES {
        return Err(format!(
            "instance {name}: at most {MAX_ADDRESSES} vrrp_vips and {MAX_ADDRESSES} floating_ips"
        ));
    }
    // A SNAT rule needs a target and an interface, known now rather than at the first
    // MASTER (where it would fail, and the fail-closed ruleset then drops all LAN egress).
    if i.snat_source.is_some() {
        if crate::plan::snat_to(i).is_none() {
            return Err(format!(
                "instance {name}: snat_source is set but nothing to NAT to: set snat_to = ADDRESS (this node's own address that the provider translates, e.g. the WAN interface's primary private IP on AWS, the anchor IP on DigitalOcean) or an IPv4 address in floating_ips"
            ));
        }
        if i.interface.is_none() {
            return Err(format!(
                "instance {name}: snat_source is set but interface is not: the SNAT rule names the WAN interface, e.g. interface = \"eth0\""
            ));
        }
    }
    egress(i)
}

/// An egress gateway goes with the SNAT rule, in its family, through a table of its own.
fn egress(i: &Instance) -> Result<(), String> {
    let name = &i.name;
    if i.egress_table.is_some() && i.egress_gateway.is_none() {
        return Err(format!(
            "instance {name}: egress_table is set but egress_gateway is not"
        ));
    }
    let Some(gw) = i.egress_gateway else {
        return Ok(());
    };
    let Some(source) = i.snat_source else {
        return Err(format!(
            "instance {name}: egress_gateway = \"{gw}\" routes the NATed LAN: it needs snat_source"
        ));
    };
    if source.addr.is_ipv4() != gw.is_ipv4() {
        return Err(format!(
            "instance {name}: egress_gateway = \"{gw}\" is not of snat_source's family ({source})"
        ));
    }
    if gw.is_unspecified() || gw.is_multicast() || gw.is_loopback() {
        return Err(format!(
            "instance {name}: egress_gateway = \"{gw}\" is no gateway (a unicast address on interface's network, e.g. the anchor gateway)"
        ));
    }
    if let Some(t) = i.egress_table {
        if !hakit_net::egress::usable_table(t) {
            return Err(format!(
                "instance {name}: egress_table = {t} is the kernel's own (0, 253 default, 254 main, 255 local): pick another, e.g. 1147"
            ));
        }
    }
    Ok(())
}

/// What the dry run checks on the node itself, so that a plan that cannot be carried out is
/// refused (exit 2) rather than printed: the instance's interface exists, and the SNAT
/// target is one of the floating IPs (which the MASTER adds) or an address the node has.
pub fn on_host(i: &Instance, nl: &hakit_net::Netlink) -> Result<(), String> {
    let name = &i.name;
    let links = nl
        .links()
        .map_err(|e| format!("reading this node's interfaces: {e:#}"))?;
    if let Some(dev) = &i.interface {
        if !links.iter().any(|l| &l.name == dev) {
            let have: Vec<&str> = links
                .iter()
                .map(|l| l.name.as_str())
                .filter(|n| *n != "lo")
                .collect();
            return Err(format!(
                "instance {name}: interface = \"{}\": no such interface on this node (it has: {})",
                shown(dev),
                have.join(" ")
            ));
        }
    }
    if let (Some(_), Some(to)) = (i.snat_source, crate::plan::snat_to(i)) {
        let floating = i.floating_ips.iter().any(|f| f.addr == to);
        let own = nl
            .addresses(None)
            .map_err(|e| format!("reading this node's addresses: {e:#}"))?
            .iter()
            .any(|a| a.addr == to);
        if !floating && !own {
            return Err(format!(
                "instance {name}: snat_to {to} is neither in floating_ips nor an address of this node: the provider translates only an address the node holds"
            ));
        }
    }
    on_link(i, &links, nl)
}

/// An egress gateway is on a network of the instance's interface (the kernel refuses a
/// route via anything else, at the first MASTER).
fn on_link(i: &Instance, links: &[hakit_net::Link], nl: &hakit_net::Netlink) -> Result<(), String> {
    let (Some(gw), Some(dev)) = (i.egress_gateway, &i.interface) else {
        return Ok(());
    };
    let Some(link) = links.iter().find(|l| &l.name == dev) else {
        return Ok(());
    };
    let nets = nl
        .addresses(Some(link.index))
        .map_err(|e| format!("reading this node's addresses: {e:#}"))?;
    let on = nets.iter().any(|a| {
        let net = hakit_core::config::Cidr {
            addr: a.addr,
            prefix: a.prefix,
        };
        let (first, last) = net.bounds();
        a.addr.is_ipv4() == gw.is_ipv4() && first <= gw && gw <= last
    });
    if on {
        Ok(())
    } else {
        Err(format!(
            "instance {}: egress_gateway {gw} is on no network of {}: a gateway must be on the link (the anchor gateway is on the anchor IP's network)",
            i.name,
            shown(dev)
        ))
    }
}

/// A value as it may appear in one log line: capped, control characters escaped.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_debug).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "",
            ".x",
            "VI 1",
            "VI/1",
            "a\"b",
            &"x".repeat(300),
            "../../etc",
        ] {
            assert!(instance_name(bad).is_err(), "{bad:?}");
        }
        for good in ["VI_1", "G-1.v4", "vi1"] {
            assert!(instance_name(good).is_ok(), "{good}");
        }
        for bad in [
            "eth0\"; flush ruleset; \"",
            "eth 0",
            "a/b",
            "..",
            "sixteen_chars_xx",
            "",
        ] {
            assert!(interface(bad).is_err(), "{bad:?}");
        }
        for good in ["eth0", "enp0s31f6", "bond0.100", "veth-a@x"] {
            assert!(interface(good).is_ok(), "{good}");
        }
        assert!(nft_identifier("hakit").is_ok());
        for bad in ["1abc", "a b", "x;flush", ""] {
            assert!(nft_identifier(bad).is_err(), "{bad:?}");
        }
        assert!(unit("lelastic.service").is_ok() && unit("getty@tty1.service").is_ok());
        assert!(unit("--root=/").is_err() && unit("a b").is_err());
        let e = instance_name(&format!("a\n{}", "b".repeat(500))).unwrap_err();
        assert!(e.len() < 300 && !e.contains('\n'), "{e}");
    }

    #[test]
    fn counts_are_bounded() {
        let mut i = Instance {
            name: "VI_1".into(),
            garp_count: Some(u32::MAX),
            ..Instance::default()
        };
        assert!(instance(&i).unwrap_err().contains("garp_count"));
        i.garp_count = Some(3);
        i.vrrp_vips = vec!["198.51.100.1".parse().unwrap(); 10_000];
        assert!(instance(&i).unwrap_err().contains("vrrp_vips"));
    }

    #[test]
    fn an_egress_gateway_goes_with_snat_in_its_family_and_a_table_of_its_own() {
        let ok = Instance {
            name: "VI_1".into(),
            interface: Some("eth0".into()),
            snat_source: Some("198.51.100.0/24".parse().unwrap()),
            snat_to: Some("203.0.113.18".parse().unwrap()),
            egress_gateway: Some("203.0.113.17".parse().unwrap()),
            ..Instance::default()
        };
        assert_eq!(instance(&ok), Ok(()));
        let refused = |i: Instance, key: &str| {
            let e = instance(&i).unwrap_err();
            assert!(e.contains(key) && !e.contains('\n'), "{e}");
        };
        refused(
            Instance {
                snat_source: None,
                snat_to: None,
                ..ok.clone()
            },
            "it needs snat_source",
        );
        refused(
            Instance {
                egress_gateway: Some("2001:db8::1".parse().unwrap()),
                ..ok.clone()
            },
            "not of snat_source's family",
        );
        refused(
            Instance {
                egress_gateway: Some("0.0.0.0".parse().unwrap()),
                ..ok.clone()
            },
            "is no gateway",
        );
        for t in [0, 253, 254, 255] {
            refused(
                Instance {
                    egress_table: Some(t),
                    ..ok.clone()
                },
                "the kernel's own",
            );
        }
        refused(
            Instance {
                egress_gateway: None,
                egress_table: Some(1147),
                ..ok.clone()
            },
            "egress_table is set but egress_gateway is not",
        );
        assert_eq!(
            instance(&Instance {
                egress_table: Some(100),
                ..ok
            }),
            Ok(())
        );
    }
}
