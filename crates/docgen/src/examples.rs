//! The EXAMPLES section of every man page whose help text has none: each example is a
//! command line and what it does. They live here, not in the binaries' help texts, which
//! the size budget keeps short; the tests below parse every one with the binary's own
//! clap definition, so an example cannot name a flag that does not exist.

/// Page name (the command and its subcommand, joined by `-`), then its examples.
pub const EXAMPLES: &[(&str, &[(&str, &str)])] = &[
    ("nat-notify", &[
        ("nat-notify master --dry-run", "what a MASTER transition of every instance would do, changing nothing"),
        ("nat-notify status", "this node's state, what it holds, and every problem (exit 1 if any)"),
    ]),
    ("nat-notify-master", &[
        ("nat-notify --config /etc/hakit/hakit.toml master --instance VI_1", "as keepalived's notify_master runs it"),
        ("nat-notify master --instance VI_1 --dry-run --json", "the actions, resolved as a run resolves them, as JSON"),
    ]),
    ("nat-notify-backup", &[
        ("nat-notify backup --instance VI_1 --dry-run", "what becoming BACKUP would remove and command"),
    ]),
    ("nat-notify-fault", &[
        ("nat-notify fault --instance VI_1 --dry-run", "what FAULT would do (the BACKUP steps without starting conntrackd)"),
    ]),
    ("nat-notify-stop", &[
        ("nat-notify stop --instance VI_1 --dry-run", "what keepalived stopping would undo on this node"),
    ]),
    ("nat-notify-master-rx-lower-pri", &[
        ("nat-notify master-rx-lower-pri --instance VI_1", "a MASTER hearing a lower priority re-asserts its addresses"),
    ]),
    ("nat-notify-fifo", &[
        ("nat-notify --config /etc/hakit/hakit.toml fifo /run/keepalived/vrrp_notify.fifo", "as keepalived's vrrp_notify_fifo_script runs it"),
    ]),
    ("nat-notify-status", &[
        ("nat-notify status", "one line per instance, then the problems; exit 1 if there is one"),
        ("nat-notify status --json", "the same for scripts (validate.yml reads it)"),
        ("nat-notify status --instance VI_1", "one instance"),
    ]),
    ("ha-check", &[
        ("ha-check", "every probe of [check] once, in parallel; exit 0 when healthy"),
        ("ha-check --json", "every probe with its result and latency"),
        ("ha-check --config /etc/hakit/hakit.toml --interval 1s", "as keepalived's vrrp_script chk_hakit runs it"),
    ]),
    ("ha-check-icmp", &[
        ("ha-check icmp 203.0.113.1 -i eth0", "the upstream gateway answers an echo on eth0"),
        ("ha-check icmp 2001:db8::1 --count 3 --timeout 500ms", "three echoes over IPv6"),
    ]),
    ("ha-check-http", &[
        ("ha-check http http://192.0.2.80/healthz --status 200 --timeout 2s", "an HTTP endpoint answers 200"),
    ]),
    ("ha-check-tcp", &[
        ("ha-check tcp 192.0.2.80:443 -i eth0", "a TCP connect through eth0"),
    ]),
    ("ha-check-neighbour", &[
        ("ha-check neighbour 203.0.113.1 -i eth0", "the gateway answers ARP on eth0 (no IP reachability needed)"),
    ]),
    ("ha-check-link", &[
        ("ha-check link eth0", "eth0 exists, is up and has carrier"),
    ]),
    ("ha-check-address", &[
        ("ha-check address 203.0.113.10 -i eth0", "the floating IP is on eth0 (a MASTER)"),
        ("ha-check address 203.0.113.10 -i eth0 --absent", "and is not (a BACKUP)"),
    ]),
    ("ha-check-route", &[
        ("ha-check route", "there is a default route"),
        ("ha-check route 0.0.0.0/0 -i eth0 --gateway 203.0.113.1", "the default route goes out of eth0 via the gateway"),
    ]),
    ("ha-check-nft-rule", &[
        ("ha-check nft-rule --snat-source 198.51.100.0/24 --to 203.0.113.10", "the MASTER's SNAT rule is in nftables"),
    ]),
    ("ha-check-conntrack", &[
        ("ha-check conntrack --max-usage 0.9", "the conntrack table is less than 90% full"),
    ]),
    ("ha-check-sysctl", &[
        ("ha-check sysctl net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0", "forwarding on, reverse-path filter off"),
    ]),
    ("ha-check-service", &[
        ("ha-check service --unit conntrackd.service", "the unit is active"),
        ("ha-check service --process conntrackd", "a process of that name is alive"),
    ]),
    ("ha-check-drbd", &[
        ("ha-check drbd r0 --role Primary --connection Connected --disk UpToDate", "the resource as on a healthy primary"),
    ]),
    ("ha-check-dns", &[
        ("ha-check dns 192.0.2.53 --query gw.example", "the LAN's resolver answers NOERROR for gw.example"),
        ("ha-check dns 192.0.2.53:5353 --query gw.example --address 198.51.100.1", "and the answer holds that address"),
    ]),
    ("ha-check-bgp", &[
        ("ha-check bgp", "every session of [bgp] is established"),
        ("ha-check bgp 203.0.113.10 --community 65000:100", "and the floating IP is announced with the MASTER's community"),
    ]),
    ("ha-check-fip-owner", &[
        ("ha-check fip-owner", "the provider says this node owns the ip of [fip] (read-only, cached 30 s)"),
        ("ha-check fip-owner 203.0.113.10 --cache 0s", "ask again now, for this address"),
    ]),
    ("ha-check-monitor", &[
        ("ha-check --config /etc/hakit/hakit.toml monitor", "as hakit-monitor.service runs it"),
        ("ha-check monitor --duration 30s --track-file /tmp/uplink --rt-priority 0", "try a configuration for 30 s without touching keepalived's file"),
    ]),
    ("ha-check-monitor-alive", &[
        ("ha-check --config /etc/hakit/hakit.toml monitor-alive", "as keepalived's vrrp_script chk_hakit_monitor runs it"),
    ]),
    ("ha-check-drain", &[
        ("ha-check drain kernel upgrade", "give the role away and keep it away, across reboots, with a reason"),
    ]),
    ("ha-check-undrain", &[
        ("ha-check undrain", "end the drain: the monitor's verdict decides again"),
    ]),
    ("ha-check-watch", &[
        ("ha-check watch --peer 198.51.100.2 --method ssh -- fip-claim --config /etc/hakit/hakit.toml", "claim the floating IP once the primary stops answering SSH"),
    ]),
    ("fip-claim", &[
        ("fip-claim --check", "exit 0 if this node owns the floating IP of [fip], 1 if not, 3 if it cannot tell"),
        ("fip-claim --dry-run --json", "the write requests a claim would send (secrets redacted)"),
        ("fip-claim --provider hetzner --floating-ip-id 4711 --token-file /etc/hakit/hcloud.token", "claim a Hetzner Floating IP from a shell"),
    ]),
];

