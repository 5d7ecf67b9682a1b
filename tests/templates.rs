//! The operator-facing files under keepalived/, each checked by the tool that reads it.
//! (conntrackd.conf.in is the configuration every conntrackd in the lab runs with.)

mod util;

use util::*;

/// The values the tests give the templates (each template takes the ones it uses).
const VALUES: &[(&str, &str)] = &[
    ("ROUTER_ID", "gw-a"),
    ("LAN_IF", "eth1"),
    ("WAN_IF", "eth0"),
    ("SYNC_IF", "sync0"),
    ("LAN_VIP", "198.51.100.1/24"),
    ("LAN_NET", "198.51.100.0/24"),
    ("PRIORITY", "150"),
    ("VRID", "51"),
    ("ADVERT_INT", "0.02"),
    ("DOWN_TIMER_ADVERTS", "6"),
    ("UNICAST", MULTICAST),
    ("INSTANCE", "VI_1"),
    ("PEER_LAN", "198.51.100.3"),
    ("PEER_SYNC", "192.0.2.2"),
    ("ADMIN_NET", "203.0.113.0/24"),
];

/// keepalived.conf.in's transport, as hakit-setup fills it in: multicast, or unicast.
const MULTICAST: &str = "    # multicast VRRP on the shared LAN segment: no unicast peers";
const UNICAST: &str =
    "    unicast_src_ip 198.51.100.2\n    unicast_peer {\n        198.51.100.3\n    }";

/// `template` (under keepalived/) rendered by keepalived/render, the one renderer, with
/// [`VALUES`] (`over` replaces some), then pointed at this test's binaries and files.
/// keepalived.conf.in's INSTANCES is vrrp-instance.conf.in rendered with the same values.
fn render(template: &str, over: &[(&str, &str)], dir: &std::path::Path) -> String {
    local(render_plain(template, over), dir)
}

fn render_plain(template: &str, over: &[(&str, &str)]) -> String {
    let text = std::fs::read_to_string(format!("keepalived/{template}")).unwrap();
    // As hakit-setup embeds it: without the template's own leading comment.
    let instance = text.contains("@INSTANCES@").then(|| {
        let i = render_plain("vrrp-instance.conf.in", over);
        i[i.find("\nvrrp_instance").unwrap() + 1..].to_string()
    });
    let vars: Vec<(&str, &str)> = VALUES
        .iter()
        .map(|(k, v)| over.iter().find(|(o, _)| o == k).map_or((*k, *v), |o| *o))
        .chain(instance.as_deref().map(|i| ("INSTANCES", i)))
        .filter(|(k, _)| text.contains(&format!("@{k}@")))
        .collect();
    hakit_lab::render(template, &vars).unwrap()
}

/// A rendered file pointed at this test's binaries, config and FIFO.
fn local(text: String, dir: &std::path::Path) -> String {
    text.replace("/usr/sbin/nat-notify", &bin("nat-notify"))
        .replace("/usr/sbin/ha-check", &bin("ha-check"))
        .replace(
            "/etc/hakit/hakit.toml",
            &dir.join("hakit.toml").to_string_lossy(),
        )
        .replace(
            "/run/keepalived/vrrp_notify.fifo",
            &dir.join("vrrp.fifo").to_string_lossy(),
        )
}

/// A gateway namespace `gw` (203.0.113.2 on eth0) and a WAN host `wan` (203.0.113.254).
fn gw_and_wan(lab: &mut hakit_lab::Lab) -> (hakit_lab::Ns, hakit_lab::Ns) {
    let ns = lab.ns("gw").unwrap();
    let wan = lab.ns("wan").unwrap();
    lab.veth(&ns, "eth0", &wan, "eth0").unwrap();
    ns.ip(&["addr", "add", "203.0.113.2/24", "dev", "eth0"])
        .unwrap();
    wan.ip(&["addr", "add", "203.0.113.254/24", "dev", "eth0"])
        .unwrap();
    (ns, wan)
}

/// Every example directory with a keepalived.conf: the NAT profiles and drbd-nfs.
fn example_dirs() -> Vec<String> {
    nat_profiles()
        .into_iter()
        .chain(["drbd-nfs".to_string()])
        .collect()
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn keepalived_templates_and_examples_pass_keepalived_t() {
    let Some(mut lab) = lab("keepalived_templates_and_examples_pass_keepalived_t") else {
        return;
    };
    let ns = lab.ns("gw").unwrap();
    let peer = lab.ns("peer").unwrap();
    lab.veth(&ns, "eth0", &peer, "eth0").unwrap();
    lab.veth(&ns, "eth1", &peer, "eth1").unwrap();
    let dir = lab.dir().to_path_buf();
    let templates = [
        (
            "keepalived.conf.in (multicast)",
            render("keepalived.conf.in", &[], &dir),
        ),
        (
            "keepalived.conf.in (unicast)",
            render("keepalived.conf.in", &[("UNICAST", UNICAST)], &dir),
        ),
        ("drbd-nfs.conf.in", render("drbd-nfs.conf.in", &[], &dir)),
    ];
    let examples = example_dirs().into_iter().map(|d| {
        let t = format!("examples/{d}/keepalived.conf");
        let text = local(std::fs::read_to_string(&t).unwrap(), &dir);
        (t, text)
    });
    let files = templates
        .into_iter()
        .map(|(t, c)| (t.to_string(), c))
        .chain(examples);
    for (i, (t, conf)) in files.enumerate() {
        assert!(!conf.contains('@'), "{t}: unrendered variable");
        let path = dir.join(format!("{i}.conf"));
        std::fs::write(&path, &conf).unwrap();
        let out = ns
            .exec(&["keepalived", "-t", "-f", &path.to_string_lossy()])
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{t}: keepalived -t: {}",
            stderr(&out)
        );
        // The check bites: the same file with a typo is refused.
        std::fs::write(&path, conf.replace("advert_int", "advert_intt")).unwrap();
        let out = ns
            .exec(&["keepalived", "-t", "-f", &path.to_string_lossy()])
            .unwrap();
        assert_ne!(
            out.status.code(),
            Some(0),
            "{t}: a typo passed keepalived -t"
        );
        assert!(
            stderr(&out).contains("Unknown keyword 'advert_intt'"),
            "{t}: {}",
            stderr(&out)
        );
    }
}

