//! Asynchronous actions as Hetzner and DigitalOcean run them: an assign returns an action
//! that takes one poll to finish (at once with `--instant`, never with the `stuck` fault).

use super::{hetzner::hetzner_action, *};

/// An assign of the address to `target` started: the action, as `p` answers it.
pub(crate) fn start(s: &mut State, p: &str, target: u64) -> (u16, String) {
    s.next_action += 1;
    let id = s.next_action;
    s.actions.insert(id, 0);
    // Applied when polled: the action takes one poll to finish (or at once).
    s.shared.insert(u64::MAX - id, vec![target.to_string()]);
    if s.instant {
        s.owner = Some(target);
        let st = if p == "hetzner" {
            "success"
        } else {
            "completed"
        };
        let action = if p == "hetzner" {
            hetzner_action(id, st, &target.to_string())
        } else {
            format!(r#"{{"id":{id},"status":"{st}"}}"#)
        };
        (201, format!(r#"{{"action":{action}}}"#))
    } else if p == "hetzner" {
        (
            201,
            format!(
                r#"{{"action":{}}}"#,
                hetzner_action(id, "running", &target.to_string())
            ),
        )
    } else {
        (
            201,
            format!(r#"{{"action":{{"id":{id},"status":"in-progress"}}}}"#),
        )
    }
}

/// Action `id` polled: finished on the second poll, applying its assign.
pub(crate) fn poll(s: &mut State, p: &str, id: u64) -> (u16, String) {
    let polls = s.actions.get(&id).copied().unwrap_or(0);
    s.actions.insert(id, polls + 1);
    let done = polls >= 1 && s.fault != "stuck";
    if done {
        s.owner = s
            .shared
            .get(&(u64::MAX - id))
            .and_then(|v| v[0].parse().ok());
    }
    let st = match (p, done) {
        ("hetzner", true) => "success",
        ("hetzner", false) => "running",
        (_, true) => "completed",
        _ => "in-progress",
    };
    let action = if p == "hetzner" {
        let server = s
            .shared
            .get(&(u64::MAX - id))
            .and_then(|v| v.first().cloned())
            .unwrap_or_else(|| "0".into());
        hetzner_action(id, st, &server)
    } else {
        format!(r#"{{"id":{id},"status":"{st}"}}"#)
    };
    (200, format!(r#"{{"action":{action}}}"#))
}
