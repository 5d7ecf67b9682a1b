//! The alert rules under a real Prometheus: Debian's `prometheus` and
//! `prometheus-node-exporter` on loopback, scraping (every second) the textfiles that the
//! real nat-notify and ha-check write for two pairs of nodes (one network namespace each),
//! with the shipped `examples/monitoring/hakit-alerts.yml` evaluated every second. Each
//! condition is driven the way it happens (a node made MASTER, a claim failing, a probe
//! failing, a writer stopped), and Prometheus's own `/api/v1/alerts` must show exactly the
//! expected alerts, pending or firing, and nothing else.

mod util;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use util::*;

const TEST: &str = "alerts_fire_in_a_real_prometheus";
const NODES: [(&str, &str, bool); 4] = [
    ("1a", "p1", true),
    ("1b", "p1", false),
    ("2a", "p2", true),
    ("2b", "p2", false),
];

/// One expected alert: its name, the node it is about (`None`: a pair-level alert, for the
/// pair given), an extra label that must match, and whether it may still be pending.
#[derive(Clone, Debug)]
struct Want {
    name: &'static str,
    node: Option<&'static str>,
    pair: &'static str,
    label: Option<(&'static str, &'static str)>,
}

fn want(name: &'static str, node: &'static str) -> Want {
    let pair = NODES.iter().find(|n| n.0 == node).map_or("?", |n| n.1);
    Want {
        name,
        node: Some(node),
        pair,
        label: None,
    }
}

fn want_pair(name: &'static str, pair: &'static str) -> Want {
    Want {
        name,
        node: None,
        pair,
        label: None,
    }
}

struct Rig {
    dir: PathBuf,
    /// Kept for its namespaces and directory (removed on drop).
    _lab: hakit_lab::Lab,
    ns: HashMap<&'static str, hakit_lab::Ns>,
    instance: HashMap<&'static str, String>,
    prom_port: u16,
    /// Which config each node's ha-check runs with every second (`None`: stopped).
    checks: Arc<Mutex<HashMap<&'static str, Option<PathBuf>>>>,
}

impl Rig {
    fn config(&self, node: &str, name: &str) -> PathBuf {
        self.dir.join(node).join(name)
    }

    /// nat-notify's generic hook form, as keepalived runs it.
    fn notify(&self, node: &str, state: &str, config: &str) {
        let cfg = self.config(node, config);
        let out = run_in(
            &self.ns[node],
            "nat-notify",
            &[
                "--config",
                &cfg.to_string_lossy(),
                "INSTANCE",
                "VI_1",
                state,
                "100",
            ],
        );
        // A failing claim is exit 1, by design; anything else must succeed.
        let ok = out.status.code() == Some(0) || (config == "claim.toml" && state == "MASTER");
        assert!(ok, "{node} {state}: {}", stderr(&out));
    }

    /// The alerts Prometheus has now: (name, instance or pair, extra labels, state).
    fn alerts(&self) -> Vec<serde_json::Value> {
        http_get(self.prom_port, "/api/v1/alerts")
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .and_then(|v| v["data"]["alerts"].as_array().cloned())
            .unwrap_or_default()
    }

    fn matches(&self, a: &serde_json::Value, w: &Want) -> bool {
        let l = &a["labels"];
        l["alertname"] == w.name
            && l["pair"] == w.pair
            && w.node
                .is_none_or(|n| l["instance"] == self.instance[n].as_str())
            && w.label.is_none_or(|(k, v)| l[k] == v)
    }

    /// Waits until the alerts are exactly `wanted` (each pending or firing; those in
    /// `firing` must be firing) and nothing else; panics with what Prometheus shows.
    fn expect(&self, phase: &str, wanted: &[Want], firing: &[&str], within: Duration) {
        let start = Instant::now();
        let mut last = Vec::new();
        while start.elapsed() < within {
            last = self.alerts();
            let all_wanted = wanted.iter().all(|w| {
                last.iter().any(|a| {
                    self.matches(a, w) && (!firing.contains(&w.name) || a["state"] == "firing")
                })
            });
            let nothing_else = last
                .iter()
                .all(|a| wanted.iter().any(|w| self.matches(a, w)));
            if all_wanted && nothing_else {
                eprintln!(
                    "{phase}: as expected after {:.1} s: {}",
                    start.elapsed().as_secs_f64(),
                    summary(&last)
                );
                return;
            }
            thread::sleep(Duration::from_millis(250));
        }
        panic!(
            "{phase}: after {within:?} Prometheus shows {}\nwanted {wanted:?} (firing: {firing:?})",
            summary(&last)
        );
    }
}

