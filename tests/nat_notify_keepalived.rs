//! nat-notify driven by Debian's keepalived, in each of the three ways keepalived calls it,
//! on a two-node gateway pair with nftables and conntrackd (FTFW over its own link).

mod util;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use hakit_lab::{conntrackd, keepalived, wait_until, Ns};
use util::*;

const FIP: &str = "203.0.113.10";
const VIP: &str = "198.51.100.1";

struct Node {
    ns: Ns,
    run: PathBuf,
}

impl Node {
    fn fip(&self) -> bool {
        self.ns.has_addr("eth0", ip(FIP)).unwrap()
    }
    fn snat(&self) -> bool {
        stdout(&self.ns.exec(&["nft", "list", "ruleset"]).unwrap())
            .contains(&format!("snat to {FIP}"))
    }
    fn recorded(&self) -> serde_json::Value {
        std::fs::read(self.run.join("VI_1.state"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
    fn is_master(&self) -> bool {
        let r = self.recorded();
        self.fip()
            && self.snat()
            && r["state"] == "MASTER"
            && r["converged"] == true
            && r["conntrackd"] == "primary"
    }
    fn holds_nothing(&self) -> bool {
        let r = self.recorded();
        !self.fip()
            && !self.snat()
            && r["state"] != "MASTER"
            && r["converged"] == true
            && r["conntrackd"] != "primary"
    }
}

/// Substitutes the lab's paths into a shipped snippet.
fn snippet(file: &str, conf: &Path, fifo: &Path) -> String {
    let text = std::fs::read_to_string(format!("keepalived/{file}")).unwrap();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("/usr/sbin/nat-notify", &bin("nat-notify"))
        .replace("/etc/hakit/hakit.toml", &conf.to_string_lossy())
        .replace("/run/keepalived/vrrp_notify.fifo", &fifo.to_string_lossy())
}

fn failover(test: &str, form: &str) {
    let Some(mut lab) = lab(test) else { return };
    let sw = lab.ns("sw").unwrap();
    let a = lab.ns("a").unwrap();
    let b = lab.ns("b").unwrap();
    let inet = lab.ns("inet").unwrap();
    let client = lab.ns("client").unwrap();
    lab.bridge(
        &sw,
        "brlan",
        &[(&a, "eth1"), (&b, "eth1"), (&client, "eth0")],
    )
    .unwrap();
    lab.bridge(&sw, "brwan", &[(&a, "eth0"), (&b, "eth0"), (&inet, "eth0")])
        .unwrap();
    lab.veth(&a, "sync0", &b, "sync0").unwrap();
    inet.ip(&["addr", "add", "203.0.113.254/24", "dev", "eth0"])
        .unwrap();
    client
        .ip(&["addr", "add", "198.51.100.50/24", "dev", "eth0"])
        .unwrap();
    let mut nodes = Vec::new();
    for (ns, n, prio) in [(&a, 2, 150u8), (&b, 3, 100u8)] {
        ns.ip(&["addr", "add", &format!("203.0.113.{n}/24"), "dev", "eth0"])
            .unwrap();
        ns.ip(&["addr", "add", &format!("198.51.100.{n}/24"), "dev", "eth1"])
            .unwrap();
        ns.ip(&[
            "addr",
            "add",
            &format!("192.0.2.{}/24", n - 1),
            "dev",
            "sync0",
        ])
        .unwrap();
        ns.ip(&["route", "add", "default", "via", "203.0.113.254"])
            .unwrap();
        let role = ns.name.rsplit('-').next().unwrap().to_string();
        let ctd = conntrackd::start(
            &mut lab,
            ns,
            &role,
            &format!("192.0.2.{}", n - 1),
            &format!("192.0.2.{}", 4 - n),
            "sync0",
        )
        .unwrap();
        let d = lab.dir().to_path_buf();
        let run = d.join(format!("{role}-run"));
        let conf = d.join(format!("{role}.hakit.toml"));
        std::fs::write(
            &conf,
            format!(
                "[general]\nruntime_dir = \"{}\"\nsyslog_socket = \"{}/no.sock\"\n\n[notify]\ncommand_timeout = \"5s\"\n\n\
                 [[notify.instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nfloating_ips = [\"{FIP}/32\"]\nvrrp_vips = [\"{VIP}\"]\n\
                 snat_source = \"198.51.100.0/24\"\nconntrackd_config = \"{}\"\ngarp_count = 2\ngarp_interval = \"20ms\"\n",
                run.display(),
                d.display(),
                ctd.conf.display()
            ),
        )
        .unwrap();
        let fifo = d.join(format!("{role}.vrrp.fifo"));
        let (instance_lines, global_lines) = match form {
            "hooks" => (
                snippet("nat-notify-hooks.conf", &conf, &fifo),
                String::new(),
            ),
            "generic" => (
                snippet("nat-notify-generic.conf", &conf, &fifo),
                String::new(),
            ),
            "fifo" => (String::new(), snippet("nat-notify-fifo.conf", &conf, &fifo)),
            _ => unreachable!(),
        };
        let kconf = keepalived::Vrrp {
            router_id: &role,
            iface: "eth1",
            priority: prio,
            advert_int: "0.1",
            vip: &format!("{VIP}/24"),
            extra: &instance_lines,
            global: &global_lines,
            ..Default::default()
        }
        .render()
        .unwrap();
        let k = keepalived::start(&mut lab, ns, &role, &kconf).unwrap();
        k.wait_ready(Duration::from_secs(10)).unwrap();
        nodes.push((
            Node {
                ns: ns.clone(),
                run,
            },
            k,
        ));
    }
    let (na, ka) = &nodes[0];
    let (nb, kb) = &nodes[1];
    let up = wait_until(Duration::from_secs(15), Duration::from_millis(20), || {
        na.is_master() && nb.holds_nothing()
    });
    assert!(
        up.is_some(),
        "{form}: a did not become a converged MASTER (a {} / b {}):\n{}\n{}",
        na.recorded(),
        nb.recorded(),
        ka.log_tail(),
        kb.log_tail()
    );

    ka.stop();
    let moved = wait_until(Duration::from_secs(15), Duration::from_millis(20), || {
        nb.is_master() && na.holds_nothing()
    });
    assert!(
        moved.is_some(),
        "{form}: after a stopped, b should hold everything and a nothing (a fip {} snat {} {} / b fip {} snat {} {}):\n{}",
        na.fip(),
        na.snat(),
        na.recorded(),
        nb.fip(),
        nb.snat(),
        nb.recorded(),
        kb.log_tail()
    );
    // The client can still reach the VIP, now on b.
    let ping = client.exec(&["ping", "-c", "1", "-W", "2", VIP]).unwrap();
    assert!(
        ping.status.success(),
        "{form}: VIP unreachable after failover"
    );
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn keepalived_per_state_hooks() {
    failover("keepalived_per_state_hooks", "hooks");
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn keepalived_generic_notify() {
    failover("keepalived_generic_notify", "generic");
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn keepalived_notify_fifo() {
    failover("keepalived_notify_fifo", "fifo");
}
