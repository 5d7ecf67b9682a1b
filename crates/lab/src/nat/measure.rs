//! What a failover cost: traffic through the pair during an event, and the measurement
//! model (convergence time, the longest silence, losses, the TCP stream's integrity, when
//! each address moved).

use std::time::Duration;

use anyhow::Context;

use super::*;

/// One failover measured by [`NatLab::measure`].
pub struct Measured {
    /// When the event started (Unix seconds).
    pub t_event: f64,
    /// Milliseconds from the event until everything agreed on the new MASTER (polled every
    /// 5 ms), or what was still missing at the timeout.
    pub converged: Result<f64, String>,
    /// The traffic client's report (`udp_<N>ms`, `tcp`).
    pub report: serde_json::Value,
    /// Address changes on both nodes, in time order: (Unix seconds, "VIP up on b").
    pub moves: Vec<(f64, String)>,
    /// The server's TCP retransmissions during the run.
    pub retrans: u64,
}

impl Measured {
    fn probe(&self) -> &serde_json::Value {
        &self.report["udp_1ms"]
    }

    pub fn converged_ms(&self) -> Option<f64> {
        self.converged.as_ref().ok().copied()
    }

    /// The 1 ms probe's longest silence beyond its interval.
    pub fn blackout_ms(&self) -> f64 {
        self.probe()["blackout_ms"]
            .as_f64()
            .unwrap_or(f64::INFINITY)
    }

    pub fn lost(&self) -> u64 {
        self.probe()["lost"].as_u64().unwrap_or(u64::MAX)
    }

    pub fn sent(&self) -> u64 {
        self.probe()["sent"].as_u64().unwrap_or(0)
    }

    /// The TCP stream is the same connection at the end and was byte-exact throughout.
    pub fn tcp_ok(&self) -> bool {
        let t = &self.report["tcp"];
        t["alive_at_end"] == true && t["first_mismatch_offset"].is_null()
    }

    /// When `what` (e.g. "VIP up on b") first happened after the event.
    pub fn first(&self, what: &str) -> Option<f64> {
        self.moves
            .iter()
            .find(|(t, m)| *t >= self.t_event && m == what)
            .map(|(t, _)| *t)
    }
}

/// A running traffic client; [`NatLab::stop_traffic`] returns its report.
pub struct Traffic {
    pid: u32,
    stop: PathBuf,
    out: PathBuf,
}

impl NatLab {
    /// Starts a traffic client on the LAN client (see `hakit-lab-traffic`).
    pub fn traffic(&mut self, tag: &str, flags: &[&str]) -> anyhow::Result<Traffic> {
        let ns = self.client.clone();
        self.traffic_from(&ns, tag, flags)
    }

    /// [`NatLab::traffic`] from the client in `ns`.
    pub fn traffic_from(&mut self, ns: &Ns, tag: &str, flags: &[&str]) -> anyhow::Result<Traffic> {
        let traffic = bin(&self.opts.lab_bin_dir, "hakit-lab-traffic")?;
        let d = self.lab.dir().to_path_buf();
        let stop = d.join(format!("{tag}.stop"));
        let out = d.join(format!("{tag}.json"));
        let _ = fs::remove_file(&stop);
        let _ = fs::remove_file(&out);
        let (s, o) = (
            stop.to_string_lossy().to_string(),
            out.to_string_lossy().to_string(),
        );
        let mut argv = vec![
            traffic.as_str(),
            "client",
            SERVER,
            "--stop-file",
            &s,
            "--out",
            &o,
        ];
        argv.extend_from_slice(flags);
        let pid = self.lab.spawn(ns, &format!("traffic-{tag}"), &argv)?;
        Ok(Traffic { pid, stop, out })
    }

    /// Stops a traffic client and reads its report.
    pub fn stop_traffic(&mut self, t: Traffic) -> anyhow::Result<serde_json::Value> {
        fs::write(&t.stop, "")?;
        let done = wait_until(Duration::from_secs(10), Duration::from_millis(10), || {
            t.out.exists()
        });
        self.lab
            .signal_and_wait(t.pid, Signal::SIGKILL, Duration::from_secs(1));
        done.context("traffic client wrote no report")?;
        Ok(serde_json::from_slice(&fs::read(&t.out)?)?)
    }

    /// Runs `event` while the LAN client sends traffic (`hakit-lab-traffic client` flags,
    /// e.g. `--udp-ms 1` for a 1 ms probe), and measures it: waits (at most `timeout`) for
    /// node `to` to be the converged MASTER (with `peer_alive` false the other node is not
    /// looked at), records every address change on both nodes, and the server's TCP
    /// retransmissions. The shared core of `make demo`, `make chaos` and the failover bench.
    pub fn measure(
        &mut self,
        tag: &str,
        flags: &[&str],
        to: usize,
        peer_alive: bool,
        timeout: Duration,
        event: impl FnOnce(&mut NatLab) -> anyhow::Result<()>,
    ) -> anyhow::Result<Measured> {
        let t = self.traffic(tag, flags)?;
        // Let the flows' conntrack entries reach the peer before anything moves.
        thread::sleep(Duration::from_millis(600));
        let retrans0 = self.server_retransmits();
        let watches: Vec<Watch> = self.nodes.iter().map(|n| Watch::start(&n.ns)).collect();
        thread::sleep(Duration::from_millis(20));
        let t_event = now_unix();
        let t0 = std::time::Instant::now();
        let converged = match event(self) {
            Ok(()) => self
                .wait_converged_peer(to, peer_alive, timeout)
                .map(|_| t0.elapsed().as_secs_f64() * 1000.0)
                .map_err(|e| format!("{e:#}")),
            Err(e) => Err(format!("the event failed: {e:#}")),
        };
        // Stragglers and the settled state after the move.
        thread::sleep(Duration::from_millis(500));
        let retrans = self.server_retransmits().saturating_sub(retrans0);
        let mut moves = Vec::new();
        for (w, n) in watches.into_iter().zip(&self.nodes) {
            for (t, what) in w.finish() {
                moves.push((t, format!("{what} on {}", n.role)));
            }
        }
        moves.sort_by(|a, b| a.0.total_cmp(&b.0));
        let report = self.stop_traffic(t)?;
        Ok(Measured {
            t_event,
            converged,
            report,
            moves,
            retrans,
        })
    }

    /// Total TCP retransmissions of the server's connections (from `ss -ti`).
    pub fn server_retransmits(&self) -> u64 {
        let out = self
            .inet
            .exec(&["ss", "-tin", "state", "established"])
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        out.split_whitespace()
            .filter_map(|w| w.strip_prefix("retrans:"))
            .filter_map(|r| r.split('/').nth(1)?.parse::<u64>().ok())
            .sum()
    }
}