/// Each NAT example directory's keepalived.conf and hakit.toml are what hakit-setup renders
/// from its pair.values for node a (the first line names the command); drbd-nfs's
/// keepalived.conf is its template rendered by keepalived/render. Both are re-run here and
/// must give the same bytes (keepalived -t on them is in the test above).
#[test]
fn example_files_are_their_templates_rendered() {
    let root = std::env::temp_dir().join(format!("hakit-examples-{}", std::process::id()));
    for d in example_dirs() {
        let path = format!("examples/{d}/keepalived.conf");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        if d == "drbd-nfs" {
            let cmd = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# Rendered by: render "))
                .unwrap_or_else(|| panic!("{path}: first line is not the render command"));
            assert!(!cmd.contains('\\'), "{path}: quoted arguments in {cmd}");
            let out = std::process::Command::new("keepalived/render")
                .args(cmd.split_whitespace())
                .output()
                .unwrap();
            assert!(out.status.success(), "{path}: {cmd}: {}", stderr(&out));
            assert!(out.stdout == text.as_bytes(), "{path}: run `make examples`");
            continue;
        }
        let _ = std::fs::remove_dir_all(&root);
        let out = std::process::Command::new("scripts/hakit-setup")
            .args(["--node", "a", "--root"])
            .arg(&root)
            .arg(format!("examples/{d}/pair.values"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{d}: hakit-setup: {}", stderr(&out));
        for (example, installed) in [
            ("keepalived.conf", "etc/keepalived/keepalived.conf"),
            ("hakit.toml", "etc/hakit/hakit.toml"),
        ] {
            let want = std::fs::read(root.join(installed)).unwrap();
            let have = std::fs::read(format!("examples/{d}/{example}")).unwrap();
            assert!(
                want == have,
                "examples/{d}/{example} is not what hakit-setup renders: run `make examples`"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    // The renderer refuses a missing value (1) and a name the template does not have (2).
    let r = |args: &[&str]| {
        std::process::Command::new("keepalived/render")
            .args(args)
            .output()
            .unwrap()
    };
    let out = r(&["vrrp-instance.conf.in", "INSTANCE=VI_1"]);
    assert_exit(
        &out,
        1,
        "give a value for: ADVERT_INT DOWN_TIMER_ADVERTS LAN_IF LAN_VIP PRIORITY UNICAST VRID",
    );
    let out = r(&["keepalived.conf.in", "ROUTER_ID=gw-a"]);
    assert_exit(&out, 1, "give a value for: INSTANCES");
    let out = r(&["keepalived/keepalived.conf.in", "LAN_IFF=eth1"]);
    assert_exit(&out, 2, "has no variable LAN_IFF");
}

/// A profile is an example directory: one added beside the shipped ones (its hakit.toml.in
/// and its VRRP transport) is rendered by hakit-setup without an edit to hakit-setup.
#[test]
fn a_new_profile_is_a_new_example_directory() {
    let share = std::env::temp_dir().join(format!("hakit-share-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&share);
    for d in ["keepalived", "keepalived/sysctl.d", "examples/trial"] {
        std::fs::create_dir_all(share.join(d)).unwrap();
    }
    for f in std::fs::read_dir("keepalived").unwrap().flatten() {
        if f.path().is_file() {
            std::fs::copy(f.path(), share.join("keepalived").join(f.file_name())).unwrap();
        }
    }
    std::fs::copy(
        "keepalived/sysctl.d/90-hakit.conf.in",
        share.join("keepalived/sysctl.d/90-hakit.conf.in"),
    )
    .unwrap();
    std::fs::copy(
        "examples/bare-metal/hakit.toml.in",
        share.join("examples/trial/hakit.toml.in"),
    )
    .unwrap();
    std::fs::write(share.join("examples/trial/vrrp-transport"), "unicast\n").unwrap();
    let values = share.join("pair.values");
    std::fs::write(
        &values,
        std::fs::read_to_string("examples/bare-metal/pair.values")
            .unwrap()
            .replace("PROFILE=bare-metal", "PROFILE=trial"),
    )
    .unwrap();
    let root = share.join("root");
    let setup = || {
        std::process::Command::new("scripts/hakit-setup")
            .args(["--node", "a", "--root"])
            .arg(&root)
            .arg(&values)
            .env("HAKIT_SHARE", &share)
            .output()
            .unwrap()
    };
    assert_exit(&setup(), 0, "");
    let conf = std::fs::read_to_string(root.join("etc/keepalived/keepalived.conf")).unwrap();
    assert!(
        conf.contains(
            "    unicast_src_ip 198.51.100.2\n    unicast_peer {\n        198.51.100.3\n    }"
        ),
        "{conf}"
    );
    // A directory that says no transport is refused, naming the file.
    std::fs::write(share.join("examples/trial/vrrp-transport"), "broadcast\n").unwrap();
    assert_exit(
        &setup(),
        1,
        "vrrp-transport: multicast or unicast, not broadcast",
    );
    std::fs::remove_dir_all(&share).unwrap();
}

/// API_URL and METADATA_URL (an AWS VPC endpoint without private DNS, a proxy, the systemd
/// lab's fake provider) become fip-claim's `endpoint_url` and `metadata_url` in every cloud
/// profile, and without them the profile names the public endpoints in a comment only.
#[test]
fn api_and_metadata_urls_reach_fip_claims_config() {
    let dir = std::env::temp_dir().join(format!("hakit-urls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for profile in ["aws", "digitalocean", "hetzner", "linode"] {
        let shipped = std::fs::read_to_string(format!("examples/{profile}/pair.values")).unwrap();
        for (extra, want) in [
            (
                "API_URL=http://203.0.113.253:8080/v2\nMETADATA_URL=http://203.0.113.253:8080\n",
                Some(("http://203.0.113.253:8080/v2", "http://203.0.113.253:8080")),
            ),
            ("", None),
        ] {
            let values = dir.join(format!("{profile}.values"));
            std::fs::write(&values, format!("{shipped}{extra}")).unwrap();
            let root = dir.join(format!("root-{profile}"));
            let _ = std::fs::remove_dir_all(&root);
            let out = std::process::Command::new("scripts/hakit-setup")
                .args(["--node", "b", "--root"])
                .arg(&root)
                .arg(&values)
                .output()
                .unwrap();
            assert_exit(&out, 0, "");
            let toml = std::fs::read_to_string(root.join("etc/hakit/hakit.toml")).unwrap();
            let fip: Vec<&str> = toml
                .split("[fip]\n")
                .nth(1)
                .unwrap()
                .lines()
                .take_while(|l| !l.starts_with('['))
                .collect();
            let key = |k: &str| {
                fip.iter()
                    .find_map(|l| l.strip_prefix(&format!("{k} = \"")))
                    .map(|v| v.trim_end_matches('"'))
            };
            match want {
                Some((api, md)) => {
                    assert_eq!(key("endpoint_url"), Some(api), "{profile}: {toml}");
                    assert_eq!(key("metadata_url"), Some(md), "{profile}: {toml}");
                }
                None => {
                    assert_eq!(key("endpoint_url"), None, "{profile}: {toml}");
                    assert_eq!(key("metadata_url"), None, "{profile}: {toml}");
                }
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The roles every profile renders, from both nodes' keepalived.conf: one VRRP instance per
/// `[[notify.instance]]` of its hakit.toml, each preferring one node (VI_1 node a, VI_2 node
/// b: active-active), and each tracked script's weight big enough that a node whose check
/// fails (a dead monitor: chk_hakit_monitor) falls below its peer, so the peer takes over.
/// The shipped -30 did not: 150 - 30 = 120 stayed above the peer's 100.
#[test]
fn every_profile_hands_each_instance_over_when_its_check_fails() {
    let base = std::env::temp_dir().join(format!("hakit-roles-{}", std::process::id()));
    let mut seen_two = false;
    for d in nat_profiles() {
        let values = std::fs::read_to_string(format!("examples/{d}/pair.values")).unwrap();
        let multicast = std::fs::read_to_string(format!("examples/{d}/vrrp-transport"))
            .unwrap()
            .starts_with("multicast");
        let speeds: &[&str] = if multicast {
            &["", "PROFILE_SPEED=fast\n"]
        } else {
            &[""]
        };
        for speed in speeds {
            let v = base.join(format!("{d}.values"));
            std::fs::create_dir_all(&base).unwrap();
            std::fs::write(&v, format!("{values}{speed}")).unwrap();
            let conf = |node: &str| {
                let root = base.join(format!("{d}-{node}"));
                let _ = std::fs::remove_dir_all(&root);
                let out = std::process::Command::new("scripts/hakit-setup")
                    .args(["--node", node, "--root"])
                    .arg(&root)
                    .arg(&v)
                    .output()
                    .unwrap();
                assert_exit(&out, 0, "");
                let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap();
                (
                    read("etc/keepalived/keepalived.conf"),
                    read("etc/hakit/hakit.toml"),
                )
            };
            let ((ka, toml), (kb, _)) = (conf("a"), conf("b"));
            let notify: Vec<String> = toml
                .split("[[notify.instance]]")
                .skip(1)
                .map(|t| value_of(t, "name").trim_matches('"').to_string())
                .collect();
            let (ia, ib) = (instances(&ka), instances(&kb));
            let names: Vec<&String> = ia.iter().map(|i| &i.0).collect();
            assert_eq!(
                names,
                notify.iter().collect::<Vec<_>>(),
                "{d}{speed}: instances"
            );
            seen_two |= ia.len() == 2;
            let weights = script_weights(&ka);
            for ((name, pa, scripts), (_, pb, _)) in ia.iter().zip(&ib) {
                let (preferred, other) = if name == "VI_2" {
                    (*pb, *pa)
                } else {
                    (*pa, *pb)
                };
                assert!(
                    preferred > other,
                    "{d}{speed}: {name} prefers no node ({pa}, {pb})"
                );
                for s in scripts {
                    let w = weights[s.as_str()];
                    assert!(
                        preferred + w < other,
                        "{d}{speed}: {name}: {s} fails on the preferred node: {preferred} {w:+} is not below {other}"
                    );
                }
                assert!(!scripts.is_empty(), "{d}{speed}: {name} tracks no script");
            }
        }
    }
    assert!(seen_two, "no profile with two instances");
    let _ = std::fs::remove_dir_all(&base);
}

/// A `key value` (or `key = value`) line's value in a block of text.
fn value_of<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .map(str::trim)
        .find_map(|l| {
            l.strip_prefix(key)
                .filter(|r| r.starts_with([' ', '=']))
                .map(|r| r.trim_start_matches([' ', '=']).trim())
        })
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

/// Each vrrp_instance of a keepalived.conf: its name, priority and tracked scripts.
fn instances(conf: &str) -> Vec<(String, i32, Vec<String>)> {
    conf.split("\nvrrp_instance ")
        .skip(1)
        .map(|b| {
            let name = b.split_whitespace().next().unwrap().to_string();
            let prio = value_of(b, "priority").parse().unwrap();
            let scripts = b
                .split_once("track_script {")
                .map(|(_, r)| r.split('}').next().unwrap())
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            (name, prio, scripts)
        })
        .collect()
}

/// The weight of each vrrp_script of a keepalived.conf.
fn script_weights(conf: &str) -> std::collections::HashMap<&str, i32> {
    conf.split("\nvrrp_script ")
        .skip(1)
        .map(|b| {
            let name = b.split_whitespace().next().unwrap();
            (name, value_of(b, "weight").parse().unwrap())
        })
        .collect()
}

/// Every template's "Variables:" header names exactly the variables it uses (render refuses
/// any other name, so a wrong header sends the operator into an error).
#[test]
fn template_headers_name_exactly_their_variables() {
    let mut files: Vec<String> = std::fs::read_dir("keepalived")
        .unwrap()
        .flatten()
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".in"))
        .collect();
    files.push("keepalived/sysctl.d/90-hakit.conf.in".into());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut used: Vec<String> = text
            .split('@')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
            .collect();
        used.sort();
        used.dedup();
        let header = text
            .lines()
            .find_map(|l| {
                l.split_once("Variables (each written between at-signs)")
                    .map(|x| x.1)
            })
            .unwrap_or_else(|| panic!("{f}: no Variables header"));
        let mut named: Vec<String> = header
            .trim_start_matches([':', ' '])
            .split([',', '.', ' '])
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        if f.ends_with("nftables.conf.in") {
            // The ruleset lists its variables one per comment line below the header.
            named = text
                .lines()
                .filter_map(|l| l.strip_prefix("#   "))
                .flat_map(|l| l.split("  ").next().unwrap_or("").split(", "))
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty())
                .collect();
        }
        named.sort();
        named.dedup();
        assert_eq!(named, used, "{f}: header vs. variables used");
    }
}

/// `render -o FILE` and hakit-setup leave the file as it was on any error (a shell redirect
/// would have emptied it first: keepalived.service then silently skips an empty config);
/// a "#!" first line stays first (Debian runs /etc/nftables.conf as a script).
#[test]
fn render_and_setup_never_leave_a_half_written_file() {
    let dir = std::env::temp_dir().join(format!("hakit-render-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("keepalived.conf");
    std::fs::write(&conf, "working config\n").unwrap();
    // From any directory the template name resolves beside render (the command is run from
    // / here), and the missing values leave the file untouched.
    let out2 = std::process::Command::new(std::fs::canonicalize("keepalived/render").unwrap())
        .arg("-o")
        .arg(&conf)
        .args(["keepalived.conf.in", "ROUTER_ID=gw-a"])
        .current_dir("/")
        .output()
        .unwrap();
    assert_exit(&out2, 1, "");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "working config\n");
    let nft = dir.join("nftables.conf");
    let out = std::process::Command::new("keepalived/render")
        .arg("-o")
        .arg(&nft)
        .args([
            "nftables.conf.in",
            "WAN_IF=eth0",
            "LAN_IF=eth1",
            "SYNC_IF=eth2",
            "LAN_NET=198.51.100.0/24",
            "PEER_LAN=198.51.100.3",
            "PEER_SYNC=192.0.2.2",
            "ADMIN_NET=203.0.113.0/24",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&nft).unwrap();
    assert!(
        text.starts_with("#!/usr/sbin/nft -f\n# Rendered by: render nftables.conf.in"),
        "{text}"
    );

    // hakit-setup: a missing value (1), an unknown one (2), a malformed one (2), an
    // undetermined node (2): each one line, and nothing written.
    // Each error says the shape it wants, with the name the user wrote.
    let root = dir.join("root");
    let base = std::fs::read_to_string("examples/bare-metal/pair.values").unwrap();
    let aws = std::fs::read_to_string("examples/aws/pair.values").unwrap();
    let aa = std::fs::read_to_string("examples/active-active/pair.values").unwrap();
    let node_a = ["--node", "a"].as_slice();
    for (values, args, code, says) in [
        (
            base.replace("FIP=203.0.113.10\n", ""),
            node_a,
            1,
            "give a value for: FIP",
        ),
        (
            format!("{base}LAN_IFF=eth1\n"),
            node_a,
            2,
            "unknown value LAN_IFF",
        ),
        (
            base.replace("WAN_IF=eth0", "WAN_IF=eth0\";flush ruleset"),
            node_a,
            2,
            "WAN_IF=eth0\";flush ruleset wants an interface name",
        ),
        (
            base.clone(),
            [].as_slice(),
            2,
            "neither A_LAN 198.51.100.2 nor B_LAN 198.51.100.3",
        ),
        (
            base.replace("LAN_VIP=198.51.100.1/24", "LAN_VIP=198.51.100.1"),
            node_a,
            2,
            "LAN_VIP=198.51.100.1 wants ADDRESS/PREFIX, e.g. 198.51.100.1/24",
        ),
        (
            base.replace("FIP=203.0.113.10", "FIP=203.0.113.999"),
            node_a,
            2,
            "FIP=203.0.113.999 is out of range: it wants an IPv4 ADDRESS",
        ),
        (
            base.replace("LAN_VIP=198.51.100.1/24", "LAN_VIP=198.51.100.3/24"),
            node_a,
            2,
            "LAN_VIP=198.51.100.3/24 is B_LAN's own address",
        ),
        (
            base.replace("A_LAN=198.51.100.2", "A_LAN=198.51.101.2"),
            node_a,
            2,
            "A_LAN=198.51.101.2 is outside LAN_NET=198.51.100.0/24",
        ),
        (
            base.replace("B_SYNC=192.0.2.2", "B_SYNC=192.0.2.1"),
            node_a,
            2,
            "A_SYNC and B_SYNC are both 192.0.2.1",
        ),
        // One health target would take the whole pair down when it stops answering.
        (
            base.replace("CHECK_TARGETS=192.0.2.80 192.0.2.81", "CHECK_TARGETS=192.0.2.80"),
            node_a,
            2,
            "CHECK_TARGETS=192.0.2.80 wants at least two different hosts beyond the gateway",
        ),
        (
            base.replace("CHECK_TARGETS=192.0.2.80 192.0.2.81", "CHECK_TARGET=192.0.2.80"),
            node_a,
            2,
            "CHECK_TARGET=192.0.2.80 is one health target: one silent host would put both nodes in FAULT; give CHECK_TARGETS=192.0.2.80 ANOTHER",
        ),
        (
            base.replace("CHECK_TARGETS=192.0.2.80 192.0.2.81", "CHECK_TARGETS=192.0.2.80 198.51.100.9"),
            node_a,
            2,
            "CHECK_TARGETS: 198.51.100.9 is inside LAN_NET=198.51.100.0/24",
        ),
        // The VRRP profile's values: a router ID VRRP has, an interval keepalived takes, and
        // the 10 ms profile only where the VRRP path is a LAN segment the user owns.
        (
            format!("{base}VRID=256\n"),
            node_a,
            2,
            "VRID=256 is out of range: it wants a VRRP router ID from 1 to 255",
        ),
        (
            format!("{base}ADVERT_INT=0.001\n"),
            node_a,
            2,
            "ADVERT_INT=0.001 wants seconds between VRRP adverts",
        ),
        (
            format!("{aws}PROFILE_SPEED=fast\n"),
            node_a,
            2,
            "PROFILE_SPEED=fast is for a LAN segment you own (the multicast profiles: bare-metal, linode): on aws",
        ),
        // The profiles are the example directories: another name is refused with the list.
        (
            base.replace("PROFILE=bare-metal", "PROFILE=vultr"),
            node_a,
            2,
            "PROFILE=vultr is not a profile (one of: active-active aws bare-metal digitalocean hetzner linode)",
        ),
        // AWS keeps five addresses of every subnet: a node on one never gets its traffic.
        (
            aws.replace("A_LAN=198.51.100.10", "A_LAN=198.51.100.2"),
            node_a,
            2,
            "A_LAN=198.51.100.2 is one of the five addresses AWS keeps in LAN_NET=198.51.100.0/24",
        ),
        // On AWS the standby has no public IPv4: hosts beyond the internet gateway would
        // keep it in FAULT (make chaos --lab aws showed it).
        (
            format!("{aws}CHECK_TARGETS=192.0.2.80 192.0.2.81\n"),
            node_a,
            2,
            "CHECK_TARGETS on aws: the standby has no public IPv4",
        ),
        // A table too small for a gateway, or one no kernel would allocate.
        (
            format!("{base}CONNTRACK_MAX=4096\n"),
            node_a,
            2,
            "CONNTRACK_MAX=4096 wants a number of connections from 65536 to 16777216",
        ),
        (
            format!("{base}CONNTRACK_MAX=99999999\n"),
            node_a,
            2,
            "CONNTRACK_MAX=99999999 is out of range: it wants a number of connections",
        ),
        // Active-active: the second instance's values, named as the user writes them, each
        // instance its own part of the LAN, VIP and floating IP, and a router ID for VI_2.
        (
            aa.replace("LAN_VIP2=198.51.100.129/24\n", ""),
            node_a,
            1,
            "give a value for: LAN_VIP2",
        ),
        (
            aa.replace("LAN_NET2=198.51.100.128/25", "LAN_NET2=198.51.100.64/26"),
            node_a,
            2,
            "LAN_NET1=198.51.100.0/25 and LAN_NET2=198.51.100.64/26 overlap",
        ),
        (
            aa.replace("FIP2=203.0.113.11", "FIP2=203.0.113.10"),
            node_a,
            2,
            "FIP and FIP2 are both 203.0.113.10",
        ),
        (
            aa.replace("LAN_VIP2=198.51.100.129/24", "LAN_VIP2=198.51.100.1/24"),
            node_a,
            2,
            "LAN_VIP and LAN_VIP2 are both 198.51.100.1",
        ),
        (
            aa.replace("LAN_VIP2=198.51.100.129/24", "LAN_VIP2=192.0.2.129/24"),
            node_a,
            2,
            "LAN_VIP2=192.0.2.129/24 is outside LAN_NET=198.51.100.0/24",
        ),
        (
            aa.replace("LAN_NET1=198.51.100.0/25", "LAN_NET1=198.51.100.0/23"),
            node_a,
            2,
            "LAN_NET1=198.51.100.0/23 is wider than LAN_NET=198.51.100.0/24",
        ),
        (
            format!("{aa}VRID=255\n"),
            node_a,
            2,
            "VRID=255: the profile active-active has two instances, VI_2 takes VRID + 1",
        ),
        // Where fip-claim reaches the provider: a URL, nothing a TOML string could be
        // broken out of; the metadata service without a path.
        (
            format!("{aws}API_URL=https://ec2.example\"\n"),
            node_a,
            2,
            "API_URL=https://ec2.example\" wants the provider API's base URL",
        ),
        (
            format!("{aws}API_URL=file:///etc/shadow\n"),
            node_a,
            2,
            "API_URL=file:///etc/shadow wants the provider API's base URL",
        ),
        (
            format!("{aws}METADATA_URL=http://169.254.169.254/latest\n"),
            node_a,
            2,
            "METADATA_URL=http://169.254.169.254/latest wants the metadata service",
        ),
        // The templates say PEER_ID; the user wrote (or forgot) B_ID.
        (
            aws.lines()
                .filter(|l| !l.starts_with("B_ID="))
                .map(|l| format!("{l}\n"))
                .collect(),
            node_a,
            1,
            "give a value for: B_ID",
        ),
    ] {
        let v = dir.join("pair.values");
        std::fs::write(&v, values).unwrap();
        let mut cmd = std::process::Command::new("scripts/hakit-setup");
        cmd.args(args);
        let out = cmd.arg("--root").arg(&root).arg(&v).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{says}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{says}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(!root.exists(), "{says}: something was written");
    }
    // A values file whose name carries a newline: its name would add lines to every
    // rendered file's header (nftables.conf is run by nft -f).
    let evil = dir.join("pair\nflush ruleset\n.values");
    std::fs::write(&evil, &base).unwrap();
    let out = std::process::Command::new("scripts/hakit-setup")
        .args(["--node", "a", "--root"])
        .arg(&root)
        .arg(&evil)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("control character"),
        "{}",
        stderr(&out)
    );
    assert!(!root.exists(), "something was written");
    // All or nothing: a later file that cannot be written leaves the earlier ones as they
    // were (they used to be replaced, with "nothing was replaced" said after).
    let v = dir.join("pair.values");
    std::fs::write(&v, &base).unwrap();
    let setup = |values: &std::path::Path| {
        std::process::Command::new("scripts/hakit-setup")
            .args(["--node", "a", "--root"])
            .arg(&root)
            .arg(values)
            .output()
            .unwrap()
    };
    assert!(setup(&v).status.success());
    // conntrackd's caches follow the kernel's table (#35): twice nf_conntrack_max, or a flow
    // beyond them is never synchronised; the default as before (262144).
    let ctd = || std::fs::read_to_string(root.join("etc/conntrackd/conntrackd.conf")).unwrap();
    let sysctl = || std::fs::read_to_string(root.join("etc/sysctl.d/90-hakit.conf")).unwrap();
    assert!(
        ctd().contains("HashLimit 524288\n") && ctd().contains("HashSize 65536\n"),
        "{}",
        ctd()
    );
    assert!(
        sysctl().contains("-net.netfilter.nf_conntrack_max = 262144\n"),
        "{}",
        sysctl()
    );
    let big = dir.join("big.values");
    std::fs::write(&big, format!("{base}CONNTRACK_MAX=1048576\n")).unwrap();
    assert!(setup(&big).status.success());
    assert!(
        ctd().contains("HashLimit 2097152\n") && ctd().contains("HashSize 262144\n"),
        "{}",
        ctd()
    );
    assert!(
        sysctl().contains("-net.netfilter.nf_conntrack_max = 1048576\n"),
        "{}",
        sysctl()
    );
    // The L2 fast profile: 10 ms adverts, 4 missed, priorities 254/253 (#29); ADVERT_INT and
    // VRID as the user gives them.
    let ka = || std::fs::read_to_string(root.join("etc/keepalived/keepalived.conf")).unwrap();
    assert!(
        ka().contains("    advert_int 0.02\n    down_timer_adverts 6\n")
            && ka().contains("    priority 150\n"),
        "{}",
        ka()
    );
    let fast = dir.join("fast.values");
    std::fs::write(&fast, format!("{base}PROFILE_SPEED=fast\nVRID=052\n")).unwrap();
    assert!(setup(&fast).status.success());
    assert!(
        ka().contains("    advert_int 0.01\n    down_timer_adverts 4\n")
            && ka().contains("    priority 254\n"),
        "{}",
        ka()
    );
    assert!(ka().contains("    virtual_router_id 52\n"), "{}", ka());
    std::fs::write(&fast, format!("{base}ADVERT_INT=0.1\n")).unwrap();
    assert!(setup(&fast).status.success());
    assert!(
        ka().contains("    advert_int 0.1\n    down_timer_adverts 6\n"),
        "{}",
        ka()
    );
    assert!(setup(&v).status.success());
    let snapshot = || -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push((
                        p.display().to_string(),
                        std::fs::read(&p).unwrap_or_default(),
                    ));
                }
            }
        }
        files.sort();
        files
    };
    // New sync addresses change hakit.toml, nftables.conf and conntrackd.conf; conntrackd's
    // directory cannot be created (a file stands in its way).
    std::fs::write(
        &v,
        base.replace("A_SYNC=192.0.2.1", "A_SYNC=192.0.2.11")
            .replace("B_SYNC=192.0.2.2", "B_SYNC=192.0.2.12"),
    )
    .unwrap();
    let ctd = root.join("etc/conntrackd");
    std::fs::remove_dir_all(&ctd).unwrap();
    std::fs::write(&ctd, "in the way").unwrap();
    let before = snapshot();
    let out = setup(&v);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was replaced"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        snapshot(),
        before,
        "a file was replaced, or a temporary file left"
    );
    // Under --root, never through a link planted in the tree: a directory, or the backup
    // name (its copy once overwrote a file outside the tree).
    std::fs::remove_file(&ctd).unwrap();
    let outside = dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep"), "mine").unwrap();
    let hakit_old = root.join("etc/hakit/hakit.toml.hakit-old");
    let _ = std::fs::remove_file(&hakit_old);
    std::os::unix::fs::symlink(outside.join("keep"), &hakit_old).unwrap();
    let out = setup(&v);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("keep")).unwrap(),
        "mine"
    );
    std::fs::remove_file(&hakit_old).unwrap();
    std::os::unix::fs::symlink(&outside, &ctd).unwrap();
    let out = setup(&v);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is a symbolic link"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        1,
        "written through the planted link"
    );
    std::fs::remove_file(&ctd).unwrap();
    let _ = std::fs::remove_dir_all(&root);
    // On the machine itself (no --root) an interface that is not there is refused: nft
    // would accept the name and drop everything. --dry-run: nothing is written either way.
    let v = dir.join("pair.values");
    std::fs::write(&v, base.replace("WAN_IF=eth0", "WAN_IF=hakitnone0")).unwrap();
    let out = std::process::Command::new("scripts/hakit-setup")
        .args(["--node", "a", "--dry-run"])
        .arg(&v)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("WAN_IF=hakitnone0: no such interface on this machine (it has: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn nftables_ruleset_loads_fails_closed_and_keeps_natnotifys_rule() {
    let Some(mut lab) = lab("nftables_ruleset_loads_fails_closed_and_keeps_natnotifys_rule") else {
        return;
    };
    let ns = lab.ns("gw").unwrap();
    let dir = lab.dir().to_path_buf();
    let text = render("nftables.conf.in", &[], &dir);
    assert!(!text.contains('@'), "unrendered variable");
    let path = dir.join("nftables.conf");
    std::fs::write(&path, &text).unwrap();
    let p = path.to_string_lossy().to_string();
    let out = ns.exec(&["nft", "-c", "-f", &p]).unwrap();
    assert!(out.status.success(), "nft -c: {}", stderr(&out));
    let out = ns.exec(&["nft", "-f", &p]).unwrap();
    assert!(out.status.success(), "nft -f: {}", stderr(&out));
    // Source NAT belongs to nat-notify: the ruleset carries no SNAT rule of its own, so the
    // nft-rule probe fails on a node nat-notify has not made MASTER (a BACKUP, a drained node).
    let probe = || {
        run_in(
            &ns,
            "ha-check",
            &[
                "--syslog-socket",
                "/nonexistent",
                "nft-rule",
                "--snat-source",
                "198.51.100.0/24",
                "--to",
                "203.0.113.10",
            ],
        )
    };
    let out = probe();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    // nat-notify's rule goes into the declared chain, and reloading the file keeps it.
    let rule = [
        "nft",
        "add",
        "rule",
        "ip",
        "hakit",
        "postrouting",
        "ip",
        "saddr",
        "198.51.100.0/24",
        "oifname",
        "eth0",
        "snat",
        "to",
        "203.0.113.10",
    ];
    assert!(ns.exec(&rule).unwrap().status.success());
    let out = ns.exec(&["nft", "-f", &p]).unwrap();
    assert!(out.status.success(), "reload: {}", stderr(&out));
    let out = probe();
    assert_exit(&out, 0, "");
    let listed = stdout(&ns.exec(&["nft", "list", "ruleset"]).unwrap());
    assert!(
        listed.contains("type filter hook forward priority filter; policy drop;"),
        "{listed}"
    );
    assert!(
        listed.contains("ip protocol vrrp") && listed.contains("udp dport 3780"),
        "{listed}"
    );
    // Fail closed: after source NAT nothing from the LAN leaves by the WAN.
    assert!(
        listed.contains("type filter hook postrouting priority srcnat + 10")
            && listed.contains(
                "oifname \"eth0\" ip saddr 198.51.100.0/24 counter name \"unnatted_drop\" drop"
            ),
        "{listed}"
    );
    assert_eq!(
        listed.matches("snat to").count(),
        1,
        "one SNAT rule after a reload: {listed}"
    );
}

/// The ruleset counts what it drops in named counters, and ha-check exports exactly those
/// counts: 7 unsolicited UDP datagrams from the WAN are 7 packets of `input_drop`.
#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn nftables_drops_are_counted_and_exported_by_ha_check() {
    let Some(mut lab) = lab("nftables_drops_are_counted_and_exported_by_ha_check") else {
        return;
    };
    let (ns, wan) = gw_and_wan(&mut lab);
    let d = lab.dir().to_path_buf();
    let rules = d.join("nftables.conf");
    std::fs::write(&rules, render("nftables.conf.in", &[], &d)).unwrap();
    let out = ns.exec(&["nft", "-f", &rules.to_string_lossy()]).unwrap();
    assert!(out.status.success(), "nft -f: {}", stderr(&out));
    wan.within(|| {
        let s = std::net::UdpSocket::bind("203.0.113.254:0")?;
        for _ in 0..7 {
            s.send_to(&[0u8; 100], "203.0.113.2:9")?;
        }
        Ok(())
    })
    .unwrap();
    // The datagrams are delivered (or dropped) before send_to returns on a veth; the
    // ping below waits for ARP anyway, and ICMP echo is accepted, not counted.
    let prom = d.join("hakit_ha_check.prom");
    let check = |table: &str| {
        run_in(
            &ns,
            "ha-check",
            &[
                "-v",
                "--runtime-dir",
                &d.join("run").to_string_lossy(),
                "--syslog-socket",
                "/nonexistent",
                "--textfile",
                &prom.to_string_lossy(),
                "--nft-counters",
                table,
                "icmp",
                "203.0.113.254",
                "-i",
                "eth0",
            ],
        )
    };
    let out = check("inet hakit_filter");
    assert_exit(&out, 0, "");
    let text = std::fs::read_to_string(&prom).unwrap();
    let t = "table=\"inet hakit_filter\"";
    for want in [
        format!("hakit_ha_check_nft_table_readable{{{t}}} 1"),
        format!("hakit_ha_check_nft_packets_total{{{t},counter=\"input_drop\"}} 7"),
        // 7 x (20-byte IPv4 header + 8-byte UDP header + 100 bytes).
        format!("hakit_ha_check_nft_bytes_total{{{t},counter=\"input_drop\"}} 896"),
        format!("hakit_ha_check_nft_packets_total{{{t},counter=\"forward_drop\"}} 0"),
        format!("hakit_ha_check_nft_packets_total{{{t},counter=\"input_invalid_drop\"}} 0"),
    ] {
        assert!(text.lines().any(|l| l == want), "no {want:?} in:\n{text}");
    }
    // A table that does not exist: the check still decides health, the textfile says the
    // counters are missing, and the warning names the table.
    let out = check("inet nope");
    assert_exit(&out, 0, "nft counters of table inet nope not exported");
    // Logged once per change, not every run: the same failure again is quiet.
    let again = check("inet nope");
    assert!(
        !stderr(&again).contains("not exported"),
        "repeated: {}",
        stderr(&again)
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("hakit_ha_check_nft_table_readable{table=\"inet nope\"} 0")
            && !text.contains("hakit_ha_check_nft_packets_total"),
        "{text}"
    );
    // A malformed table is a usage error before anything runs.
    let out = check("inet");
    assert_exit(&out, 2, "expected \"FAMILY NAME\"");
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn sysctl_file_applies_in_a_namespace() {
    let Some(mut lab) = lab("sysctl_file_applies_in_a_namespace") else {
        return;
    };
    let ns = lab.ns("gw").unwrap();
    // nf_conntrack sysctls exist once conntrack is in use in the namespace.
    assert!(ns
        .exec(&["nft", "add", "table", "ip", "t"])
        .unwrap()
        .status
        .success());
    assert!(ns
        .exec(&[
            "nft",
            "add",
            "chain",
            "ip",
            "t",
            "c",
            "{ type nat hook postrouting priority srcnat; }"
        ])
        .unwrap()
        .status
        .success());
    // The template, rendered for a WAN interface the namespace has.
    let text = hakit_lab::render(
        "sysctl.d/90-hakit.conf.in",
        &[("WAN_IF", "lo"), ("CONNTRACK_MAX", "262144")],
    )
    .unwrap();
    let file = std::env::temp_dir().join(format!("hakit-sysctl-{}.conf", std::process::id()));
    std::fs::write(&file, &text).unwrap();
    let applied = ns
        .exec(&["sysctl", "-q", "-p", &file.to_string_lossy()])
        .unwrap();
    let _ = std::fs::remove_file(&file);
    // A "-" line that cannot be set here (nf_conntrack_max outside the initial namespace)
    // must not fail the whole file, as it would fail systemd-sysctl.service in a container.
    assert!(applied.status.success(), "{}", stderr(&applied));
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, want) = line.split_once('=').unwrap();
        let key = key.trim();
        if let Some(key) = key.strip_prefix('-') {
            if key == "net.netfilter.nf_conntrack_max" {
                // Global: only the initial namespace may set it (EINVAL elsewhere); a test
                // must not change the host's table size, so this one key is only parsed.
                assert!(want.trim().parse::<u64>().is_ok());
                continue;
            }
        }
        let key = key.trim_start_matches('-');
        let got = stdout(&ns.exec(&["sysctl", "-n", key]).unwrap())
            .trim()
            .to_string();
        assert_eq!(got, want.trim(), "{key}");
    }
    // ha-check's sysctl probe agrees.
    let out = run_in(
        &ns,
        "ha-check",
        &[
            "--syslog-socket",
            "/nonexistent",
            "sysctl",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
        ],
    );
    assert_exit(&out, 0, "");
}

