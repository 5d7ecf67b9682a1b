//! What each node of the NAT lab is configured with: its hakit.toml, its keepalived.conf,
//! and the baseline's shell hook.

use super::*;

/// What [`hakit_toml`] needs of a node.
pub(super) struct TomlFor<'a> {
    pub id: u64,
    pub role: &'a str,
    pub run: &'a Path,
    pub sock: &'a Path,
    pub ctd: &'a Path,
    pub token: &'a Path,
    pub d: &'a Path,
    pub systemctl: &'a str,
    pub speaker_script: Option<&'a Path>,
    pub daemon: Option<&'a bgp::Daemon>,
}

/// A node's hakit.toml: the instance, the provider (or the BGP speaker) and the uplink
/// check as the NAT lab runs it.
pub(super) fn hakit_toml(opts: &Opts, n: &TomlFor) -> String {
    let TomlFor {
        id,
        role,
        run,
        sock,
        ctd,
        token,
        d,
        systemctl,
        speaker_script,
        daemon,
    } = n;
    let id = *id;
    // The peer's last octet on the LAN (a is .2, b is .3).
    let peer = 4 - id;
    let (instance, fip) = match opts.bgp {
        None => (
            format!(
                r#"floating_ips = ["{FIP}/32"]
garp_count = 2
garp_interval = "20ms"
{claim}"#,
                claim = if opts.l2 {
                    ""
                } else {
                    "fip_claim = true\nfip_retry_for = \"60s\"\n"
                }
            ),
            format!(
                r#"provider = "hetzner"
endpoint_url = "http://{CLOUD}:8080/v1""#
            ),
        ),
        Some(b) => {
            let script = speaker_script
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string());
            let mine = if id == 1 { "primary" } else { "secondary" };
            let announce = match b.method {
                bgp::Method::InPlace => "announce = true\n".to_string(),
                bgp::Method::RestartOnMaster => format!(
                    "up = [[\"{script}\", \"restart\", \"{mine}\"]]\ndown = [[\"{script}\", \"stop\"]]\n"
                ),
                bgp::Method::RestartSwapped => format!(
                    "up = [[\"{script}\", \"restart\", \"primary\"]]\ndown = [[\"{script}\", \"restart\", \"secondary\"]]\n"
                ),
            };
            let speaker = daemon.map_or(String::new(), |d| d.hakit_conf());
            (
                format!("snat_to = \"{FIP}\"\n{announce}"),
                format!(
                    "provider = \"linode\"\nendpoint_url = \"http://{CLOUD}:8080/v4\"\n\n[bgp]\n{speaker}"
                ),
            )
        }
    };
    format!(
        r#"[general]
runtime_dir = "{run}"
syslog_socket = "{sock}"

[notify]
command_timeout = "5s"
{systemctl}
[[notify.instance]]
name = "VI_1"
interface = "eth0"
vrrp_vips = ["{VIP}"]
snat_source = "{lan}"
conntrackd_config = "{ctd}"
{instance}
[fip]
ip = "{FIP}"
instance_id = "{id}"
peers = ["{other}"]
metadata_url = "http://{CLOUD}:8080"
token_file = "{token}"
timeout = "1s"
deadline = "3s"
{fip}

[check]
deadline = "150ms"
{check}"#,
        // Active-active: VI_1 NATs its half of the LAN, VI_2 the other.
        lan = if opts.active_active {
            super::second::LAN1
        } else {
            "198.51.100.0/24"
        },
        check = if opts.monitor {
            format!(
                r#"track_file = "{track}"
textfile = "{track}.prom"
[check.peer]
bind = "192.0.2.{id}"
address = "192.0.2.{other}"
keepalived_pid_file = "{ka_pid}"
vrrp_address = "198.51.100.{peer}"

# The upstream gateway, by ICMP and at layer 2, every 20 ms (the defaults): one group,
# either answering is enough (as the shipped profiles).
[[check.group]]
name = "gateway"
min = 1

[[check.probe]]
kind = "icmp"
name = "gateway"
target = "{SERVER}"
interface = "eth0"
group = "gateway"

[[check.probe]]
kind = "neighbour"
name = "gateway-arp"
target = "{SERVER}"
interface = "eth0"
group = "gateway"

# Beyond the gateway: two hosts, any one answering is enough.
[[check.probe]]
kind = "icmp"
name = "external"
target = "{EXTERNAL}"
group = "external"

[[check.probe]]
kind = "icmp"
name = "external-2"
target = "{EXTERNAL2}"
group = "external"

[[check.group]]
name = "external"
min = 1

# The kernel's view, re-checked on every netlink event.
[[check.probe]]
kind = "link"
interface = "eth0"

[[check.probe]]
kind = "route"
target = "0.0.0.0/0"
interface = "eth0"
"#,
                track = run.join("monitor").join("uplink").display(),
                other = 3 - id,
                // A link to the running keepalived's pid file (each start
                // has its own: start_keepalived points the link at it).
                ka_pid = d.join(format!("{role}.keepalived.pid")).display(),
            )
        } else {
            format!(
                r#"
[[check.probe]]
kind = "icmp"
name = "uplink"
target = "{SERVER}"
interface = "eth0"

[[check.probe]]
kind = "link"
interface = "eth0"
"#
            )
        },
        run = run.display(),
        sock = sock.display(),
        ctd = ctd.display(),
        other = 3 - id,
        token = token.display(),
    )
}

