//! Statistics and timing helpers every family shares.

use super::*;

pub(crate) fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

pub(crate) fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Writes one `| label | n | median | p90 | max |` row (milliseconds); returns the median.
pub(crate) fn latency_row(md: &mut String, label: &str, v: &mut [f64]) -> anyhow::Result<f64> {
    let m = median(v);
    writeln!(
        md,
        "| {label} | {} | {m:.3} ms | {:.3} ms | {:.3} ms |",
        v.len(),
        pct(v, 0.9),
        pct(v, 1.0)
    )?;
    Ok(m)
}

pub(crate) fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub(crate) fn children_cpu_ms() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| {
            tv.tv_sec() as f64 * 1000.0 + tv.tv_usec() as f64 / 1000.0
        };
        t(u.user_time()) + t(u.system_time())
    })
}

/// One tool invocation inside namespace `a`: (start time, exit ok).
pub(crate) fn timed_spawn(ns: &hakit_lab::Ns, argv: &[String]) -> anyhow::Result<f64> {
    let argv = argv.to_vec();
    ns.within(move || {
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let t0 = now_unix();
        let status = c.status().with_context(|| format!("run {}", argv[0]))?;
        if !status.success() {
            bail!("{argv:?} failed: {status}");
        }
        Ok(t0)
    })
}
