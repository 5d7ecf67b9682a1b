//! The lab can host Debian's keepalived: VRRP between two namespaces moves a VIP, and
//! garp-burst runs as the new master's notify hook.

mod util;

use std::time::Duration;

use hakit_lab::{keepalived, syslog::Syslog};
use util::*;

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn vip_moves_to_backup_when_master_stops() {
    let Some(mut lab) = lab("vip_moves_to_backup_when_master_stops") else {
        return;
    };
    let (a, b) = pair(&mut lab);
    let vip = ip("192.0.2.100");
    let sock_path = lab.dir().join("log.sock");
    let syslog = Syslog::listen(&sock_path).unwrap();
    let hook = format!(
        "    notify_master \"{} -i eth0 --ip 192.0.2.100 -c 3 --interval 10ms --syslog-socket {}\"",
        bin("garp-burst"),
        sock_path.display()
    );
    let node = keepalived::Vrrp {
        iface: "eth0",
        advert_int: "0.1",
        vip: "192.0.2.100/24",
        ..Default::default()
    };
    let conf_a = keepalived::Vrrp {
        router_id: "a",
        priority: 150,
        ..node
    }
    .render()
    .unwrap();
    let conf_b = keepalived::Vrrp {
        router_id: "b",
        priority: 100,
        extra: &hook,
        ..node
    }
    .render()
    .unwrap();
    let ka = keepalived::start(&mut lab, &a, "a", &conf_a).unwrap();
    let kb = keepalived::start(&mut lab, &b, "b", &conf_b).unwrap();
    ka.wait_ready(Duration::from_secs(10)).unwrap();
    kb.wait_ready(Duration::from_secs(10)).unwrap();

    let up = hakit_lab::wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        a.has_addr("eth0", vip).unwrap()
    });
    assert!(up.is_some(), "a never became master:\n{}", ka.log_tail());
    assert!(
        !b.has_addr("eth0", vip).unwrap(),
        "b holds the VIP while a is master"
    );

    ka.stop();
    let moved = hakit_lab::wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
        b.has_addr("eth0", vip).unwrap()
    });
    assert!(moved.is_some(), "VIP did not move to b:\n{}", kb.log_tail());
    let gone = hakit_lab::wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
        !a.has_addr("eth0", vip).unwrap()
    });
    assert!(gone.is_some(), "a kept the VIP after stopping");

    // keepalived ran garp-burst as b's MASTER hook, and it announced the VIP.
    let line = syslog
        .wait_for(Duration::from_secs(10), |l| l.contains("garp-burst["))
        .expect("garp-burst hook logged nothing");
    assert!(
        line.contains("garp-burst[") && line.contains("announced 192.0.2.100 on eth0"),
        "{line}"
    );
    assert!(line.contains("3 frames"), "{line}");
}

/// A run killed with SIGKILL cannot clean up after itself: the next lab removes what it left
/// (its namespaces, tmpfs mounts and scratch directory, found by the dead pid in their
/// names) and leaves a live process's lab alone.
#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn a_new_lab_removes_what_an_exited_run_left() {
    if !hakit_lab::available("a_new_lab_removes_what_an_exited_run_left") {
        return;
    }
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let dead = format!("hakit-{pid}-0-orphan");
    let live = format!("hakit-{}-999-live", std::process::id());
    for ns in [&dead, &live] {
        assert!(std::process::Command::new("ip")
            .args(["netns", "add", ns])
            .status()
            .unwrap()
            .success());
    }
    let dir = std::env::temp_dir().join(format!("hakit-{pid}-0"));
    let run = dir.join("a-run");
    std::fs::create_dir_all(&run).unwrap();
    assert!(std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&run)
        .status()
        .unwrap()
        .success());
    let mounted = || {
        std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .contains(&*run.to_string_lossy())
    };
    assert!(mounted());
    let removed = hakit_lab::reap_orphans();
    let exists = |ns: &str| std::path::Path::new("/run/netns").join(ns).exists();
    let live_left = exists(&live);
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &live])
        .status();
    assert!(removed.contains(&dead), "{removed:?}");
    assert!(!exists(&dead), "the dead run's namespace is still there");
    assert!(!mounted(), "the dead run's tmpfs is still mounted");
    assert!(
        !dir.exists(),
        "the dead run's scratch directory is still there"
    );
    assert!(live_left, "a live process's namespace was removed");
}
