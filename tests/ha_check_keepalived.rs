//! ha-check as keepalived's vrrp_script, and peer-watch mode, in the lab.

mod util;

use std::time::Duration;

use hakit_lab::{keepalived, wait_until};
use util::*;

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn vrrp_script_drops_priority_on_uplink_loss_and_preempts_back() {
    let Some(mut lab) = lab("vrrp_script_drops_priority_on_uplink_loss_and_preempts_back") else {
        return;
    };
    let sw = lab.ns("sw").unwrap();
    let a = lab.ns("a").unwrap();
    let b = lab.ns("b").unwrap();
    let up = lab.ns("up").unwrap();
    lab.bridge(&sw, "brlan", &[(&a, "eth1"), (&b, "eth1")])
        .unwrap();
    lab.bridge(&sw, "brwan", &[(&a, "eth0"), (&b, "eth0"), (&up, "eth0")])
        .unwrap();
    up.ip(&["addr", "add", "203.0.113.254/24", "dev", "eth0"])
        .unwrap();
    let vip = ip("198.51.100.1");
    let mut ks = Vec::new();
    for (ns, n, prio) in [(&a, 2, 150u8), (&b, 3, 130u8)] {
        ns.ip(&["addr", "add", &format!("203.0.113.{n}/24"), "dev", "eth0"])
            .unwrap();
        ns.ip(&["addr", "add", &format!("198.51.100.{n}/24"), "dev", "eth1"])
            .unwrap();
        let role = ns.name.rsplit('-').next().unwrap().to_string();
        let d = lab.dir().to_path_buf();
        let conf = d.join(format!("{role}.hakit.toml"));
        std::fs::write(
            &conf,
            format!(
                "[general]\nruntime_dir = \"{d}/{role}-run\"\nsyslog_socket = \"{d}/no.sock\"\n\n[check]\ndeadline = \"150ms\"\n\n\
                 [[check.probe]]\nkind = \"icmp\"\nname = \"uplink\"\ntarget = \"203.0.113.254\"\ninterface = \"eth0\"\n\n\
                 [[check.probe]]\nkind = \"link\"\ninterface = \"eth0\"\n",
                d = d.display()
            ),
        )
        .unwrap();
        let scripts = format!(
            "vrrp_script chk_uplink {{\n    script \"{} --config {}\"\n    interval 0.2\n    timeout 1\n    fall 2\n    rise 2\n    weight -30\n}}\n",
            bin("ha-check"),
            conf.display()
        );
        let k = keepalived::start(
            &mut lab,
            ns,
            &role,
            &keepalived::Vrrp {
                router_id: &role,
                iface: "eth1",
                priority: prio,
                advert_int: "0.1",
                vip: "198.51.100.1/24",
                extra: "    track_script {\n        chk_uplink\n    }",
                scripts: &scripts,
                ..Default::default()
            }
            .render()
            .unwrap(),
        )
        .unwrap();
        k.wait_ready(Duration::from_secs(10)).unwrap();
        ks.push(k);
    }
    let master = |ns: &hakit_lab::Ns| ns.has_addr("eth1", vip).unwrap();
    assert!(
        wait_until(
            Duration::from_secs(15),
            Duration::from_millis(20),
            || master(&a) && !master(&b)
        )
        .is_some(),
        "a never became master:\n{}",
        ks[0].log_tail()
    );

    // Cut a's uplink: ha-check fails twice (fall 2), a's priority drops to 120 < 130.
    a.ip(&["link", "set", "eth0", "down"]).unwrap();
    let took = wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        master(&b) && !master(&a)
    });
    assert!(
        took.is_some(),
        "b did not take over after a lost its uplink:\n{}\n{}",
        ks[0].log_tail(),
        ks[1].log_tail()
    );
    assert!(
        std::fs::read_to_string(&ks[0].log)
            .unwrap()
            .contains("chk_uplink"),
        "keepalived never ran the script"
    );

    // Restore it: ha-check passes (rise 2), a is back at 150 and preempts.
    a.ip(&["link", "set", "eth0", "up"]).unwrap();
    let back = wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
        master(&a) && !master(&b)
    });
    assert!(
        back.is_some(),
        "a did not take mastership back:\n{}",
        ks[0].log_tail()
    );
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn peer_watch_runs_the_takeover_until_it_succeeds() {
    let Some(mut lab) = lab("peer_watch_runs_the_takeover_until_it_succeeds") else {
        return;
    };
    let (a, b) = pair(&mut lab);
    let d = lab.dir().to_path_buf();
    // The takeover command fails twice, then succeeds; every attempt is recorded.
    let cmd = d.join("takeover");
    std::fs::write(
        &cmd,
        format!(
            "#!/bin/sh\necho attempt >> {d}/attempts\n[ $(wc -l < {d}/attempts) -ge 3 ]\n",
            d = d.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cmd, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = d.join("watch.log");
    let c = cmd.to_string_lossy().to_string();
    let pid = lab
        .spawn(
            &a,
            "watch",
            &[
                &bin("ha-check"),
                "-v",
                "--syslog-socket",
                "/nonexistent",
                "watch",
                "--peer",
                "192.0.2.2",
                "--interval",
                "100ms",
                "--fall",
                "3",
                "--rise",
                "2",
                "--",
                &c,
            ],
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !d.join("attempts").exists(),
        "takeover ran while the peer was alive"
    );
    b.ip(&["addr", "del", "192.0.2.2/24", "dev", "eth0"])
        .unwrap();
    let done = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        std::fs::read_to_string(d.join("attempts"))
            .unwrap_or_default()
            .lines()
            .count()
            >= 3
    });
    assert!(
        done.is_some(),
        "takeover not retried to success:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        std::fs::read_to_string(d.join("attempts"))
            .unwrap()
            .lines()
            .count(),
        3,
        "no runs after it succeeded"
    );
    // SIGTERM stops it cleanly.
    assert!(
        lab.signal_and_wait(
            pid,
            nix::sys::signal::Signal::SIGTERM,
            Duration::from_secs(5)
        ),
        "watch ignored SIGTERM"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("taking over")
            && text.contains("takeover command failed")
            && text.contains("takeover command succeeded"),
        "{text}"
    );
    assert!(text.contains("SIGTERM received: stopping"), "{text}");
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn peer_watch_methods_tcp_and_ssh() {
    let Some(mut lab) = lab("peer_watch_methods_tcp_and_ssh") else {
        return;
    };
    let (a, b) = pair(&mut lab);
    let h = lab_http();
    lab.spawn(
        &b,
        "banner",
        &[&h, "192.0.2.2:2222", "--banner", "SSH-2.0-lab"],
    )
    .unwrap();
    lab.spawn(&b, "web", &[&h, "192.0.2.2:8080"]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let probe = |method: &str, port: &str| {
        run_in(
            &a,
            "ha-check",
            &[
                "--syslog-socket",
                "/nonexistent",
                "watch",
                "--peer",
                "192.0.2.2",
                "--method",
                method,
                "--port",
                port,
                "--interval",
                "50ms",
                "--fall",
                "1",
                "--max-probes",
                "2",
                "--",
                "/bin/false",
            ],
        )
    };
    // A healthy peer: the (failing) takeover command never runs, so nothing is logged about it.
    for (m, p) in [("tcp", "8080"), ("ssh", "2222")] {
        let out = probe(m, p);
        assert_eq!(out.status.code(), Some(0), "{m}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("taking over"),
            "{m}: {}",
            stderr(&out)
        );
    }
    // An HTTP server is not an SSH server: the banner check fails and the takeover runs.
    let out = probe("ssh", "8080");
    assert!(stderr(&out).contains("taking over"), "{}", stderr(&out));
}
