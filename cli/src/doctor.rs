//! `tent doctor`: read-only checks of a node's containerd for tent, each problem with its fix.
//! The config checked is containerd's merged one (`config dump`), the handlers are the ones the
//! CRI reports: a table containerd silently ignores is a problem here, not a pod that never
//! schedules later.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use toml_edit::{DocumentMut, Item};

use crate::cri::Cri;
use crate::ctdconfig::{self as cc, Target};
use crate::install;

/// What the doctor checks against.
pub struct Options {
    pub target: Target,
    pub handlers: Vec<String>,
    /// The shim version the chart ships (default: this CLI's version).
    pub expect_version: String,
    pub kubelet_config: PathBuf,
    /// tent profile the handlers use: `tent` or `compat` (decides what is required of LSMs).
    pub profile: String,
    /// Skip the CRI status (`--no-cri`: only the config).
    pub cri: bool,
}

/// One check's outcome.
#[derive(Serialize, Debug)]
pub struct Finding {
    pub check: String,
    /// `ok`, `info` or `problem`.
    pub level: &'static str,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(check, "ok", detail, None)
    }
    fn info(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(check, "info", detail, None)
    }
    fn problem(
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(check, "problem", detail, Some(fix.into()))
    }
    fn new(
        check: impl Into<String>,
        level: &'static str,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Finding {
            check: check.into(),
            level,
            detail: detail.into(),
            fix,
        }
    }
    pub fn is_problem(&self) -> bool {
        self.level == "problem"
    }
}

/// Every check, in order.
pub fn run(o: &Options) -> Vec<Finding> {
    let mut f = Vec::new();
    let dump = match o.target.dump() {
        Ok(d) => d,
        Err(e) => {
            f.push(Finding::problem(
                "config",
                e,
                "fix the config so that `containerd config dump` succeeds (containerd would not start)",
            ));
            return f;
        }
    };
    let version = cc::version(&dump);
    let plugin = cc::runtime_plugin(version);
    f.push(Finding::ok(
        "config",
        format!(
            "{}: config version {version}, runtimes read from plugins.\"{plugin}\"",
            o.target.config.display()
        ),
    ));
    // The root file as written: containerd 1.x drops unknown plugin sections from its dump.
    let raw = cc::parse_file(&o.target.at(&o.target.config))
        .ok()
        .map(|(_, d)| d);
    let mut paths = Vec::new();
    // tent-pauseless exists only where tent install could register it (containerd 2.x):
    // absent, it is a note, not a problem.
    let handlers: Vec<String> = o
        .handlers
        .iter()
        .filter(|h| {
            let absent = h.as_str() == install::PAUSELESS
                && cc::runtime(&dump, plugin, h).is_none()
                && cc::runtime(&dump, cc::ignored_plugin(version), h).is_none();
            if absent {
                f.push(Finding::info(
                    format!("handler {h}"),
                    if version >= 3 {
                        "not registered (pods without a pause process; `tent install` adds it)"
                            .to_string()
                    } else {
                        format!("not registered: config version {version} is containerd 1.x's, which has no shim sandboxer")
                    },
                ));
            }
            !absent
        })
        .cloned()
        .collect();
    for h in &handlers {
        handler(
            &mut f,
            &o.target,
            &dump,
            raw.as_ref(),
            version,
            h,
            &mut paths,
        );
    }
    paths.sort();
    paths.dedup();
    for p in &paths {
        shim_version(&mut f, &o.target, p, &o.expect_version);
    }
    if o.cri {
        cri_status(&mut f, &o.target.at(&o.target.address), &handlers);
    }
    cgroup_driver(
        &mut f,
        &dump,
        version,
        &o.target.at(&o.kubelet_config),
        &handlers,
    );
    lsm(&mut f, &o.target, &dump, version, &o.profile);
    cgroup_version(&mut f, &o.target);
    f
}

