//! Standing down when only the VRRP path is cut.
//!
//! keepalived has one heartbeat path. When only it is cut (a switch port, a rule that drops
//! IP protocol 112) while the nodes still reach each other, the BACKUP stops hearing
//! adverts and becomes MASTER too: both hold the LAN VIP and both send gratuitous ARP for
//! it, so the LAN's clients flip between two gateways. nat-notify already holds the
//! provider claim in that case ([`crate::peer`]); this module makes the newer MASTER give
//! the role back: the monitor writes 1 to the track file (FAULT, VIP removed) until the
//! peer's adverts arrive again.
//!
//! The monitor hears the peer's adverts itself (a raw socket beside keepalived's,
//! [`hakit_net::vrrp`], drained every report interval, from `[check.peer] vrrp_address`
//! only) and compares them with the
//! peer's reports over the sync link. A node stands down for an instance when all hold:
//! * it is MASTER of the instance (its own role, read as the reports read it);
//! * the peer's report is fresh (younger than `silent_after`) and says the peer is MASTER
//!   of it, in a role the peer read at least three advert intervals after the last advert
//!   heard from it: the peer was MASTER *after* its adverts stopped reaching this node, so
//!   it is alive and its adverts are lost on the way (a crashed keepalived is no MASTER in
//!   the peer's next read; a dead node sends no reports);
//! * the last advert heard was not a resignation (priority 0: a graceful stop);
//! * the peer has been MASTER longer, by more than [`MARGIN`]; within the margin, the node
//!   whose sync address is higher stands down (both nodes order the pair alike, so exactly
//!   one does).
//!
//! It stands again (writes 0: FAULT -> BACKUP) when an advert from the peer arrives (the
//! path is back), when the peer is no longer MASTER, or when its reports stop (a dead peer:
//! this node then takes over after keepalived's master-down interval).

use std::{
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant, SystemTime},
};

use log::{info, warn};

use crate::peer::{Seen, VRRP};

/// Within this, two MASTERs count as equally old and the sync addresses decide.
pub const MARGIN: Duration = Duration::from_millis(500);
/// The interval assumed before any advert is heard (keepalived's default `advert_int`).
const UNKNOWN_INTERVAL: Duration = Duration::from_secs(1);

/// The last advert heard from the peer: when, its announced interval, its priority.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Advert {
    pub at: Instant,
    pub interval: Duration,
    pub priority: u8,
}

/// The peer's adverts as the monitor's loop drains them (each placed at the time the
/// kernel received it), and what they say about the VRRP path.
pub struct Adverts {
    listener: hakit_net::vrrp::Listener,
    peer: Ipv4Addr,
    last: Option<Advert>,
    pub path: PathStats,
}

impl Adverts {
    /// Listens for the adverts `peer` sends.
    pub fn open(peer: Ipv4Addr) -> std::io::Result<Adverts> {
        Ok(Adverts {
            listener: hakit_net::vrrp::Listener::open()?,
            peer,
            last: None,
            path: PathStats::default(),
        })
    }

    /// The last advert heard from the peer, after reading what arrived since the last call.
    pub fn last(&mut self, now: Instant) -> std::io::Result<Option<Advert>> {
        let wall = SystemTime::now();
        while let Some((a, arrived)) = self.listener.try_next()? {
            if a.source != self.peer {
                continue;
            }
            let at = now
                .checked_sub(wall.duration_since(arrived).unwrap_or_default())
                .unwrap_or(now);
            let advert = Advert {
                at,
                interval: a.interval,
                priority: a.priority,
            };
            self.path.heard(self.last.as_ref(), &advert);
            self.last = Some(advert);
        }
        Ok(self.last)
    }
}

/// The VRRP path as the peer's adverts show it (what keepalived does not export without
/// root and signals): counters since the monitor started, gaps since the last [`take`].
///
/// [`take`]: PathStats::take
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathStats {
    /// Adverts heard from the peer.
    pub received: u64,
    /// Adverts that should have come and did not: for each gap longer than 1.5 announced
    /// intervals, the intervals it spans less one.
    pub missed: u64,
    /// Priority-0 adverts (the peer's keepalived resigning: a graceful stop).
    pub priority_zero: u64,
    /// The interval the peer announces.
    pub interval: Option<Duration>,
    /// The gaps between consecutive adverts since the last take.
    gaps: Vec<Duration>,
}

