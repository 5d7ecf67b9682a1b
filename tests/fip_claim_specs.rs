//! fip-claim's Linode and Hetzner requests, validated by Prism against the providers' own
//! OpenAPI documents (../shared/specs): Prism answers 422 to a request that breaks the
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
    let child = Command::new(bin)
        .args([
            "mock",
            &spec.to_string_lossy(),
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
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
