//! The claim flow every provider shares, written once, and the one trait a provider
//! implements.
//!
//! The flow: who this node is (once per session), the `--check` answer, who holds the
//! address, natganker's third-owner refusal, the writes (shown, never sent, under
//! `--dry-run`), and the read-back. A provider only says how to read the holder and how to
//! write: [`Provider`].
//!
//! # Adding a provider
//! 1. A file `src/<name>.rs` with a struct that implements [`Provider`]: `shape` (its name
//!    and the reader of its JSON errors), `me` (the node's ID, given or from the provider's
//!    metadata service), `read` (who holds the address) and `converge` (the writes through
//!    [`Writes`], following any action until it is done); the flow brings the configured
//!    peers, `peer_aliases` adds other names for them if the provider has any. Its token
//!    variables and defaults (API and metadata URLs) are constants of that file.
//! 2. Its variant in `hakit_fip::config::Provider` (the `[fip] provider` value) and one
//!    arm in [`crate::Session::new`] building it from the `[fip]` table: the match is
//!    exhaustive, so the compiler names every place a new variant must be handled.
//! 3. Its API in the fake cloud (`crates/lab/src/bin/hakit-fake-cloud/<name>.rs`) and, if
//!    the provider publishes an OpenAPI document, a Prism test in `tests/fip_claim_specs.rs`.

use std::net::IpAddr;

use anyhow::bail;
use serde_json::Value;

use crate::{
    http::{Client, Request, Retry},
    model::{refuse_third_owner, Mode, Partial, Report},
};

/// Who holds the address, as the provider says it.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// The address as the provider reports it (an IPv6 Floating IP is found by the address
    /// configured on the node).
    pub ip: Option<IpAddr>,
    /// How a refusal or a read-back names it: "203.0.113.10", "Floating IP 7".
    pub what: String,
    /// Who holds it now, as the provider names nodes.
    pub holder: Option<String>,
    /// This node holds it (assigned here, or, on Linode, shared here).
    pub mine: bool,
}

/// Where a provider's writes go: sent and recorded, or under `--dry-run` only shown.
#[derive(Debug, Default)]
pub struct Writes {
    dry_run: bool,
    /// `--dry-run`: the requests that would be sent, secrets redacted.
    pub(crate) planned: Vec<String>,
    /// The changes made (or, under `--dry-run`, that would be), in words.
    pub(crate) done: Vec<String>,
}

impl Writes {
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// A change about to be made by `req`: under `--dry-run` it is recorded and `false`
    /// says not to send it.
    pub fn begin(&mut self, req: &Request, what: impl Into<String>) -> bool {
        if self.dry_run {
            self.planned.push(req.shown());
            self.done.push(what.into());
            return false;
        }
        true
    }

    /// A change made (sent and accepted).
    pub fn made(&mut self, what: impl Into<String>) {
        self.done.push(what.into());
    }

    /// Sends a JSON API write (2xx or an error naming the provider's text) unless under
    /// `--dry-run`; `None` then.
    pub fn json(
        &mut self,
        client: &Client,
        shape: &Shape,
        req: &Request,
        retry: Retry,
        what: impl Into<String>,
    ) -> anyhow::Result<Option<Value>> {
        let what = what.into();
        if !self.begin(req, what.clone()) {
            return Ok(None);
        }
        let v = crate::rest::json(client, shape, req, retry)?;
        self.made(what);
        Ok(Some(v))
    }
}

pub use crate::rest::Shape;

/// What `--check` found when the provider answers it otherwise than by the holder (Linode
/// with a BGP speaker: the announced role decides), and what else it read.
pub struct Checked {
    pub ip: Option<std::net::IpAddr>,
    /// Who holds the address at the provider (`None`: nobody).
    pub holder: Option<String>,
    pub owned: bool,
    pub announced: Option<String>,
    /// Each peer, and whether the address is on it (assigned or shared) so that a
    /// failover can move it there (Linode's IP Sharing).
    pub peers_have: Option<std::collections::BTreeMap<String, bool>>,
}

/// One cloud's floating IP.
pub trait Provider {
    fn shape(&self) -> &'static Shape;

    /// This node as the provider names it (given, else from the metadata service); the
    /// flow asks once per run, a provider may keep it for the session.
    fn me(&mut self, c: &Client) -> anyhow::Result<String>;

    /// `--check` by another authority than [`Provider::read`] (read-only); `None`: the
    /// holder decides.
    fn check(
        &mut self,
        _c: &Client,
        _me: &str,
        _peers: &[String],
    ) -> anyhow::Result<Option<Checked>> {
        Ok(None)
    }

