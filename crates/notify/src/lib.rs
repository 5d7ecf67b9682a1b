//! The engine of `nat-notify`, keepalived's notify hook.
//!
//! keepalived starts notify hooks without waiting for them: a fast MASTER→BACKUP→MASTER
//! flap starts three processes that race. This crate makes the final state always the one
//! keepalived reported last:
//!
//! * [`event`]: the three ways keepalived reports a state (argument, generic `notify`
//!   arguments, `notify_fifo` lines).
//! * [`runtime`]: per-instance intent log (generations), lock and recorded state.
//! * [`engine`]: the ordered, idempotent steps of one transition, with a supersession check
//!   before every step.
//! * [`supersede`]: the checks themselves (newer intents, keepalived's own VIPs).
//! * [`nft`], [`conntrackd`]: the two external programs with real state.
//! * [`status`]: one look at the node, for operators.
//! * [`validate`]: what names and counts may be, checked at load (exit 2).

pub mod app;
pub mod conntrackd;
pub mod engine;
pub mod event;
pub mod nft;
pub mod runtime;
pub mod status;
pub mod supersede;
pub mod validate;
