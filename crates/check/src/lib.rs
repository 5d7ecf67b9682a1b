//! Health probes for ha-check.

pub mod icmp;
pub mod sock;
