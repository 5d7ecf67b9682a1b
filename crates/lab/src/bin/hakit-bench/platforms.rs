//! Each cloud example in its provider's network model (`hakit-bench --only platforms`):
//! the AWS example in the VPC model (EC2 as moto), the Hetzner example on the Cloud
//! Network model (hakit's fake API, actions finished at once), side by side.

use super::*;
use hakit_lab::example::{blackout, Modelled};

pub(crate) const PLATFORM_ROUNDS: usize = 5;

/// One failover: the blackout (ms) and the seconds until the provider pointed at the new
/// MASTER (None: not within 30 s).
type Failover = (f64, Option<f64>);

/// One round on a fresh lab: a graceful failover a -> b (keepalived stopped on a), a back
/// as BACKUP, then a crash of b (every process killed, links down) -> a.
fn round(m: &mut dyn Modelled, k: usize) -> anyhow::Result<[Failover; 2]> {
    hakit_lab::wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        m.points_at(0)
    })
    .context("a never became the provider's target")?;
    thread::sleep(Duration::from_millis(1500));
    let graceful = blackout(m, &format!("g{k}"), 1, |m| {
        m.pair().nodes[0].keepalived.stop();
        Ok(())
    })?;
    let conf = std::fs::read_to_string(&m.pair().nodes[0].keepalived.conf)?;
    let ns = m.pair().nodes[0].ns.clone();
    let ka = hakit_lab::keepalived::start_with(&mut m.pair_mut().lab, &ns, "a2", &conf, true)?;
    ka.wait_ready(Duration::from_secs(10))?;
    thread::sleep(Duration::from_millis(3000));
    let crash = blackout(m, &format!("c{k}"), 0, |m| m.pair_mut().crash(1))?;
    Ok([graceful, crash])
}

pub(crate) fn platforms(md: &mut String, static_dir: &Path) -> anyhow::Result<()> {
    writeln!(md, "## The cloud examples in their providers' network models (`hakit-bench --only platforms`)\n")?;
    writeln!(md, "Method: each example rendered by `hakit-setup` from one values file, run in its provider's network model (`crates/lab/src/vpc/mod.rs`, `crates/lab/src/hcloud.rs`, `crates/lab/src/digitalocean.rs`: each rule cited from the provider's documentation there), {PLATFORM_ROUNDS} rounds per platform on a fresh lab each, alternating platforms: a graceful failover (keepalived stopped on the MASTER), the node back as BACKUP, then a crash of the new MASTER (every process killed, its links down). Blackout: the longest silence of a UDP echo every 1 ms from the LAN client through the pair to a server beyond the provider's edge. Provider: event to the provider's state, as the model applies it, pointing at the new MASTER. API latency: AWS's is moto's own (a Python server on this machine, tens of ms per call, several calls per claim); Hetzner's and DigitalOcean's are modelled as zero (actions finish at once). Medians, worst in brackets. *flow lost*: the echo's flow never answered again: on DigitalOcean an established flow keeps the anchor IP of the droplet that opened it and cannot move (the example's README), so there the provider column, when the anchor gateway translates for the new MASTER, is when new flows pass.\n")?;
    let mut rows: Vec<(&str, Vec<[Failover; 2]>)> = vec![
        ("AWS (VPC model, EC2 as moto)", Vec::new()),
        ("Hetzner (Cloud Network model)", Vec::new()),
        ("DigitalOcean (anchor gateway model)", Vec::new()),
    ];
    for k in 0..PLATFORM_ROUNDS {
        {
            let mut v =
                hakit_lab::vpc::Vpc::up(static_dir, static_dir, hakit_lab::vpc::PAIR_VALUES)?;
            rows[0].1.push(round(&mut v, k)?);
        }
        {
            let mut h = hakit_lab::hcloud::HCloud::up(
                static_dir,
                static_dir,
                hakit_lab::hcloud::PAIR_VALUES,
            )?;
            rows[1].1.push(round(&mut h, k)?);
        }
        {
            let mut d = hakit_lab::digitalocean::DoCloud::up(
                static_dir,
                static_dir,
                hakit_lab::digitalocean::PAIR_VALUES,
            )?;
            rows[2].1.push(round(&mut d, k)?);
        }
    }
    writeln!(md, "| platform | graceful: blackout | graceful: provider | crash: blackout | crash: provider |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    for (name, runs) in &rows {
        let col = |i: usize, f: &dyn Fn(&Failover) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(|r| f(&r[i])).collect();
            let worst = v.iter().cloned().fold(0.0, f64::max);
            let shown = |x: f64| {
                if x.is_finite() {
                    format!("{x:.0}")
                } else {
                    "flow lost".to_string()
                }
            };
            let med = median(&mut v);
            if med.is_finite() {
                format!("{} ms ({})", shown(med), shown(worst))
            } else {
                format!("{} ({})", shown(med), shown(worst))
            }
        };
        let ms = |r: &Failover| r.1.map_or(f64::INFINITY, |s| s * 1000.0);
        writeln!(
            md,
            "| {name} | {} | {} | {} | {} |",
            col(0, &|r| r.0),
            col(0, &ms),
            col(1, &|r| r.0),
            col(1, &ms)
        )?;
    }
    writeln!(md)?;
    Ok(())
}