/// What [`keepalived_conf`] needs of a node.
pub(super) struct Hooks<'a> {
    pub role: &'a str,
    pub id: u64,
    pub prio: u8,
    pub d: &'a Path,
    pub run: &'a Path,
    pub cfg: &'a str,
    pub ctd_conf: &'a Path,
    pub nat_notify: &'a str,
    pub ha_check: &'a str,
}

/// A node's keepalived.conf (one instance, `VI_1`): nat-notify on the notify FIFO (or the
/// shell baseline's per-state hooks), the uplink check as the options say, the preemption;
/// with the monitor's track file.
pub(super) fn keepalived_conf(opts: &Opts, h: &Hooks) -> anyhow::Result<(String, PathBuf)> {
    let Hooks {
        role,
        id,
        prio,
        d,
        run,
        cfg,
        ctd_conf,
        nat_notify,
        ha_check,
    } = *h;
    let fifo = d.join(format!("{role}.vrrp.fifo"));
    let (global, hooks) = if opts.shell_hook {
        let hook = d.join(format!("{role}-hook.sh"));
        fs::write(&hook, shell_hook(id, ctd_conf))?;
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755))?;
        let h = hook.display();
        (
            String::new(),
            format!(
                "    notify_master \"{h} primary\"\n    notify_backup \"{h} backup\"\n    notify_fault \"{h} backup\"\n    notify_stop \"{h} backup\"\n"
            ),
        )
    } else {
        (
            format!(
                "    vrrp_notify_fifo {}\n    vrrp_notify_fifo_script \"{nat_notify} --config {cfg} fifo\"\n",
                fifo.display()
            ),
            String::new(),
        )
    };
    let preempt = match (opts.nopreempt, opts.preempt_delay) {
        (true, _) => "    nopreempt\n".to_string(),
        (false, Some(s)) => format!("    preempt_delay {s}\n"),
        (false, None) => String::new(),
    };
    let track_file = run.join("monitor").join("uplink");
    // As shipped: keepalived real-time by inheritance (its unit's drop-in, here
    // chrt: see start_keepalived), not vrrp_rt_priority, which breaks reloads.
    let (scripts, extra) = if opts.monitor {
        // As the shipped templates wire it: the verdict by track_file (weight 0:
        // FAULT at once), the monitor's heartbeat by a vrrp_script that demotes.
        (
            format!(
                "track_file hakit_uplink {{\n    file {tf}\n    weight 0\n    init_file 1\n}}\nvrrp_script chk_hakit_monitor {{\n    script \"{ha_check} --config {cfg} monitor-alive\"\n    interval 1\n    timeout 1\n    fall 2\n    rise 1\n    weight -60\n}}\n",
                tf = track_file.display()
            ),
            format!(
                "{hooks}{preempt}    track_file {{\n        hakit_uplink\n    }}\n    track_script {{\n        chk_hakit_monitor\n    }}\n"
            ),
        )
    } else if opts.seed_check {
        let sh = d.join(format!("{role}-ha-check.sh"));
        fs::write(
            &sh,
            format!("#!/bin/sh\n# The seed design's check: the uplink answers one ping.\nexec ping -c 1 -W 1 -I eth0 {SERVER} >/dev/null 2>&1\n"),
        )?;
        fs::set_permissions(&sh, fs::Permissions::from_mode(0o755))?;
        (
            format!(
                "vrrp_script chk_gateway {{\n    script \"{}\"\n    interval 2\n    timeout 2\n    fall 2\n    rise 2\n    weight -60\n}}\n",
                sh.display()
            ),
            format!("{hooks}{preempt}    track_script {{\n        chk_gateway\n    }}\n"),
        )
    } else {
        (
            format!(
                "vrrp_script chk_gateway {{\n    script \"{ha_check} --config {cfg}\"\n    interval 1\n    timeout 1\n    fall 2\n    rise 2\n    weight -60\n}}\n"
            ),
            format!("{hooks}{preempt}    track_script {{\n        chk_gateway\n    }}\n"),
        )
    };
    let scripts = if opts.active_active {
        scripts + &super::second::vrrp_instance(opts, id, run)
    } else {
        scripts
    };
    let kconf = keepalived::Vrrp {
        router_id: role,
        iface: "eth1",
        priority: prio,
        advert_int: &opts.advert_int,
        vip: &format!("{VIP}/24"),
        extra: &match opts.down_timer_adverts {
            Some(n) => format!("    down_timer_adverts {n}\n{extra}"),
            None => extra.clone(),
        },
        global: &global,
        scripts: &scripts,
    }
    .render()?;
    Ok((kconf, track_file))
}

