//! A shipped example, rendered by `hakit-setup` from one values file as its README says,
//! running on a pair of lab nodes: what the provider network models (`vpc`, `hcloud`, `digitalocean`)
//! share. Only what a host keeps in /run, /etc and /usr/sbin moves into the lab, and the
//! provider's endpoints are added.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::{Lab, Ns};

/// One gateway instance.
pub struct Node {
    pub ns: Ns,
    pub role: &'static str,
    pub instance: String,
    pub config: PathBuf,
    pub keepalived: crate::keepalived::Keepalived,
    pub pids: Vec<u32>,
}

/// The pair with its LAN client and the server beyond the provider's edge.
pub struct Pair {
    pub lab: Lab,
    pub client: Ns,
    pub inet: Ns,
    pub nodes: Vec<Node>,
    pub syslog: crate::syslog::Syslog,
    pub traffic_bin: String,
    /// The server's address (`hakit-lab-traffic server`).
    pub server: &'static str,
}

/// A provider's network model with the pair in it.
pub trait Modelled {
    fn pair(&self) -> &Pair;
    fn pair_mut(&mut self) -> &mut Pair;
    /// Whether the provider (its API state, which the model follows) sends the floating
    /// address and the LAN's egress to node `i`.
    fn points_at(&self, i: usize) -> bool;
    /// What the model applied so far, one line each.
    fn applied(&self) -> Vec<String>;
    /// Whether a connection established through one node can go on through the other
    /// (not where the provider translates each node's own address, as DigitalOcean does).
    fn keeps_established(&self) -> bool {
        true
    }
}

impl Pair {
    /// Starts the LAN client's traffic (`hakit-lab-traffic client` flags).
    pub fn traffic(
        &mut self,
        tag: &str,
        flags: &[&str],
    ) -> anyhow::Result<(u32, PathBuf, PathBuf)> {
        let d = self.lab.dir().to_path_buf();
        let (stop, out) = (d.join(format!("{tag}.stop")), d.join(format!("{tag}.json")));
        let (s, o) = (
            stop.to_string_lossy().to_string(),
            out.to_string_lossy().to_string(),
        );
        let mut argv = vec![
            self.traffic_bin.as_str(),
            "client",
            self.server,
            "--stop-file",
            &s,
            "--out",
            &o,
        ];
        argv.extend_from_slice(flags);
        let pid = self
            .lab
            .spawn(&self.client.clone(), &format!("traffic-{tag}"), &argv)?;
        Ok((pid, stop, out))
    }

    /// Stops a traffic client and reads its report.
    pub fn stop_traffic(&mut self, t: (u32, PathBuf, PathBuf)) -> anyhow::Result<Value> {
        fs::write(&t.1, "")?;
        let done = crate::wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
            t.2.exists()
        });
        self.lab.signal_and_wait(
            t.0,
            nix::sys::signal::Signal::SIGKILL,
            Duration::from_secs(1),
        );
        done.context("traffic client wrote no report")?;
        Ok(serde_json::from_slice(&fs::read(&t.2)?)?)
    }

    /// The source addresses the server sees on its established TCP connections (`ss`).
    pub fn server_peers(&self) -> anyhow::Result<Vec<String>> {
        let out = self.inet.exec(&["ss", "-Htn", "state", "established"])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3))
            .filter_map(|peer| peer.rsplit_once(':').map(|(a, _)| a.to_string()))
            .collect())
    }

    /// A dead instance: keepalived, conntrackd and the monitor killed, its links down (the
    /// fabric delivers nothing to it any more).
    pub fn crash(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].keepalived.crash();
        for pid in self.nodes[i].pids.clone() {
            self.lab.signal_and_wait(
                pid,
                nix::sys::signal::Signal::SIGKILL,
                Duration::from_secs(2),
            );
        }
        for ifname in ["eth0", "eth1", "sync0"] {
            self.nodes[i].ns.ip(&["link", "set", ifname, "down"])?;
        }
        Ok(())
    }

    /// nat-notify status of node `i` (exit code, text).
    pub fn status(&self, i: usize, bin_dir: &Path) -> anyhow::Result<(i32, String)> {
        let n = &self.nodes[i];
        let nn = bin(bin_dir, "nat-notify")?;
        let out =
            n.ns.command(&[&nn, "--config", &n.config.to_string_lossy(), "status"])
                .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ))
    }
}

pub fn bin(dir: &Path, name: &str) -> anyhow::Result<String> {
    let p = dir.join(name);
    anyhow::ensure!(p.is_file(), "{} is not built", p.display());
    Ok(fs::canonicalize(&p)?.to_string_lossy().to_string())
}

