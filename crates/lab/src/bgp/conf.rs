//! The configurations of Linode's routing as the lab runs it: the route server's FRR, the
//! gateways' GoBGP as lelastic configures it (and the script that starts it) and FRR as in
//! Linode's FRR guide; with the addresses and communities they use.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

pub const RS: &str = "2001:db8:ff::254";
/// The shared address (the NAT lab's floating IP, `nat::FIP`).
pub const SHARED: &str = "203.0.113.10";
/// A second route server in lelastic's neighbor list that never answers.
pub const RS_DOWN: &str = "2001:db8:ff::253";
/// Shared IPv6 ranges (Linode shares /64 and /56 ranges as well as IPv4 addresses),
/// announced beside the shared IPv4 address and failed over with it.
pub const RANGES6: [&str; 2] = ["2001:db8:1::/64", "2001:db8:200::/56"];
pub const PRIMARY: &str = "65000:1";
pub const SECONDARY: &str = "65000:2";
/// lelastic's hold time (keepalive 3 s): a crashed speaker's path stays this long.
pub const HOLD_S: f64 = 9.0;

/// The route server's configuration (see the module docs). It waits for the Linodes to
/// connect (`passive`): lelastic's GoBGP listens on no port (`port = -1`, lelastic_conf), so
/// Linode's route servers cannot be the side that connects, and a gateway's firewall (the
/// shipped ruleset drops what it does not expect) never sees their SYNs.
pub fn route_server_conf(shared: &str, linodes: &[&str]) -> String {
    let mut c = format!(
        "frr defaults traditional
hostname rs
ip prefix-list shared seq 5 permit {shared}/32
ipv6 prefix-list shared6 seq 5 permit {}
ipv6 prefix-list shared6 seq 10 permit {}
bgp community-list standard primary permit {PRIMARY}
bgp community-list standard secondary permit {SECONDARY}
route-map from-linode permit 10
 match community primary
 set local-preference 200
route-map from-linode permit 20
 match community secondary
 set local-preference 100
route-map to-linode deny 10
router bgp 65000
 bgp router-id 203.0.113.254
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor linodes peer-group
 neighbor linodes remote-as 65001
 neighbor linodes capability extended-nexthop
 neighbor linodes timers 3 9
 neighbor linodes timers connect 5
 neighbor linodes ebgp-multihop 16
 neighbor linodes passive
",
        RANGES6[0], RANGES6[1]
    );
    for l in linodes {
        c.push_str(&format!(" neighbor {l} peer-group linodes\n"));
    }
    c.push_str(
        " address-family ipv4 unicast
  neighbor linodes activate
  neighbor linodes prefix-list shared in
  neighbor linodes route-map from-linode in
  neighbor linodes route-map to-linode out
 exit-address-family
 address-family ipv6 unicast
  neighbor linodes activate
  neighbor linodes prefix-list shared6 in
  neighbor linodes route-map from-linode in
  neighbor linodes route-map to-linode out
 exit-address-family
",
    );
    c
}

/// lelastic's GoBGP configuration (client.go: AS 65001, router id 10.0.0.1, no listening
/// port, route servers AS 65000 with eBGP multihop 16, connect retry 5 s, hold 9 s,
/// keepalive 3 s, IPv4 and IPv6 unicast, import rejected, export accepted).
pub fn lelastic_conf() -> String {
    let mut c =
        String::from("[global.config]\n  as = 65001\n  router-id = \"10.0.0.1\"\n  port = -1\n");
    for rs in [RS, RS_DOWN] {
        c.push_str(&format!(
            r#"[[neighbors]]
  [neighbors.config]
    neighbor-address = "{rs}"
    peer-as = 65000
    description = "route server"
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = 16
  [neighbors.timers.config]
    connect-retry = 5
    hold-time = 9
    keepalive-interval = 3
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
  [neighbors.apply-policy.config]
    default-import-policy = "reject-route"
    default-export-policy = "accept-route"
"#
        ));
    }
    c
}

/// `speaker.sh start|stop|restart [primary|secondary]`: lelastic's life cycle in a lab
/// namespace (what `systemctl start/stop/restart lelastic` does on a Linode). gobgpd runs
/// in its own session (it outlives the hook that started it), its PID in `pidfile`.
pub fn lelastic_script(dir: &Path, role: &str, shared: &str) -> anyhow::Result<PathBuf> {
    let conf = dir.join(format!("{role}-gobgpd.toml"));
    fs::write(&conf, lelastic_conf())?;
    let script = dir.join(format!("{role}-speaker.sh"));
    let pidfile = dir.join(format!("{role}-gobgpd.pid"));
    let log = dir.join(format!("{role}-gobgpd.log"));
    fs::write(
        &script,
        format!(
            r#"#!/bin/sh
# lelastic in the lab: gobgpd with lelastic's configuration; the addresses on lo announced
# once, at start, with the community of the role given (lelastic -primary / -secondary).
PID={pid}
stop() {{
    # systemctl stop: SIGTERM (gobgpd closes its sessions), SIGKILL after 5 s.
    [ -s "$PID" ] || return 0
    p=$(cat "$PID"); kill "$p" 2>/dev/null
    i=0
    while kill -0 "$p" 2>/dev/null; do
        i=$((i+1)); [ $i -eq 500 ] && kill -9 "$p" 2>/dev/null; sleep 0.01
    done
    rm -f "$PID"
}}
start() {{
    case "$1" in primary) c={PRIMARY} ;; *) c={SECONDARY} ;; esac
    setsid gobgpd -f {conf} --api-hosts 127.0.0.1:50051 -p >>{log} 2>&1 </dev/null &
    echo $! > "$PID"
    i=0
    until gobgp global >/dev/null 2>&1; do
        i=$((i+1)); [ $i -gt 500 ] && exit 1; sleep 0.01
    done
    gobgp global rib add -a ipv4 {shared}/32 origin incomplete community "$c"
    for r in {ranges}; do gobgp global rib add -a ipv6 "$r" origin incomplete community "$c"; done
}}
case "$1" in
start) start "$2" ;;
stop) stop ;;
restart) stop; start "$2" ;;
*) exit 2 ;;
esac
"#,
            pid = pidfile.display(),
            conf = conf.display(),
            log = log.display(),
            ranges = RANGES6.join(" "),
        ),
    )?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    Ok(script)
}

/// FRR on a gateway as in Linode's FRR guide: the shared address under `network` with the
/// role's route-map, one neighbour per route server.
pub fn frr_gateway_conf(router_id: &str, shared: &str) -> String {
    format!(
        "frr defaults traditional
hostname gw
route-map primary permit 10
 set community {PRIMARY}
route-map secondary permit 10
 set community {SECONDARY}
router bgp 65001
 bgp router-id {router_id}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor {RS} remote-as 65000
 neighbor {RS} capability extended-nexthop
 neighbor {RS} timers 3 9
 neighbor {RS} timers connect 5
 neighbor {RS} ebgp-multihop 16
 address-family ipv4 unicast
  network {shared}/32 route-map secondary
  neighbor {RS} activate
 exit-address-family
 address-family ipv6 unicast
  network {} route-map secondary
  network {} route-map secondary
  neighbor {RS} activate
 exit-address-family
",
        RANGES6[0], RANGES6[1]
    )
}
