//! When the pair has converged: every party agrees on the MASTER (keepalived, the floating
//! IP, the provider's route or the BGP route server, conntrackd, nat-notify's status), and
//! waiting for it.

use std::time::Duration;

use anyhow::{bail, Context};

use super::*;

impl NatLab {
    /// Everything a MASTER must hold, for node `i`, and nothing on the other; `Err` says
    /// what is missing.
    pub fn converged(&self, i: usize) -> anyhow::Result<()> {
        self.converged_peer(i, true)
    }

    /// [`NatLab::converged`]; with `peer_alive` false the other node (crashed, its links
    /// down) is not looked at.
    pub fn converged_peer(&self, i: usize, peer_alive: bool) -> anyhow::Result<()> {
        if let Some(b) = self.opts.bgp {
            return self.converged_bgp(i, peer_alive, b);
        }
        let n = &self.nodes[i];
        let o = &self.nodes[1 - i];
        let mut missing = Vec::new();
        let vip: IpAddr = VIP.parse()?;
        let fip: IpAddr = FIP.parse()?;
        if !n.ns.has_addr("eth1", vip)? {
            missing.push(format!("VIP not on {}", n.role));
        }
        if !n.ns.has_addr("eth0", fip)? {
            missing.push(format!("FIP not on {}", n.role));
        }
        if peer_alive && o.ns.has_addr("eth1", vip).unwrap_or(false) {
            missing.push(format!("VIP still on {}", o.role));
        }
        if peer_alive && o.ns.has_addr("eth0", fip).unwrap_or(false) {
            missing.push(format!("FIP still on {}", o.role));
        }
        if self.opts.l2 {
            // The upstream's ARP entry, once it has one, names the MASTER's WAN MAC.
            let (seen, mac) = (self.fip_neighbour(), n.ns.mac("eth0").ok());
            if seen.is_some() && seen != mac {
                missing.push(format!("upstream has {FIP} at {seen:?}, not {mac:?}"));
            }
        } else {
            if self.owner() != Some(n.id) {
                missing.push(format!("provider owner {:?}", self.owner()));
            }
            if self.fip_route_via() != n.wan.parse().ok() {
                missing.push(format!("FIP routed via {:?}", self.fip_route_via()));
            }
        }
        if !self.opts.shell_hook {
            if !n.snat() {
                missing.push(format!("no SNAT rule on {}", n.role));
            }
            let r = n.recorded();
            if r["state"] != "MASTER" || r["converged"] != true || r["conntrackd"] != "primary" {
                missing.push(format!("{} recorded {r}", n.role));
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            bail!("{}", missing.join("; "))
        }
    }

    /// BGP mode: keepalived's VIP on `i` only, the route server routing the shared IP to
    /// `i`, its SNAT rule and recorded MASTER, and (hakit's in-place method) `i` announcing
    /// primary while the other does not.
    fn converged_bgp(&self, i: usize, peer_alive: bool, b: bgp::Opts) -> anyhow::Result<()> {
        let n = &self.nodes[i];
        let o = &self.nodes[1 - i];
        let mut missing = Vec::new();
        if !n.has_vip() {
            missing.push(format!("VIP not on {}", n.role));
        }
        if peer_alive && o.has_vip() {
            missing.push(format!("VIP still on {}", o.role));
        }
        let via = bgp::routed_via(&self.inet, FIP);
        if via.as_deref() != Some(n.wan6.as_str()) && via.as_deref() != Some(n.wan_ll.as_str()) {
            missing.push(format!(
                "route server routes {FIP} via {via:?}, not {} or {}",
                n.wan6, n.wan_ll
            ));
        }
        // The shared IPv6 ranges VI_1 moves follow the shared address.
        for r in self.moved6.iter().copied() {
            let via = bgp::routed_via(&self.inet, r);
            if via.as_deref() != Some(n.wan6.as_str()) && via.as_deref() != Some(n.wan_ll.as_str())
            {
                missing.push(format!(
                    "route server routes {r} via {via:?}, not {}",
                    n.role
                ));
            }
        }
        if !n.snat() {
            missing.push(format!("no SNAT rule on {}", n.role));
        }
        let r = n.recorded();
        if r["state"] != "MASTER" || r["converged"] != true || r["conntrackd"] != "primary" {
            missing.push(format!("{} recorded {r}", n.role));
        }
        if b.method == bgp::Method::InPlace {
            let mine = self.announced(i);
            if mine != "primary" {
                missing.push(format!("{} announces {mine}", n.role));
            }
            if peer_alive {
                let theirs = self.announced(1 - i);
                if theirs == "primary" {
                    missing.push(format!("{} announces {theirs}", o.role));
                }
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            bail!("{}", missing.join("; "))
        }
    }

    /// BGP mode: the role node `i`'s speaker announces the shared IP with.
    pub fn announced(&self, i: usize) -> String {
        let n = &self.nodes[i];
        match self.opts.bgp {
            Some(_) => bgp::role_name(
                n.daemon
                    .as_ref()
                    .and_then(|d| d.seen(&n.ns, &format!("{FIP}/32"))),
            ),
            None => "not in BGP mode".into(),
        }
    }

    /// Waits until node `i`'s speaker has a session established with the route server.
    pub fn wait_session(&self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        let n = &self.nodes[i];
        wait_until(timeout, Duration::from_millis(100), || {
            n.daemon
                .as_ref()
                .and_then(|d| d.sessions(&n.ns))
                .is_some_and(|s| s.iter().any(|s| s.established))
        })
        .map(|_| ())
        .with_context(|| {
            format!(
                "{}'s speaker has no established session after {timeout:?}",
                n.role
            )
        })
    }

    /// Waits until node `i` is the converged MASTER.
    pub fn wait_converged(&self, i: usize, timeout: Duration) -> anyhow::Result<Duration> {
        self.wait_converged_peer(i, true, timeout)
    }

    /// [`NatLab::wait_converged`], see [`NatLab::converged_peer`].
    pub fn wait_converged_peer(
        &self,
        i: usize,
        peer_alive: bool,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let mut last = String::new();
        wait_until(timeout, Duration::from_millis(5), || {
            match self.converged_peer(i, peer_alive) {
                Ok(()) => true,
                Err(e) => {
                    last = format!("{e:#}");
                    false
                }
            }
        })
        .with_context(|| {
            format!(
                "{} not the converged MASTER after {timeout:?}: {last}\n{}",
                self.nodes[i].role,
                self.nodes[i]
                    .keepalived
                    .as_ref()
                    .map_or(String::new(), |k| k.log_tail())
            )
        })
    }
}
