//! Named nftables counters for the metrics textfile: `nft -j list counters table FAMILY
//! NAME`, read beside the probes so a drop-rate alert needs no extra exporter. The shipped
//! ruleset (keepalived/nftables.conf.in) counts its drops in named counters for this.

use std::{fmt, str::FromStr, time::Duration};

use anyhow::Context;
use hakit_core::exec;
use serde_json::Value;

/// An nftables table, written "FAMILY NAME" as in `nft list table inet hakit_filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftTable {
    pub family: String,
    pub name: String,
}

impl FromStr for NftTable {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let [family, name] = words.as_slice() else {
            return Err(format!(
                "nft table {s:?}: expected \"FAMILY NAME\", e.g. \"inet hakit_filter\""
            ));
        };
        if !["ip", "ip6", "inet", "arp", "bridge", "netdev"].contains(family) {
            return Err(format!(
                "nft table {s:?}: family {family:?} is not one of ip, ip6, inet, arp, bridge, netdev"
            ));
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(format!("nft table {s:?}: {name:?} is not a table name"));
        }
        Ok(NftTable {
            family: (*family).to_string(),
            name: (*name).to_string(),
        })
    }
}

impl fmt::Display for NftTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.family, self.name)
    }
}

/// One named counter and its totals since the ruleset was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
}

/// Lists the table's named counters through `nft` (found on PATH, killed at `timeout`).
pub fn read(nft: &str, table: &NftTable, timeout: Duration) -> anyhow::Result<Vec<Counter>> {
    let argv = exec::argv(&[
        nft,
        "-j",
        "list",
        "counters",
        "table",
        &table.family,
        &table.name,
    ]);
    let ran = exec::run_ok(&argv, None, timeout)
        .with_context(|| format!("nft counters of table {table}"))?;
    parse(ran.stdout.as_bytes()).with_context(|| format!("nft counters of table {table}"))
}

/// Parses `nft -j list counters` output: `{"nftables": [{"metainfo": ...},
/// {"counter": {"name": ..., "packets": N, "bytes": N, ...}}, ...]}`.
pub fn parse(json: &[u8]) -> anyhow::Result<Vec<Counter>> {
    let v: Value = serde_json::from_slice(json).context("nft printed no JSON")?;
    let items = v["nftables"]
        .as_array()
        .context("nft JSON has no \"nftables\" array")?;
    let mut out = Vec::new();
    for c in items.iter().filter_map(|i| i.get("counter")) {
        let field = |k: &str| {
            c[k].as_u64()
                .with_context(|| format!("counter without {k}"))
        };
        out.push(Counter {
            name: c["name"]
                .as_str()
                .context("counter without name")?
                .to_string(),
            packets: field("packets")?,
            bytes: field("bytes")?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from nft 1.0.6 (Debian 12) in a namespace.
    const LISTED: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"counter": {"family": "inet", "name": "input_drop", "table": "hakit_filter", "handle": 2, "packets": 7, "bytes": 420}}, {"counter": {"family": "inet", "name": "forward_drop", "table": "hakit_filter", "handle": 3, "packets": 0, "bytes": 0}}]}"#;

    #[test]
    fn parses_nft_json() {
        let c = parse(LISTED.as_bytes()).unwrap();
        assert_eq!(
            c,
            vec![
                Counter {
                    name: "input_drop".into(),
                    packets: 7,
                    bytes: 420
                },
                Counter {
                    name: "forward_drop".into(),
                    packets: 0,
                    bytes: 0
                }
            ]
        );
    }

    #[test]
    fn malformed_output_is_an_error_not_a_panic() {
        for bad in [
            "",
            "{}",
            "[]",
            r#"{"nftables": [{"counter": {"name": "x"}}]}"#,
            r#"{"nftables": [{"counter": {"name": 1, "packets": 1, "bytes": 1}}]}"#,
            r#"{"nftables": [{"counter": {"name": "x", "packets": -1, "bytes": 1}}]}"#,
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?} parsed");
        }
        assert_eq!(parse(br#"{"nftables": []}"#).unwrap(), vec![]);
    }

    #[test]
    fn table_names_are_checked() {
        let t: NftTable = "inet hakit_filter".parse().unwrap();
        assert_eq!(t.to_string(), "inet hakit_filter");
        for bad in ["", "inet", "inet a b", "inte hakit", "ip a;b", "ip $x"] {
            assert!(bad.parse::<NftTable>().is_err(), "{bad:?} accepted");
        }
    }
}
