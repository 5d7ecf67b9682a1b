//! The SNAT rule nat-notify keeps on the MASTER.
//!
//! Presence is decided semantically from `nft -j -t list ruleset`: any rule that SNATs the LAN
//! prefix to the floating IP counts, whoever wrote it, so hakit never adds a duplicate of
//! an operator's static rule. The rule hakit adds lives in its own table (default
//! `ip hakit`, chain `postrouting`, a NAT hook at `srcnat` priority) and carries the comment
//! `hakit:<instance>`; removal deletes only rules with that comment, by handle.

use std::{net::IpAddr, time::Duration};

use anyhow::{bail, Context};
use hakit_core::{config::Cidr, exec};
use serde_json::Value;

/// One SNAT rule found in the ruleset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnatRule {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
    pub saddr: Option<Cidr>,
    pub oifname: Option<String>,
    pub to: Option<IpAddr>,
}

impl SnatRule {
    /// Whether the rule SNATs `source` to `to` (whoever wrote it).
    pub fn translates(&self, source: Cidr, to: IpAddr) -> bool {
        self.to == Some(to) && self.saddr == Some(source)
    }
}

/// The SNAT a node should have.
#[derive(Clone)]
pub struct Snat<'a> {
    pub nft: String,
    pub table: String,
    pub instance: String,
    pub source: Cidr,
    pub to: IpAddr,
    pub oifname: String,
    pub timeout: Duration,
    /// Stops a running `nft` (a newer state superseded the transition).
    pub stop: exec::Stop<'a>,
}

/// A name as it may enter an `nft -f` script: letters, digits and `_ . : @ -`, at most 64.
/// Configured names are validated when the configuration is loaded; this is the last line
/// (a name read back from the ruleset, a value from a flag) before a root-run script.
fn word(s: &str) -> anyhow::Result<&str> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'-'));
    if !ok {
        bail!("{s:?} cannot go into an nft script");
    }
    Ok(s)
}

fn delete_rule(r: &SnatRule) -> anyhow::Result<String> {
    Ok(format!(
        "delete rule {} {} {} handle {}\n",
        word(&r.family)?,
        word(&r.table)?,
        word(&r.chain)?,
        r.handle
    ))
}

impl Snat<'_> {
    fn comment(&self) -> String {
        format!("hakit:{}", self.instance)
    }

    /// Every SNAT rule in the ruleset.
    pub fn list(&self) -> anyhow::Result<Vec<SnatRule>> {
        parse_ruleset(&super::list_ruleset(&self.nft, self.timeout, self.stop)?)
    }

    fn matches(&self, r: &SnatRule) -> bool {
        r.translates(self.source, self.to)
    }

    /// Whether a rule SNATing the source prefix to the floating IP exists.
    pub fn present(&self) -> anyhow::Result<bool> {
        Ok(self.list()?.iter().any(|r| self.matches(r)))
    }

    /// Adds the rule unless an equivalent one exists; drops stale hakit rules of this
    /// instance (other address or prefix, from an older config) in the same transaction.
    /// Returns whether anything changed.
    pub fn ensure(&self) -> anyhow::Result<bool> {
        let rules = self.list()?;
        let ours = self.comment();
        let stale: Vec<&SnatRule> = rules
            .iter()
            .filter(|r| r.comment.as_deref() == Some(ours.as_str()) && !self.matches(r))
            .collect();
        if stale.is_empty() && rules.iter().any(|r| self.matches(r)) {
            return Ok(false);
        }
        let t = word(&self.table)?;
        word(&self.oifname)?;
        word(&ours)?;
        let mut script = format!(
            "table ip {t} {{\n  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n}}\n"
        );
        for r in &stale {
            script.push_str(&delete_rule(r)?);
        }
        if !rules.iter().any(|r| self.matches(r)) {
            let IpAddr::V4(to) = self.to else {
                bail!("SNAT needs an IPv4 floating IP, got {}", self.to)
            };
            script.push_str(&format!(
                "add rule ip {t} postrouting ip saddr {} oifname \"{}\" snat to {to} comment \"{ours}\"\n",
                self.source, self.oifname
            ));
        }
        self.apply(&script)
            .with_context(|| format!("apply SNAT {} -> {}", self.source, self.to))?;
        Ok(true)
    }

    /// Deletes hakit's rules for this instance; returns whether any existed.
    pub fn remove(&self) -> anyhow::Result<bool> {
        let ours = self.comment();
        let mine: Vec<SnatRule> = self
            .list()?
            .into_iter()
            .filter(|r| r.comment.as_deref() == Some(ours.as_str()))
            .collect();
        if mine.is_empty() {
            return Ok(false);
        }
        let script = mine
            .iter()
            .map(delete_rule)
            .collect::<anyhow::Result<String>>()?;
        self.apply(&script).context("remove SNAT rule")?;
        Ok(true)
    }

    /// Runs `script` through `nft -f -`, one transaction, stopped with the transition.
    fn apply(&self, script: &str) -> anyhow::Result<()> {
        exec::run_ok_until(
            &exec::argv(&[&self.nft, "-f", "-"]),
            Some(script.as_bytes()),
            self.timeout,
            exec::OUTPUT_CAP,
            self.stop,
        )
        .map(|_| ())
    }
}

