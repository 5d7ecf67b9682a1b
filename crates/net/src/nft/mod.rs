//! nftables, through `nft` (the program that owns it): one place that runs it and reads
//! its JSON, for the SNAT step (nat-notify) and the counters and `nft-rule` probes
//! (ha-check).
//!
//! * [`snat`]: the SNAT rule, found semantically in the ruleset, added and removed by
//!   hakit in its own table.
//! * [`counters`]: named counters of one table, for the metrics textfile.

pub mod counters;
pub mod snat;

use std::time::Duration;

use hakit_core::exec;

pub use counters::{Counter, NftTable};
pub use snat::{parse_ruleset, Snat, SnatRule};

/// `nft -j list ruleset`: the whole ruleset as JSON, within `timeout`.
pub fn list_ruleset(nft: &str, timeout: Duration) -> anyhow::Result<String> {
    Ok(exec::run_ok(&exec::argv(&[nft, "-j", "list", "ruleset"]), None, timeout)?.stdout)
}
