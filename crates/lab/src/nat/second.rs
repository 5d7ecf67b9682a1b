//! The active-active profile's second instance (`Opts::active_active`): VRRP instance
//! `VI_2` on the same LAN, in the opposite roles (b preferred), with its own VIP, floating
//! IP and LAN client, NATed by the half of the LAN it serves; conntrackd shared by both
//! instances, with its external cache and a short PurgeTimeout, so that a purge meant for
//! one instance and reaching the other's flows shows within seconds
//! (conntrack-tools' manual: "Active-Active setup", and conntrackd.conf's PurgeTimeout:
//! `-t` "schedules a flush of the table in N seconds").
//!
//! ```text
//!  client  198.51.100.50  (default via VIP  .1)   -> VI_1: a MASTER, SNAT .0/25   -> 203.0.113.10
//!  client2 198.51.100.150 (default via VIP2 .129) -> VI_2: b MASTER, SNAT .128/25 -> 203.0.113.11
//! ```

use super::*;

/// VI_2's LAN VIP, the default gateway of [`CLIENT2`].
pub const VIP2: &str = "198.51.100.129";
/// VI_2's floating IP, on-link on the WAN (found by the upstream's ARP).
pub const FIP2: &str = "203.0.113.11";
/// The LAN client of VI_2.
pub const CLIENT2: &str = "198.51.100.150";
/// conntrackd's PurgeTimeout in this profile (the default is 60 s).
pub const PURGE_TIMEOUT_S: u64 = 5;

/// VI_1's SNAT source in this profile: the half of the LAN it serves.
pub const LAN1: &str = "198.51.100.0/25";
const LAN2: &str = "198.51.100.128/25";

/// VI_2's client, in this profile.
pub(super) fn client(lab: &mut Lab, opts: &Opts) -> anyhow::Result<Option<Ns>> {
    opts.active_active.then(|| lab.ns("client2")).transpose()
}

/// Its address, and VIP2 its default gateway.
pub(super) fn client_addresses(c: &Ns) -> anyhow::Result<()> {
    c.ip(&["addr", "add", &format!("{CLIENT2}/24"), "dev", "eth0"])?;
    c.ip(&["route", "add", "default", "via", VIP2])
}

/// conntrackd's configuration as the options say: in this profile the external cache on
/// and a short purge; else the external cache as `external_cache` says.
pub(super) fn conntrackd_conf(opts: &Opts, c: String) -> String {
    if opts.active_active {
        c.replace(
            "DisableExternalCache on",
            &format!("DisableExternalCache off\n        PurgeTimeout {PURGE_TIMEOUT_S}"),
        )
    } else if opts.external_cache {
        c.replace("DisableExternalCache on", "DisableExternalCache off")
    } else {
        c
    }
}

/// A node's hakit.toml as the options say: in this profile VI_2's table follows VI_1's
/// (which NATs [`LAN1`], see `files::hakit_toml`).
pub(super) fn hakit_toml(opts: &Opts, toml: String, ctd: &Path) -> String {
    if !opts.active_active {
        return toml;
    }
    toml + &notify_instance(ctd)
}

/// VI_2's table in a node's hakit.toml (the same conntrackd as VI_1).
fn notify_instance(ctd: &Path) -> String {
    format!(
        r#"
[[notify.instance]]
name = "VI_2"
interface = "eth0"
vrrp_vips = ["{VIP2}"]
snat_source = "{LAN2}"
conntrackd_config = "{ctd}"
floating_ips = ["{FIP2}/32"]
garp_count = 2
garp_interval = "20ms"
"#,
        ctd = ctd.display()
    )
}

/// VI_2 in keepalived.conf: b preferred, and a track file (`VI2_HOLD` in the node's run
/// directory, 1: FAULT) that moves this instance alone.
pub(super) fn vrrp_instance(opts: &Opts, id: u64, run: &Path) -> String {
    let prio = if id == 1 { 100 } else { 150 };
    let down = opts
        .down_timer_adverts
        .map_or(String::new(), |n| format!("    down_timer_adverts {n}\n"));
    format!(
        "track_file vi2_hold {{\n    file {hold}\n    weight 0\n    init_file 0\n}}\n\
         vrrp_instance VI_2 {{\n    state BACKUP\n    interface eth1\n    virtual_router_id 52\n    \
         priority {prio}\n    advert_int {adv}\n    preempt_delay 1\n{down}    track_file {{\n        \
         vi2_hold\n    }}\n    virtual_ipaddress {{\n        {VIP2}/24 dev eth1\n    }}\n}}\n",
        hold = run.join(VI2_HOLD).display(),
        adv = opts.advert_int,
    )
}

/// The track file that holds VI_2 down on a node.
const VI2_HOLD: &str = "vi2-hold";

impl NatLab {
    /// The LAN client of VI_2 (active-active only).
    pub fn client2(&self) -> anyhow::Result<&Ns> {
        self.client2
            .as_ref()
            .context("no second instance: Opts::active_active")
    }

    /// Node `i` holds VI_2: its VIP on eth1 and its floating IP on eth0, the peer neither,
    /// and the upstream's ARP entry for the floating IP, once it has one (usable), names
    /// node `i` (nat-notify's gratuitous ARP updates an entry; it creates none).
    pub fn holds_second(&self, i: usize) -> anyhow::Result<bool> {
        let (n, o) = (&self.nodes[i], &self.nodes[1 - i]);
        let (vip, fip): (IpAddr, IpAddr) = (VIP2.parse()?, FIP2.parse()?);
        let mac = n.ns.mac("eth0")?;
        let seen = self
            .inet
            .neighbour(fip)?
            .filter(|e| !matches!(e.state.as_str(), "failed" | "incomplete"))
            .and_then(|e| e.mac);
        Ok(n.ns.has_addr("eth1", vip)?
            && n.ns.has_addr("eth0", fip)?
            && !o.ns.has_addr("eth1", vip)?
            && !o.ns.has_addr("eth0", fip)?
            && seen.is_none_or(|m| m == mac))
    }

    /// Waits until node `i` holds VI_2.
    pub fn wait_second(&self, i: usize, timeout: Duration) -> anyhow::Result<Duration> {
        wait_until(timeout, Duration::from_millis(5), || {
            self.holds_second(i).unwrap_or(false)
        })
        .with_context(|| format!("{} never held VI_2", self.nodes[i].role))
    }

    /// Holds VI_2 down on node `i` (its track file 1: FAULT) or lets it go (0).
    pub fn hold_second(&self, i: usize, down: bool) -> anyhow::Result<()> {
        let p = self.nodes[i].run.join(VI2_HOLD);
        fs::write(&p, if down { "1\n" } else { "0\n" })
            .with_context(|| format!("write {}", p.display()))
    }

    /// [`NatLab::traffic`] from VI_2's client.
    pub fn traffic_second(&mut self, tag: &str, flags: &[&str]) -> anyhow::Result<Traffic> {
        let ns = self.client2()?.clone();
        self.traffic_from(&ns, tag, flags)
    }
}
