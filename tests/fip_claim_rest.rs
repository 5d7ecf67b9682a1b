//! fip-claim for Linode, Hetzner and DigitalOcean against a fake provider on loopback
//! (state, action polling, faults), and the token rules.

mod util;

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use util::*;

struct Fake {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn fake(provider: &str, me: u64, owner: u64, extra: &[&str]) -> Fake {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::env::temp_dir().join(format!("hakit-fake-{}-{port}.log", std::process::id()));
    let mut args: Vec<String> = vec![
        format!("127.0.0.1:{port}"),
        "--provider".into(),
        provider.into(),
        "--me".into(),
        me.to_string(),
        "--owner".into(),
        owner.to_string(),
        "--ip".into(),
        "203.0.113.10".into(),
        "--log".into(),
        log.to_string_lossy().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let child = Command::new(lab_bin("hakit-fake-cloud"))
        .args(&args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let up = hakit_lab::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up.is_some(), "fake cloud did not start");
    Fake {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    }
}

/// A request that changes state (EC2 reads are POSTs too).
fn is_write(line: &str) -> bool {
    line.starts_with("POST") && !line.contains("Action=Describe")
}

impl Fake {
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn base(provider: &str, f: &Fake) -> String {
    match provider {
        "aws" => f.url.clone(),
        "linode" => format!("{}/v4", f.url),
        "hetzner" => format!("{}/v1", f.url),
        _ => format!("{}/v2", f.url),
    }
}

/// How the fake's node N is named by the provider.
fn node(provider: &str, n: u32) -> String {
    if provider == "aws" {
        format!("i-{n}")
    } else {
        n.to_string()
    }
}

fn token_env(provider: &str) -> &'static str {
    match provider {
        "aws" => "HAKIT_UNUSED",
        "linode" => "LINODE_TOKEN",
        "hetzner" => "HCLOUD_TOKEN",
        _ => "DIGITALOCEAN_TOKEN",
    }
}

fn claim(provider: &str, f: &Fake, extra: &[&str]) -> std::process::Output {
    claim_ip(provider, f, "203.0.113.10", extra)
}

fn claim_ip(provider: &str, f: &Fake, ip: &str, extra: &[&str]) -> std::process::Output {
    let b = base(provider, f);
    let mut args = vec![
        "--provider",
        provider,
        "--ip",
        ip,
        "--endpoint-url",
        &b,
        "--metadata-url",
        &f.url,
        "--syslog-socket",
        "/nonexistent",
        "--json",
    ];
    args.extend_from_slice(extra);
    run_host("fip-claim", &args, &[(token_env(provider), "fake-token")])
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("{e}: {} / {}", stdout(out), stderr(out)))
}

#[test]
fn linode_shares_the_union_and_releases_only_the_floating_ip() {
    let f = fake("linode", 2, 1, &["--shared", "192.0.2.50,192.0.2.51"]);
    assert_eq!(
        claim("linode", &f, &["--check"]).status.code(),
        Some(1),
        "not shared here yet"
    );
    let out = claim("linode", &f, &["--peer", "1"]);
    assert_exit(&out, 0, "");
    let share: Vec<String> = f
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("POST /v4/networking/ips/share"))
        .collect();
    assert_eq!(share.len(), 1);
    let body: serde_json::Value =
        serde_json::from_str(share[0].splitn(3, ' ').nth(2).unwrap()).unwrap();
    assert_eq!(body["linode_id"], 2);
    assert_eq!(
        body["ips"],
        serde_json::json!(["192.0.2.50", "192.0.2.51", "203.0.113.10"]),
        "the union, never the floating IP alone"
    );
    // Converged: reads only.
    let out = claim("linode", &f, &["--peer", "1"]);
    assert_eq!(json_of(&out)["already_converged"], true);
    assert_eq!(
        f.requests()
            .iter()
            .filter(|r| r.starts_with("POST"))
            .count(),
        1,
        "a converged run wrote"
    );
    assert_eq!(claim("linode", &f, &["--check"]).status.code(), Some(0));
    // --check also says, read-only, whether the peer has the address (assigned or shared):
    // peer 1 holds it; a node outside the pair's share set does not.
    let writes = |f: &Fake| {
        f.requests()
            .iter()
            .filter(|r| r.starts_with("POST"))
            .count()
    };
    let before = writes(&f);
    let out = claim("linode", &f, &["--check", "--peer", "1", "--peer", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        json_of(&out)["peers_have"],
        serde_json::json!({"1": true, "3": false})
    );
    assert!(
        stderr(&out).contains("NOT on peer 3: a failover cannot move it there"),
        "{}",
        stderr(&out)
    );
    assert_eq!(writes(&f), before, "--check wrote");
    // Release removes only the floating IP.
    let out = claim("linode", &f, &["--release"]);
    assert_exit(&out, 0, "");
    let last = f
        .requests()
        .into_iter()
        .rfind(|r| r.starts_with("POST /v4/networking/ips/share"))
        .unwrap();
    assert!(
        last.ends_with(r#"{"ips":["192.0.2.50","192.0.2.51"],"linode_id":2}"#)
            || last.contains(r#""ips":["192.0.2.50","192.0.2.51"]"#),
        "{last}"
    );
}

#[test]
fn third_owner_is_refused_without_force() {
    for provider in ["aws", "linode", "hetzner", "digitalocean"] {
        let f = fake(provider, 2, 9, &[]);
        let peer = node(provider, 1);
        let out = claim(provider, &f, &["--peer", &peer]);
        assert_eq!(out.status.code(), Some(2), "{provider}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--force"),
            "{provider}: {}",
            stderr(&out)
        );
        assert!(
            f.requests().iter().all(|r| !is_write(r)),
            "{provider}: refused means no write"
        );
        let out = claim(provider, &f, &["--peer", &peer, "--force"]);
        assert_eq!(out.status.code(), Some(0), "{provider}: {}", stderr(&out));
        assert_eq!(json_of(&out)["owned"], true);
    }
}

#[test]
fn hetzner_and_digitalocean_poll_their_actions() {
    for (provider, poll) in [
        ("hetzner", "GET /v1/actions/1"),
        (
            "digitalocean",
            "GET /v2/reserved_ips/203.0.113.10/actions/1",
        ),
    ] {
        let f = fake(provider, 5, 4, &[]);
        // --check: 1 says "the peer owns it", read from the API...
        let out = claim(provider, &f, &["--check"]);
        assert_eq!(out.status.code(), Some(1), "{provider}: {}", stderr(&out));
        // ...and 3 says "could not tell" (the API does not answer): never 1, on which a
        // runbook would hand the role over.
        let out = run_host(
            "fip-claim",
            &[
                "--provider",
                provider,
                "--ip",
                "203.0.113.10",
                "--instance-id",
                "5",
                "--endpoint-url",
                "http://127.0.0.1:9/api",
                "--syslog-socket",
                "/nonexistent",
                "--deadline",
                "2s",
                "--check",
            ],
            &[(token_env(provider), "fake-token")],
        );
        assert_eq!(out.status.code(), Some(3), "{provider}: {}", stderr(&out));
        let out = claim(provider, &f, &["--peer", "4"]);
        assert_eq!(out.status.code(), Some(0), "{provider}: {}", stderr(&out));
        let polls = f.requests().iter().filter(|r| r.starts_with(poll)).count();
        assert!(
            polls >= 2,
            "{provider}: polled {polls} times: {:?}",
            f.requests()
        );
        let r = json_of(&out);
        assert_eq!(
            (r["owner_before"].as_str(), r["owned"].as_bool()),
            (Some("4"), Some(true))
        );
        let again = claim(provider, &f, &["--peer", "4"]);
        assert_eq!(json_of(&again)["already_converged"], true);
        assert_eq!(claim(provider, &f, &["--check"]).status.code(), Some(0));
    }
}

#[test]
fn faults_end_with_clear_errors_or_retried_success() {
    for provider in ["aws", "linode", "hetzner", "digitalocean"] {
        let peer = node(provider, 1);
        for (fault, code, want) in [
            ("500x2", 0, ""),
            ("429", 0, ""),
            ("hang", 1, ": timeout"),
            (
                "garbage",
                1,
                if provider == "aws" {
                    "a proxy page?"
                } else {
                    "not JSON"
                },
            ),
            (
                "truncated",
                1,
                if provider == "aws" {
                    "not EC2 XML"
                } else {
                    "not JSON"
                },
            ),
            ("401", 1, "HTTP 401"),
            ("403", 1, "HTTP 403"),
        ] {
            let f = fake(provider, 2, 1, &["--fault", fault]);
            let t = Instant::now();
            let out = claim(
                provider,
                &f,
                &["--peer", &peer, "--timeout", "300ms", "--deadline", "3s"],
            );
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(code), "{provider} {fault}: {err}");
            assert!(
                err.contains(want),
                "{provider} {fault}: want {want:?} in {err}"
            );
            if code != 0 {
                let last = err.lines().last().unwrap_or_default();
                assert!(
                    last.starts_with(&format!("fip-claim: error: {provider}")),
                    "{provider} {fault}: error must name the provider: {last}"
                );
            }
            assert!(
                !err.contains("panicked") && !err.contains("fake-token"),
                "{provider} {fault}: {err}"
            );
            if fault == "429" {
                assert!(
                    t.elapsed() >= Duration::from_millis(900),
                    "{provider}: Retry-After ignored"
                );
            }
            if fault.starts_with("40") {
                // The provider's own error text, from its own error shape.
                assert!(
                    err.contains("token not valid for this action"),
                    "{provider} {fault}: provider text missing: {err}"
                );
            }
        }
    }
}

#[test]
fn tokens_come_from_env_or_a_private_file_and_are_never_shown() {
    let f = fake("linode", 2, 1, &[]);
    let dir = std::env::temp_dir().join(format!("hakit-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "fake-token\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let b = base("linode", &f);
    let t = file.to_string_lossy().to_string();
    let args = [
        "--provider",
        "linode",
        "--ip",
        "203.0.113.10",
        "--endpoint-url",
        &b,
        "--metadata-url",
        &f.url,
        "--syslog-socket",
        "/nonexistent",
        "--token-file",
        &t,
        "--peer",
        "1",
    ];
    let out = run_host("fip-claim", &args, &[]);
    assert_exit(&out, 2, "readable by group or others");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = run_host("fip-claim", &dry, &[]);
    assert_exit(&out, 0, "");
    assert!(
        stdout(&out).contains("Authorization: [redacted]"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("fake-token") && !stderr(&out).contains("fake-token"));
    assert!(
        f.requests().iter().all(|r| !r.starts_with("POST")),
        "--dry-run wrote"
    );
    let out = run_host("fip-claim", &args[..args.len() - 4], &[]);
    assert_exit(&out, 2, "no API token: set LINODE_TOKEN");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn aws_identity_and_role_credentials_from_imdsv2() {
    // No instance ID, ENI, region or credentials given: all of it comes from IMDSv2, and
    // the fake EC2 accepts only requests signed with the role's key and session token.
    let f = fake("aws", 2, 1, &[]);
    let b = base("aws", &f);
    let args = [
        "--provider",
        "aws",
        "--ip",
        "203.0.113.10",
        "--endpoint-url",
        &b,
        "--metadata-url",
        &f.url,
        "--peer",
        "i-1",
        "--syslog-socket",
        "/nonexistent",
        "--json",
    ];
    let out = run_host("fip-claim", &args, &[("HOME", "/nonexistent-hakit-home")]);
    assert_exit(&out, 0, "");
    let r = json_of(&out);
    assert_eq!(
        (
            r["this_node"].as_str(),
            r["owner_before"].as_str(),
            r["owned"].as_bool()
        ),
        (Some("i-2"), Some("i-1"), Some(true))
    );
    let reqs = f.requests();
    assert!(
        reqs.iter().any(|l| l.starts_with("PUT /latest/api/token")),
        "{reqs:?}"
    );
    assert!(
        reqs.iter().any(|l| l.contains("Action=AssociateAddress")
            && l.contains("NetworkInterfaceId=eni-2")
            && l.contains("AllowReassociation=true")),
        "{reqs:?}"
    );
    assert!(
        reqs.iter()
            .any(|l| l.contains("Action=ModifyInstanceAttribute")
                && l.contains("SourceDestCheck.Value=false")),
        "{reqs:?}"
    );
    // Route tables come in two pages (NextToken): both routes to the peer (its instance on
    // one, its ENI on the other) move to this node's ENI.
    assert!(
        reqs.iter()
            .any(|l| l.contains("Action=DescribeRouteTables") && l.contains("NextToken=page2")),
        "{reqs:?}"
    );
    for t in ["rtb-1", "rtb-2"] {
        assert!(
            reqs.iter().any(|l| l.contains("Action=ReplaceRoute")
                && l.contains(&format!("RouteTableId={t}"))
                && l.contains("NetworkInterfaceId=eni-2")),
            "{t}: {reqs:?}"
        );
    }
    assert!(
        !stdout(&out).contains("imds-secret") && !stderr(&out).contains("imds-session"),
        "role credentials leaked"
    );
    let again = run_host("fip-claim", &args, &[("HOME", "/nonexistent-hakit-home")]);
    let r = json_of(&again);
    assert_eq!(r["already_converged"], true, "{r}");
    // The region from the standard variables, as the AWS CLI reads them: IMDS is not asked.
    let before = f.requests().len();
    let out = run_host(
        "fip-claim",
        &args,
        &[
            ("HOME", "/nonexistent-hakit-home"),
            ("AWS_REGION", "eu-west-3"),
        ],
    );
    assert_exit(&out, 0, "");
    let reqs = f.requests();
    assert!(
        reqs[before..]
            .iter()
            .all(|l| !l.contains("placement/region")),
        "AWS_REGION was ignored: {:?}",
        &reqs[before..]
    );
    assert!(
        reqs[..before]
            .iter()
            .any(|l| l.contains("placement/region")),
        "without AWS_REGION the region came from IMDS: {reqs:?}"
    );
}

#[test]
fn ha_check_fip_owner_probe_reads_through_the_library_and_caches() {
    let f = fake("linode", 2, 2, &[]);
    let dir = hakit_lab::TempDir::new("fipowner");
    let conf = dir.join("hakit.toml");
    std::fs::write(
        &conf,
        format!(
            "[general]\nruntime_dir = \"{d}/run\"\nsyslog_socket = \"/nonexistent\"\n\n[fip]\nprovider = \"linode\"\nip = \"203.0.113.10\"\nendpoint_url = \"{b}\"\nmetadata_url = \"{m}\"\n\n\
             [check]\ndeadline = \"2s\"\n\n[[check.probe]]\nkind = \"fip-owner\"\ncache = \"60s\"\n",
            d = dir.display(),
            b = base("linode", &f),
            m = f.url
        ),
    )
    .unwrap();
    let c = conf.to_string_lossy().to_string();
    let check = |extra: &[&str]| {
        let mut a = vec!["--config", c.as_str(), "--json"];
        a.extend_from_slice(extra);
        run_host("ha-check", &a, &[("LINODE_TOKEN", "fake-token")])
    };
    let api_calls = || f.requests().iter().filter(|r| r.contains("/v4/")).count();
    let out = check(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{} {}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("owned: linode 203.0.113.10 by this node (2)"),
        "{}",
        stdout(&out)
    );
    let n = api_calls();
    assert!(n > 0);
    // Within the cache time: the provider is not asked again.
    let out = check(&[]);
    assert_exit(&out, 0, "");
    assert!(stdout(&out).contains("cached"), "{}", stdout(&out));
    assert_eq!(api_calls(), n, "a cached answer made API calls");
    // Another node takes the IP (a forced assign as Linode 1); a fresh look says so.
    let b = base("linode", &f);
    assign_to(&b, "1");
    let out = run_host(
        "ha-check",
        &["--config", &c, "--json", "fip-owner", "--cache", "0s"],
        &[("LINODE_TOKEN", "fake-token")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("NOT owned: linode 203.0.113.10 by this node (2), held by 1"),
        "{}",
        stdout(&out)
    );
    // Judged by role (#34): where nat-notify's newest intent says BACKUP (and no keepalived
    // runs here), not holding the address is healthy; holding it is not.
    std::fs::write(
        dir.join("run").join("VI_1.intents"),
        r#"{"next":1,"recent":[{"generation":1,"state":"BACKUP"}]}"#,
    )
    .unwrap();
    let by_role = || {
        run_host(
            "ha-check",
            &["--config", &c, "--json", "fip-owner", "--cache", "0s"],
            &[("LINODE_TOKEN", "fake-token")],
        )
    };
    let out = by_role();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("not owned, as a BACKUP: linode 203.0.113.10"),
        "{}",
        stdout(&out)
    );
    assign_to(&b, "2");
    let out = by_role();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("owned, but this node is not MASTER"),
        "{}",
        stdout(&out)
    );
}

/// A forced Linode assign of 203.0.113.10 to `node` at the API `base` (another node taking
/// the address behind this one's back).
fn assign_to(base: &str, node: &str) {
    let out = run_host(
        "fip-claim",
        &[
            "--provider",
            "linode",
            "--ip",
            "203.0.113.10",
            "--instance-id",
            node,
            "--assign",
            "--force",
            "--endpoint-url",
            base,
            "--syslog-socket",
            "/nonexistent",
        ],
        &[("LINODE_TOKEN", "fake-token")],
    );
    assert_exit(&out, 0, "");
}

/// Hetzner as its API behaves (#16): a project with more Floating IPs than one page holds is
/// paged through; an IPv6 Floating IP (a /64) is found by the address configured on the
/// node; a 429 that announces only `RateLimit-Reset` is waited out, not hammered; an assign
/// stuck in `running` is polled with backoff and reported by what is pending, and a second
/// claim follows the running assign instead of starting another.
#[test]
fn hetzner_pages_contains_waits_for_the_reset_and_follows_a_running_assign() {
    // 120 other Floating IPs first: ours is on the third page of 50.
    let f = fake("hetzner", 5, 4, &["--extra-fips", "120"]);
    let out = claim("hetzner", &f, &["--peer", "4"]);
    assert_exit(&out, 0, "");
    let pages: Vec<String> = f
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /v1/floating_ips?"))
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages[2].contains("page=3"), "{pages:?}");
    drop(f);

    // IPv6: the API names the /64, the node has ::1 of it.
    let f = fake("hetzner", 5, 4, &["--ip", "2001:db8:1::/64"]);
    let out = claim_ip("hetzner", &f, "2001:db8:1::1", &["--peer", "4"]);
    assert_exit(&out, 0, "");
    assert_eq!(json_of(&out)["owned"], true);
    drop(f);

    // RateLimit-Reset two seconds ahead: one wait, then success, not five quick failures.
    let f = fake("hetzner", 5, 4, &["--fault", "reset"]);
    let t = std::time::Instant::now();
    let out = claim("hetzner", &f, &["--peer", "4", "--deadline", "10s"]);
    assert_exit(&out, 0, "");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "did not wait: {:?}",
        t.elapsed()
    );
    let tries = f
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /v1/floating_ips?"))
        .count();
    assert!(tries <= 3, "{tries} list requests: {:?}", f.requests());
    drop(f);

    // An action that never finishes: backed off, and the error says what is pending.
    let f = fake("hetzner", 5, 4, &["--fault", "stuck"]);
    let out = claim("hetzner", &f, &["--peer", "4", "--deadline", "6s"]);
    assert_exit(
        &out,
        1,
        "assign action 1 of Floating IP 7 still running after",
    );
    let polls = f
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /v1/actions/"))
        .count();
    assert!(
        (2..=8).contains(&polls),
        "{polls} polls in 6 s: {:?}",
        f.requests()
    );
    // The next claim (nat-notify's retry) follows the running assign: no second POST.
    let _ = claim("hetzner", &f, &["--peer", "4", "--deadline", "2s"]);
    let posts = f
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST /v1/floating_ips/7/actions/assign"))
        .count();
    assert_eq!(posts, 1, "a second assign was started: {:?}", f.requests());
}

/// Every provider's metadata error names the provider, the URL asked and the likely cause
/// (#32): "metadata instance-id: timeout: connect" was all an operator got before.
#[test]
fn metadata_errors_name_the_provider_the_url_and_the_cause() {
    for (provider, path, cause) in [
        ("aws", "/latest/api/token", "IMDS hop limit"),
        ("linode", "/v1/token", "Metadata service"),
        (
            "hetzner",
            "/hetzner/v1/metadata/instance-id",
            "Hetzner Cloud server",
        ),
        ("digitalocean", "/metadata/v1/id", "is this a droplet"),
    ] {
        let out = run_host(
            "fip-claim",
            &[
                "--provider",
                provider,
                "--ip",
                "203.0.113.10",
                "--metadata-url",
                "http://127.0.0.1:9",
                "--endpoint-url",
                "http://127.0.0.1:9/api",
                "--syslog-socket",
                "/nonexistent",
                "--deadline",
                "1s",
                "--check",
            ],
            &[(token_env(provider), "fake-token")],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{provider}: {err}");
        for says in [
            format!("{provider} metadata service"),
            format!("http://127.0.0.1:9{path}"),
            cause.to_string(),
            "--instance-id".into(),
        ] {
            assert!(err.contains(&says), "{provider}: no {says:?} in: {err}");
        }
    }
}
