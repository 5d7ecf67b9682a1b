//! A fleet on one Prometheus (#34): 50 pairs of simulated nodes. Each node's textfiles are
//! written by the real nat-notify and ha-check (run once, on the host: their configuration
//! has no step that changes anything), served over loopback by one HTTP server with a path
//! per node (what 100 node_exporters would serve), discovered from a file carrying EC2's
//! tag labels, turned into `pair`, `instance` and `hakit_preferred` by the shipped
//! example's own `hakit-file` job (`examples/monitoring/prometheus-fleet.yml`, run
//! verbatim), and judged by one real Prometheus with the shipped rules. Four faults in four
//! pairs at once must raise exactly their alerts, nothing in the other 46 pairs; healed,
//! nothing. The series per pair and the rules' evaluation time are measured and written
//! to `$CARGO_TARGET_TMPDIR/fleet.json`.

mod util;

use std::{
    collections::HashSet,
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use util::*;

const TEST: &str = "a_fleet_of_fifty_pairs_on_one_prometheus";
const PAIRS: usize = 50;
/// The series hakit writes per pair (both nodes), as the issue budgets them.
const SERIES_BUDGET: u64 = 40;

/// The test's directory, removed when dropped.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn node(pair: usize, side: char) -> String {
    format!("pair-{pair:02}-{side}")
}

/// The node's configuration: no step in its instance, a link probe on lo, a run interval
/// long enough that no writer looks silent while the test runs; `extra` is appended.
fn config(d: &Path, name: &str, pair: &str, file: &str, extra: &str) -> PathBuf {
    let nd = d.join(name);
    std::fs::create_dir_all(nd.join("textfile")).unwrap();
    let path = nd.join(file);
    std::fs::write(
        &path,
        format!(
            "[general]\nruntime_dir = \"{run}\"\ntextfile_dir = \"{tf}\"\npair = \"{pair}\"\nsyslog_socket = \"{d}/no-syslog\"\n\n[notify]\ncommand_timeout = \"2s\"\n\n[[notify.instance]]\nname = \"VI_1\"\n\n[check]\ninterval = \"10m\"\n\n[[check.probe]]\nkind = \"link\"\ninterface = \"lo\"\n{extra}",
            run = nd.join("run").display(),
            tf = nd.join("textfile").display(),
            d = d.display(),
        ),
    )
    .unwrap();
    path
}

/// keepalived's notify call, as it runs it.
fn notify(cfg: &Path, state: &str) {
    let out = run_host(
        "nat-notify",
        &[
            "--config",
            &cfg.to_string_lossy(),
            "INSTANCE",
            "VI_1",
            state,
            "100",
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{cfg:?} {state}: {}",
        stderr(&out)
    );
}

/// One ha-check run (exit 0 healthy, 1 not).
fn check(cfg: &Path) {
    let out = run_host("ha-check", &["--config", &cfg.to_string_lossy()], &[]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{cfg:?}: {}",
        stderr(&out)
    );
}

/// Serves `GET /metrics/NODE`: the node's textfiles, as node_exporter's textfile collector
/// would, or 503 while the node is down.
fn serve(mut s: TcpStream, dir: &Path, down: &Mutex<HashSet<String>>) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
    }
    let name = line
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.strip_prefix("/metrics/"))
        .filter(|n| n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .unwrap_or("")
        .to_string();
    let body = if name.is_empty() || down.lock().unwrap().contains(&name) {
        None
    } else {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(&name).join("textfile"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "prom"));
        files.sort();
        Some(
            files
                .iter()
                .map(|f| std::fs::read_to_string(f).unwrap_or_default())
                .collect::<String>(),
        )
    };
    let _ = match body {
        Some(b) => write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
            b.len()
        ),
        None => write!(
            s,
            "HTTP/1.1 503 Down\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    };
}

fn query(port: u16, q: &str) -> Vec<serde_json::Value> {
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    http_get(port, &format!("/api/v1/query?query={enc}"))
        .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
        .and_then(|v| v["data"]["result"].as_array().cloned())
        .unwrap_or_default()
}

fn value(port: u16, q: &str) -> Option<f64> {
    query(port, q)
        .first()
        .and_then(|r| r["value"][1].as_str())
        .and_then(|v| v.parse().ok())
}

/// The alerts Prometheus shows, as (name, pair, instance, state).
fn alerts(port: u16) -> Vec<(String, String, String, String)> {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    http_get(port, "/api/v1/alerts")
        .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
        .and_then(|v| v["data"]["alerts"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let l = &a["labels"];
            (
                s(&l["alertname"]),
                s(&l["pair"]),
                s(&l["instance"]),
                s(&a["state"]),
            )
        })
        .collect()
}

