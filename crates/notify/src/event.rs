//! keepalived's state events, in each form keepalived delivers them.
//!
//! * `notify_master "/usr/sbin/nat-notify master"`: the state is the argument.
//! * `notify "/usr/sbin/nat-notify"`: keepalived appends `INSTANCE|GROUP NAME STATE PRIORITY`.
//! * `notify_fifo`: lines `INSTANCE "VI_1" MASTER 110\n` (keepalived's `notify_fifo`
//!   writer: `"%s \"%s\" %s %d\n"`, type, name, state, priority). Priority-change events
//!   (`MASTER_PRIORITY`, `BACKUP_PRIORITY`) and checker lines (`VS`, `RS`) carry no
//!   transition and are ignored.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A VRRP state (or event) that asks for a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Master,
    Backup,
    Fault,
    Stop,
    /// A MASTER heard a lower-priority advert (a split brain healing): re-assert.
    MasterRxLowerPri,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Master => "MASTER",
            State::Backup => "BACKUP",
            State::Fault => "FAULT",
            State::Stop => "STOP",
            State::MasterRxLowerPri => "MASTER_RX_LOWER_PRI",
        }
    }

    /// Parses keepalived's spelling (case-insensitive, so `master` works from a shell).
    pub fn parse(s: &str) -> Option<State> {
        Some(match s.to_ascii_uppercase().as_str() {
            "MASTER" => State::Master,
            "BACKUP" => State::Backup,
            "FAULT" => State::Fault,
            "STOP" | "DELETED" => State::Stop,
            "MASTER_RX_LOWER_PRI" => State::MasterRxLowerPri,
            _ => return None,
        })
    }

    /// Whether keepalived holds the instance's VIPs in this state.
    pub fn holds_vips(self) -> bool {
        matches!(self, State::Master | State::MasterRxLowerPri)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event for one instance or sync group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub state: State,
}

/// Parses the generic `notify` arguments `INSTANCE|GROUP NAME STATE [PRIORITY]`.
pub fn from_args(
    kind: &str,
    name: &str,
    state: &str,
    priority: Option<&str>,
) -> Result<Event, String> {
    match kind {
        "INSTANCE" | "GROUP" => {}
        other => {
            return Err(format!(
                "unknown event type {other:?}: expected INSTANCE or GROUP"
            ))
        }
    };
    let state = State::parse(state).ok_or_else(|| format!("unknown state {state:?}"))?;
    // Validated, not used: a transition does not depend on the priority.
    if let Some(p) = priority {
        p.parse::<i64>()
            .map_err(|_| format!("invalid priority {p:?}"))?;
    }
    if name.is_empty() {
        return Err("empty instance name".into());
    }
    Ok(Event {
        name: name.to_string(),
        state,
    })
}

/// Parses one FIFO line. `Ok(None)`: a well-formed line that asks for nothing.
pub fn from_fifo_line(line: &str) -> Result<Option<Event>, String> {
    let line = line.trim_end_matches(['\n', '\r']);
    let (kind, rest) = line
        .split_once(' ')
        .ok_or_else(|| format!("malformed line {line:?}"))?;
    if !matches!(kind, "INSTANCE" | "GROUP") {
        return Ok(None); // checker (VS/RS) lines and future types
    }
    let rest = rest
        .strip_prefix('"')
        .ok_or_else(|| format!("malformed line {line:?}: name not quoted"))?;
    // Names may contain spaces; the state and priority follow the last quote.
    let end = rest
        .rfind('"')
        .ok_or_else(|| format!("malformed line {line:?}: unterminated name"))?;
    let (name, tail) = (&rest[..end], rest[end + 1..].trim());
    let mut words = tail.split_whitespace();
    let state = words
        .next()
        .ok_or_else(|| format!("malformed line {line:?}: no state"))?;
    if matches!(state, "MASTER_PRIORITY" | "BACKUP_PRIORITY") {
        return Ok(None);
    }
    let prio = words.next();
    if words.next().is_some() {
        return Err(format!("malformed line {line:?}: trailing fields"));
    }
    from_args(kind, name, state, prio)
        .map(Some)
        .map_err(|e| format!("{e} in line {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_lines() {
        let e = from_fifo_line("INSTANCE \"VI_1\" MASTER 110\n")
            .unwrap()
            .unwrap();
        assert_eq!((e.name.as_str(), e.state), ("VI_1", State::Master));
        let e = from_fifo_line("GROUP \"G 1\" BACKUP 0").unwrap().unwrap();
        assert_eq!((e.name.as_str(), e.state), ("G 1", State::Backup));
        let e = from_fifo_line("INSTANCE \"VI_1\" MASTER_RX_LOWER_PRI 110")
            .unwrap()
            .unwrap();
        assert_eq!(e.state, State::MasterRxLowerPri);
        assert_eq!(
            from_fifo_line("INSTANCE \"VI_1\" MASTER_PRIORITY 90").unwrap(),
            None
        );
        assert_eq!(from_fifo_line("RS 192.0.2.1:80 UP").unwrap(), None);
    }

    #[test]
    fn malformed_fifo_lines_are_errors_not_panics() {
        for bad in [
            "",
            "INSTANCE",
            "INSTANCE VI_1 MASTER 1",
            "INSTANCE \"VI_1",
            "INSTANCE \"VI_1\"",
            "INSTANCE \"VI_1\" SLEEPY 1",
            "INSTANCE \"VI_1\" MASTER x",
            "INSTANCE \"\" MASTER 1",
            "INSTANCE \"VI_1\" MASTER 1 2",
            "INSTANCE \"\u{fffd}",
            "GROUP \"\" BACKUP",
        ] {
            assert!(from_fifo_line(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn generic_notify_args() {
        let e = from_args("INSTANCE", "VI_1", "BACKUP", Some("100")).unwrap();
        assert_eq!(e.state, State::Backup);
        assert!(from_args("VS", "x", "MASTER", None).is_err());
        assert_eq!(State::parse("master"), Some(State::Master));
        assert_eq!(State::parse("DELETED"), Some(State::Stop));
    }
}
