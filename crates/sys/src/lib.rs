//! Every unsafe block of hakit, each small, commented and behind a safe function: the
//! system calls and C structures that nix does not wrap safely. The rest of the workspace
//! forbids unsafe code (`unsafe_code = "forbid"`), so a new one has to come here, where a
//! reviewer looks for it.
//!
//! * [`sched`]: real-time scheduling (musl's wrappers are stubs, so the system calls).
//! * [`signal`]: ignoring signals, and their defaults restored in a child before exec.
//! * [`packet`]: `sockaddr_ll`, the address of an AF_PACKET socket.
//! * [`rawip`]: a raw IPv4 socket for a protocol nix does not name (VRRP).

pub mod packet;
pub mod rawip;
pub mod sched;
pub mod signal;