/// The gaps of one window: the longest and the 99th percentile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gaps {
    pub max: Duration,
    pub p99: Duration,
}

impl PathStats {
    /// One more advert, `prev` the one before.
    pub fn heard(&mut self, prev: Option<&Advert>, a: &Advert) {
        self.received += 1;
        if a.priority == 0 {
            self.priority_zero += 1;
        }
        self.interval = Some(a.interval);
        let Some(prev) = prev else { return };
        let gap = a.at.saturating_duration_since(prev.at);
        if self.gaps.len() < 100_000 {
            self.gaps.push(gap);
        }
        let iv = a.interval.as_secs_f64();
        if iv > 0.0 && gap.as_secs_f64() > 1.5 * iv {
            self.missed += (gap.as_secs_f64() / iv).round() as u64 - 1;
        }
    }

    /// The gaps since the last take (`None`: fewer than two adverts), and a new window.
    pub fn take(&mut self) -> Option<Gaps> {
        let mut g = std::mem::take(&mut self.gaps);
        if g.is_empty() {
            return None;
        }
        g.sort_unstable();
        let rank = (g.len() * 99).div_ceil(100).max(1) - 1;
        Some(Gaps {
            max: g[g.len() - 1],
            p99: g[rank],
        })
    }
}

/// The monitor's watch over the VRRP path: the adverts, the decision's parameters and
/// whether this node stands down now.
pub struct Watch {
    adverts: Adverts,
    params: Params,
    listening: Instant,
    pub standing: Option<Standing>,
}

impl Watch {
    /// Listens for the adverts of `cfg.vrrp_peer`; `None` without `[check.peer]`, without
    /// `vrrp_address`, or (said in the log) without a raw socket.
    pub fn open(cfg: Option<&crate::peer::PeerConfig>, every: Duration) -> Option<Watch> {
        let cfg = cfg?;
        let from = cfg.vrrp_peer?;
        match Adverts::open(from) {
            Ok(adverts) => {
                info!("VRRP adverts from {from}: heard beside keepalived");
                Some(Watch {
                    adverts,
                    params: Params::new(cfg.bind, cfg.address, cfg.silent_after, every),
                    listening: Instant::now(),
                    standing: None,
                })
            }
            Err(e) => {
                warn!("VRRP adverts from {from}: raw socket: {e}; a cut VRRP path leaves the LAN VIP on both nodes");
                None
            }
        }
    }

    /// What the textfile says of the VRRP path; the gaps' window starts again.
    pub fn report(&mut self) -> PathReport {
        let p = &mut self.adverts.path;
        PathReport {
            standing_down: self.standing.is_some(),
            listening: true,
            received: p.received,
            missed: p.missed,
            priority_zero: p.priority_zero,
            interval: p.interval,
            gaps: p.take(),
        }
    }

    /// Decides again ([`next`]); true when standing down began or ended (said in the log).
    pub fn update(
        &mut self,
        peer: Option<&Seen>,
        own: &mut dyn FnMut() -> Vec<(String, Option<Instant>)>,
        now: Instant,
    ) -> bool {
        let advert = self.adverts.last(now).unwrap_or_else(|e| {
            warn!("VRRP adverts: {e}");
            None
        });
        let was = self.standing.is_some();
        let s = next(
            self.standing.as_ref(),
            own,
            peer,
            advert,
            self.listening,
            &self.params,
            now,
        );
        match s {
            Split::Stand(st) => {
                if !was {
                    warn!("{}", st.why);
                }
                self.standing = Some(st);
            }
            Split::Clear(why) => {
                if was {
                    info!("standing again: {why}");
                }
                self.standing = None;
            }
        }
        was != self.standing.is_some()
    }
}

/// The VRRP path for the textfile: standing down, and (while listening) the adverts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathReport {
    pub standing_down: bool,
    /// Adverts are listened for (`[check.peer] vrrp_address`): the rest means something.
    pub listening: bool,
    pub received: u64,
    pub missed: u64,
    pub priority_zero: u64,
    pub interval: Option<Duration>,
    pub gaps: Option<Gaps>,
}