    /// Who holds the address now: read before any write, and read back after.
    fn read(&mut self, c: &Client, me: &str) -> anyhow::Result<Held>;

    /// Other names the provider knows the configured peers by (AWS: their network
    /// interfaces, which can hold an Elastic IP); none by default. Asked before a claim,
    /// for the third-owner refusal.
    fn peer_aliases(&mut self, _c: &Client, _me: &str) -> anyhow::Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Why `--release` cannot be done here, if it cannot.
    fn no_release(&self) -> Option<&'static str> {
        Some("--release is not supported; claim it from the other node")
    }

    /// Makes `mode` true (claim: this node holds the address, with whatever else the
    /// provider moves with it; release: it does not), writing through `w`. Writes nothing
    /// when it already is.
    fn converge(
        &mut self,
        c: &Client,
        me: &str,
        held: &Held,
        mode: Mode,
        w: &mut Writes,
    ) -> anyhow::Result<()>;
}

/// The flow, for one run of `mode` on `p`.
pub fn run(
    p: &mut dyn Provider,
    c: &Client,
    peers: &[String],
    mode: Mode,
    dry_run: bool,
    force: bool,
) -> anyhow::Result<Report> {
    let name = p.shape().name;
    let me = p.me(c)?;
    let mut out = Report {
        provider: name.into(),
        this_node: me.clone(),
        ..Report::default()
    };
    if mode == Mode::Check {
        if let Some(ck) = p.check(c, &me, peers)? {
            out.owned = ck.owned;
            out.already_converged = ck.owned;
            out.announced = ck.announced;
            out.peers_have = ck.peers_have;
            out.ip = ck.ip;
            out.owner_before = ck.holder;
            out.calls = c.calls();
            return Ok(out);
        }
    }
    let held = p.read(c, &me)?;
    out.ip = held.ip;
    out.owner_before = held.holder.clone();
    out.owned = held.mine;
    if mode == Mode::Check {
        out.already_converged = held.mine;
        out.calls = c.calls();
        return Ok(out);
    }
    if mode == Mode::Release {
        if let Some(why) = p.no_release() {
            bail!("{name}: {why}");
        }
    }
    if mode == Mode::Claim {
        // The aliases are read either way (AWS learns this node's VPC there, for the
        // routes); an address already this node's has no third owner to refuse.
        let mut pair = peers.to_vec();
        pair.extend(p.peer_aliases(c, &me)?);
        if !held.mine {
            refuse_third_owner(name, &held.what, held.holder.as_deref(), &me, &pair, force)?;
        }
    }
    let mut w = Writes {
        dry_run,
        ..Writes::default()
    };
    let converged = p.converge(c, &me, &held, mode, &mut w);
    out.planned = std::mem::take(&mut w.planned);
    converged?;
    out.already_converged = w.done.is_empty();
    if !w.done.is_empty() && !dry_run {
        let after = p.read(c, &me);
        let failed = match &after {
            Ok(a) if a.mine == (mode == Mode::Claim) => None,
            Ok(a) => Some(format!(
                "read-back after {}: {} is {}",
                w.done.join("; "),
                a.what,
                match (&a.holder, mode) {
                    (_, Mode::Release) => format!("still this node's ({me})"),
                    (Some(h), _) => format!("on {h}, not {me}"),
                    (None, _) => format!("on nothing, not {me}"),
                }
            )),
            Err(e) => Some(format!("read-back after {}: {e:#}", w.done.join("; "))),
        };
        if let Some(failed) = failed {
            // One write either happened or not; after several, some did.
            if w.done.len() > 1 {
                return Err(Partial {
                    done: w.done,
                    failed,
                }
                .into());
            }
            bail!("{name}: {failed}");
        }
        out.owned = mode == Mode::Claim;
    }
    out.changed = w.done;
    out.calls = c.calls();
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! The flow against a provider of our own: no network, no provider's semantics.

    use std::time::Duration;

    use super::*;

    /// Holds `holder` until a write moves it to this node ("1"), unless `sticky`.
    struct Fake {
        holder: Option<String>,
        writes: usize,
        sticky: bool,
        sent: Vec<String>,
    }

    static FAKE: Shape = Shape {
        name: "fake",
        errors: |v| v.to_string(),
    };

    impl Provider for Fake {
        fn shape(&self) -> &'static Shape {
            &FAKE
        }
        fn me(&mut self, _c: &Client) -> anyhow::Result<String> {
            Ok("1".into())
        }
        fn read(&mut self, _c: &Client, me: &str) -> anyhow::Result<Held> {
            Ok(Held {
                ip: "203.0.113.10".parse().ok(),
                what: "203.0.113.10".into(),
                holder: self.holder.clone(),
                mine: self.holder.as_deref() == Some(me),
            })
        }
        fn converge(
            &mut self,
            _c: &Client,
            me: &str,
            held: &Held,
            _mode: Mode,
            w: &mut Writes,
        ) -> anyhow::Result<()> {
            if held.mine {
                return Ok(());
            }
            for n in 0..self.writes {
                let req = Request::new("POST", "http://192.0.2.1/assign", "POST /assign")
                    .secret("Authorization", "Bearer s3cret");
                if w.begin(&req, format!("write {n}")) {
                    self.sent.push(format!("write {n}"));
                    w.made(format!("wrote {n}"));
                }
            }
            if !self.sticky && !w.dry_run() {
                self.holder = Some(me.to_string());
            }
            Ok(())
        }
    }

    fn fake(holder: &str, writes: usize, sticky: bool) -> Fake {
        Fake {
            holder: Some(holder.into()),
            writes,
            sticky,
            sent: Vec::new(),
        }
    }

    fn peers() -> Vec<String> {
        vec!["2".into()]
    }

    fn client() -> Client {
        Client::new(
            crate::http::agent(Duration::from_secs(1), Duration::from_secs(1), None).unwrap(),
            Duration::from_secs(1),
            1,
        )
    }

    #[test]
    fn a_claim_from_the_peer_writes_and_reads_back() {
        let mut p = fake("2", 1, false);
        let r = run(&mut p, &client(), &peers(), Mode::Claim, false, false).unwrap();
        assert!(r.owned && !r.already_converged);
        assert_eq!(r.owner_before.as_deref(), Some("2"));
        assert_eq!(r.changed, ["wrote 0"]);
        // Again: nothing to write.
        let r = run(&mut p, &client(), &peers(), Mode::Claim, false, false).unwrap();
        assert!(r.owned && r.already_converged && r.changed.is_empty());
        assert_eq!(p.sent.len(), 1);
    }

    #[test]
    fn a_dry_run_shows_the_writes_and_sends_none() {
        let mut p = fake("2", 2, false);
        let r = run(&mut p, &client(), &peers(), Mode::Claim, true, false).unwrap();
        assert!(p.sent.is_empty());
        assert!(!r.owned);
        assert_eq!(r.changed, ["write 0", "write 1"]);
        assert_eq!(r.planned.len(), 2);
        assert!(r.planned[0].contains("[redacted]") && !r.planned[0].contains("s3cret"));
    }

    #[test]
    fn a_third_owner_is_refused_unless_forced() {
        let mut p = fake("9", 1, false);
        let e = run(&mut p, &client(), &peers(), Mode::Claim, false, false).unwrap_err();
        assert!(e.downcast_ref::<crate::model::Refused>().is_some(), "{e:#}");
        assert!(p.sent.is_empty(), "nothing written before the refusal");
        let r = run(&mut p, &client(), &peers(), Mode::Claim, false, true).unwrap();
        assert!(r.owned);
    }

    #[test]
    fn a_write_the_provider_does_not_show_fails_the_read_back() {
        // One write: it happened or not, an error (exit 1).
        let e = run(
            &mut fake("2", 1, true),
            &client(),
            &peers(),
            Mode::Claim,
            false,
            false,
        )
        .unwrap_err();
        assert!(e.downcast_ref::<Partial>().is_none());
        assert!(
            format!("{e:#}").contains("read-back after wrote 0"),
            "{e:#}"
        );
        // Several: some happened, a partial application (exit 3) naming them.
        let e = run(
            &mut fake("2", 2, true),
            &client(),
            &peers(),
            Mode::Claim,
            false,
            false,
        )
        .unwrap_err();
        let p = e.downcast_ref::<Partial>().expect("partial");
        assert_eq!(p.done, ["wrote 0", "wrote 1"]);
        assert!(p.failed.contains("on 2, not 1"), "{}", p.failed);
    }

    #[test]
    fn check_reads_only_and_release_is_refused_where_unsupported() {
        let mut p = fake("1", 1, false);
        let r = run(&mut p, &client(), &peers(), Mode::Check, false, false).unwrap();
        assert!(r.owned && r.changed.is_empty());
        let e = run(&mut p, &client(), &peers(), Mode::Release, false, false).unwrap_err();
        assert!(format!("{e:#}").starts_with("fake: --release is not supported"));
        assert!(p.sent.is_empty());
    }
}
