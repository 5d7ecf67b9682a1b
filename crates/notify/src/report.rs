//! What a transition reports: each step's result (and, in a dry run, its action), how the
//! transition ended. Logged, written as `--json`, turned into the exit code and the record.

use serde::Serialize;

use crate::{event::State, plan::Step};

/// What one step did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "detail")]
pub enum StepResult {
    Changed(String),
    Unchanged(String),
    Skipped(String),
    Failed(String),
    Planned(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: Step,
    #[serde(flatten)]
    pub result: StepResult,
    /// What the dry run resolved the step to (the action a run applies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<crate::action::Action>,
    pub ms: f64,
}

impl StepReport {
    /// A step's result, outside a dry run (no action listed).
    pub fn new(step: Step, result: StepResult, ms: f64) -> StepReport {
        StepReport {
            step,
            result,
            action: None,
            ms,
        }
    }
}

/// How a transition ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    Converged,
    Failed,
    Superseded,
    DryRun,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub instance: String,
    pub state: State,
    pub generation: u64,
    pub outcome: Ended,
    pub reason: Option<String>,
    pub already_converged: bool,
    pub steps: Vec<StepReport>,
    pub ms: f64,
}
