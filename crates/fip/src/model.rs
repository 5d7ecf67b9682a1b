//! What a claim is asked to do and what it reports, for every provider.

use std::net::IpAddr;

use serde::Serialize;

use crate::http::Call;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Make the IP (and routes) point at this node.
    Claim,
    /// Linode only: take the IP out of this node's shared set.
    Release,
    /// Read-only: does this node own the IP?
    Check,
}

/// A refusal that retrying cannot fix (the IP belongs to a node outside the pair):
/// exit 2, like a usage error.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Part of the change was applied and part failed: exit 3, both halves named.
#[derive(Debug)]
pub struct Partial {
    pub done: Vec<String>,
    pub failed: String,
}

impl std::fmt::Display for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "partially applied: done [{}]; failed: {}",
            self.done.join("; "),
            self.failed
        )
    }
}

impl std::error::Error for Partial {}

/// What a run found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub provider: String,
    pub ip: Option<IpAddr>,
    /// The node this run acts for.
    pub this_node: String,
    /// Who held the IP before.
    pub owner_before: Option<String>,
    /// Whether this node owns the IP now (after any change).
    pub owned: bool,
    /// Nothing needed changing.
    pub already_converged: bool,
    /// Where a BGP speaker announces the address: its role ("primary (65000:1)").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announced: Option<String>,
    /// `--check` on Linode: each peer, and whether the address is on it (assigned or
    /// shared), so that a failover can move it there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers_have: Option<std::collections::BTreeMap<String, bool>>,
    /// Writes performed (or, with --dry-run, that would be).
    pub changed: Vec<String>,
    /// --dry-run: the exact requests that would be sent, secrets redacted.
    pub planned: Vec<String>,
    pub calls: Vec<Call>,
}

/// natganker's rule: an IP held by a node outside the pair (this node and `peers`) is not
/// taken without `force`. The refusal maps to exit 2: retrying cannot change it.
pub fn refuse_third_owner(
    provider: &str,
    what: &str,
    holder: Option<&str>,
    me: &str,
    peers: &[String],
    force: bool,
) -> anyhow::Result<()> {
    match holder {
        Some(h) if h != me && !force && !peers.iter().any(|p| p == h) => Err(Refused(format!(
            "{provider}: {what} belongs to {h}, which is not this node ({me}) nor a configured peer ({}); --force to take it",
            if peers.is_empty() { "none".to_string() } else { peers.join(", ") }
        ))
        .into()),
        _ => Ok(()),
    }
}
