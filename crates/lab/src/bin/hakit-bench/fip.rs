//! fip-claim: the natganker sequence against the AWS CLI, both on a local moto server.

use super::*;

/// fip-claim against the natganker sequence with the AWS CLI, both against one moto server.
pub(crate) fn fip(md: &mut String, fip_claim: &Path) -> anyhow::Result<()> {
    writeln!(
        md,
        "## fip-claim: the natganker sequence, fip-claim versus the AWS CLI\n"
    )?;
    writeln!(md, "Method: a moto EC2 server on loopback per row with SigV4 checking on (an IAM user's key), a VPC with three instances, N route tables whose default route targets the primary (and an unrelated NAT instance's table, never touched), an Elastic IP on the primary. Each run moves the EIP, every default route and the source/dest check to the secondary: once with one `fip-claim` run (static build), once with the AWS CLI sequence natganker runs (`associate-address`, `describe-route-tables`, `replace-route` per table, `modify-instance-attribute`), the state reset in between (untimed). Runs interleaved. Wall time around the process(es).\n")?;
    writeln!(
        md,
        "| route tables | tool | runs | median | p90 | max | HTTP requests |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    let mut notes = Vec::new();
    for (tables, runs) in [(1usize, 8usize), (30, 3), (150, 2)] {
        notes.push(fip_world(md, fip_claim, tables, runs)?);
    }
    writeln!(md)?;
    for n in notes {
        writeln!(md, "{n}")?;
    }
    writeln!(md)?;
    Ok(())
}

/// One moto world with `tables` route tables, `runs` interleaved runs of each tool: one
/// table row pair, and the sentence about it.
pub(crate) fn fip_world(
    md: &mut String,
    fip_claim: &Path,
    tables: usize,
    runs: usize,
) -> anyhow::Result<String> {
    let fc = std::fs::canonicalize(fip_claim).context("static fip-claim missing: make static")?;
    let fc = fc.to_string_lossy().to_string();
    let (Some(moto_bin), Some(aws)) = (hakit_lab::which("moto_server"), hakit_lab::which("aws"))
    else {
        bail!("moto_server and the AWS CLI are needed (make deps; pip install awscli)");
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut moto = hakit_lab::Spawned(
        Command::new(moto_bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let _ = &mut moto;
    hakit_lab::wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .context("moto did not start")?;
    let py = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new(hakit_lab::python3())
            .arg("tests/aws/moto_lab.py")
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "moto_lab.py {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    };
    let w: serde_json::Value = serde_json::from_str(&py(&["setup", &url, &tables.to_string()])?)?;
    py(&["auth", &url])?;
    let g = |k: &str| w[k].as_str().unwrap_or_default().to_string();
    let env = [
        ("AWS_ACCESS_KEY_ID", g("key")),
        ("AWS_SECRET_ACCESS_KEY", g("secret")),
        ("AWS_DEFAULT_REGION", "us-east-1".to_string()),
    ];
    let claim = |who: &str, eni: &str, peer: &str| -> anyhow::Result<(f64, serde_json::Value)> {
        let t0 = std::time::Instant::now();
        let out = Command::new(&fc)
            .args([
                "--provider",
                "aws",
                "--ip",
                &g("ip"),
                "--instance-id",
                who,
                "--eni",
                eni,
                "--region",
                "us-east-1",
                "--peer",
                peer,
                "--endpoint-url",
                &url,
                "--syslog-socket",
                "/nonexistent",
                "--json",
            ])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()?;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        if !out.status.success() {
            bail!("fip-claim: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok((ms, serde_json::from_slice(&out.stdout)?))
    };
    let cli_sequence = || -> anyhow::Result<(f64, usize)> {
        let mut calls: Vec<Vec<String>> = vec![vec![
            "ec2".into(),
            "associate-address".into(),
            "--allocation-id".into(),
            g("allocation"),
            "--network-interface-id".into(),
            g("secondary_eni"),
            "--allow-reassociation".into(),
        ]];
        calls.push(vec!["ec2".into(), "describe-route-tables".into()]);
        for t in w["tables"].as_array().into_iter().flatten() {
            calls.push(vec![
                "ec2".into(),
                "replace-route".into(),
                "--route-table-id".into(),
                t.as_str().unwrap_or_default().into(),
                "--destination-cidr-block".into(),
                "0.0.0.0/0".into(),
                "--network-interface-id".into(),
                g("secondary_eni"),
            ]);
        }
        calls.push(vec![
            "ec2".into(),
            "modify-instance-attribute".into(),
            "--instance-id".into(),
            g("secondary"),
            "--no-source-dest-check".into(),
        ]);
        let t0 = std::time::Instant::now();
        for c in &calls {
            let out = Command::new(&aws)
                .args(["--endpoint-url", &url])
                .args(c)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .output()?;
            if !out.status.success() {
                bail!("aws {c:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        Ok((t0.elapsed().as_secs_f64() * 1000.0, calls.len()))
    };
    let (mut fw, mut cw) = (Vec::new(), Vec::new());
    let (mut freq, mut creq, mut reread) = (0, 0, (0usize, 0usize));
    for _ in 0..runs {
        // Each run moves EIP, both routes and the check from the primary to the secondary.
        claim(&g("primary"), &g("primary_eni"), &g("secondary"))?;
        let (ms, out) = claim(&g("secondary"), &g("secondary_eni"), &g("primary"))?;
        fw.push(ms);
        freq = out["calls"].as_array().map_or(0, |c| c.len());
        let (_, again) = claim(&g("secondary"), &g("secondary_eni"), &g("primary"))?;
        let calls: Vec<String> = again["calls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["call"].as_str().map(str::to_string))
            .collect();
        reread = (
            calls.len(),
            calls.iter().filter(|c| !c.starts_with("Describe")).count(),
        );
        claim(&g("primary"), &g("primary_eni"), &g("secondary"))?;
        let (ms, n) = cli_sequence()?;
        cw.push(ms);
        creq = n;
    }
    let row = |md: &mut String, tool: &str, v: &mut [f64], req: usize| -> anyhow::Result<f64> {
        let n = v.len();
        let m = median(v);
        writeln!(
            md,
            "| {tables} | {tool} | {n} | {m:.1} ms | {:.1} ms | {:.1} ms | {req} |",
            pct(v, 0.9),
            v.iter().copied().fold(f64::MIN, f64::max)
        )?;
        Ok(m)
    };
    let f = row(md, "fip-claim (one run)", &mut fw, freq)?;
    let c = row(md, "AWS CLI sequence", &mut cw, creq)?;
    Ok(format!(
        "{tables} route table(s): AWS CLI / fip-claim **{:.0}x**; fip-claim {freq} requests (reads first, one DescribeRouteTables page per 100 tables, a read-back at the end), the AWS CLI {creq} (one process each, no reads, no verification); a converged re-run of fip-claim made {} requests, {} of them writes.",
        c / f,
        reread.0,
        reread.1
    ))
}