/// Waits until Prometheus shows exactly `wanted` (name, pair, instance or "" for a pair
/// alert), each firing when `firing`. `strict`: an alert nobody caused fails at once
/// (else it may still be resolving from the phase before); `tolerated` ones may come and
/// go (a pair whose two targets are scraped at different moments is incomplete for one
/// scrape interval on its way down).
fn expect(
    port: u16,
    phase: &str,
    wanted: &[(&str, &str, &str)],
    tolerated: &[(&str, &str)],
    firing: bool,
    strict: bool,
    within: Duration,
) {
    let start = Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < within {
        last = alerts(port);
        let stray: Vec<_> = last
            .iter()
            .filter(|(n, p, i, _)| {
                !wanted
                    .iter()
                    .any(|(wn, wp, wi)| n == wn && p == wp && (wi.is_empty() || i == wi))
                    && !tolerated.iter().any(|(tn, tp)| n == tn && p == tp)
            })
            .collect();
        assert!(
            !strict || stray.is_empty(),
            "{phase}: alerts nobody caused after {:.1} s: {stray:?}",
            start.elapsed().as_secs_f64()
        );
        let all = wanted.iter().all(|(wn, wp, wi)| {
            last.iter().any(|(n, p, i, st)| {
                n == wn && p == wp && (wi.is_empty() || i == wi) && (!firing || st == "firing")
            })
        });
        if all && stray.is_empty() {
            eprintln!(
                "{phase}: as expected after {:.1} s: {last:?}",
                start.elapsed().as_secs_f64()
            );
            return;
        }
        thread::sleep(Duration::from_millis(250));
    }
    panic!(
        "{phase}: after {within:?} Prometheus shows {last:?}, wanted {wanted:?} (firing: {firing})"
    );
}

