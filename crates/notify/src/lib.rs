//! The engine of `nat-notify`, keepalived's notify hook.
//!
//! keepalived starts notify hooks without waiting for them: a fast MASTER→BACKUP→MASTER
//! flap starts three processes that race. This crate makes the final state always the one
//! keepalived reported last:
//!
//! * [`event`]: the three ways keepalived reports a state (argument, generic `notify`
//!   arguments, `notify_fifo` lines).
//! * [`runtime`]: per-instance intent log (generations), lock and recorded state.
//! * [`plan`]: which steps each state runs, in which order (pure).
//! * [`report`]: what a transition reports (each step's result, how it ended).
//! * [`action`]: what each step decides (pure): an action, or why there is nothing to do.
//! * [`engine`]: the loop of one transition (retries, a supersession check before every
//!   step, background steps, the record), against the [`engine::Host`] seam.
//! * [`effects`]: a step resolved, then applied through [`effects::Effects`]; the
//!   recording fake, and the dry run (the same resolution, printed).
//! * [`steps`]: the real effects: what each action does to the node and beyond.
//! * [`metrics`]: the Prometheus textfile.
//! * [`supersede`]: the checks themselves (newer intents, keepalived's own VIPs).
//! * [`conntrackd`]: the conntrack daemon, an external program with real state (nftables
//!   is `hakit_net::nft`).
//! * [`status`]: one look at the node, for operators.
//! * [`run`]: the command line's modes, from the configuration layers to an exit code.
//! * [`validate`]: what names and counts may be, checked at load (exit 2).

pub mod action;
pub mod app;
pub mod config;
pub mod conntrackd;
pub mod effects;
pub mod engine;
pub mod event;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod run;
pub mod runtime;
pub mod status;
pub mod steps;
pub mod supersede;
pub mod validate;