fn promtool(test: &str) -> Option<String> {
    hakit_lab::require(test, "promtool").map(|p| p.to_string_lossy().to_string())
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let Some(p) = promtool("alert_rules_pass_promtool_and_their_unit_tests") else {
        return;
    };
    let dir = "examples/monitoring";
    // The rules, the fleet's scrape configuration (the providers' discovery, relabeled to
    // `pair`), and the rules' unit tests.
    for args in [
        ["check", "rules", "hakit-alerts.yml"],
        ["check", "config", "prometheus-fleet.yml"],
        ["test", "rules", "hakit-alerts.test.yml"],
    ] {
        let out = std::process::Command::new(&p)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every hakit metric the rules use is one the binaries write (README's table).
    let rules = std::fs::read_to_string(format!("{dir}/hakit-alerts.yml")).unwrap();
    let readme = std::fs::read_to_string("README.md").unwrap();
    // Each expr, with its continuation lines (`expr: |` blocks).
    let mut exprs = String::new();
    let mut in_expr = None;
    for l in rules.lines() {
        let indent = l.len() - l.trim_start().len();
        if l.trim_start().starts_with("expr:") {
            in_expr = Some(indent);
            exprs.push_str(l);
            exprs.push('\n');
        } else if in_expr.is_some_and(|i| indent > i) {
            exprs.push_str(l);
            exprs.push('\n');
        } else {
            in_expr = None;
        }
    }
    assert!(exprs.contains("hakit_nat_notify_fifo_heartbeat_timestamp_seconds"));
    // Every runbook link is absolute (Alertmanager and Grafana open it from anywhere: the
    // base from the server's external label, else the project's docs) and names a section
    // of the incident card that exists.
    let card = std::fs::read_to_string("docs/incident-card.md").unwrap();
    let slugs: Vec<String> = card
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| {
            h.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect();
    let mut links = 0;
    for l in rules.lines() {
        if let Some(url) = l.trim_start().strip_prefix("runbook_url: ") {
            let url = url.trim_matches(['"', '\'']);
            assert!(
                url.starts_with(
                    "{{ with $externalLabels.hakit_runbook_base }}{{ . }}{{ else }}https://"
                ),
                "{url}: not absolute"
            );
            let (page, anchor) = url.rsplit_once('#').unwrap_or((url, ""));
            assert!(page.ends_with("{{ end }}/incident-card.md"), "{url}");
            assert!(
                slugs.iter().any(|s| s == anchor),
                "{url}: no such section in {slugs:?}"
            );
            links += 1;
        }
    }
    assert!(links >= 8, "every rule links its runbook section");
    for word in exprs.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("hakit_") && word != "hakit_preferred" {
            assert!(
                readme.contains(&format!("`{word}`")),
                "alert rule uses {word}, which no binary writes"
            );
        }
    }
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn textfiles_of_both_binaries_pass_promtool_check_metrics() {
    let Some(p) = promtool("textfiles_of_both_binaries_pass_promtool_check_metrics") else {
        return;
    };
    let Some(mut lab) = lab("textfiles_of_both_binaries_pass_promtool_check_metrics") else {
        return;
    };
    let (ns, _wan) = gw_and_wan(&mut lab);
    let d = lab.dir().to_path_buf();
    let (nn_prom, hc_prom) = (
        d.join("hakit_nat_notify.prom"),
        d.join("hakit_ha_check.prom"),
    );
    let out = run_in(
        &ns,
        "nat-notify",
        &[
            "--runtime-dir",
            &d.join("run").to_string_lossy(),
            "--syslog-socket",
            "/nonexistent",
            "--textfile",
            &nn_prom.to_string_lossy(),
            "--instance",
            "VI_1",
            "--interface",
            "eth0",
            "--floating-ip",
            "203.0.113.10/32",
            "master",
        ],
    );
    assert_exit(&out, 0, "");
    // A named nftables counter, so the counter families are in the checked file too.
    for argv in [
        &["nft", "add", "table", "inet", "t"][..],
        &["nft", "add", "counter", "inet", "t", "dropped"][..],
    ] {
        let out = ns.exec(argv).unwrap();
        assert!(out.status.success(), "{argv:?}: {}", stderr(&out));
    }
    let out = run_in(
        &ns,
        "ha-check",
        &[
            "--runtime-dir",
            &d.join("run").to_string_lossy(),
            "--syslog-socket",
            "/nonexistent",
            "--textfile",
            &hc_prom.to_string_lossy(),
            "--nft-counters",
            "inet t",
            "icmp",
            "203.0.113.254",
            "-i",
            "eth0",
        ],
    );
    assert_exit(&out, 0, "");
    for f in [&nn_prom, &hc_prom] {
        let text = std::fs::read(f).unwrap();
        let mut child = std::process::Command::new(&p)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &text).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            f.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let nn = std::fs::read_to_string(&nn_prom).unwrap();
    assert!(
        nn.contains("hakit_nat_notify_state{vrrp_instance=\"VI_1\",state=\"MASTER\"} 1"),
        "{nn}"
    );
    let hc = std::fs::read_to_string(&hc_prom).unwrap();
    assert!(hc.contains("hakit_ha_check_healthy 1"), "{hc}");
    assert!(
        hc.contains("hakit_ha_check_nft_packets_total{table=\"inet t\",counter=\"dropped\"} 0"),
        "{hc}"
    );
}

#[test]
fn dashboard_is_valid_and_queries_only_real_metrics() {
    let text = std::fs::read_to_string("examples/monitoring/hakit-dashboard.json").unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let readme = std::fs::read_to_string("README.md").unwrap();
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 6);
    let mut hakit = 0;
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("hakit_") {
                    hakit += 1;
                    assert!(
                        readme.contains(&format!("`{word}`")),
                        "panel {:?} queries {word}, which no binary writes",
                        p["title"]
                    );
                } else if word.starts_with("node_") {
                    // node_exporter's own metrics (conntrack, network): names it exports.
                    assert!(
                        [
                            "node_nf_conntrack_entries",
                            "node_nf_conntrack_entries_limit",
                            "node_network_transmit_bytes_total",
                            "node_network_receive_bytes_total",
                            "node_network_receive_drop_total",
                            "node_network_transmit_drop_total"
                        ]
                        .contains(&word),
                        "unexpected {word}"
                    );
                }
            }
        }
    }
    assert!(hakit >= 6, "the dashboard hardly uses hakit's metrics");
    // Variables, not constants: datasource, job, pair, node, WAN interface.
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for v in ["datasource", "job", "pair", "instance", "wan"] {
        assert!(vars.contains(&v), "no ${v} variable: {vars:?}");
    }
    assert_eq!(d["uid"], "hakit-pair", "a stable uid");
    assert!(d["schemaVersion"].as_u64().unwrap() >= 39);
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    for e in &exprs {
        assert!(!e.contains("eth0"), "hard-coded interface: {e}");
        for f in ["rate(", "increase("] {
            if e.contains(f) {
                assert!(e.contains("[$__rate_interval]"), "fixed window: {e}");
            }
        }
        if e.contains("hakit_") {
            assert!(
                e.contains("$instance") || e.contains("$pair"),
                "unfiltered: {e}"
            );
        }
    }
    // One panel per alert's signal: the metric each rule is about is on the dashboard.
    for (alert, metric) in [
        (
            "HakitBothNodesMaster",
            "sum by (pair, vrrp_instance) (hakit_nat_notify_state",
        ),
        (
            "HakitPreferredNodeNotMaster",
            "hakit_nat_notify_state{state=\"MASTER\"",
        ),
        ("HakitFloatingIPClaimFailing", "hakit_nat_notify_step_ok"),
        ("HakitHealthCheckFailing", "hakit_ha_check_failures_total"),
        ("HakitVrrpPathCut", "hakit_vrrp_path_cut"),
        ("HakitVrrpAdvertsLost", "hakit_vrrp_adverts_missed_total"),
        (
            "HakitWriterSilent",
            "hakit_nat_notify_fifo_heartbeat_timestamp_seconds",
        ),
        (
            "HakitConntrackTableFilling",
            "node_nf_conntrack_entries_limit",
        ),
        (
            "HakitNftablesDropRateHigh",
            "hakit_ha_check_nft_packets_total",
        ),
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(metric)),
            "{alert}: no panel shows {metric}"
        );
    }
}

