//! A hook runner: a fresh, single-threaded re-exec of our binary that the
//! caller spawns for each hook of the runtime's namespaces (prestart,
//! createRuntime, poststart, poststop). It runs and waits for the hook itself,
//! so a caller with a global `waitpid(-1)` reaper (the shim) never has to wait
//! for a process it did not start through us.

use super::{receive, Step, StepResult};
use crate::hooks;
use crate::sync::{Channel, Message};

pub(super) fn run(ch: &Channel) -> StepResult<()> {
    let (job, _) = receive(ch, "receive hook", |m| match m {
        Message::Hook(job) => Ok(job),
        other => Err(other),
    })?;
    hooks::run(job.kind, job.index, &job.hook, &job.state).step("hook")?;
    ch.send(&Message::Ready, &[]).step("report hook done")
}
