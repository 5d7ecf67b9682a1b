//! The boundaries to the kernel's networking and the programs that own a domain of it:
//! rtnetlink through neli, link-layer frames through `AF_PACKET`, ICMP and bound sockets,
//! nftables through `nft`, units through `systemctl`.
//!
//! * [`netlink`]: links, addresses and neighbours (what keepalived hooks and checks read
//!   and change), with idempotent add/delete.
//! * [`egress`]: an egress gateway by policy routing (two rules, one route in a table).
//! * [`frames`]: byte-exact gratuitous ARP and unsolicited neighbour advertisement frames,
//!   pure functions tested against golden bytes.
//! * [`garp`]: the burst itself (validation, the socket, the timing), a library call for
//!   `garp-burst` and `nat-notify` alike.
//! * [`neighbour`]: ARP / neighbour solicitation to one neighbour (the monitor's gateway
//!   probe), and rtnetlink's link/address/route events.
//! * [`icmp`]: ICMP/ICMPv6 echo (datagram socket where allowed, raw otherwise).
//! * [`sock`]: sockets bound to an interface and/or source address; polling with deadlines.
//! * [`nft`]: nftables through `nft` (the SNAT rule, named counters, the ruleset).
//! * [`systemd`]: a unit's state through `systemctl`.
//! * [`vrrp`]: the VRRP advertisements the host receives (a raw socket beside keepalived's).

pub mod egress;
pub mod frames;
pub mod garp;
pub mod icmp;
pub mod neighbour;
pub mod netlink;
pub mod nft;
pub mod sock;
pub mod systemd;
pub mod vrrp;

pub use netlink::{Change, IfAddr, Link, Mac, Neighbour, Netlink, Nexthop, Route};
