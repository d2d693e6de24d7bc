//! The process spec (`process` of `config.json`, or an exec's process):
//! one validation used by both create and exec, before anything is created,
//! so both refuse the same things with the same messages.

use oci_spec::runtime::Process;

use crate::error::{Error, Result};

/// The resource number of an OCI rlimit name.
#[allow(clippy::unnecessary_cast)] // the libc type differs between glibc and musl
pub fn rlimit_resource(name: &str) -> Option<u32> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    } as u32)
}

/// Checks on a process spec that need nothing from the container: args,
/// cwd, rlimits, environment. Errors name the field (`process.…`).
pub fn validate(process: &Process) -> Result<()> {
    // Applied by nobody here: refused, never dropped.
    for (set, field) in [
        (process.io_priority().is_some(), "process.ioPriority"),
        (process.scheduler().is_some(), "process.scheduler"),
        (
            process.exec_cpu_affinity().is_some(),
            "process.execCPUAffinity",
        ),
    ] {
        if set {
            return Err(Error::Unsupported(format!(
                "{field}: not supported by tent"
            )));
        }
    }
    match process.args().as_deref() {
        Some([first, ..]) if !first.is_empty() => {}
        _ => return Err(Error::spec("process.args", "is empty: nothing to run")),
    }
    if !process.cwd().is_absolute() {
        return Err(Error::spec(
            "process.cwd",
            format!("{} is not an absolute path", process.cwd().display()),
        ));
    }
    for (i, rl) in process.rlimits().iter().flatten().enumerate() {
        let name = rl.typ().to_string();
        if rlimit_resource(&name).is_none() {
            return Err(Error::spec(
                format!("process.rlimits[{i}]"),
                format!("unknown rlimit type {name:?}"),
            ));
        }
        if process
            .rlimits()
            .iter()
            .flatten()
            .take(i)
            .any(|r| r.typ() == rl.typ())
        {
            return Err(Error::spec(
                format!("process.rlimits[{i}]"),
                format!("{name} is listed twice"),
            ));
        }
        if rl.soft() > rl.hard() {
            return Err(Error::spec(
                format!("process.rlimits[{i}]"),
                format!(
                    "{name}: soft limit {} exceeds hard limit {}",
                    rl.soft(),
                    rl.hard()
                ),
            ));
        }
    }
    for (what, items) in [
        (
            "process.args",
            process.args().as_deref().unwrap_or_default(),
        ),
        ("process.env", process.env().as_deref().unwrap_or_default()),
    ] {
        if let Some(i) = items.iter().position(|s| s.contains('\0')) {
            return Err(Error::spec(format!("{what}[{i}]"), "contains a NUL byte"));
        }
        if let Some((i, long)) = items
            .iter()
            .enumerate()
            .find(|(_, s)| s.len() >= MAX_ARG_STRLEN)
        {
            return Err(Error::spec(
                format!("{what}[{i}]"),
                format!(
                    "{} bytes: the kernel takes at most {} per argument or variable",
                    long.len(),
                    MAX_ARG_STRLEN - 1
                ),
            ));
        }
    }
    let user = process.user();
    if let Some(mask) = user.umask().filter(|m| *m > 0o777) {
        return Err(Error::spec(
            "process.user.umask",
            format!("{mask} ({mask:#o}) has bits beyond 0o777"),
        ));
    }
    let groups = user.additional_gids().as_ref().map_or(0, Vec::len);
    if groups > NGROUPS_MAX {
        return Err(Error::spec(
            "process.user.additionalGids",
            format!("{groups} groups: the kernel takes at most {NGROUPS_MAX}"),
        ));
    }
    if let Some(adj) = process
        .oom_score_adj()
        .filter(|a| !(-1000..=1000).contains(a))
    {
        return Err(Error::spec(
            "process.oomScoreAdj",
            format!("{adj} is outside -1000..=1000"),
        ));
    }
    Ok(())
}

/// The kernel's bound on one execve string, NUL included (32 pages).
const MAX_ARG_STRLEN: usize = 32 * 4096;
/// The kernel's bound on supplementary groups.
const NGROUPS_MAX: usize = 65536;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimit_names() {
        // x86_64/aarch64 numbering.
        assert_eq!(rlimit_resource("RLIMIT_NOFILE"), Some(7));
        assert_eq!(rlimit_resource("RLIMIT_NPROC"), Some(6));
        assert_eq!(rlimit_resource("NOFILE"), None);
    }

    fn err_of(v: serde_json::Value) -> String {
        match serde_json::from_value::<Process>(v) {
            Ok(p) => validate(&p).map_or_else(|e| e.to_string(), |()| "ok".into()),
            Err(e) => format!("parse: {e}"),
        }
    }

    #[test]
    fn one_set_of_messages() {
        let base = serde_json::json!({"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}});
        assert_eq!(err_of(base.clone()), "ok");
        let mut v = base.clone();
        v["args"] = serde_json::json!([]);
        assert_eq!(err_of(v), "process.args: is empty: nothing to run");
        let mut v = base.clone();
        v["args"] = serde_json::json!([""]);
        assert_eq!(err_of(v), "process.args: is empty: nothing to run");
        let mut v = base.clone();
        v["cwd"] = "tmp".into();
        assert_eq!(err_of(v), "process.cwd: tmp is not an absolute path");
        let mut v = base.clone();
        v["rlimits"] = serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]);
        assert_eq!(
            err_of(v),
            "process.rlimits[0]: RLIMIT_NOFILE: soft limit 10 exceeds hard limit 5"
        );
        let mut v = base.clone();
        v["env"] = serde_json::json!(["A=1", "B=\u{0}"]);
        assert_eq!(err_of(v), "process.env[1]: contains a NUL byte");
        let mut v = base.clone();
        v["rlimits"] = serde_json::json!([
            {"type": "RLIMIT_NOFILE", "soft": 5, "hard": 5},
            {"type": "RLIMIT_NOFILE", "soft": 9, "hard": 9}
        ]);
        assert_eq!(
            err_of(v),
            "process.rlimits[1]: RLIMIT_NOFILE is listed twice"
        );
        let mut v = base.clone();
        v["args"] = serde_json::json!(["sh", "x".repeat(MAX_ARG_STRLEN)]);
        assert!(err_of(v).starts_with("process.args[1]: 131072 bytes"));
        let mut v = base.clone();
        v["user"]["umask"] = 99999.into();
        assert_eq!(
            err_of(v),
            "process.user.umask: 99999 (0o303237) has bits beyond 0o777"
        );
        let mut v = base.clone();
        v["user"]["additionalGids"] = (0..=NGROUPS_MAX as u32).collect::<Vec<_>>().into();
        assert_eq!(
            err_of(v),
            "process.user.additionalGids: 65537 groups: the kernel takes at most 65536"
        );
        let mut v = base;
        v["oomScoreAdj"] = (-1001).into();
        assert_eq!(
            err_of(v),
            "process.oomScoreAdj: -1001 is outside -1000..=1000"
        );
    }
}
