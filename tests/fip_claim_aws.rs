//! fip-claim on AWS against moto's EC2 server (loopback only) with SigV4 checking on:
//! the Elastic IP, every route table and the source/dest check move, checked with moto's own
//! API through boto3; a converged re-run writes nothing; a wrong secret and a third owner
//! are refused. moto hands out 127.x Elastic IPs: nothing ever sends traffic to them.

mod util;

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use util::*;

struct Moto(Child, String);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// moto's server on a free loopback port, or None (loudly) where moto is not installed;
/// under CI=true a missing moto is a failure.
fn moto(test: &str) -> Option<Moto> {
    moto_with(test, &[])
}

/// [`moto`] with the secondary-IP semantics AWS documents and moto 5.2 lacks
/// (tests/aws/moto_server.py).
fn moto_documented(test: &str) -> Option<Moto> {
    let py = hakit_lab::python3();
    moto_with(test, &[&py, "tests/aws/moto_server.py"])
}

fn moto_with(test: &str, wrapper: &[&str]) -> Option<Moto> {
    let bin = hakit_lab::require(test, "moto_server")?;
    let (bin, pre): (std::path::PathBuf, &[&str]) = match wrapper.split_first() {
        Some((py, rest)) => (py.into(), rest),
        None => (bin, &[]),
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(pre)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let up = hakit_lab::wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up.is_some(), "moto_server did not start");
    Some(Moto(child, url))
}

fn lab_py(args: &[&str]) -> serde_json::Value {
    lab_py_as(args, None)
}