/// The examples of page `name`, as man page lines (no-fill), or `None`.
pub fn lines(name: &str) -> Option<Vec<String>> {
    let (_, ex) = EXAMPLES.iter().find(|(page, _)| *page == name)?;
    let mut out = Vec::new();
    for (cmd, what) in ex.iter() {
        out.push(format!("  {cmd}"));
        out.push(format!("      {what}"));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a command line the way a shell would for these examples (no quoting needed).
    fn words(cmd: &str) -> Vec<&str> {
        cmd.split_whitespace().collect()
    }

    /// Every example parses with its binary's own clap definition, and names the page's
    /// subcommand.
    #[test]
    fn every_example_is_a_valid_command_line_of_its_page() {
        let commands = crate::commands();
        for (page, ex) in EXAMPLES {
            assert!(!ex.is_empty(), "{page}: no examples");
            for (cmd, _) in ex.iter() {
                let argv = words(cmd);
                let top = commands
                    .iter()
                    .find(|c| c.get_name() == argv[0])
                    .unwrap_or_else(|| panic!("{page}: {cmd}: no such binary"));
                let m = top
                    .clone()
                    .try_get_matches_from(&argv)
                    .unwrap_or_else(|e| panic!("{page}: {cmd}: {e}"));
                // A subcommand's page shows that subcommand; a binary's page, any.
                if *page != argv[0] {
                    let named = format!("{}-{}", argv[0], m.subcommand_name().unwrap_or(""));
                    assert_eq!(*page, named, "{cmd} is not an example of {page}");
                }
            }
        }
    }
}
