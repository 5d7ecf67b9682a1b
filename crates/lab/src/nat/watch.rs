//! A netlink watcher in a node's namespace: when the VIP and the floating IP came and went.

use std::{net::IpAddr, sync::Arc, thread, time::Duration};

use super::{now_unix, FIP, VIP};
use crate::Ns;

/// Address changes on one node, seen by polling netlink every millisecond from a thread
/// inside its namespace: (Unix time, "VIP up", "FIP down", ...).
pub struct Watch {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: thread::JoinHandle<Vec<(f64, String)>>,
}

impl Watch {
    pub fn start(ns: &Ns) -> Watch {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let ns = ns.clone();
        let handle = thread::spawn(move || {
            let mut seen = Vec::new();
            if ns.enter().is_err() {
                return seen;
            }
            let Ok(nl) = hakit_net::Netlink::open() else {
                return seen;
            };
            let (vip, fip): (IpAddr, IpAddr) = match (VIP.parse(), FIP.parse()) {
                (Ok(v), Ok(f)) => (v, f),
                _ => return seen,
            };
            let mut last = (None, None);
            while !flag.load(Ordering::Relaxed) {
                if let Ok(a) = nl.addresses(None) {
                    let now = (
                        Some(a.iter().any(|x| x.addr == vip)),
                        Some(a.iter().any(|x| x.addr == fip)),
                    );
                    let t = now_unix();
                    if now.0 != last.0 && last.0.is_some() {
                        seen.push((
                            t,
                            format!("VIP {}", if now.0 == Some(true) { "up" } else { "down" }),
                        ));
                    }
                    if now.1 != last.1 && last.1.is_some() {
                        seen.push((
                            t,
                            format!("FIP {}", if now.1 == Some(true) { "up" } else { "down" }),
                        ));
                    }
                    last = now;
                }
                thread::sleep(Duration::from_millis(1));
            }
            seen
        });
        Watch { stop, handle }
    }

    pub fn finish(self) -> Vec<(f64, String)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}