fn lab_py_as(args: &[&str], keys: Option<&serde_json::Value>) -> serde_json::Value {
    let mut cmd = Command::new(hakit_lab::python3());
    cmd.arg("tests/aws/moto_lab.py").args(args);
    if let Some(w) = keys {
        cmd.env("MOTO_KEY", w["key"].as_str().unwrap())
            .env("MOTO_SECRET", w["secret"].as_str().unwrap());
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "moto_lab.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

fn claim(url: &str, w: &serde_json::Value, secret: &str, extra: &[&str]) -> std::process::Output {
    let s = |k: &str| w[k].as_str().unwrap().to_string();
    let mut args = vec![
        "--provider".to_string(),
        "aws".into(),
        "--ip".into(),
        s("ip"),
        "--instance-id".into(),
        s("secondary"),
        "--eni".into(),
        s("secondary_eni"),
        "--region".into(),
        "us-east-1".into(),
        "--peer".into(),
        s("primary"),
        "--endpoint-url".into(),
        url.to_string(),
        "--metadata-url".into(),
        "http://127.0.0.1:9".into(),
        "--syslog-socket".into(),
        "/nonexistent".into(),
        "--json".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [
        ("AWS_ACCESS_KEY_ID", s("key")),
        ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_host("fip-claim", &argv, &env)
}

#[test]
fn natganker_sequence_against_moto() {
    let Some(m) = moto("natganker_sequence_against_moto") else {
        return;
    };
    let w = lab_py(&["setup", &m.1]);
    lab_py(&["auth", &m.1]);
    let alloc = w["allocation"].as_str().unwrap();
    let secret = w["secret"].as_str().unwrap();

    // A wrong secret: moto recomputes the signature and refuses.
    let out = claim(&m.1, &w, "not-the-secret", &[]);
    assert_exit(&out, 1, "aws DescribeAddresses: HTTP 401 AuthFailure");
    assert!(
        !stderr(&out).contains("not-the-secret"),
        "secret leaked into an error"
    );

    // --check before: the secondary does not own it.
    assert_eq!(claim(&m.1, &w, secret, &["--check"]).status.code(), Some(1));

    // --dry-run: the exact writes, signed but redacted; nothing changes.
    let out = claim(&m.1, &w, secret, &["--dry-run"]);
    assert_exit(&out, 0, "");
    let plan = json_out(&out);
    let planned = plan["planned"].as_array().unwrap();
    assert_eq!(
        planned.len(),
        5,
        "associate + 2 IPv4 routes + 1 IPv6 route + source/dest check: {plan}"
    );
    assert!(planned[0]
        .as_str()
        .unwrap()
        .contains("Action=AssociateAddress"));
    assert!(planned
        .iter()
        .all(|p| p.as_str().unwrap().contains("Authorization: [redacted]")));
    assert_eq!(
        lab_py_as(&["state", &m.1, alloc], Some(&w))["instance"],
        w["primary"]
    );

    // The claim, with --force (the shipped peer watch's form) and a peer that no longer
    // exists beside the real one: the EIP, this pair's IPv4 and IPv6 default routes and the
    // source/dest check move; the unrelated NAT instance's table stays its own.
    let out = claim(
        &m.1,
        &w,
        secret,
        &["--force", "--peer", "i-0deadbeefdeadbeef"],
    );
    assert_exit(&out, 0, "");
    let r = json_out(&out);
    assert_eq!(r["owner_before"], w["primary"]);
    assert_eq!(r["changed"].as_array().unwrap().len(), 5, "{r}");
    let st = lab_py_as(&["state", &m.1, alloc], Some(&w));
    let unrelated = w["unrelated_table"].as_str().unwrap();
    assert_eq!(
        st["routes"][unrelated], w["third"],
        "--force took an unrelated NAT instance's route table: {st}"
    );
    let t0 = w["tables"][0].as_str().unwrap();
    assert_eq!(
        st["routes6"][t0], w["secondary_eni"],
        "::/0 moved with 0.0.0.0/0: {st}"
    );
    assert_eq!(st["eni"], w["secondary_eni"], "EIP moved: {st}");
    for t in w["tables"].as_array().unwrap() {
        assert_eq!(
            st["routes"][t.as_str().unwrap()],
            w["secondary_eni"],
            "route table {t} moved: {st}"
        );
    }
    assert_eq!(
        st["source_dest_check"][w["secondary"].as_str().unwrap()],
        false
    );

    // Again: converged, only reads.
    let out = claim(&m.1, &w, secret, &[]);
    assert_exit(&out, 0, "");
    let r = json_out(&out);
    assert_eq!(r["already_converged"], true, "{r}");
    let calls: Vec<&str> = r["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call"].as_str().unwrap())
        .collect();
    assert!(
        calls.iter().all(|c| c.starts_with("Describe")),
        "a converged re-run wrote: {calls:?}"
    );
    assert_eq!(claim(&m.1, &w, secret, &["--check"]).status.code(), Some(0));

    // A third owner is refused without --force, taken with it.
    lab_py_as(
        &["steal", &m.1, alloc, w["third"].as_str().unwrap()],
        Some(&w),
    );
    let out = claim(&m.1, &w, secret, &[]);
    assert_exit(&out, 2, "");
    assert!(
        stderr(&out).contains("not this node") && stderr(&out).contains("--force"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        lab_py_as(&["state", &m.1, alloc], Some(&w))["instance"],
        w["third"],
        "refused means untouched"
    );
    let out = claim(&m.1, &w, secret, &["--force"]);
    assert_exit(&out, 0, "");
    assert_eq!(
        lab_py_as(&["state", &m.1, alloc], Some(&w))["eni"],
        w["secondary_eni"]
    );

    // An EIP held through an ENI attached to nothing (no instanceId in the answer) is a
    // third owner too: refused without --force.
    let stolen = lab_py_as(
        &["steal-eni", &m.1, alloc, w["subnet"].as_str().unwrap()],
        Some(&w),
    );
    let out = claim(&m.1, &w, secret, &[]);
    assert_exit(&out, 2, stolen["eni"].as_str().unwrap());
    assert_eq!(
        lab_py_as(&["state", &m.1, alloc], Some(&w))["eni"],
        stolen["eni"],
        "refused means untouched"
    );
}

/// The AWS example's layout (WAN, LAN and sync ENI per instance): the Elastic IP goes to the
/// WAN ENI (the one the internet gateway translates), the private route table to the LAN
/// ENI (where the ruleset forwards from), and the source/dest check off on that LAN ENI,
/// the one that forwards: the instance-level flag covers only the primary ENI.
#[test]
fn three_enis_route_to_the_lan_eni() {
    let Some(m) = moto("three_enis_route_to_the_lan_eni") else {
        return;
    };
    let w = lab_py(&["setup3", &m.1]);
    let alloc = w["allocation"].as_str().unwrap();
    let secret = w["secret"].as_str().unwrap();
    let mut w2 = w.clone();
    w2["secondary_eni"] = w["secondary_wan_eni"].clone();
    let lan_ip = w["secondary_lan_ip"].as_str().unwrap();
    let out = claim(&m.1, &w2, secret, &["--lan-ip", lan_ip]);
    assert_exit(&out, 0, "");
    let st = lab_py_as(&["state", &m.1, alloc], Some(&w));
    assert_eq!(
        st["eni"], w["secondary_wan_eni"],
        "EIP on the WAN ENI: {st}"
    );
    let t0 = w["tables"][0].as_str().unwrap();
    assert_eq!(
        st["routes"][t0], w["secondary_lan_eni"],
        "the private table targets the LAN ENI: {st}"
    );
    let checks = lab_py_as(&["enis", &m.1], Some(&w));
    assert_eq!(
        checks[w["secondary_lan_eni"].as_str().unwrap()]["check"],
        false,
        "{checks}"
    );

    // Converged: only reads.
    let out = claim(&m.1, &w2, secret, &["--lan-ip", lan_ip]);
    assert_exit(&out, 0, "");
    let r = json_out(&out);
    assert_eq!(r["already_converged"], true, "{r}");

    // Back to the primary: its LAN ENI takes the route back from the secondary's.
    let mut w1 = w.clone();
    w1["secondary"] = w["primary"].clone();
    w1["secondary_eni"] = w["primary_wan_eni"].clone();
    w1["primary"] = w["secondary"].clone();
    let out = claim(
        &m.1,
        &w1,
        secret,
        &["--lan-ip", w["primary_lan_ip"].as_str().unwrap()],
    );
    assert_exit(&out, 0, "");
    let st = lab_py_as(&["state", &m.1, alloc], Some(&w));
    assert_eq!(st["routes"][t0], w["primary_lan_eni"], "{st}");
    assert_eq!(st["eni"], w["primary_wan_eni"], "{st}");

    // An address no ENI of this instance holds: refused before any write.
    let out = claim(&m.1, &w2, secret, &["--lan-ip", "198.51.100.99"]);
    assert_exit(&out, 1, "no network interface of instance");
    let st = lab_py_as(&["state", &m.1, alloc], Some(&w));
    assert_eq!(
        st["eni"], w["primary_wan_eni"],
        "refused means untouched: {st}"
    );
}

/// A secondary private IP carries the Elastic IP and both nodes' SNAT: the claim moves that
/// address to this node's WAN ENI (AllowReassignment) with its association, so a flow
/// synchronised from the peer keeps the address it was translated to.
#[test]
fn the_shared_private_ip_moves_with_the_elastic_ip() {
    let Some(m) = moto_documented("the_shared_private_ip_moves_with_the_elastic_ip") else {
        return;
    };
    let shared = "198.51.100.80";
    let w = lab_py(&["setup3", &m.1, "203.0.113.10", shared]);
    let alloc = w["allocation"].as_str().unwrap();
    let secret = w["secret"].as_str().unwrap();
    let mut w2 = w.clone();
    w2["secondary_eni"] = w["secondary_wan_eni"].clone();
    let lan_ip = w["secondary_lan_ip"].as_str().unwrap();
    let args = ["--lan-ip", lan_ip, "--private-ip", shared];
    let check = [&args[..], &["--check"]].concat();
    assert_eq!(claim(&m.1, &w2, secret, &check).status.code(), Some(1));
    // The writes as sent (--dry-run): the address moved with AllowReassignment, the Elastic
    // IP associated with AllowReassociation=true stated (AWS documents a default that older
    // accounts and moto do not follow), both naming the WAN ENI (a multi-ENI instance).
    let plan = json_out(&claim(
        &m.1,
        &w2,
        secret,
        &[&args[..], &["--dry-run"]].concat(),
    ));
    let planned = plan["planned"].to_string();
    let wan = w["secondary_wan_eni"].as_str().unwrap();
    for want in [
        "Action=AssignPrivateIpAddresses".to_string(),
        "AllowReassignment=true".to_string(),
        "Action=AssociateAddress".to_string(),
        "AllowReassociation=true".to_string(),
        format!("NetworkInterfaceId={wan}"),
        format!("PrivateIpAddress={shared}"),
    ] {
        assert!(planned.contains(&want), "{want} not in {planned}");
    }
    let out = claim(&m.1, &w2, secret, &args);
    assert_exit(&out, 0, "");
    let r = json_out(&out);
    assert!(
        r["changed"]
            .to_string()
            .contains("AssignPrivateIpAddresses"),
        "{r}"
    );
    let st = lab_py_as(&["state", &m.1, alloc], Some(&w));
    assert_eq!(st["eni"], w["secondary_wan_eni"], "{st}");
    assert_eq!(
        st["private_ip"], shared,
        "the Elastic IP on the shared address: {st}"
    );
    let enis = lab_py_as(&["enis", &m.1], Some(&w));
    let ips = |k: &str| enis[w[k].as_str().unwrap()]["ips"].to_string();
    assert!(ips("secondary_wan_eni").contains(shared), "{enis}");
    assert!(
        !ips("primary_wan_eni").contains(shared),
        "moved, not copied: {enis}"
    );
    // Converged: reads only; --check says owner.
    let r = json_out(&claim(&m.1, &w2, secret, &args));
    assert_eq!(r["already_converged"], true, "{r}");
    assert_eq!(claim(&m.1, &w2, secret, &check).status.code(), Some(0));
}

fn json_out(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(out), stderr(out)))
}

#[test]
fn credentials_from_the_shared_file() {
    let Some(m) = moto("credentials_from_the_shared_file") else {
        return;
    };
    let w = lab_py(&["setup", &m.1]);
    lab_py(&["auth", &m.1]);
    let dir = hakit_lab::TempDir::new("awscreds");
    let file = dir.join("credentials");
    secret(
        &file,
        format!(
            "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[hakit]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            w["key"].as_str().unwrap(),
            w["secret"].as_str().unwrap()
        ),
    )
    .unwrap();
    let s = |k: &str| w[k].as_str().unwrap().to_string();
    let (ip, inst, eni) = (s("ip"), s("primary"), s("primary_eni"));
    let f = file.to_string_lossy().to_string();
    let args = [
        "--provider",
        "aws",
        "--ip",
        &ip,
        "--instance-id",
        &inst,
        "--eni",
        &eni,
        "--region",
        "us-east-1",
        "--endpoint-url",
        &m.1,
        "--syslog-socket",
        "/nonexistent",
        "--check",
    ];
    // The profile named by AWS_PROFILE is used; the primary owns the EIP.
    let out = run_host(
        "fip-claim",
        &args,
        &[
            ("AWS_SHARED_CREDENTIALS_FILE", &f),
            ("AWS_PROFILE", "hakit"),
        ],
    );
    assert_exit(&out, 0, "");
    // The default profile holds wrong keys: moto refuses the signature (--check could not
    // tell: 3).
    let out = run_host("fip-claim", &args, &[("AWS_SHARED_CREDENTIALS_FILE", &f)]);
    assert_exit(&out, 3, "AuthFailure");

    // Hardening (#30, class 5): the file says who fip-claim acts as, so it is checked as a
    // token file is: not readable by others, not a link, not a FIFO (which would hang the
    // claim), not another user's. Each refusal is a usage error (exit 2), nothing asked.
    use std::os::unix::fs::PermissionsExt;
    let with_file = |p: &std::path::Path| {
        let p = p.to_string_lossy().to_string();
        run_host(
            "fip-claim",
            &args,
            &[
                ("AWS_SHARED_CREDENTIALS_FILE", &p),
                ("AWS_PROFILE", "hakit"),
            ],
        )
    };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_exit(
        &with_file(&file),
        2,
        "credentials file FILE: is readable by group or others (mode 644)"
            .replace("FILE", &f)
            .as_str(),
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    assert_exit(&with_file(&link), 2, "is a symbolic link");
    let fifo = dir.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert_exit(&with_file(&fifo), 2, "is not a regular file");
    if nix::unistd::geteuid().is_root() {
        let planted = dir.join("planted");
        std::fs::copy(&file, &planted).unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
        assert_exit(&with_file(&planted), 2, "belongs to uid 65534, not root");
    }
}

/// Writes an AWS file as `aws configure` does: mode 0600.
fn secret(path: &std::path::Path, text: String) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, text.as_bytes())
}

/// The `--check` arguments for the primary, with credentials left to the chain.
fn check_args(m: &Moto, w: &serde_json::Value) -> Vec<String> {
    let s = |k: &str| w[k].as_str().unwrap().to_string();
    [
        "--provider",
        "aws",
        "--ip",
        &s("ip"),
        "--instance-id",
        &s("primary"),
        "--eni",
        &s("primary_eni"),
        "--region",
        "us-east-1",
        "--endpoint-url",
        &m.1,
        "--syslog-socket",
        "/nonexistent",
        "--json",
        "--check",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

fn call_names(out: &std::process::Output) -> Vec<String> {
    json_out(out)["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn credentials_from_role_profiles_and_web_identity() {
    let Some(m) = moto("credentials_from_role_profiles_and_web_identity") else {
        return;
    };
    let w = lab_py(&["setup", &m.1]);
    let r = lab_py(&["role", &m.1]);
    lab_py(&["auth", &m.1]);
    let dir = hakit_lab::TempDir::new("awsroles");
    let (creds, config, token) = (
        dir.join("credentials"),
        dir.join("config"),
        dir.join("token"),
    );
    let arn = r["role_arn"].as_str().unwrap();
    secret(
        &creds,
        format!(
            "[base]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            r["base_key"].as_str().unwrap(),
            r["base_secret"].as_str().unwrap()
        ),
    )
    .unwrap();
    secret(
        &config,
        format!(
            "[default]\nregion = us-east-1\n\n[profile hakit]\nrole_arn = {arn}\nsource_profile = base\nrole_session_name = gw-a\n\n\
             [profile web]\nrole_arn = {arn}\nweb_identity_token_file = {}\n\n\
             [profile loop-a]\nrole_arn = {arn}\nsource_profile = loop-b\n[profile loop-b]\nrole_arn = {arn}\nsource_profile = loop-a\n\n\
             [profile bad]\nrole_arn = arn:aws:iam::1:user/x\nsource_profile = base\n",
            token.display()
        ),
    )
    .unwrap();
    secret(&token, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n".into()).unwrap();
    let (c, f) = (creds.to_string_lossy(), config.to_string_lossy());
    let files = [
        ("AWS_SHARED_CREDENTIALS_FILE", &*c),
        ("AWS_CONFIG_FILE", &*f),
        ("AWS_ENDPOINT_URL_STS", &m.1),
    ];
    let args = check_args(&m, &w);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let with = |extra: &[(&str, &str)]| {
        let mut env = files.to_vec();
        env.extend_from_slice(extra);
        run_host("fip-claim", &argv, &env)
    };

    // The base user may only assume the role: with its own keys moto refuses EC2 (--check
    // could not tell: 3).
    let out = with(&[("AWS_PROFILE", "base")]);
    assert_exit(
        &out,
        3,
        "user/base is not authorized to perform: ec2:DescribeAddresses",
    );

    // A role profile: AssumeRole signed with the base keys, then EC2 with the role's
    // temporary credentials (moto checks the signature and the session token).
    let out = with(&[("AWS_PROFILE", "hakit")]);
    assert_exit(&out, 0, "");
    assert_eq!(call_names(&out), ["sts:AssumeRole", "DescribeAddresses"]);
    assert!(
        stderr(&out).contains("assumed-role/hakit-fip/gw-a"),
        "{}",
        stderr(&out)
    );

    // A role profile with a web identity token file, and the same from the environment.
    // AssumeRoleWithWebIdentity is unsigned, as STS specifies; moto's checker fails on a
    // request without a signature (HTTP 500), so that one request is let through and
    // every request after it is checked again: EC2 with the role's credentials.
    lab_py(&["auth", &m.1, "1"]);
    let out = with(&[("AWS_PROFILE", "web")]);
    assert_exit(&out, 0, "");
    assert_eq!(
        call_names(&out),
        ["sts:AssumeRoleWithWebIdentity", "DescribeAddresses"]
    );
    let t = token.to_string_lossy();
    lab_py(&["auth", &m.1, "1"]);
    let out = with(&[("AWS_WEB_IDENTITY_TOKEN_FILE", &t), ("AWS_ROLE_ARN", arn)]);
    assert_exit(&out, 0, "");
    assert_eq!(
        call_names(&out),
        ["sts:AssumeRoleWithWebIdentity", "DescribeAddresses"]
    );
    // The token never reaches the output.
    assert!(!stderr(&out).contains("c2ln") && !stdout(&out).contains("c2ln"));

    // Without --region and AWS_REGION, the default profile's region is used (IMDS is not
    // asked: its URL is a closed port).
    let mut no_region = args.clone();
    let i = no_region.iter().position(|a| a == "--region").unwrap();
    no_region.drain(i..i + 2);
    no_region.extend(["--metadata-url".into(), "http://127.0.0.1:9".into()]);
    let nr: Vec<&str> = no_region.iter().map(String::as_str).collect();
    let mut env = files.to_vec();
    env.extend([
        ("AWS_ACCESS_KEY_ID", w["key"].as_str().unwrap()),
        ("AWS_SECRET_ACCESS_KEY", w["secret"].as_str().unwrap()),
    ]);
    let out = run_host("fip-claim", &nr, &env);
    assert_exit(&out, 0, "");

    // Mistakes are named.
    for (profile, says) in [
        ("loop-a", "role chain longer than 4"),
        ("bad", "is not an IAM role ARN"),
        ("missing", "AWS_PROFILE=\"missing\": no such profile in"),
    ] {
        let out = with(&[("AWS_PROFILE", profile)]);
        assert_eq!(out.status.code(), Some(3), "{profile}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{profile}: {}", stderr(&out));
    }
}

/// The instance role as IMDS serves it: moto's metadata service answers the document in
/// its own format (spaces after the colons), not the lab's; signature checking stays off
/// here because moto's metadata keys are not an IAM user's.
#[test]
fn credentials_from_the_instance_role() {
    let Some(m) = moto("credentials_from_the_instance_role") else {
        return;
    };
    let w = lab_py(&["setup", &m.1]);
    let mut args = check_args(&m, &w);
    args.extend(["--metadata-url".into(), m.1.clone()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_host("fip-claim", &argv, &[]);
    assert_exit(&out, 0, "");
    let calls = call_names(&out);
    assert!(
        calls.iter().any(|c| c.contains("security-credentials/"))
            && calls.last().map(String::as_str) == Some("DescribeAddresses"),
        "{calls:?}"
    );
}