fn handler(
    f: &mut Vec<Finding>,
    t: &Target,
    dump: &DocumentMut,
    raw: Option<&DocumentMut>,
    version: i64,
    h: &str,
    paths: &mut Vec<PathBuf>,
) {
    let check = format!("handler {h}");
    let plugin = cc::runtime_plugin(version);
    let ignored = cc::ignored_plugin(version);
    let Some(rt) = cc::runtime(dump, plugin, h) else {
        let misplaced = cc::runtime(dump, ignored, h).is_some()
            || raw.is_some_and(|r| cc::runtime(r, ignored, h).is_some());
        if misplaced {
            f.push(Finding::problem(
                check,
                format!(
                    "[plugins.\"{ignored}\".containerd.runtimes.{h}] is ignored by config version {version}: containerd has no handler {h}"
                ),
                format!(
                    "move the table to [plugins.\"{plugin}\".containerd.runtimes.{h}] (or run `tent install`)"
                ),
            ));
        } else {
            f.push(Finding::problem(
                check,
                format!("no [plugins.\"{plugin}\".containerd.runtimes.{h}] in the merged config"),
                "run `tent install` (or add the table with runtime_type = \"io.containerd.tent.v1\")",
            ));
        }
        return;
    };
    let rtype = rt
        .get("runtime_type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if rtype != cc::RUNTIME_TYPE {
        f.push(Finding::problem(
            check.clone(),
            format!("runtime_type is {rtype:?}, not {:?}", cc::RUNTIME_TYPE),
            format!("set runtime_type = \"{}\"", cc::RUNTIME_TYPE),
        ));
        return;
    }
    f.push(Finding::ok(
        check.clone(),
        format!("[plugins.\"{plugin}\".containerd.runtimes.{h}] runtime_type {rtype}"),
    ));
    if h == install::PAUSELESS {
        pauseless(f, rt, plugin, h);
    }
    match rt.get("runtime_path").and_then(|v| v.as_str()).filter(|p| !p.is_empty()) {
        None => f.push(Finding::info(
            format!("{h} runtime_path"),
            "not set: containerd looks for containerd-shim-tent-v1 on its PATH and beside its binary",
        )),
        Some(p) => match executable(&t.at(Path::new(p))) {
            Ok(()) => {
                f.push(Finding::ok(format!("{h} runtime_path"), format!("{p} is executable")));
                paths.push(PathBuf::from(p));
            }
            Err(e) => f.push(Finding::problem(
                format!("{h} runtime_path"),
                format!("{p}: {e}"),
                format!("install the shim at {p} with mode 0755 (`tent install`)"),
            )),
        },
    }
    let cfg = rt
        .get("options")
        .and_then(|o| o.get("ConfigPath"))
        .and_then(|v| v.as_str());
    if let Some(c) = cfg {
        match std::fs::metadata(t.at(Path::new(c))) {
            Ok(m) if m.is_file() => f.push(Finding::ok(
                format!("{h} profile"),
                format!("ConfigPath {c}"),
            )),
            _ => f.push(Finding::problem(
                format!("{h} profile"),
                format!("options.ConfigPath {c} is not a readable file: every pod on {h} fails"),
                format!("install the profile at {c} (`tent install`)"),
            )),
        }
    }
}

/// The pauseless handler needs the shim sandboxer and must have no options table: containerd
/// 2.1 passes the pod shim's address inside runc's options type and fails on any other.
fn pauseless(f: &mut Vec<Finding>, rt: &Item, plugin: &str, h: &str) {
    let sb = rt.get("sandboxer").and_then(|v| v.as_str()).unwrap_or("");
    if sb == "shim" {
        f.push(Finding::ok(
            format!("{h} sandboxer"),
            "shim (no pause process)",
        ));
    } else {
        f.push(Finding::problem(
            format!("{h} sandboxer"),
            format!("sandboxer is {sb:?}, not \"shim\": its pods get a pause process"),
            format!("set sandboxer = \"shim\" in [plugins.\"{plugin}\".containerd.runtimes.{h}]"),
        ));
    }
    let has_options = rt
        .get("options")
        .and_then(Item::as_table_like)
        .is_some_and(|t| !t.is_empty());
    if has_options {
        f.push(Finding::problem(
            format!("{h} options"),
            "an options table: containerd 2.1 then fails every container of its pods",
            format!("remove [plugins.\"{plugin}\".containerd.runtimes.{h}.options]"),
        ));
    }
}

fn executable(p: &Path) -> Result<(), String> {
    let m = std::fs::metadata(p).map_err(|e| e.to_string())?;
    if !m.is_file() {
        return Err("not a regular file".into());
    }
    if m.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "not executable (mode {:o})",
            m.permissions().mode() & 0o7777
        ));
    }
    Ok(())
}

/// `<shim> -v` prints `  Version: X`.
fn shim_version(f: &mut Vec<Finding>, t: &Target, shim: &Path, expect: &str) {
    let check = format!("shim version {}", shim.display());
    let mut cmd = Command::new(shim);
    cmd.arg("-v");
    let got = t.host.output(cmd).and_then(|o| {
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        s.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Version:")
                    .map(|v| v.trim().to_string())
            })
            .ok_or_else(|| format!("no `Version:` in its -v output: {s:?}"))
    });
    match got {
        Ok(v) if v == expect => f.push(Finding::ok(check, v)),
        Ok(v) => f.push(Finding::problem(
            check,
            format!("the shim is {v}, expected {expect}"),
            "install the shim this chart ships (`tent install`), or pass --expect-version",
        )),
        Err(e) => f.push(Finding::problem(
            check,
            format!("cannot run it: {e}"),
            "reinstall the shim (`tent install`)",
        )),
    }
}

