//! The caller's side of the hooks that run in the runtime's namespaces (prestart,
//! createRuntime, poststart, poststop): each runs in a hook runner, a single-threaded
//! re-exec of the init binary, so that no reaper of the caller (the shim's global
//! `waitpid(-1)`) collects the hook's exit status, and no Rust code runs in a fork of the
//! multi-threaded shim. What a hook is, and running one, is `hooks.rs`.

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};
use crate::exe::{InitExe, Role};
use crate::hooks::{label, of, state, Job, Kind};
use crate::sync::{Channel, Message};

/// Runs the hooks of `kind` that belong in the runtime's namespaces, each in a
/// hook runner (see the module doc for why); failures of poststart and
/// poststop are only logged.
pub(crate) fn run(
    exe: &InitExe,
    spec: &Spec,
    kind: Kind,
    id: &str,
    pid: Option<i32>,
    bundle: &std::path::Path,
) -> Result<()> {
    let list = of(spec, kind);
    if list.is_empty() {
        return Ok(());
    }
    let state = state(spec, id, pid, &bundle.to_string_lossy(), kind);
    for (index, hook) in list.iter().enumerate() {
        let job = Job {
            kind,
            index,
            hook: hook.clone(),
            state: state.clone(),
        };
        match in_runner(exe, job) {
            Ok(()) => {}
            Err(e) if kind.fatal() => return Err(e),
            Err(e) => log::warn!("{id}: {e}"),
        }
    }
    Ok(())
}

/// Spawns a hook runner for one hook and waits for its report.
fn in_runner(exe: &InitExe, job: Job) -> Result<()> {
    let what = label(job.kind, job.index, &job.hook);
    let (ch, child_end) = Channel::pair()?;
    exe.spawn(Role::Hook, child_end, None, None)?;
    ch.send(&Message::Hook(Box::new(job)), &[])?;
    match ch.recv()? {
        Some((Message::Ready, _)) => Ok(()),
        Some((Message::Error { cause, .. }, _)) => Err(Error::Hook(cause)),
        Some((other, _)) => Err(Error::Protocol(format!(
            "{what}: unexpected message from the hook runner {other:?}"
        ))),
        None => Err(Error::Protocol(format!(
            "{what}: the hook runner exited without a report"
        ))),
    }
}
