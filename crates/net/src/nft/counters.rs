//! Named nftables counters for the metrics textfile, taken from ha-check's one
//! `nft -j -t list ruleset` per run (shared with its nft-rule probes)
//! so a drop-rate alert needs no extra exporter and no extra nft process. The shipped
//! ruleset (keepalived/nftables.conf.in) counts its drops in named counters for this.

use std::{fmt, str::FromStr};

use anyhow::{bail, Context};
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

/// The named counters of `table` in `nft -j -t list ruleset` output: `{"nftables": [..., {"table":
/// {"family": .., "name": ..}}, {"counter": {"family": .., "table": .., "name": ..,
/// "packets": N, "bytes": N}}, ...]}`. A table that is not there is an error.
pub fn parse(json: &str, table: &NftTable) -> anyhow::Result<Vec<Counter>> {
    let v: Value = serde_json::from_str(json).context("nft printed no JSON")?;
    let items = v["nftables"]
        .as_array()
        .context("nft JSON has no \"nftables\" array")?;
    let ours = |o: &Value, name_key: &str| {
        o["family"] == table.family.as_str() && o[name_key] == table.name.as_str()
    };
    if !items
        .iter()
        .filter_map(|i| i.get("table"))
        .any(|t| ours(t, "name"))
    {
        bail!("no table {table} in the ruleset");
    }
    let mut out = Vec::new();
    for c in items
        .iter()
        .filter_map(|i| i.get("counter"))
        .filter(|c| ours(c, "table"))
    {
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

    /// `nft -j list ruleset` (no set here: `-t` changes nothing), captured from nft 1.0.6 (Debian 12) in a namespace: the table
    /// with its counter object, a rule using it, and another table with a counter of the
    /// same name.
    const LISTED: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "hakit_filter", "handle": 1}}, {"counter": {"family": "inet", "name": "input_drop", "table": "hakit_filter", "handle": 2, "packets": 7, "bytes": 420}}, {"chain": {"family": "inet", "table": "hakit_filter", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}, {"rule": {"family": "inet", "table": "hakit_filter", "chain": "input", "handle": 3, "expr": [{"counter": "input_drop"}, {"drop": null}]}}, {"table": {"family": "ip", "name": "other", "handle": 2}}, {"counter": {"family": "ip", "name": "input_drop", "table": "other", "handle": 1, "packets": 9, "bytes": 9}}]}"#;

    fn table(s: &str) -> NftTable {
        s.parse().unwrap()
    }

    #[test]
    fn takes_only_the_tables_named_counters() {
        let want = vec![Counter {
            name: "input_drop".into(),
            packets: 7,
            bytes: 420,
        }];
        assert_eq!(parse(LISTED, &table("inet hakit_filter")).unwrap(), want);
        assert_eq!(parse(LISTED, &table("ip other")).unwrap()[0].packets, 9);
        let e = parse(LISTED, &table("inet nope")).unwrap_err();
        assert_eq!(e.to_string(), "no table inet nope in the ruleset");
    }

    #[test]
    fn malformed_output_is_an_error_not_a_panic() {
        let t = table("inet t");
        let with = |counter: &str| {
            format!(
                r#"{{"nftables": [{{"table": {{"family": "inet", "name": "t"}}}}, {{"counter": {counter}}}]}}"#
            )
        };
        for bad in [
            String::new(),
            "{}".into(),
            "[]".into(),
            with(r#"{"family": "inet", "table": "t", "name": "x"}"#),
            with(r#"{"family": "inet", "table": "t", "name": 1, "packets": 1, "bytes": 1}"#),
            with(r#"{"family": "inet", "table": "t", "name": "x", "packets": -1, "bytes": 1}"#),
        ] {
            assert!(parse(&bad, &t).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            parse(
                r#"{"nftables": [{"table": {"family": "inet", "name": "t"}}]}"#,
                &t
            )
            .unwrap(),
            vec![]
        );
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