/// Renders node `role`'s files with `hakit-setup --root` (the README's step), moves what a
/// host keeps in /run, /etc and /usr/sbin into the lab, and starts conntrackd, the monitor
/// and keepalived as their units would.
#[allow(clippy::too_many_arguments)]
pub fn render_and_start(
    lab: &mut Lab,
    bin_dir: &Path,
    ns: &Ns,
    role: &'static str,
    values: &Path,
    fip: &str,
    wan_gw: &str,
    paths: &[(&str, &str)],
    syslog: &crate::syslog::Syslog,
) -> anyhow::Result<Node> {
    let d = lab.dir().to_path_buf();
    let root = d.join(format!("{role}-root"));
    let out = std::process::Command::new("scripts/hakit-setup")
        .args(["--node", role, "--root"])
        .arg(&root)
        .arg(values)
        .output()
        .context("scripts/hakit-setup (run from the source tree)")?;
    anyhow::ensure!(
        out.status.success(),
        "hakit-setup --node {role}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = d.join(format!("{role}-run"));
    lab.tmpfs(&run)?;
    for sub in ["keepalived", "conntrackd", "hakit-monitor"] {
        fs::create_dir_all(run.join(sub))?;
    }
    let textfiles = d.join(format!("{role}-textfiles"));
    fs::create_dir_all(&textfiles)?;
    let config = root.join("etc/hakit/hakit.toml");
    let ctd = root.join("etc/conntrackd/conntrackd.conf");
    let ka_pid = d.join(format!("{role}.keepalived.pid"));
    let bins = fs::canonicalize(bin_dir)?;
    let host_paths = |text: &str| -> String {
        let text = paths
            .iter()
            .fold(text.to_string(), |t, (from, to)| t.replace(from, to));
        text.replace("/usr/sbin/", &format!("{}/", bins.display()))
            .replace("/etc/hakit/hakit.toml", &config.to_string_lossy())
            .replace("/etc/conntrackd/conntrackd.conf", &ctd.to_string_lossy())
            .replace(
                "/var/lib/prometheus/node-exporter",
                &textfiles.to_string_lossy(),
            )
            .replace("/run/", &format!("{}/", run.display()))
    };
    // What differs from a host: the lab's runtime and syslog paths, and where EC2 and IMDS
    // are (an interface endpoint and the model's metadata service).
    let toml = host_paths(&fs::read_to_string(&config)?)
        .replacen(
            "[general]\n",
            &format!(
                "[general]\nruntime_dir = \"{}\"\nsyslog_socket = \"{}\"\n",
                run.display(),
                syslog.path.display()
            ),
            1,
        )
        .replacen("[fip]\n", &format!("[fip]\n{fip}"), 1)
        .replacen(
            "[check.peer]\n",
            &format!(
                "[check.peer]\nkeepalived_pid_file = \"{}\"\n",
                ka_pid.display()
            ),
            1,
        );
    fs::write(&config, toml)?;
    fs::write(&ctd, host_paths(&fs::read_to_string(&ctd)?))?;
    let ka_conf = host_paths(&fs::read_to_string(
        root.join("etc/keepalived/keepalived.conf"),
    )?);

    let sysctl: String = fs::read_to_string(root.join("etc/sysctl.d/90-hakit.conf"))?
        .lines()
        .filter(|l| !l.contains("nf_conntrack_max"))
        .collect::<Vec<_>>()
        .join("\n");
    let sysctl_path = d.join(format!("{role}.sysctl.conf"));
    fs::write(&sysctl_path, sysctl)?;
    crate::run_ok(&mut ns.command(&["sysctl", "-q", "-p", &sysctl_path.to_string_lossy()]))?;
    ns.ip(&["route", "add", "default", "via", wan_gw])?;
    crate::run_ok(&mut ns.command(&[
        "nft",
        "-f",
        &root.join("etc/nftables.conf").to_string_lossy(),
    ]))?;

    let mut pids = Vec::new();
    let c = ctd.to_string_lossy().to_string();
    pids.push(lab.spawn(ns, &format!("{role}.conntrackd"), &["conntrackd", "-C", &c])?);
    crate::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        ns.command(&["conntrackd", "-C", &c, "-s"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
    .with_context(|| format!("conntrackd on {role} did not answer"))?;
    let ha_check = bin(bin_dir, "ha-check")?;
    let cfg = config.to_string_lossy().to_string();
    pids.push(lab.spawn(
        ns,
        &format!("{role}.monitor"),
        &[&ha_check, "--config", &cfg, "monitor"],
    )?);
    let keepalived = crate::keepalived::start_with(lab, ns, role, &ka_conf, true)?;
    keepalived.wait_ready(Duration::from_secs(10))?;
    Ok(Node {
        ns: ns.clone(),
        role,
        instance: String::new(),
        config,
        keepalived,
        pids,
    })
}

/// A provider's REST API and metadata service: `hakit-fake-cloud` serving `provider` on
/// `api`:8080 in `inet`, its owner published in the lab's `cloud/owner` and every request
/// logged to `cloud-requests.log` (what the models follow and report). `args`: the
/// provider's own flags. Returns once the fake published its first owner.
pub struct FakeCloud {
    pub control: PathBuf,
    pub log: PathBuf,
}

impl FakeCloud {
    pub fn start(
        lab: &mut Lab,
        inet: &Ns,
        fake: &str,
        provider: &str,
        api: &str,
        args: &[&str],
    ) -> anyhow::Result<FakeCloud> {
        let d = lab.dir().to_path_buf();
        let control = d.join("cloud");
        fs::create_dir_all(&control)?;
        let log = d.join("cloud-requests.log");
        let (c, l, listen) = (
            control.to_string_lossy().to_string(),
            log.to_string_lossy().to_string(),
            format!("{api}:8080"),
        );
        let mut argv = vec![fake, &listen, "--provider", provider, "--instant"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--control-dir", &c, "--log", &l]);
        lab.spawn(inet, "cloud", &argv)?;
        crate::wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
            control.join("owner").exists()
        })
        .with_context(|| format!("the fake {provider} API did not start"))?;
        Ok(FakeCloud { control, log })
    }

    /// Whether the provider's API state says node `i` (ID `i + 1`) holds the address.
    pub fn owner_is(&self, i: usize) -> bool {
        let owner = fs::read_to_string(self.control.join("owner")).unwrap_or_default();
        owner.trim() == (i + 1).to_string()
    }

    /// The changes the API was asked for, one line each.
    pub fn posts(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("POST"))
            .map(str::to_string)
            .collect()
    }

    /// Renders and starts both nodes from `values` (the example's token file at
    /// `token_path`, e.g. `/etc/hakit/do.token`, pointed at a lab copy), with fip-claim
    /// talking to this fake at `api`'s `/{version}`.
    #[allow(clippy::too_many_arguments)]
    pub fn render_pair(
        &self,
        lab: &mut Lab,
        bin_dir: &Path,
        nodes: [&Ns; 2],
        values: &str,
        token_path: &str,
        api: &str,
        version: &str,
        wan_gw: &str,
    ) -> anyhow::Result<(Vec<Node>, crate::syslog::Syslog)> {
        let d = lab.dir().to_path_buf();
        let syslog = crate::syslog::Syslog::listen(&d.join("syslog.sock"))?;
        let values_path = d.join("pair.values");
        fs::write(&values_path, values)?;
        let token = d.join("provider.token");
        fs::write(&token, "fake-token\n")?;
        fs::set_permissions(
            &token,
            <fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
        )?;
        let token_s = token.to_string_lossy().to_string();
        let fip = format!(
            "endpoint_url = \"http://{api}:8080/{version}\"\nmetadata_url = \"http://{api}:8080\"\n"
        );
        let mut out = Vec::new();
        for (ns, role) in [(nodes[0], "a"), (nodes[1], "b")] {
            out.push(render_and_start(
                lab,
                bin_dir,
                ns,
                role,
                &values_path,
                &fip,
                wan_gw,
                &[(token_path, &token_s)],
                &syslog,
            )?);
        }
        Ok((out, syslog))
    }
}

/// `nft -f -` in `ns` with `text` on its standard input.
pub fn nft_stdin(ns: &Ns, text: &str) -> anyhow::Result<()> {
    let mut child = ns
        .command(&["nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("nft stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft -f - in {}: {}",
            ns.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// One failover measured at the LAN client: a UDP echo every 1 ms through the pair while
/// `event` runs; returns the probe's longest silence (ms; infinite when the flow never
/// answered again: where a provider translates per node, an established flow cannot move)
/// and the seconds until the provider's state (as the model follows it) pointed at node
/// `to` (None: not within 30 s).
pub fn blackout(
    m: &mut dyn Modelled,
    tag: &str,
    to: usize,
    event: impl FnOnce(&mut dyn Modelled) -> anyhow::Result<()>,
) -> anyhow::Result<(f64, Option<f64>)> {
    let t = m.pair_mut().traffic(tag, &["--udp-ms", "1"])?;
    std::thread::sleep(Duration::from_millis(500));
    let t0 = std::time::Instant::now();
    event(m)?;
    let moved = crate::wait_until(Duration::from_secs(30), Duration::from_millis(10), || {
        m.points_at(to)
    })
    .map(|_| t0.elapsed().as_secs_f64());
    let after = Duration::from_millis(1000);
    std::thread::sleep(after);
    let r = m.pair_mut().stop_traffic(t)?;
    let u = &r["udp_1ms"];
    // Nine tenths of the time after the move went unanswered: the flow is gone, not slow.
    let unanswered_ms =
        u["tail_lost"].as_u64().unwrap_or(0) as f64 * u["interval_ms"].as_f64().unwrap_or(1.0);
    let gone = unanswered_ms >= 0.9 * after.as_secs_f64() * 1000.0;
    let silence = if gone {
        f64::INFINITY
    } else {
        u["blackout_ms"].as_f64().unwrap_or(f64::INFINITY)
    };
    Ok((silence, moved))
}
