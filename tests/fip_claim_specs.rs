//! fip-claim's Linode, Hetzner and DigitalOcean requests, validated by Prism against the
//! providers' own OpenAPI documents (../shared/specs): Prism answers 422 to a request that breaks the
//! spec, and then these tests fail. The specs' example responses are not real state, so
//! each run ends at fip-claim's read-back ("the change is not visible"), after the write
//! was accepted. Prism ignores `format: ip`; fip-claim only ever sends parsed addresses.

mod util;

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use util::*;

struct Prism(Child, String, std::path::PathBuf);

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.2);
    }
}

fn prism(test: &str, spec: &str) -> Option<Prism> {
    prism_with(test, spec, &["mock"], &[])
}

/// Prism in front of `upstream` (`prism proxy --errors`): every request and every answer
/// is validated against the spec, and a violation in either becomes an error response.
fn prism_proxy(test: &str, spec: &str, upstream: &str) -> Option<Prism> {
    prism_with(test, spec, &["proxy"], &[upstream, "--errors"])
}

fn prism_with(test: &str, spec: &str, mode: &[&str], extra: &[&str]) -> Option<Prism> {
    let bin = Path::new(".tools/prism/node_modules/.bin/prism");
    let spec = Path::new("../shared/specs").join(spec);
    if !bin.exists() || !spec.exists() {
        let why = format!(
            "prism at {} or spec {} missing (make deps)",
            bin.display(),
            spec.display()
        );
        hakit_lab::skip(test, &why);
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::env::temp_dir().join(format!("hakit-prism-{}-{port}.log", std::process::id()));
    let out = std::fs::File::create(&log).unwrap();
    let spec_s = spec.to_string_lossy().to_string();
    let port_s = port.to_string();
    let mut args: Vec<&str> = mode.to_vec();
    args.push(&spec_s);
    args.extend_from_slice(extra);
    args.extend(["-h", "127.0.0.1", "-p", &port_s]);
    let child = Command::new(bin)
        .args(&args)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let up = hakit_lab::wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Prism is listening")
    });
    assert!(
        up.is_some(),
        "prism did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    Some(Prism(child, format!("http://127.0.0.1:{port}"), log))
}

fn check(p: &Prism, provider: &str, env: &str, base: &str, extra: &[&str], write: &str) {
    let mut args = vec![
        "--provider",
        provider,
        "--instance-id",
        "999",
        "--endpoint-url",
        base,
        "--syslog-socket",
        "/nonexistent",
        "--force",
    ];
    args.extend_from_slice(extra);
    let out = run_host("fip-claim", &args, &[(env, "fake-token")]);
    let err = stderr(&out);
    assert!(
        !err.contains("HTTP 422"),
        "{provider}: request broke the spec: {err}"
    );
    assert!(
        err.contains("read-back"),
        "{provider}: the write ({write}) was not reached and accepted: {err}"
    );
    let log = std::fs::read_to_string(&p.2).unwrap();
    assert!(
        log.contains(write),
        "{provider}: prism never saw {write}: {log}"
    );
    assert!(!log.contains("Violation: request"), "{provider}: {log}");
}

#[test]
fn linode_share_and_assign_match_the_spec() {
    let Some(p) = prism(
        "linode_share_and_assign_match_the_spec",
        "linode-openapi.yaml",
    ) else {
        return;
    };
    let base = format!("{}/v4", p.1);
    check(
        &p,
        "linode",
        "LINODE_TOKEN",
        &base,
        &["--ip", "192.0.2.1"],
        "POST       http://127.0.0.1",
    );
    let log = std::fs::read_to_string(&p.2).unwrap();
    assert!(log.contains("/v4/networking/ips/share"), "{log}");
    check(
        &p,
        "linode",
        "LINODE_TOKEN",
        &base,
        &["--ip", "192.0.2.1", "--assign"],
        "/v4/networking/ips/assign",
    );
}