/// Extracts SNAT rules from `nft -j -t list ruleset` output.
pub fn parse_ruleset(json: &str) -> anyhow::Result<Vec<SnatRule>> {
    let v: Value = serde_json::from_str(json).context("nft printed invalid JSON")?;
    let items = v["nftables"]
        .as_array()
        .context("nft JSON has no nftables array")?;
    let mut out = Vec::new();
    for item in items {
        let Some(rule) = item.get("rule") else {
            continue;
        };
        let Some(exprs) = rule["expr"].as_array() else {
            continue;
        };
        let to = exprs
            .iter()
            .find_map(|e| e.get("snat"))
            .map(|s| s["addr"].as_str().and_then(|a| a.parse::<IpAddr>().ok()));
        let Some(to) = to else { continue };
        let mut saddr = None;
        let mut oifname = None;
        for e in exprs {
            let Some(m) = e.get("match") else { continue };
            if m["op"].as_str().is_some_and(|op| op != "==") {
                continue;
            }
            let left = &m["left"];
            if left["payload"]["field"] == "saddr" {
                saddr = match &m["right"] {
                    Value::String(a) => a.parse::<Cidr>().ok(),
                    r => r["prefix"]["addr"]
                        .as_str()
                        .zip(r["prefix"]["len"].as_u64())
                        .and_then(|(a, l)| format!("{a}/{l}").parse().ok()),
                };
            } else if left["meta"]["key"] == "oifname" {
                oifname = m["right"].as_str().map(str::to_string);
            }
        }
        out.push(SnatRule {
            family: rule["family"].as_str().unwrap_or_default().to_string(),
            table: rule["table"].as_str().unwrap_or_default().to_string(),
            chain: rule["chain"].as_str().unwrap_or_default().to_string(),
            handle: rule["handle"].as_u64().unwrap_or_default(),
            comment: rule["comment"].as_str().map(str::to_string),
            saddr,
            oifname,
            to,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_words_enter_a_script() {
        assert!(word("hakit").is_ok() && word("hakit:VI_1").is_ok() && word("eth0.100").is_ok());
        for bad in ["eth0\" ; flush ruleset ; \"", "a b", "x\ny", "", "{", "a;b"] {
            assert!(word(bad).is_err(), "{bad:?}");
        }
        let hostile = SnatRule {
            family: "ip".into(),
            table: "t; flush ruleset".into(),
            chain: "postrouting".into(),
            handle: 3,
            ..SnatRule::default()
        };
        assert!(delete_rule(&hostile).is_err());
    }

    // Captured from nft 1.0.6 after `add rule ip hakit postrouting ip saddr 198.51.100.0/24
    // oifname "eth0" snat to 203.0.113.10 comment "hakit:VI_1"`.
    const RULESET: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "hakit", "handle": 1}}, {"chain": {"family": "ip", "table": "hakit", "name": "postrouting", "handle": 1, "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}, {"rule": {"family": "ip", "table": "hakit", "chain": "postrouting", "handle": 2, "comment": "hakit:VI_1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "198.51.100.0", "len": 24}}}}, {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "eth0"}}, {"snat": {"addr": "203.0.113.10"}}]}}]}"#;

    #[test]
    fn finds_the_snat_rule() {
        let rules = parse_ruleset(RULESET).unwrap();
        assert_eq!(rules.len(), 1);
        let r = &rules[0];
        assert_eq!(
            (r.table.as_str(), r.chain.as_str(), r.handle),
            ("hakit", "postrouting", 2)
        );
        assert_eq!(r.saddr, Some("198.51.100.0/24".parse().unwrap()));
        assert_eq!(r.to, Some("203.0.113.10".parse().unwrap()));
        assert_eq!(r.oifname.as_deref(), Some("eth0"));
        assert_eq!(r.comment.as_deref(), Some("hakit:VI_1"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_ruleset("not json").is_err());
        assert!(parse_ruleset("{}").is_err());
        assert!(
            parse_ruleset(r#"{"nftables": [{"rule": {"expr": "x"}}, {"rule": 3}]}"#)
                .unwrap()
                .is_empty()
        );
    }
}
