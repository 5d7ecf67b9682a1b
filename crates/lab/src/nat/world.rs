//! The world around the pair: the fake provider (or, for Linode, the FRR route server that
//! routes the shared IP), the server beyond the edge, and the monitor's external targets.

use super::*;

/// Starts the provider and the server; the provider's control directory and request log.
pub(super) fn world(
    lab: &mut Lab,
    opts: &Opts,
    fake: &str,
    traffic: &str,
    cloud: &Ns,
    inet: &Ns,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let d = lab.dir().to_path_buf();
    let control = d.join("cloud");
    lab.tmpfs(&control)?;
    let cloud_log = d.join("cloud-requests.log");
    let (control_s, log_s) = (
        control.to_string_lossy().to_string(),
        cloud_log.to_string_lossy().to_string(),
    );
    let mut cloud_argv = vec![
        fake,
        "--ip",
        FIP,
        "--owner",
        "1",
        "--node",
        "1=203.0.113.2",
        "--node",
        "2=203.0.113.3",
        "--instant",
        "--control-dir",
        &control_s,
        "--log",
        &log_s,
    ];
    let listen = format!("{CLOUD}:8080");
    cloud_argv.insert(1, &listen);
    if opts.bgp.is_some() {
        // Linode: the API only authorises (IP Sharing); the route server routes.
        cloud_argv.extend(["--provider", "linode"]);
    } else if opts.l2 {
        // Nothing routes the floating IP: it is on-link here, found by ARP.
        cloud_argv.extend(["--provider", "hetzner"]);
    } else {
        cloud_argv.extend(["--provider", "hetzner", "--route-ns", &inet.name]);
    }
    lab.spawn(cloud, "cloud", &cloud_argv)?;
    if opts.bgp.is_some() {
        inet.ip(&[
            "addr",
            "add",
            &format!("{}/64", bgp::RS),
            "dev",
            "eth0",
            "nodad",
        ])?;
        // The shared IP sits in the WAN prefix and both gateways hold it on lo: were it
        // on-link here, the "internet" would ARP for it whenever no BGP path exists and
        // reach a gateway no route server chose. Only the upper half is on-link (plus
        // the gateways' own addresses): no path means no traffic, as on Linode.
        inet.ip(&["addr", "del", &format!("{SERVER}/24"), "dev", "eth0"])?;
        inet.ip(&["addr", "add", &format!("{SERVER}/25"), "dev", "eth0"])?;
        for gw in ["203.0.113.2", "203.0.113.3"] {
            inet.ip(&["route", "add", &format!("{gw}/32"), "dev", "eth0"])?;
        }
        let conf = bgp::route_server_conf(FIP, &["2001:db8:ff::2", "2001:db8:ff::3"]);
        bgp::start_frr(lab, inet, "rs", &conf, 179)?;
    }
    lab.spawn(inet, "server", &[traffic, "server", SERVER])?;
    if opts.monitor {
        inet.ip(&["addr", "add", &format!("{EXTERNAL}/32"), "dev", "lo"])?;
        inet.ip(&["addr", "add", &format!("{EXTERNAL2}/32"), "dev", "lo"])?;
    }
    Ok((control, cloud_log))
}

/// Linode: node `id`'s BGP speaker, peering from its static IPv6 address (`wan6`) with the
/// route server, the shared IP on `lo`; its systemctl script and daemon.
pub(super) fn gateway_speaker(
    lab: &mut Lab,
    ns: &Ns,
    role: &str,
    id: u64,
    (wan, wan6): (&str, &str),
    b: bgp::Opts,
) -> anyhow::Result<(Option<PathBuf>, Option<bgp::Daemon>)> {
    let d = lab.dir().to_path_buf();
    // The route server's FRR sends router advertisements (extended next hop):
    // the gateway keeps the one static address the route server peers with.
    crate::run_ok(&mut ns.command(&[
        "sysctl",
        "-q",
        "-w",
        "net.ipv6.conf.eth0.autoconf=0",
        "net.ipv6.conf.eth0.accept_ra=0",
        // A static address survives a link bounce, as networkd restores it.
        "net.ipv6.conf.eth0.keep_addr_on_down=1",
    ]))?;
    ns.ip(&["addr", "add", &format!("{wan6}/64"), "dev", "eth0", "nodad"])?;
    bgp::shared_on_lo(ns, FIP)?;
    let first = match b.method {
        bgp::Method::RestartOnMaster if id == 1 => "primary",
        _ => "secondary",
    };
    let (sc, dm) = bgp::start_gateway(lab, ns, &d, role, wan, b.speaker, first)?;
    Ok((sc, Some(dm)))
}
