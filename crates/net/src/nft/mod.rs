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

/// The largest ruleset listing read (set contents are never listed, see [`list_ruleset`]):
/// over it, the listing is an error naming the size, never a cut text.
pub const MAX_RULESET: usize = 64 << 20;

/// `nft -j -t list ruleset`: every table, chain and rule as JSON, within `timeout`. Terse
/// (`-t`): sets are listed without their elements, which nothing here reads; a gateway's
/// block list of 100,000 addresses is 2 MB of JSON otherwise, on the failover path.
/// Stopped as soon as `stop` gives a reason.
pub fn list_ruleset(nft: &str, timeout: Duration, stop: exec::Stop) -> anyhow::Result<String> {
    let argv = exec::argv(&[nft, "-j", "-t", "list", "ruleset"]);
    Ok(exec::run_ok_until(&argv, None, timeout, MAX_RULESET, stop)?.stdout)
}
