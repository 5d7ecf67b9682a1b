//! garp-burst, proven by what the wire and the neighbours see.

mod util;

use std::{net::Ipv4Addr, time::Duration};

use hakit_lab::{
    capture::{self, Capture},
    syslog::Syslog,
};
use util::*;

const FILTER: &str = "arp or (icmp6 and ip6[40] == 136)";

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn frames_on_the_wire_are_exact_and_spaced() {
    let Some(mut lab) = lab("frames_on_the_wire_are_exact_and_spaced") else {
        return;
    };
    let (a, b) = pair(&mut lab);
    let mac = a.mac("eth0").unwrap().0;
    let pcap = lab.dir().join("burst.pcap");
    let cap = Capture::start(&b, "eth0", FILTER, &pcap).unwrap();
    let out = run_in(
        &a,
        "garp-burst",
        &[
            "-i",
            "eth0",
            "--ip",
            "192.0.2.1",
            "--ip",
            "2001:db8::1",
            "-c",
            "5",
            "--interval",
            "10ms",
            "--reply",
            "--json",
        ],
    );
    assert!(out.status.success(), "garp-burst failed: {}", stderr(&out));
    std::thread::sleep(Duration::from_millis(100));
    let packets = cap.stop().unwrap();

    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["report"]["frames_sent"], 15);

    let arps: Vec<_> = packets
        .iter()
        .filter_map(|p| parse_arp(&p.data).map(|a| (p.ts, a)))
        .collect();
    let nas: Vec<_> = packets
        .iter()
        .filter_map(|p| parse_na(&p.data).map(|n| (p.ts, n)))
        .collect();
    let requests: Vec<_> = arps.iter().filter(|(_, a)| a.op == 1).collect();
    let replies: Vec<_> = arps.iter().filter(|(_, a)| a.op == 2).collect();
    assert_eq!(requests.len(), 5, "ARP requests seen: {arps:?}");
    assert_eq!(replies.len(), 5, "ARP replies seen");
    assert_eq!(nas.len(), 5, "neighbour advertisements seen");

    let vip = Ipv4Addr::new(192, 0, 2, 1);
    for (_, r) in &requests {
        assert_eq!(r.dst, [0xff; 6], "request is broadcast");
        assert_eq!((r.src, r.sha), (mac, mac));
        assert_eq!((r.spa, r.tpa), (vip, vip), "sender = target = the address");
        assert_eq!(r.tha, [0; 6]);
    }
    for (_, r) in &replies {
        assert_eq!((r.dst, r.sha, r.tha), ([0xff; 6], mac, mac));
        assert_eq!((r.spa, r.tpa), (vip, vip));
    }
    for (_, n) in &nas {
        assert_eq!(n.dst_mac, [0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(n.src_mac, mac);
        assert_eq!(n.hop_limit, 255);
        assert_eq!(n.src, ip("2001:db8::1"));
        assert_eq!(n.dst, ip("ff02::1"));
        assert_eq!(n.target, ip("2001:db8::1"));
        assert_eq!(n.flags & 0x20, 0x20, "override flag");
        assert_eq!(n.flags & 0x40, 0, "not solicited");
        assert_eq!(
            n.flags & 0x80,
            0,
            "no router flag: forwarding is off in the namespace"
        );
        assert_eq!(
            (n.opt_type, n.opt_len, n.lladdr),
            (2, 1, mac),
            "target link-layer option"
        );
        assert!(n.checksum_ok, "ICMPv6 checksum");
    }
    // The interval is honoured: rounds follow an absolute schedule, so round k never leaves
    // before k intervals after the first (a late round may shorten the next gap, by design:
    // no drift). 2 ms of slack for a first frame that left late on a loaded machine.
    for (k, (ts, _)) in requests.iter().enumerate() {
        let since_first = ts - requests[0].0;
        assert!(
            since_first >= k as f64 * 0.010 - 0.002,
            "round {k} left {since_first:.4}s after the first, before its slot"
        );
    }
    let span = requests[4].0 - requests[0].0;
    assert!(span < 1.0, "5 rounds at 10ms took {span:.3}s");

    // tcpdump, decoding on its own, agrees on checksums and flags.
    let text = capture::decode(&pcap).unwrap();
    assert_eq!(text.matches("[icmp6 sum ok]").count(), 5, "{text}");
    assert_eq!(text.matches("Flags [override]").count(), 5, "{text}");
    assert_eq!(
        text.matches("Request who-has 192.0.2.1 tell 192.0.2.1")
            .count(),
        5,
        "{text}"
    );
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn router_flag_follows_ipv6_forwarding() {
    let Some(mut lab) = lab("router_flag_follows_ipv6_forwarding") else {
        return;
    };
    let (a, b) = pair(&mut lab);
    a.exec(&["sysctl", "-qw", "net.ipv6.conf.eth0.forwarding=1"])
        .unwrap();
    let pcap = lab.dir().join("router.pcap");
    let cap = Capture::start(&b, "eth0", FILTER, &pcap).unwrap();
    let out = run_in(
        &a,
        "garp-burst",
        &["-i", "eth0", "--ip", "2001:db8::1", "-c", "1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(100));
    let nas: Vec<_> = cap
        .stop()
        .unwrap()
        .iter()
        .filter_map(|p| parse_na(&p.data))
        .collect();
    assert_eq!(nas.len(), 1);
    assert_eq!(
        nas[0].flags, 0xa0,
        "router + override on a forwarding interface"
    );
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn neighbours_learn_the_new_mac() {
    let Some(mut lab) = lab("neighbours_learn_the_new_mac") else {
        return;
    };
    let (a, b) = pair(&mut lab);
    let mac = a.mac("eth0").unwrap();
    for addr in ["192.0.2.1", "2001:db8::1"] {
        b.ip(&[
            "neigh",
            "replace",
            addr,
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "eth0",
            "nud",
            "stale",
        ])
        .unwrap();
        let before = b.neighbour(ip(addr)).unwrap().unwrap();
        assert_eq!(before.mac.unwrap().to_string(), "02:00:00:00:00:99");
    }
    let out = run_in(&a, "garp-burst", &["-i", "eth0", "-c", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for addr in ["192.0.2.1", "2001:db8::1"] {
        let n = hakit_lab::wait_until(Duration::from_secs(2), Duration::from_millis(5), || {
            b.neighbour(ip(addr)).unwrap().and_then(|n| n.mac) == Some(mac)
        });
        let now = b.neighbour(ip(addr)).unwrap();
        assert!(
            n.is_some(),
            "{addr}: neighbour entry still {now:?}, want {mac}"
        );
    }
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn refusals_exit_2_and_send_nothing() {
    let Some(mut lab) = lab("refusals_exit_2_and_send_nothing") else {
        return;
    };
    let (a, b) = pair(&mut lab);
    lab.veth(&a, "down0", &b, "down0").unwrap();
    a.ip(&["link", "set", "down0", "down"]).unwrap();
    let pcap = lab.dir().join("refusals.pcap");
    let cap = Capture::start(&b, "eth0", FILTER, &pcap).unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["-i", "eth9"], "unknown interface \"eth9\""),
        (&["-i", "down0"], "interface down0 is down"),
        (
            &["-i", "eth0", "--ip", "192.0.2.99"],
            "192.0.2.99 is not on interface eth0",
        ),
        (
            &["-i", "eth0", "--ip", "2001:db8::99"],
            "2001:db8::99 is not on interface eth0",
        ),
        (
            &["-i", "eth0", "--ip", "192.0.2.256"],
            "invalid value '192.0.2.256'",
        ),
        (
            &["-i", "eth0", "--ip", "not-an-ip"],
            "invalid value 'not-an-ip'",
        ),
        (
            &["-i", "eth0", "--interval", "10"],
            "invalid duration \"10\"",
        ),
        (&["-i", "eth0", "--interval=-1s"], "invalid duration"),
        (&["-i", "eth0", "-c", "0"], "count must be at least 1"),
        (&["-i", "eth0", "-c", "-3"], "unexpected argument '-3'"),
        (
            &["-i", "eth0", "--ip", "224.0.0.1", "--force"],
            "not a unicast address",
        ),
        (&[], "no interface"),
        (&["-i", "a/b"], "unknown interface"),
        (&["-i", "this-name-is-far-too-long"], "unknown interface"),
    ];
    for (args, want) in cases {
        let out = run_in(&a, "garp-burst", args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in {err:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // --force announces an address the interface does not have.
    let out = run_in(
        &a,
        "garp-burst",
        &["-i", "eth0", "--ip", "192.0.2.99", "--force", "-c", "1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    std::thread::sleep(Duration::from_millis(100));
    let arps: Vec<_> = cap
        .stop()
        .unwrap()
        .iter()
        .filter_map(|p| parse_arp(&p.data))
        .collect();
    assert_eq!(arps.len(), 1, "only the forced frame left: {arps:?}");
    assert_eq!(arps[0].spa, Ipv4Addr::new(192, 0, 2, 99));
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn dry_run_sends_nothing_and_config_layers_apply() {
    let Some(mut lab) = lab("dry_run_sends_nothing_and_config_layers_apply") else {
        return;
    };
    let (a, b) = pair(&mut lab);
    let conf = lab.dir().join("hakit.toml");
    std::fs::write(
        &conf,
        "[garp]\ninterface = \"eth0\"\ncount = 2\ninterval = \"1.5s\"\nips = [\"192.0.2.1\"]\n",
    )
    .unwrap();
    let c = conf.to_string_lossy().to_string();
    let pcap = lab.dir().join("dry.pcap");
    let cap = Capture::start(&b, "eth0", FILTER, &pcap).unwrap();
    let dry = |extra_env: &[(&str, &str)], extra: &[&str]| -> serde_json::Value {
        let bin = bin("garp-burst");
        let mut argv = vec![bin.as_str(), "--config", &c, "--dry-run", "--json"];
        argv.extend_from_slice(extra);
        let mut cmd = a.command(&argv);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = hakit_lab::run(&mut cmd, Duration::from_secs(30)).unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    // file > default
    let v = dry(&[], &[]);
    assert_eq!(v["burst"]["count"], 2);
    assert_eq!(v["burst"]["interval"], 1500.0);
    assert_eq!(v["burst"]["frames"][0]["ip"], "192.0.2.1");
    // env > file
    let v = dry(
        &[("HAKIT_GARP_COUNT", "3"), ("HAKIT_GARP_IPS", "2001:db8::1")],
        &[],
    );
    assert_eq!(v["burst"]["count"], 3);
    assert_eq!(v["burst"]["frames"][0]["kind"], "na");
    // flag > env
    let v = dry(&[("HAKIT_GARP_COUNT", "3")], &["-c", "4", "--reply"]);
    assert_eq!(v["burst"]["count"], 4);
    assert_eq!(v["burst"]["frames"][1]["kind"], "arp-reply");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        cap.stop().unwrap().is_empty(),
        "--dry-run must send nothing"
    );
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn logs_reach_syslog_with_ident() {
    let Some(mut lab) = lab("logs_reach_syslog_with_ident") else {
        return;
    };
    let (a, _b) = pair(&mut lab);
    let sock_path = lab.dir().join("log.sock");
    let syslog = Syslog::listen(&sock_path).unwrap();
    let s = sock_path.to_string_lossy().to_string();
    let out = run_in(
        &a,
        "garp-burst",
        &[
            "-i",
            "eth0",
            "--ip",
            "192.0.2.1",
            "-c",
            "1",
            "--syslog-socket",
            &s,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Not a terminal, no -v, syslog reachable: nothing on stderr.
    assert_eq!(stderr(&out), "", "stderr must stay quiet when syslog works");
    let lines = syslog.take().unwrap();
    let line = lines
        .iter()
        .find(|l| l.contains("announced"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(line.starts_with("<30>garp-burst["), "{line}");
    assert!(line.contains("]: announced 192.0.2.1 on eth0"), "{line}");

    // A failure is logged at err (daemon.err = 27) and printed once on stderr.
    let out = run_in(&a, "garp-burst", &["-i", "eth9", "--syslog-socket", &s]);
    assert_exit(&out, 2, "");
    let lines = syslog.take().unwrap();
    let line = lines
        .iter()
        .find(|l| l.contains("unknown interface"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(line.starts_with("<27>garp-burst["), "{line}");
    assert!(line.ends_with("unknown interface \"eth9\""), "{line}");
    assert_eq!(
        stderr(&out).matches("unknown interface").count(),
        1,
        "{}",
        stderr(&out)
    );

    // The env variable works as well as the flag, and -v adds stderr, with each line
    // stamped with the time since start ("garp-burst: info: [+0.935ms] announced ...").
    let mut cmd = a.command(&[&bin("garp-burst"), "-i", "eth0", "-c", "1", "-v"]);
    cmd.env("HAKIT_SYSLOG_SOCKET", &s);
    let out = hakit_lab::run(&mut cmd, Duration::from_secs(30)).unwrap();
    assert!(out.status.success());
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains("] announced 192.0.2.1"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.starts_with("garp-burst: info: [+") && line.contains("ms] announced"),
        "{line}"
    );
    let lines = syslog.take().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("announced")),
        "announced line over syslog: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("<31>garp-burst[")),
        "debug lines at -v: {lines:?}"
    );
}