/// The shipped sysctl file as the nodes load it (without nf_conntrack_max: the host's).
pub(super) fn sysctl_file(d: &Path) -> anyhow::Result<PathBuf> {
    let sysctl = d.join("hakit-sysctl.conf");
    fs::write(
        &sysctl,
        crate::render(
            "sysctl.d/90-hakit.conf.in",
            &[("WAN_IF", "eth0"), ("CONNTRACK_MAX", "262144")],
        )?
        .lines()
        .filter(|l| !l.contains("nf_conntrack_max"))
        .collect::<Vec<_>>()
        .join("\n"),
    )?;
    Ok(sysctl)
}

/// The shipped strict nftables ruleset, rendered for node `id` and loaded.
pub(super) fn load_ruleset(ns: &Ns, d: &Path, role: &str, id: u64) -> anyhow::Result<()> {
    let peer = 3 - id + 1;
    let rules = crate::render(
        "nftables.conf.in",
        &[
            ("WAN_IF", "eth0"),
            ("LAN_IF", "eth1"),
            ("SYNC_IF", "sync0"),
            ("LAN_NET", "198.51.100.0/24"),
            ("PEER_LAN", &format!("198.51.100.{peer}")),
            ("PEER_SYNC", &format!("192.0.2.{}", 3 - id)),
            ("ADMIN_NET", "192.0.2.0/24"),
        ],
    )?;
    let rules_path = d.join(format!("{role}.nft"));
    fs::write(&rules_path, rules)?;
    crate::run_ok(&mut ns.command(&["nft", "-f", &rules_path.to_string_lossy()]))?;
    Ok(())
}

/// The baseline: what people run today as keepalived hooks.
fn shell_hook(id: u64, ctd_conf: &Path) -> String {
    let arping = crate::which("arping").map_or("arping".into(), |p| p.display().to_string());
    format!(
        r#"#!/bin/sh
# Baseline hook: conntrack-tools' primary-backup.sh, ip addr, arping, nft, curl.
CTD=/usr/share/doc/conntrackd/examples/sync/primary-backup.sh
case "$1" in
primary)
    sed -e 's#^CONNTRACKD_CONFIG=.*#CONNTRACKD_CONFIG={ctd}#' "$CTD" | sh -s primary
    ip addr add {FIP}/32 dev eth0 2>/dev/null
    {arping} -U -c 1 -I eth0 {FIP} >/dev/null 2>&1 &
    nft add rule ip hakit postrouting ip saddr 198.51.100.0/24 oifname eth0 snat to {FIP} comment '"hakit:VI_1"'
    curl -s -m 3 -X POST -H 'Authorization: Bearer fake-token' -H 'Content-Type: application/json' \
        -d '{{"server":{id}}}' http://{CLOUD}:8080/v1/floating_ips/7/actions/assign >/dev/null
    ;;
backup)
    ip addr del {FIP}/32 dev eth0 2>/dev/null
    for h in $(nft -a list chain ip hakit postrouting | sed -n 's/.*"hakit:VI_1".*handle \([0-9]*\)/\1/p'); do
        nft delete rule ip hakit postrouting handle "$h"
    done
    sed -e 's#^CONNTRACKD_CONFIG=.*#CONNTRACKD_CONFIG={ctd}#' "$CTD" | sh -s backup
    ;;
esac
exit 0
"#,
        ctd = ctd_conf.display()
    )
}