/// The path's report, or that nothing listens.
pub fn report(w: Option<&mut Watch>) -> PathReport {
    w.map(Watch::report).unwrap_or_default()
}

/// This node standing down for an instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    pub instance: String,
    pub since: Instant,
    pub why: String,
}

/// What the monitor should do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Split {
    /// Stand down (track file 1), or keep standing down.
    Stand(Standing),
    /// Not standing down; the text says why a standing down ended (empty otherwise).
    Clear(String),
}

/// What [`next`] reads besides the two nodes' roles.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub silent_after: Duration,
    /// The monitor's report interval (no advert interval counts as shorter).
    pub every: Duration,
    /// This node's sync address is the higher: it stands down when the two MASTERs are
    /// equally old.
    pub tie_yields: bool,
}

impl Params {
    pub fn new(bind: IpAddr, address: IpAddr, silent_after: Duration, every: Duration) -> Params {
        Params {
            silent_after,
            every,
            tie_yields: bind > address,
        }
    }
}

/// The next state: `standing` the current one, `own` this node's roles (instance, MASTER
/// since), `peer` the peer's latest report, `advert` the last advert heard from it,
/// `listening` when the listener started.
pub fn next(
    standing: Option<&Standing>,
    own: &mut dyn FnMut() -> Vec<(String, Option<Instant>)>,
    peer: Option<&Seen>,
    advert: Option<Advert>,
    listening: Instant,
    p: &Params,
    now: Instant,
) -> Split {
    let fresh = peer.filter(|s| now.saturating_duration_since(s.at) < p.silent_after);
    if let Some(st) = standing {
        let master = fresh
            .and_then(|s| s.probe(&format!("{VRRP}{}", st.instance)))
            .is_some_and(|r| r.up == Some(true));
        return if fresh.is_none() {
            Split::Clear("the peer's reports stopped: it may be dead".into())
        } else if !master {
            Split::Clear(format!("the peer is no longer MASTER of {}", st.instance))
        } else if advert.is_some_and(|a| a.at > st.since) {
            Split::Clear("the peer's adverts arrive again: the VRRP path is back".into())
        } else {
            Split::Stand(st.clone())
        };
    }
    if advert.is_some_and(|a| a.priority == 0) {
        // The peer resigned (keepalived stopped): its MASTER report is on its way out.
        return Split::Clear(String::new());
    }
    let last = advert.map_or(listening, |a| a.at);
    let interval = advert.map_or(UNKNOWN_INTERVAL, |a| a.interval).max(p.every);
    let threshold = interval * 3;
    let Some(seen) = fresh else {
        return Split::Clear(String::new());
    };
    // The peer's MASTER roles, read after its adverts had been missing for `threshold`.
    let cut: Vec<(&str, Option<Instant>)> = seen
        .report
        .probes
        .iter()
        .filter(|r| r.up == Some(true))
        .filter(|r| {
            seen.ago(r.last_ok_ms)
                .is_some_and(|read| read >= last + threshold)
        })
        .filter_map(|r| Some((r.name.strip_prefix(VRRP)?, seen.ago(r.ok_for_ms))))
        .collect();
    if cut.is_empty() {
        return Split::Clear(String::new());
    }
    let own = own();
    for (inst, theirs) in cut {
        let Some((_, Some(mine))) = own.iter().find(|(i, _)| i == inst) else {
            continue;
        };
        let yields = match theirs {
            Some(t) if t + MARGIN < *mine => true,
            Some(t) if *mine + MARGIN < t => false,
            _ => p.tie_yields,
        };
        if yields {
            let ms = |d: Duration| d.as_millis();
            return Split::Stand(Standing {
                instance: inst.to_string(),
                since: now,
                why: format!(
                    "the VRRP path is cut: no advert from the peer for {} ms, yet it reports MASTER of {inst} over the sync link (for {} ms; this node for {} ms): standing down until its adverts return",
                    ms(now.saturating_duration_since(last)),
                    theirs.map_or(0, |t| ms(now.saturating_duration_since(t))),
                    ms(now.saturating_duration_since(*mine)),
                ),
            });
        }
    }
    Split::Clear(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::{ProbeReport, Report};

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// The peer's report, received at `at`: MASTER of VI_1 for `master_ms` (None: not
    /// MASTER), its roles read `read_ms` before sending.
    fn seen(at: Instant, master_ms: Option<u64>, read_ms: u64) -> Seen {
        Seen {
            at,
            report: Report {
                seq: 1,
                healthy: Some(true),
                probes: vec![ProbeReport {
                    name: format!("{VRRP}VI_1"),
                    up: Some(master_ms.is_some()),
                    ok_for_ms: master_ms,
                    last_ok_ms: Some(read_ms),
                }],
            },
        }
    }

    fn own(since: Option<Instant>) -> Vec<(String, Option<Instant>)> {
        vec![("VI_1".to_string(), since)]
    }

    fn params(tie_yields: bool) -> Params {
        Params {
            silent_after: MS(250),
            every: MS(20),
            tie_yields,
        }
    }

    fn advert(at: Instant, priority: u8) -> Option<Advert> {
        Some(Advert {
            at,
            interval: MS(40),
            priority,
        })
    }

    /// The cut: the last advert at t0, this node MASTER since t0 + 150 ms, the peer MASTER
    /// for minutes; at t0 + 200 ms its report (roles read 10 ms before) arrives.
    #[test]
    fn the_newer_master_stands_down_when_only_adverts_are_missing() {
        let t0 = Instant::now();
        let now = t0 + MS(200);
        let peer = seen(now, Some(600_000), 10);
        let s = next(
            None,
            &mut || own(Some(t0 + MS(150))),
            Some(&peer),
            advert(t0, 100),
            t0,
            &params(false),
            now,
        );
        let Split::Stand(st) = s else { panic!("{s:?}") };
        assert_eq!(st.instance, "VI_1");
        assert!(
            st.why.contains("no advert from the peer for 200 ms"),
            "{}",
            st.why
        );
        // The older MASTER keeps the role, whatever the address order says.
        let s = next(
            None,
            &mut || own(Some(t0 - MS(600_000))),
            Some(&seen(now, Some(50), 10)),
            advert(t0, 100),
            t0,
            &params(true),
            now,
        );
        assert_eq!(s, Split::Clear(String::new()));
    }

    #[test]
    fn a_crash_or_a_resignation_is_not_a_cut() {
        let t0 = Instant::now();
        let now = t0 + MS(200);
        let mut mine = || own(Some(t0 + MS(150)));
        let p = params(true);
        // The peer's role was read before its adverts had been missing for 3 intervals:
        // it may have crashed since (its next read says so).
        let early = seen(now, Some(600_000), 100);
        assert_eq!(
            next(None, &mut mine, Some(&early), advert(t0, 100), t0, &p, now),
            Split::Clear(String::new())
        );
        // Its last advert said priority 0: it stopped gracefully.
        let late = seen(now, Some(600_000), 10);
        assert_eq!(
            next(None, &mut mine, Some(&late), advert(t0, 0), t0, &p, now),
            Split::Clear(String::new())
        );
        // Adverts still arrive (two MASTERs for an advert, as VRRP settles them itself).
        assert_eq!(
            next(
                None,
                &mut mine,
                Some(&late),
                advert(now - MS(30), 100),
                t0,
                &p,
                now
            ),
            Split::Clear(String::new())
        );
        // A stale report (the peer died with the path), or none.
        let old = seen(now - MS(300), Some(600_000), 10);
        assert_eq!(
            next(None, &mut mine, Some(&old), advert(t0, 100), t0, &p, now),
            Split::Clear(String::new())
        );
        assert_eq!(
            next(None, &mut mine, None, advert(t0, 100), t0, &p, now),
            Split::Clear(String::new())
        );
        // This node is not MASTER, or the peer is not.
        assert_eq!(
            next(
                None,
                &mut || own(None),
                Some(&late),
                advert(t0, 100),
                t0,
                &p,
                now
            ),
            Split::Clear(String::new())
        );
        let backup = seen(now, None, 10);
        assert_eq!(
            next(None, &mut mine, Some(&backup), advert(t0, 100), t0, &p, now),
            Split::Clear(String::new())
        );
    }

    #[test]
    fn equally_old_masters_are_ordered_by_sync_address_alike_on_both_nodes() {
        let t0 = Instant::now();
        let now = t0 + MS(3_500);
        // Both became MASTER about together, 300 ms apart (a cut at start): without an
        // advert ever heard, the interval is taken as 1 s, so 3 s of silence.
        let peer = seen(now, Some(3_000), 10);
        let mut mine = || own(Some(now - MS(3_300)));
        let higher = next(None, &mut mine, Some(&peer), None, t0, &params(true), now);
        let lower = next(None, &mut mine, Some(&peer), None, t0, &params(false), now);
        assert!(matches!(higher, Split::Stand(_)), "{higher:?}");
        assert_eq!(lower, Split::Clear(String::new()));
        let a = "192.0.2.1".parse().unwrap();
        let b = "192.0.2.2".parse().unwrap();
        assert!(Params::new(b, a, MS(250), MS(20)).tie_yields);
        assert!(!Params::new(a, b, MS(250), MS(20)).tie_yields);
        // Before 3 s of silence, nothing (the unknown interval is keepalived's default, 1 s).
        let early = t0 + MS(2_500);
        assert_eq!(
            next(
                None,
                &mut mine,
                Some(&seen(early, Some(3_000), 10)),
                None,
                t0,
                &params(true),
                early
            ),
            Split::Clear(String::new())
        );
    }

    /// 20 ms adverts, one lost, then three lost, one a resignation: what the textfile says.
    #[test]
    fn the_path_counts_what_arrived_and_what_did_not() {
        let t0 = Instant::now();
        let mut p = PathStats::default();
        let mut prev: Option<Advert> = None;
        let mut hear = |p: &mut PathStats, ms: u64, priority: u8| {
            let a = Advert {
                at: t0 + MS(ms),
                interval: MS(20),
                priority,
            };
            p.heard(prev.as_ref(), &a);
            prev = Some(a);
        };
        for ms in [0, 20, 40, 80, 100, 121, 200] {
            hear(&mut p, ms, 100);
        }
        hear(&mut p, 219, 0);
        assert_eq!(p.received, 8);
        // 40 -> 80 spans one lost advert, 121 -> 200 three (79 ms is ~4 intervals); 21 and
        // 19 ms are jitter, not loss.
        assert_eq!(p.missed, 1 + 3);
        assert_eq!(p.priority_zero, 1);
        assert_eq!(p.interval, Some(MS(20)));
        let g = p.take().unwrap();
        assert_eq!((g.max, g.p99), (MS(79), MS(79)));
        assert_eq!(p.take(), None, "a new window");
        assert_eq!(p.received, 8, "counters stay");
        // A hundred gaps: the 99th percentile is the 99th smallest, the one long gap is max.
        for i in 1..=100u64 {
            hear(&mut p, 219 + i * 20 + u64::from(i == 100) * 1000, 100);
        }
        let g = p.take().unwrap();
        assert_eq!((g.p99, g.max), (MS(20), MS(1020)));
    }

    #[test]
    fn standing_down_ends_with_the_adverts_the_peers_role_or_its_reports() {
        let t0 = Instant::now();
        let st = Standing {
            instance: "VI_1".into(),
            since: t0,
            why: String::new(),
        };
        let p = params(false);
        let now = t0 + MS(5_000);
        let mut mine = || own(None);
        let master = seen(now, Some(600_000), 10);
        // Still cut: keep standing down.
        assert_eq!(
            next(
                Some(&st),
                &mut mine,
                Some(&master),
                advert(t0 - MS(200), 100),
                t0,
                &p,
                now
            ),
            Split::Stand(st.clone())
        );
        let clear = |s: Split, what: &str| match s {
            Split::Clear(w) => assert!(w.contains(what), "{w}"),
            s => panic!("{s:?}"),
        };
        clear(
            next(
                Some(&st),
                &mut mine,
                Some(&master),
                advert(now - MS(5), 100),
                t0,
                &p,
                now,
            ),
            "adverts arrive again",
        );
        clear(
            next(
                Some(&st),
                &mut mine,
                Some(&seen(now, None, 10)),
                None,
                t0,
                &p,
                now,
            ),
            "no longer MASTER",
        );
        clear(
            next(
                Some(&st),
                &mut mine,
                Some(&seen(now - MS(300), Some(1), 1)),
                None,
                t0,
                &p,
                now,
            ),
            "reports stopped",
        );
    }
}
