//! The command lines of the four binaries, in one place: each `main` parses its own with
//! these definitions, and `hakit-docgen` renders the man pages and shell completions from
//! the very same ones (so the documentation cannot drift from the flags, and the generators
//! stay out of the shipped binaries).

pub mod fip_claim;
pub mod garp_burst;
pub mod ha_check;
pub mod nat_notify;