#[test]
fn hetzner_assign_matches_the_spec() {
    let Some(p) = prism(
        "hetzner_assign_matches_the_spec",
        "hetzner-cloud-openapi.unofficial.json",
    ) else {
        return;
    };
    check(
        &p,
        "hetzner",
        "HCLOUD_TOKEN",
        &p.1.clone(),
        &["--floating-ip-id", "42"],
        "/floating_ips/42/actions/assign",
    );
}

/// DigitalOcean's Reserved IPs and reserved IPv6, against DigitalOcean's own document: the
/// assign action on each (`/v2/reserved_ips/{ip}/actions`, `/v2/reserved_ipv6/{ip}/actions`).
#[test]
fn digitalocean_assign_matches_the_spec() {
    let Some(p) = prism(
        "digitalocean_assign_matches_the_spec",
        "digitalocean-openapi.yaml",
    ) else {
        return;
    };
    let base = format!("{}/v2", p.1);
    check(
        &p,
        "digitalocean",
        "DIGITALOCEAN_TOKEN",
        &base,
        &["--ip", "192.0.2.1"],
        "/v2/reserved_ips/192.0.2.1/actions",
    );
    check(
        &p,
        "digitalocean",
        "DIGITALOCEAN_TOKEN",
        &base,
        &["--ip", "2001:db8::1"],
        "/v2/reserved_ipv6/2001:db8::1/actions",
    );
}

