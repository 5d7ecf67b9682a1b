//! The exit-code contract shared by every hakit binary.
//!
//! keepalived's `vrrp_script` and notify machinery, and operators' shell scripts, only see
//! the exit status, so it is an API: documented in every `--help` and in the README.

use std::fmt;

/// Exit status of a hakit binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the job succeeded (or, for checks, the node is healthy).
    Ok,
    /// 1: the job failed (or, for checks, the node is unhealthy).
    Failed,
    /// 2: usage or configuration error; nothing was changed.
    Usage,
    /// 3: superseded by a newer transition, or only partially applied.
    Partial,
}

impl Exit {
    /// The numeric process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Partial => 3,
        }
    }

    /// Classifies an error: a [`UsageError`] anywhere in its chain is a usage error,
    /// everything else is a failure.
    pub fn of_error(err: &anyhow::Error) -> Exit {
        if err
            .chain()
            .any(|e| e.downcast_ref::<UsageError>().is_some())
        {
            Exit::Usage
        } else {
            Exit::Failed
        }
    }
}

impl From<Exit> for i32 {
    fn from(e: Exit) -> i32 {
        i32::from(e.code())
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

/// The text every `--help` ends with.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success (checks: healthy)
  1  the job failed (checks: unhealthy)
  2  usage or configuration error, nothing changed
  3  superseded by a newer transition, or partially applied";

/// An error in what the caller asked for (bad flag, bad config, unknown interface):
/// retrying will not help, so it maps to exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Builds an [`anyhow::Error`] that maps to [`Exit::Usage`].
pub fn usage_error(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn usage_survives_context() {
        let e: anyhow::Result<()> = Err(usage_error("unknown interface eth9"));
        let e = e.context("garp burst").unwrap_err();
        assert_eq!(Exit::of_error(&e), Exit::Usage);
        assert_eq!(format!("{e:#}"), "garp burst: unknown interface eth9");
    }

    #[test]
    fn other_errors_are_failures() {
        let e = anyhow::anyhow!("sendto failed");
        assert_eq!(Exit::of_error(&e), Exit::Failed);
        assert_eq!(i32::from(Exit::Partial), 3);
    }
}