fn summary(alerts: &[serde_json::Value]) -> String {
    if alerts.is_empty() {
        return "no alerts".into();
    }
    alerts
        .iter()
        .map(|a| {
            let l = &a["labels"];
            format!(
                "{}{{pair={},instance={},writer={}}} {}",
                l["alertname"].as_str().unwrap_or("?"),
                l["pair"].as_str().unwrap_or(""),
                l["instance"].as_str().unwrap_or(""),
                l["writer"].as_str().unwrap_or(""),
                a["state"].as_str().unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_configs(d: &Path, node: &str, pair: &str) {
    let nd = d.join(node);
    std::fs::create_dir_all(nd.join("textfile")).unwrap();
    let token = nd.join("token");
    std::fs::write(&token, "test-token\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let general = format!(
        "[general]\nruntime_dir = \"{run}\"\ntextfile_dir = \"{tf}\"\npair = \"{pair}\"\nsyslog_socket = \"{d}/no-syslog\"\n\n[notify]\nfifo_heartbeat = \"1s\"\ncommand_timeout = \"2s\"\n\n",
        run = nd.join("run").display(),
        tf = nd.join("textfile").display(),
        d = d.display(),
    );
    let check = |probe: &str| {
        format!("[check]\ninterval = \"1s\"\n\n[[check.probe]]\nkind = \"link\"\ninterface = \"{probe}\"\n")
    };
    std::fs::write(
        nd.join("hakit.toml"),
        format!(
            "{general}[[notify.instance]]\nname = \"VI_1\"\n\n{}",
            check("lo")
        ),
    )
    .unwrap();
    // ha-check with a probe that fails (no such interface).
    std::fs::write(
        nd.join("failing.toml"),
        format!(
            "{general}[[notify.instance]]\nname = \"VI_1\"\n\n{}",
            check("nosuch0")
        ),
    )
    .unwrap();
    // A provider claim that cannot succeed (nothing listens on port 9).
    std::fs::write(
        nd.join("claim.toml"),
        format!(
            "{general}[[notify.instance]]\nname = \"VI_1\"\nfip_claim = true\nfip_retry_for = \"1s\"\n\n[fip]\nprovider = \"hetzner\"\nip = \"203.0.113.10\"\ninstance_id = \"1\"\npeers = [\"2\"]\nendpoint_url = \"http://127.0.0.1:9/v1\"\nmetadata_url = \"http://127.0.0.1:9\"\ntoken_file = \"{}\"\ntimeout = \"200ms\"\ndeadline = \"500ms\"\n\n{}",
            token.display(),
            check("lo")
        ),
    )
    .unwrap();
}

#[test]
#[ignore = "needs root (network namespaces): make integration"]
fn alerts_fire_in_a_real_prometheus() {
    let (Some(prometheus), Some(exporter)) = (
        hakit_lab::require(TEST, "prometheus"),
        hakit_lab::require(TEST, "prometheus-node-exporter"),
    ) else {
        return;
    };
    let Some(mut lab) = lab(TEST) else {
        return;
    };
    let d = lab.dir().to_path_buf();
    let mut ns = HashMap::new();
    let mut instance = HashMap::new();
    let mut procs = Vec::new();
    let mut targets = String::new();
    for (node, pair, preferred) in NODES {
        ns.insert(node, lab.ns(&format!("n{node}")).unwrap());
        write_configs(&d, node, pair);
        let port = free_port();
        instance.insert(node, format!("127.0.0.1:{port}"));
        let log = std::fs::File::create(d.join(format!("exporter-{node}.log"))).unwrap();
        procs.push(Proc(
            Command::new(&exporter)
                .args([
                    &format!("--web.listen-address=127.0.0.1:{port}"),
                    "--collector.disable-defaults",
                    "--collector.textfile",
                    &format!(
                        "--collector.textfile.directory={}",
                        d.join(node).join("textfile").display()
                    ),
                ])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start node_exporter"),
        ));
        targets.push_str(&format!(
            "      - targets: [\"127.0.0.1:{port}\"]\n        labels: {{node: \"{node}\"{}}}\n",
            if preferred {
                ", hakit_preferred: \"true\""
            } else {
                ""
            }
        ));
    }
    let (p, prom_port) = start_prometheus(
        &prometheus,
        &d,
        &format!("  - job_name: hakit\n    static_configs:\n{targets}"),
    );
    procs.push(p);

    let rig = Rig {
        dir: d.clone(),
        _lab: lab,
        ns,
        instance,
        prom_port,
        checks: Arc::new(Mutex::new(
            NODES
                .iter()
                .map(|n| (n.0, Some(d.join(n.0).join("hakit.toml"))))
                .collect(),
        )),
    };
    // ha-check every second on each node, as keepalived's vrrp_script runs it.
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let (checks, stop, ns) = (rig.checks.clone(), stop.clone(), rig.ns.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now: Vec<(&str, PathBuf)> = checks
                    .lock()
                    .unwrap()
                    .iter()
                    .filter_map(|(n, c)| c.clone().map(|c| (*n, c)))
                    .collect();
                for (node, cfg) in now {
                    let _ = run_in(&ns[node], "ha-check", &["--config", &cfg.to_string_lossy()]);
                }
                thread::sleep(Duration::from_secs(1));
            }
        })
    };
    // nat-notify's FIFO reader on 1b (its heartbeat every second).
    let fifo = d.join("1b.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = Proc(
        rig.ns["1b"]
            .command(&[
                &bin("nat-notify"),
                "--config",
                &rig.config("1b", "hakit.toml").to_string_lossy(),
                "fifo",
                &fifo.to_string_lossy(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // keepalived's end of the FIFO (the reader's open waits for a writer).
    let _writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();

    for (node, state) in [
        ("1a", "MASTER"),
        ("1b", "BACKUP"),
        ("2a", "MASTER"),
        ("2b", "BACKUP"),
    ] {
        rig.notify(node, state, "hakit.toml");
    }
    let settle = Duration::from_secs(30);
    // Prometheus has every node's series (no alerts before the first scrape proves nothing):
    // 4 states x 4 nodes, 4 ha-check counters, 1b's heartbeat.
    let start = Instant::now();
    for (query, n) in [
        ("count(hakit_nat_notify_state)", 16),
        ("count(hakit_ha_check_runs_total)", 4),
        (
            "count(hakit_nat_notify_fifo_heartbeat_timestamp_seconds)",
            1,
        ),
    ] {
        let path = format!(
            "/api/v1/query?query={}",
            query.replace('(', "%28").replace(')', "%29")
        );
        while http_get(prom_port, &path)
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .and_then(|v| {
                v["data"]["result"][0]["value"][1]
                    .as_str()
                    .map(str::to_string)
            })
            != Some(n.to_string())
        {
            assert!(
                start.elapsed() < settle,
                "Prometheus never saw {query} = {n}: {:?}",
                http_get(prom_port, &path)
            );
            thread::sleep(Duration::from_millis(250));
        }
    }
    rig.expect("two healthy pairs", &[], &[], settle);

    // Split brain in p1 only (p2's instance is also VI_1).
    rig.notify("1b", "MASTER", "hakit.toml");
    rig.expect(
        "split brain in p1",
        &[want_pair("HakitBothNodesMaster", "p1")],
        &["HakitBothNodesMaster"],
        Duration::from_secs(30),
    );
    rig.notify("1b", "BACKUP", "hakit.toml");
    rig.expect("p1 healed", &[], &[], settle);

    // p2: both BACKUP.
    rig.notify("2a", "BACKUP", "hakit.toml");
    rig.expect(
        "p2 both BACKUP",
        &[
            want_pair("HakitNoMaster", "p2"),
            want("HakitPreferredNodeNotMaster", "2a"),
        ],
        &[],
        settle,
    );
    // 2a MASTER again, but its provider claim fails: an alert while it is MASTER…
    rig.notify("2a", "MASTER", "claim.toml");
    rig.expect(
        "2a MASTER with a failing claim",
        &[
            want("HakitFloatingIPClaimFailing", "2a"),
            want("HakitMasterNotConverged", "2a"),
        ],
        &[],
        settle,
    );
    // …and none once it is BACKUP (the failed step stays recorded).
    rig.notify("2a", "BACKUP", "claim.toml");
    rig.notify("2b", "MASTER", "hakit.toml");
    rig.expect(
        "2a BACKUP after its failed claim",
        &[want("HakitPreferredNodeNotMaster", "2a")],
        &[],
        settle,
    );
    rig.notify("2b", "BACKUP", "hakit.toml");
    rig.notify("2a", "MASTER", "hakit.toml");
    rig.expect("p2 healed", &[], &[], settle);

    // 2b's checks fail: ha-check's failure counter, 3 in 2 minutes.
    rig.checks
        .lock()
        .unwrap()
        .insert("2b", Some(rig.config("2b", "failing.toml")));
    rig.expect(
        "2b unhealthy",
        &[want("HakitHealthCheckFailing", "2b")],
        &["HakitHealthCheckFailing"],
        settle,
    );
    rig.checks
        .lock()
        .unwrap()
        .insert("2b", Some(rig.config("2b", "hakit.toml")));

    // Writers stop: 1a's ha-check, 1b's FIFO reader. (2b's failures stay counted for 2 m.)
    rig.checks.lock().unwrap().insert("1a", None);
    drop(reader);
    let mut silent_check = want("HakitWriterSilent", "1a");
    silent_check.label = Some(("writer", "ha-check"));
    let mut silent_fifo = want("HakitWriterSilent", "1b");
    silent_fifo.label = Some(("writer", "nat-notify fifo"));
    rig.expect(
        "writers stopped",
        &[
            want("HakitHealthCheckFailing", "2b"),
            silent_check,
            silent_fifo,
        ],
        &["HakitWriterSilent"],
        settle,
    );
    stop.store(true, Ordering::Relaxed);
    let _ = runner.join();
    drop(procs);
    drop(rig);
}