/// hakit's own fake provider answers as the providers' specs say: Prism's validating proxy
/// stands between fip-claim and the fake, and any request or answer that breaks Linode's,
/// Hetzner's or DigitalOcean's document fails the run (the fake cannot drift from the real API unnoticed).
#[test]
fn the_fake_provider_answers_as_the_specs_say() {
    for (provider, spec, env, prefix, ip) in [
        (
            "linode",
            "linode-openapi.yaml",
            "LINODE_TOKEN",
            "/v4",
            "203.0.113.10",
        ),
        (
            "digitalocean",
            "digitalocean-openapi.yaml",
            "DIGITALOCEAN_TOKEN",
            "/v2",
            "203.0.113.10",
        ),
        (
            "digitalocean",
            "digitalocean-openapi.yaml",
            "DIGITALOCEAN_TOKEN",
            "/v2",
            "2001:db8::10",
        ),
        (
            "hetzner",
            "hetzner-cloud-openapi.unofficial.json",
            "HCLOUD_TOKEN",
            "/v1",
            "203.0.113.10",
        ),
    ] {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let fake_url = format!("http://127.0.0.1:{port}");
        let _fake = hakit_lab::Spawned(
            Command::new(lab_bin("hakit-fake-cloud"))
                .args([
                    &format!("127.0.0.1:{port}"),
                    "--provider",
                    provider,
                    "--ip",
                    ip,
                    "--owner",
                    "2",
                    "--node",
                    "1=203.0.113.2",
                    "--node",
                    "2=203.0.113.3",
                    "--extra-fips",
                    "3",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        // Linode's and DigitalOcean's documents list their paths under /v4 and /v2,
        // Hetzner's under the server's /v1.
        let (upstream, base) = if provider != "hetzner" {
            (fake_url.clone(), None)
        } else {
            (format!("{fake_url}{prefix}"), Some(()))
        };
        let Some(p) = prism_proxy(
            "the_fake_provider_answers_as_the_specs_say",
            spec,
            &upstream,
        ) else {
            return;
        };
        let endpoint = match base {
            None => format!("{}{prefix}", p.1),
            Some(()) => p.1.clone(),
        };
        let run = |extra: &[&str]| {
            let mut args = vec![
                "--provider",
                provider,
                "--ip",
                ip,
                "--instance-id",
                "1",
                "--peer",
                "2",
                "--endpoint-url",
                &endpoint,
                "--metadata-url",
                &fake_url,
                "--syslog-socket",
                "/nonexistent",
            ];
            args.extend_from_slice(extra);
            run_host("fip-claim", &args, &[(env, "fake-token")])
        };
        // Claim (a write, polled to its end for Hetzner), a converged re-run, a check.
        for extra in [&[][..], &[], &["--check"]] {
            let out = run(extra);
            let log = std::fs::read_to_string(&p.2).unwrap_or_default();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{provider} {extra:?}: {}\nprism: {}",
                stderr(&out),
                log.lines()
                    .filter(|l| l.contains("error") || l.contains("Violation"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        let log = std::fs::read_to_string(&p.2).unwrap();
        assert!(
            !log.contains("VIOLATIONS") && !log.contains("Violation"),
            "{provider}: {log}"
        );
        assert!(
            log.contains("Forwarding"),
            "{provider}: nothing went through the proxy: {log}"
        );
    }
}

/// Hetzner's Cloud Network route follows the Floating IP (a Cloud Network is routed: the
/// LAN's egress is a network route to the MASTER, not a VIP): through Prism's validating
/// proxy against Hetzner's document, a route through the peer is deleted and added again
/// through this node, each action followed; a converged re-run writes nothing; a route
/// through a server that is not a peer is refused and left alone.
#[test]
fn hetzner_network_route_follows_the_claim() {
    let test = "hetzner_network_route_follows_the_claim";
    for (start_gw, want_ok) in [("198.51.100.3", true), ("198.51.100.99", false)] {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let fake_url = format!("http://127.0.0.1:{port}");
        let _fake = hakit_lab::Spawned(
            Command::new(lab_bin("hakit-fake-cloud"))
                .args([
                    &format!("127.0.0.1:{port}"),
                    "--provider",
                    "hetzner",
                    "--ip",
                    "203.0.113.10",
                    "--owner",
                    "2",
                    "--instant",
                    "--net-route",
                    &format!("0.0.0.0/0={start_gw}"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let Some(p) = prism_proxy(
            test,
            "hetzner-cloud-openapi.unofficial.json",
            &format!("{fake_url}/v1"),
        ) else {
            return;
        };
        // The fake's own state, asked directly (HTTP/1.0: the answer ends with the connection).
        let route_gw = || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /v1/networks/9 HTTP/1.0\r\nAuthorization: Bearer fake-token\r\n\r\n")
                .unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            v["network"]["routes"][0]["gateway"].clone()
        };
        let run = || {
            run_host(
                "fip-claim",
                &[
                    "--provider",
                    "hetzner",
                    "--ip",
                    "203.0.113.10",
                    "--instance-id",
                    "1",
                    "--peer",
                    "2",
                    "--network-id",
                    "9",
                    "--lan-ip",
                    "198.51.100.2",
                    "--peer-lan-ip",
                    "198.51.100.3",
                    "--endpoint-url",
                    &p.1,
                    "--syslog-socket",
                    "/nonexistent",
                    "--json",
                ],
                &[("HCLOUD_TOKEN", "fake-token")],
            )
        };
        let out = run();
        let log = std::fs::read_to_string(&p.2).unwrap_or_default();
        assert!(!log.contains("Violation"), "{log}");
        if !want_ok {
            assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
            assert!(
                stderr(&out).contains("neither this node (198.51.100.2) nor a peer"),
                "{}",
                stderr(&out)
            );
            assert_eq!(route_gw(), start_gw, "refused means untouched");
            continue;
        }
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let r: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let changed = r["changed"].to_string();
        assert!(
            changed.contains("delete_route 0.0.0.0/0 via 198.51.100.3")
                && changed.contains("add_route 0.0.0.0/0 via 198.51.100.2"),
            "{r}"
        );
        assert_eq!(route_gw(), "198.51.100.2");
        assert!(
            log.contains("/actions/delete_route") && log.contains("/actions/add_route"),
            "{log}"
        );
        let again: serde_json::Value = serde_json::from_str(&stdout(&run())).unwrap();
        assert_eq!(again["already_converged"], true, "{again}");
    }
}