fn cri_status(f: &mut Vec<Finding>, address: &Path, handlers: &[String]) {
    let st = Cri::connect(address).and_then(|c| c.status());
    let st = match st {
        Ok(s) => s,
        Err(e) => {
            f.push(Finding::problem(
                "cri",
                e,
                "start containerd, or pass its socket with --address",
            ));
            return;
        }
    };
    for (t, ok, reason, msg) in &st.conditions {
        if *ok {
            f.push(Finding::ok(format!("cri {t}"), "true"));
        } else if t == "RuntimeReady" {
            f.push(Finding::problem(
                format!("cri {t}"),
                format!("false: {reason} {msg}"),
                "see containerd's log",
            ));
        } else {
            f.push(Finding::info(
                format!("cri {t}"),
                format!("false: {reason} {msg}"),
            ));
        }
    }
    for h in handlers {
        if st.handlers.iter().any(|x| x == h) {
            f.push(Finding::ok(
                format!("cri handler {h}"),
                "reported by the CRI",
            ));
        } else {
            f.push(Finding::problem(
                format!("cri handler {h}"),
                format!("the CRI reports handlers {:?}, not {h}", st.handlers),
                "restart containerd after changing its config (`tent install` does)",
            ));
        }
    }
}

/// kubelet's `cgroupDriver:` (a flat YAML key; no YAML parser needed for one scalar).
pub fn kubelet_driver(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let v = text
        .lines()
        .find_map(|l| l.strip_prefix("cgroupDriver:"))
        .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string());
    // Since kubelet 1.22 the default is systemd when unset in a KubeletConfiguration.
    Some(v.unwrap_or_else(|| "systemd".into()))
}