#[test]
#[ignore = "starts a Prometheus scraping 100 targets for about two minutes: make integration"]
fn a_fleet_of_fifty_pairs_on_one_prometheus() {
    let (Some(prometheus), Some(fake)) = (
        hakit_lab::require(TEST, "prometheus"),
        Some(lab_bin("hakit-fake-cloud")),
    ) else {
        return;
    };
    let d = std::env::temp_dir().join(format!("hakit-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let dir = Dir(d.clone());
    let mut procs = Vec::new();

    // The provider of pair-33's floating IP: it says b (ID 1 in b's [fip]) holds it, and b
    // is no MASTER (it runs no keepalived: fip-owner judges the role by a live one).
    let cloud = free_port();
    procs.push(Proc(
        Command::new(&fake)
            .args([
                &format!("127.0.0.1:{cloud}"),
                "--provider",
                "hetzner",
                "--ip",
                "203.0.113.10",
                "--me",
                "1",
                "--owner",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hakit-fake-cloud"),
    ));
    let token = d.join("token");
    std::fs::write(&token, "fake-token\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let owner_probe = format!(
        "\n[[check.probe]]\nkind = \"fip-owner\"\n\n[fip]\nprovider = \"hetzner\"\nip = \"203.0.113.10\"\ninstance_id = \"1\"\npeers = [\"2\"]\nendpoint_url = \"http://127.0.0.1:{cloud}/v1\"\nmetadata_url = \"http://127.0.0.1:{cloud}\"\ntoken_file = \"{}\"\ntimeout = \"1s\"\ndeadline = \"3s\"\n",
        token.display()
    );

    // Every node's textfiles, from the real binaries: a MASTER, b BACKUP.
    let mut configs = std::collections::HashMap::new();
    let mut targets = Vec::new();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    for p in 1..=PAIRS {
        let pair = format!("pair-{p:02}");
        for (side, state) in [('a', "MASTER"), ('b', "BACKUP")] {
            let name = node(p, side);
            let cfg = config(&d, &name, &pair, "hakit.toml", "");
            notify(&cfg, state);
            check(&cfg);
            let mut labels = serde_json::json!({
                "__metrics_path__": format!("/metrics/{name}"),
                "__meta_ec2_tag_hakit_pair": pair,
                "__meta_ec2_tag_Name": name,
            });
            if side == 'a' {
                labels["__meta_ec2_tag_hakit_preferred"] = "true".into();
            }
            targets.push(
                serde_json::json!({"targets": [format!("127.0.0.1:{port}")], "labels": labels}),
            );
            configs.insert(name, cfg);
        }
    }
    let owner_cfg = config(&d, &node(33, 'b'), "pair-33", "owner.toml", &owner_probe);
    let sd = d.join("hakit-targets.json");
    std::fs::write(&sd, serde_json::to_string(&targets).unwrap()).unwrap();

    let down = Arc::new(Mutex::new(HashSet::new()));
    {
        let (down, d) = (down.clone(), d.clone());
        thread::spawn(move || {
            for s in server.incoming().flatten() {
                serve(s, &d, &down);
            }
        });
    }

    // The shipped example's hakit-file job, verbatim but for the discovery file's path.
    let example = std::fs::read_to_string("examples/monitoring/prometheus-fleet.yml").unwrap();
    let job = &example[example
        .find("  - job_name: hakit-file")
        .expect("the example has the hakit-file job")..];
    assert!(job.contains("/etc/prometheus/hakit-targets.json"));
    let job = job.replace("/etc/prometheus/hakit-targets.json", &sd.to_string_lossy());
    let (p, prom) = start_prometheus(&prometheus, &d, &job);
    procs.push(p);

    // Every target scraped, with the pair and instance its tags give.
    let start = Instant::now();
    let all = (PAIRS * 2) as f64;
    while value(prom, "count(up{job=\"hakit-file\"} == 1)") != Some(all)
        || value(prom, "count(hakit_nat_notify_state{state=\"MASTER\"} == 1)") != Some(PAIRS as f64)
        || value(prom, "count(hakit:pair_targets_up:sum == 2)") != Some(PAIRS as f64)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "Prometheus never saw the fleet: up {:?}, masters {:?}, pairs {:?}; log: {}",
            value(prom, "count(up{job=\"hakit-file\"} == 1)"),
            value(prom, "count(hakit_nat_notify_state{state=\"MASTER\"} == 1)"),
            value(prom, "count(hakit:pair_targets_up:sum == 2)"),
            std::fs::read_to_string(d.join("prometheus.log")).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(250));
    }
    // Alerts from the first round of scrapes (a pair's b scraped before its a) stay
    // pending until the next evaluations clear them.
    thread::sleep(Duration::from_secs(3));
    let up = query(prom, "up{instance=\"pair-07-a\"}");
    assert_eq!(up[0]["metric"]["pair"], "pair-07", "{up:?}");
    assert_eq!(up[0]["metric"]["hakit_preferred"], "true", "{up:?}");
    let steady = Duration::from_secs(5);
    expect(prom, "fifty healthy pairs", &[], &[], false, true, steady);
    thread::sleep(steady);
    expect(
        prom,
        "fifty healthy pairs, still",
        &[],
        &[],
        false,
        true,
        steady,
    );
    // What each pair costs, every node healthy and configured alike.
    let per_pair = |q: &str| -> u64 {
        query(prom, q)
            .iter()
            .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
            .fold(0.0, f64::max) as u64
    };
    let hakit_series = per_pair("count by (pair) ({__name__=~\"hakit_.+\", pair=~\"pair-.+\"})");
    let all_series = per_pair("count by (pair) ({pair=~\"pair-.+\"})");

    // Four faults in four pairs at once.
    notify(&configs[&node(7, 'b')], "MASTER");
    down.lock()
        .unwrap()
        .extend([node(13, 'b'), node(21, 'a'), node(21, 'b')]);
    check(&owner_cfg);
    let wanted = [
        ("HakitBothNodesMaster", "pair-07", ""),
        ("HakitPairIncomplete", "pair-13", ""),
        ("HakitPairSilent", "pair-21", ""),
        ("HakitProviderOwnerNotMaster", "pair-33", "pair-33-b"),
    ];
    // pair-21's two nodes are scraped at different moments: for one scrape interval its
    // pair is incomplete (may go pending, must not fire: checked below). Its BACKUP alone
    // reports no MASTER then, which is not HakitNoMaster while the pair is incomplete (a
    // fresh-clone CI run saw it pending before the rule said so).
    let racing = [("HakitPairIncomplete", "pair-21")];
    let (pending, firing) = (Duration::from_secs(30), Duration::from_secs(60));
    expect(
        prom,
        "four faults, pending",
        &wanted,
        &racing,
        false,
        true,
        pending,
    );
    expect(
        prom,
        "four faults, firing",
        &wanted,
        &racing,
        true,
        true,
        firing,
    );
    let raced: Vec<_> = alerts(prom)
        .into_iter()
        .filter(|(n, p, _, st)| racing.iter().any(|(rn, rp)| n == rn && p == rp) && st == "firing")
        .collect();
    assert!(
        raced.is_empty(),
        "a race of scrapes became an alert: {raced:?}"
    );

    // The rules' evaluation time, with the fleet's alerts firing.
    let groups = http_get(prom, "/api/v1/rules")
        .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
        .and_then(|v| v["data"]["groups"].as_array().cloned())
        .unwrap_or_default();
    let eval_ms: Vec<(String, f64)> = groups
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap_or("?").to_string(),
                g["evaluationTime"].as_f64().unwrap_or(f64::NAN) * 1000.0,
            )
        })
        .collect();
    let figures = serde_json::json!({
        "pairs": PAIRS, "targets": PAIRS * 2,
        "hakit_series_per_pair": hakit_series, "all_series_per_pair": all_series,
        "series_budget_per_pair": SERIES_BUDGET,
        "rule_group_evaluation_ms": eval_ms,
    });
    eprintln!("fleet: {figures}");
    let _ = std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet.json"),
        figures.to_string(),
    );
    assert!(hakit_series > 0, "no hakit series per pair?");
    assert!(
        hakit_series <= SERIES_BUDGET,
        "{hakit_series} hakit series per pair, over the budget of {SERIES_BUDGET}"
    );
    assert!(
        eval_ms.len() == 2 && eval_ms.iter().all(|(_, ms)| ms.is_finite()),
        "{eval_ms:?}"
    );

    // Healed: nothing.
    notify(&configs[&node(7, 'b')], "BACKUP");
    down.lock().unwrap().clear();
    check(&configs[&node(33, 'b')]);
    expect(
        prom,
        "healed",
        &[],
        &[],
        false,
        false,
        Duration::from_secs(30),
    );
    drop(procs);
    drop(dir);
}