/// Fuzzing `pair.values`, hakit-setup's one input (#30): the shipped values files with
/// lines dropped, doubled and swapped, values replaced by hostile ones (shell syntax,
/// control characters, out-of-range and malformed addresses, long strings) and names
/// mixed up. Every run must end 0, 1 or 2 with no shell error, write nothing on a refusal,
/// and never run what a value says (a `$(touch …)` marker). HAKIT_FUZZ_VALUES_SECONDS sets
/// the budget (default 10); HAKIT_FUZZ_SEED replays a run.
#[test]
fn pair_values_survive_mutation() {
    let seconds = env_number("HAKIT_FUZZ_VALUES_SECONDS", 10);
    let seed = fuzz_seed();
    eprintln!("pair.values fuzz: {seconds} s, HAKIT_FUZZ_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = hakit_lab::TempDir::new("values-fuzz");
    let marker = dir.join("pwned");
    let hostile: Vec<String> = vec![
        format!("$(touch {})", marker.display()),
        format!("`touch {}`", marker.display()),
        format!("x; touch {}", marker.display()),
        "198.51.100.1/33".into(),
        "198.51.100.256".into(),
        "203.0.113.10 203.0.113.11".into(),
        "2001:db8::1".into(),
        "-1".into(),
        "".into(),
        " ".into(),
        "eth0\tflush ruleset".into(),
        "\"quoted\"".into(),
        "a\\".into(),
        "${PATH}".into(),
        "*".into(),
        "../../etc/passwd".into(),
        "x".repeat(5000),
        "é".into(),
        "192.0.2.1".into(), // a valid address, but in no prefix of the pair
        "0.0.0.0/0".into(),
        "192.0.2.80 192.0.2.80".into(),
    ];
    let seeds: Vec<Vec<String>> = nat_profiles()
        .iter()
        .map(|d| {
            std::fs::read_to_string(format!("examples/{d}/pair.values"))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect()
        })
        .collect();
    let start = std::time::Instant::now();
    let mut runs = 0u32;
    let mut codes = [0u32; 3];
    while start.elapsed() < std::time::Duration::from_secs(seconds) || runs < 20 {
        let mut lines = rng.pick(&seeds).clone();
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(lines.len());
            match rng.below(6) {
                0 => {
                    lines.remove(i);
                }
                1 => {
                    let l = lines[i].clone();
                    lines.insert(i, l);
                }
                2 => {
                    let j = rng.below(lines.len());
                    lines.swap(i, j);
                }
                3 | 4 => {
                    if let Some((k, _)) = lines[i].clone().split_once('=') {
                        lines[i] = format!("{k}={}", rng.pick(&hostile));
                    }
                }
                _ => {
                    let other = rng.pick(&seeds).clone();
                    let j = rng.below(other.len());
                    if let (Some((k, _)), Some((_, v))) =
                        (lines[i].clone().split_once('='), other[j].split_once('='))
                    {
                        lines[i] = format!("{k}={v}");
                    }
                }
            }
        }
        let values = dir.join("pair.values");
        std::fs::write(&values, lines.join("\n") + "\n").unwrap();
        let root = dir.join("root");
        let _ = std::fs::remove_dir_all(&root);
        let node = if rng.chance(2) { "a" } else { "b" };
        let out = std::process::Command::new("scripts/hakit-setup")
            .args(["--node", node, "--root"])
            .arg(&root)
            .arg(&values)
            .output()
            .unwrap();
        let err = stderr(&out);
        let replay = format!("HAKIT_FUZZ_SEED={seed}, run {runs}:\n{}", lines.join("\n"));
        let code = out.status.code();
        assert!(
            matches!(code, Some(0..=2)),
            "exit {code:?}: {err}\n{replay}"
        );
        for shell_error in [
            "syntax error",
            "unbound variable",
            "command not found",
            "bad substitution",
            "integer expression",
            "line ",
        ] {
            assert!(!err.contains(shell_error), "{shell_error}: {err}\n{replay}");
        }
        assert!(!marker.exists(), "a value was run as a command\n{replay}");
        if code != Some(0) {
            assert!(!root.exists(), "a refusal wrote files: {err}\n{replay}");
            assert_eq!(err.trim().lines().count(), 1, "{err}\n{replay}");
        }
        codes[code.unwrap_or(0) as usize] += 1;
        runs += 1;
    }
    eprintln!("pair.values fuzz: {runs} runs (exit 0/1/2: {codes:?})");
}

