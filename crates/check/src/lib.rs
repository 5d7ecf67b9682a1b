//! The probes behind `ha-check`, keepalived's `vrrp_script` for a NAT gateway.
//!
//! * [`app`]: the command line's modes, from the resolved configuration to an exit code.
//! * [`config`]: the `[check]` table and its probes and groups, as the file has them.
//! * [`kinds`]: the probe kinds, one file each (ICMP/ICMPv6 echo, neighbour, HTTP status,
//!   TCP connect, link, address, route, the SNAT rule, conntrack usage, sysctls, services,
//!   DRBD, the provider's owner, BGP, DNS), and the recipe for adding one (the sockets
//!   and ICMP they use are hakit-net's).
//! * [`probe`]: a probe validated by its kind and run (once, or kept in a session).
//! * [`shortcut`]: the probe kinds' subcommands (`ha-check dns …`), made from [`kinds::KINDS`].
//! * [`runner`]: every probe in parallel under one deadline, then quorum groups.
//! * [`monitor`]: the probes continuously, the verdict to keepalived's `track_file`.
//! * [`peer`]: the pair's monitors compare notes: no FAULT unless the peer is healthier.
//! * [`roles`]: this node's VRRP role per instance, as the reports carry it.
//! * [`watch`]: peer-watch mode for clouds without VRRP.

pub mod app;
pub mod config;
pub mod http;
pub mod kinds;
pub mod monitor;
pub mod peer;
pub mod probe;
pub mod roles;
pub mod rt;
pub mod runner;
pub mod shortcut;
pub mod split;
pub mod tools;
pub mod watch;
