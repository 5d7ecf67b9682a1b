//! The AWS instance metadata service (IMDSv2) as the VPC model serves it to both nodes:
//! a session token first, then the instance ID, region, MACs and their ENIs, and the
//! instance role's credentials (EC2 User Guide, "Use the Instance Metadata Service").

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::Duration,
};

use anyhow::bail;
use serde_json::Value;

use crate::Ns;

/// IMDSv2 for both nodes, told apart by the address they call from (their WAN ENI's).
pub fn serve(
    vpc: &Ns,
    at: (&str, u16),
    world: &Value,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<thread::JoinHandle<()>> {
    let listener = vpc.within(|| {
        let l = TcpListener::bind(at)?;
        l.set_nonblocking(true)?;
        Ok(l)
    })?;
    let world = world.clone();
    Ok(thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((s, peer)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = imds_answer(s, &peer.ip().to_string(), &world);
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    }))
}

fn imds_answer(mut s: TcpStream, caller: &str, world: &Value) -> anyhow::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf)?;
    let req = String::from_utf8_lossy(&buf[..n]).to_string();
    let line = req.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let w = |k: &str| world[k].as_str().unwrap_or_default().to_string();
    let role = if caller == w("primary_wan_ip") {
        "primary"
    } else if caller == w("secondary_wan_ip") {
        "secondary"
    } else {
        bail!("IMDS: unknown caller {caller}")
    };
    let token_ok = req
        .to_ascii_lowercase()
        .contains("x-aws-ec2-metadata-token: model-token");
    let macs: BTreeMap<String, String> = ["wan", "lan", "sync"]
        .iter()
        .map(|e| (w(&format!("{role}_{e}_mac")), w(&format!("{role}_{e}_eni"))))
        .collect();
    let (status, body) = match (method, path) {
        ("PUT", "/latest/api/token") => (200, "model-token".to_string()),
        _ if !token_ok => (401, String::new()),
        (_, "/latest/meta-data/instance-id") => (200, w(role)),
        (_, "/latest/meta-data/placement/region") => (200, "us-east-1".into()),
        (_, "/latest/meta-data/mac") => (200, w(&format!("{role}_wan_mac"))),
        (_, "/latest/meta-data/iam/security-credentials/") => (200, "hakit-nat".into()),
        (_, "/latest/meta-data/iam/security-credentials/hakit-nat") => (
            200,
            r#"{"Code":"Success","AccessKeyId":"ASIAMODEL","SecretAccessKey":"model-secret","Token":"model-session","Expiration":"2099-01-01T00:00:00Z"}"#.into(),
        ),
        (_, p) => match p
            .strip_prefix("/latest/meta-data/network/interfaces/macs/")
            .and_then(|r| r.strip_suffix("/interface-id"))
            .and_then(|mac| macs.get(mac))
        {
            Some(eni) => (200, eni.clone()),
            None => (404, String::new()),
        },
    };
    write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}