/// The distribution decides where the ruleset goes (#33 point 4): RHEL's and Fedora's
/// nftables.service loads /etc/sysconfig/nftables.conf, Debian's /etc/nftables.conf, told
/// by the target's os-release (read, never sourced). An enabled firewalld, whose zones
/// filter forwarding beside hakit's tables, is refused before anything is written.
#[test]
fn the_ruleset_goes_where_the_distributions_nftables_service_reads_it() {
    let dir = std::env::temp_dir().join(format!("hakit-distro-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let setup = |root: &std::path::Path| {
        std::process::Command::new("scripts/hakit-setup")
            .args(["--node", "a", "--root"])
            .arg(root)
            .arg("examples/bare-metal/pair.values")
            .output()
            .unwrap()
    };
    let os_release = [
        ("debian", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n", false),
        ("rhel", "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"9.4\"\n", true),
        ("rocky", "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n", true),
        // A hostile os-release is text, never run.
        ("hostile", "ID=$(touch /tmp/hakit-pwned)\nID_LIKE=`reboot`\n", false),
    ];
    for (name, text, sysconfig) in os_release {
        let root = dir.join(name);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/os-release"), text).unwrap();
        let out = setup(&root);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let (there, not) = if sysconfig {
            ("etc/sysconfig/nftables.conf", "etc/nftables.conf")
        } else {
            ("etc/nftables.conf", "etc/sysconfig/nftables.conf")
        };
        let ruleset = std::fs::read_to_string(root.join(there)).unwrap_or_default();
        assert!(
            ruleset.starts_with("#!/usr/sbin/nft -f\n"),
            "{name}: {there}: {ruleset:.80}"
        );
        assert!(!root.join(not).exists(), "{name}: {not} written too");
    }
    assert!(!std::path::Path::new("/tmp/hakit-pwned").exists());
    // firewalld enabled (its link in multi-user.target.wants): exit 1, one line, nothing written.
    let root = dir.join("firewalld");
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/firewalld.service",
        wants.join("firewalld.service"),
    )
    .unwrap();
    let out = setup(&root);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("firewalld is enabled"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(!root.join("etc/keepalived").exists() && !root.join("etc/hakit").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Linode README's BIRD files: the roles file is exactly what nat-notify writes (with the
/// secondary role), and BIRD parses bird.conf with it included (`bird -p`).
#[test]
fn linode_readme_bird_files_are_what_hakit_writes_and_bird_parses() {
    let name = "linode_readme_bird_files_are_what_hakit_writes_and_bird_parses";
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/linode/README.md"),
    )
    .unwrap();
    // A fenced block (no language) whose first line starts with `head`, without that line.
    let block = |head: &str| {
        let at = readme
            .find(&format!("```\n{head}"))
            .unwrap_or_else(|| panic!("no block starting {head:?} in the Linode README"));
        let start = at + readme[at + 4..].find('\n').unwrap() + 5;
        let len = readme[start..].find("```\n").unwrap();
        readme[start..start + len].to_string()
    };
    let roles = block("# /etc/bird/hakit-roles.conf");
    let written = hakit_bgp::bird_roles(&[("203.0.113.10/32".to_string(), hakit_bgp::SECONDARY)]);
    assert_eq!(
        roles, written,
        "the README's roles file is not what nat-notify writes"
    );
    let Some(bird) = hakit_lab::require(name, "bird") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("hakit-bird-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let roles_path = dir.join("hakit-roles.conf");
    std::fs::write(&roles_path, &roles).unwrap();
    let conf = block("# /etc/bird/bird.conf")
        .replace("/etc/bird/hakit-roles.conf", &roles_path.to_string_lossy())
        .replace("ROUTE_SERVER_IPV6", "2001:db8:ff::254");
    let conf_path = dir.join("bird.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let out = std::process::Command::new(bird)
        .args(["-p", "-c"])
        .arg(&conf_path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "bird -p: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
