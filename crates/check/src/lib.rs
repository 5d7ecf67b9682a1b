//! The probes behind `ha-check`, keepalived's `vrrp_script` for a NAT gateway.
//!
//! * [`app`]: the command line's modes, from the resolved configuration to an exit code.
//! * [`probe`]: validation (keys that do not apply to a kind are refused) and the probes:
//!   ICMP/ICMPv6 echo, HTTP status, TCP connect (each bindable to an interface or source),
//!   link, address, route, the SNAT rule, conntrack usage, sysctls, services, DRBD.
//! * [`runner`]: every probe in parallel under one deadline, then quorum groups.
//! * [`monitor`]: the probes continuously, the verdict to keepalived's `track_file`.
//! * [`watch`]: peer-watch mode for clouds without VRRP.

pub mod app;
pub mod http;
pub mod icmp;
pub mod monitor;
pub mod probe;
pub mod runner;
pub mod sock;
pub mod watch;