fn cgroup_driver(
    f: &mut Vec<Finding>,
    dump: &DocumentMut,
    version: i64,
    kubelet: &Path,
    handlers: &[String],
) {
    let Some(kd) = kubelet_driver(kubelet) else {
        f.push(Finding::info(
            "cgroup driver",
            format!("no kubelet config at {}: not compared", kubelet.display()),
        ));
        return;
    };
    let plugin = cc::runtime_plugin(version);
    let default = cc::get_str(
        dump,
        &["plugins", plugin, "containerd", "default_runtime_name"],
    )
    .unwrap_or("runc")
    .to_string();
    let mut names: Vec<String> = vec![default];
    names.extend(handlers.iter().cloned());
    let mut any = false;
    for h in names {
        let Some(v) = cc::runtime(dump, plugin, &h)
            .and_then(|r| r.get("options"))
            .and_then(|o| o.get("SystemdCgroup"))
            .and_then(|v| v.as_bool())
        else {
            continue;
        };
        any = true;
        let rd = if v { "systemd" } else { "cgroupfs" };
        if rd == kd {
            f.push(Finding::ok(
                format!("cgroup driver {h}"),
                format!("kubelet {kd}, SystemdCgroup = {v}"),
            ));
        } else {
            f.push(Finding::problem(
                format!("cgroup driver {h}"),
                format!("kubelet uses {kd} ({}), runtime {h} has SystemdCgroup = {v}", kubelet.display()),
                format!(
                    "set SystemdCgroup = {} in [plugins.\"{plugin}\".containerd.runtimes.{h}.options], or cgroupDriver in kubelet's config",
                    kd == "systemd"
                ),
            ));
        }
    }
    if !any {
        f.push(Finding::info(
            "cgroup driver",
            format!("kubelet {kd}; no runtime sets SystemdCgroup (tent follows the cgroupsPath form kubelet sends)"),
        ));
    }
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn lsm(f: &mut Vec<Finding>, t: &Target, dump: &DocumentMut, version: i64, profile: &str) {
    let seccomp = std::fs::read_to_string("/proc/self/status")
        .ok()
        .is_some_and(|s| s.lines().any(|l| l.starts_with("Seccomp:")));
    if seccomp {
        f.push(Finding::ok("seccomp", "the kernel has seccomp filters"));
    } else if profile == "tent" {
        f.push(Finding::problem(
            "seccomp",
            "the kernel has no seccomp (no Seccomp: in /proc/self/status): profile tent refuses every pod",
            "boot a kernel with CONFIG_SECCOMP_FILTER, or use the compat profile",
        ));
    } else {
        f.push(Finding::info(
            "seccomp",
            "the kernel has no seccomp: pods asking for a profile are refused",
        ));
    }
    let aa = read_trim(&t.at(Path::new("/sys/module/apparmor/parameters/enabled")))
        .is_some_and(|v| v == "Y");
    if aa {
        if t.at(Path::new("/sys/kernel/security/apparmor")).exists() {
            f.push(Finding::ok(
                "apparmor",
                "enabled: containerd sets cri-containerd.apparmor.d, tent applies it",
            ));
        } else {
            f.push(Finding::problem(
                "apparmor",
                "enabled but /sys/kernel/security is not mounted: profiles cannot be loaded or applied, pods are refused",
                "mount securityfs at /sys/kernel/security",
            ));
        }
    } else {
        f.push(Finding::info(
            "apparmor",
            "not enabled: no AppArmor profile is applied",
        ));
    }
    let se = t.at(Path::new("/sys/fs/selinux/enforce")).exists();
    let plugin = if version >= 3 { cc::CRI_V3 } else { cc::CRI_V2 };
    let cri_se = cc::get(dump, &["plugins", plugin, "enable_selinux"])
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    match (se, cri_se) {
        (true, _) => f.push(Finding::ok(
            "selinux",
            format!("enabled; CRI enable_selinux = {cri_se}"),
        )),
        (false, true) => f.push(Finding::problem(
            "selinux",
            "CRI enable_selinux = true but the host has no SELinux: labels cannot be applied, tent refuses them",
            format!("set enable_selinux = false in [plugins.\"{plugin}\"]"),
        )),
        (false, false) => f.push(Finding::info("selinux", "not enabled")),
    }
}

fn cgroup_version(f: &mut Vec<Finding>, t: &Target) {
    if t.at(Path::new("/sys/fs/cgroup/cgroup.controllers"))
        .exists()
    {
        f.push(Finding::ok("cgroups", "v2 (unified)"));
    } else if t.at(Path::new("/sys/fs/cgroup/unified")).exists() {
        f.push(Finding::info(
            "cgroups",
            "v1 (hybrid: v1 controllers, controller-less v2 at /sys/fs/cgroup/unified); kubelet 1.31+ deprecates v1",
        ));
    } else {
        f.push(Finding::info("cgroups", "v1; kubelet 1.31+ deprecates v1"));
    }
}

/// The findings as a table: one line each, the fix under a problem.
pub fn table(fs: &[Finding]) -> String {
    let mut s = String::new();
    for x in fs {
        let mark = match x.level {
            "ok" => "ok     ",
            "info" => "info   ",
            _ => "PROBLEM",
        };
        s.push_str(&format!("{mark} {:<28} {}\n", x.check, x.detail));
        if let Some(fix) = &x.fix {
            s.push_str(&format!("        {:<28} fix: {fix}\n", ""));
        }
    }
    let n = fs.iter().filter(|x| x.is_problem()).count();
    s.push_str(&if n == 0 {
        "tent doctor: no problems\n".to_string()
    } else {
        format!("tent doctor: {n} problem(s)\n")
    });
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_driver_read() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.yaml");
        std::fs::write(&p, "kind: KubeletConfiguration\ncgroupDriver: cgroupfs\n").unwrap();
        assert_eq!(kubelet_driver(&p).as_deref(), Some("cgroupfs"));
        std::fs::write(&p, "kind: KubeletConfiguration\n").unwrap();
        assert_eq!(kubelet_driver(&p).as_deref(), Some("systemd"));
        assert_eq!(kubelet_driver(&d.path().join("none")), None);
    }

    #[test]
    fn driver_mismatch_is_a_problem() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.yaml");
        std::fs::write(&p, "cgroupDriver: systemd\n").unwrap();
        let dump: DocumentMut = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = false\n".parse().unwrap();
        let mut f = Vec::new();
        cgroup_driver(&mut f, &dump, 2, &p, &[]);
        assert!(f[0].is_problem(), "{f:?}");
        std::fs::write(&p, "cgroupDriver: cgroupfs\n").unwrap();
        let mut f = Vec::new();
        cgroup_driver(&mut f, &dump, 2, &p, &[]);
        assert!(!f[0].is_problem(), "{f:?}");
    }

    /// tent-pauseless needs `sandboxer = "shim"` and no options table (containerd 2.1 fails
    /// its containers otherwise): each mistake is a problem; the right table is not.
    #[test]
    fn pauseless_table_checked() {
        let p = cc::CRI_V3;
        let check = |table: &str| {
            let dump: DocumentMut = format!(
                "version = 3\n[plugins.\"{p}\".containerd.runtimes.tent-pauseless]\n{table}"
            )
            .parse()
            .unwrap();
            let rt = cc::runtime(&dump, p, "tent-pauseless").unwrap();
            let mut f = Vec::new();
            pauseless(&mut f, rt, p, "tent-pauseless");
            f.iter().filter(|x| x.is_problem()).count()
        };
        assert_eq!(check("sandboxer = \"shim\"\n"), 0);
        assert_eq!(check(""), 1);
        assert_eq!(check("sandboxer = \"podsandbox\"\n"), 1);
        assert_eq!(
            check("sandboxer = \"shim\"\n[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.tent-pauseless.options]\nConfigPath = \"/x\"\n"),
            1
        );
    }
}
