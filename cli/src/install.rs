//! `tent install` / `tent uninstall`: put the shim and its profiles under a prefix, register
//! the handlers where containerd reads them, restart containerd, prove a pod runs on each
//! handler, and only then label the node; undo all of it exactly.
//!
//! The state (`<prefix>/install-state.json`) holds every changed file's original bytes: it is
//! the backup `tent uninstall` restores byte for byte, when the file is still what tent wrote.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::configedit::{self as ce, Change, Handler, Mode};
use crate::cri::{Cri, VerifyPod};
use crate::ctdconfig::{self as cc, Target};
use crate::doctor;
use crate::host::Restart;
use crate::kube::Kube;

/// The handlers tent registers and the profile file each gets.
pub const HANDLERS: [(&str, &str); 2] =
    [("tent", "tent.toml"), ("tent-compat", "tent-compat.toml")];
/// The pauseless handler: containerd 2.x's shim sandboxer runs the pod in tent's shim (no
/// pause process). No options table and no profile of its own (see `Handler::config_path`).
pub const PAUSELESS: &str = "tent-pauseless";
const SHIM: &str = "containerd-shim-tent-v1";
const STATE: &str = "install-state.json";

/// Every handler name tent may have registered (what uninstall and doctor look for).
pub fn all_handler_names() -> Vec<String> {
    HANDLERS
        .iter()
        .map(|(h, _)| h.to_string())
        .chain([PAUSELESS.to_string()])
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distro {
    K8s,
    K3s,
    Rke2,
}

impl Distro {
    pub fn parse(s: &str, host_root: &Path) -> Result<Distro, String> {
        Ok(match s {
            "k8s" => Distro::K8s,
            "k3s" => Distro::K3s,
            "rke2" => Distro::Rke2,
            "auto" if at(host_root, Path::new("/var/lib/rancher/rke2/agent")).is_dir() => {
                Distro::Rke2
            }
            "auto" if at(host_root, Path::new("/var/lib/rancher/k3s/agent")).is_dir() => {
                Distro::K3s
            }
            "auto" => Distro::K8s,
            _ => return Err(format!("--distro {s}: expected auto, k8s, k3s or rke2")),
        })
    }

    /// The agent's containerd dir (k3s/rke2), where config.toml is rendered from the template.
    fn agent_dir(self) -> Option<&'static str> {
        match self {
            Distro::K8s => None,
            Distro::K3s => Some("/var/lib/rancher/k3s/agent/etc/containerd"),
            Distro::Rke2 => Some("/var/lib/rancher/rke2/agent/etc/containerd"),
        }
    }

    pub fn default_config(self) -> PathBuf {
        match self.agent_dir() {
            Some(d) => Path::new(d).join("config.toml"),
            None => PathBuf::from("/etc/containerd/config.toml"),
        }
    }

    pub fn default_address(self) -> PathBuf {
        match self {
            Distro::K8s => PathBuf::from("/run/containerd/containerd.sock"),
            Distro::K3s => PathBuf::from("/run/k3s/containerd/containerd.sock"),
            Distro::Rke2 => PathBuf::from("/run/k3s/containerd/containerd.sock"),
        }
    }

    /// The unit running containerd: k3s/rke2 servers and agents have different units; the
    /// server's unit file decides (else the agent's).
    pub fn default_restart(self, host_root: &Path) -> Restart {
        let unit_exists = |u: &str| {
            [
                "/etc/systemd/system",
                "/usr/local/lib/systemd/system",
                "/usr/lib/systemd/system",
                "/lib/systemd/system",
            ]
            .iter()
            .any(|d| at(host_root, &Path::new(d).join(format!("{u}.service"))).exists())
        };
        let pick = |server: &str, agent: &str| {
            if unit_exists(server) || !unit_exists(agent) {
                server.to_string()
            } else {
                agent.to_string()
            }
        };
        Restart::Systemd(match self {
            Distro::K8s => "containerd".into(),
            Distro::K3s => pick("k3s", "k3s-agent"),
            Distro::Rke2 => pick("rke2-server", "rke2-agent"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distro_detection_and_units() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Distro::parse("auto", d.path()).unwrap(), Distro::K8s);
        std::fs::create_dir_all(d.path().join("var/lib/rancher/k3s/agent")).unwrap();
        assert_eq!(Distro::parse("auto", d.path()).unwrap(), Distro::K3s);
        assert_eq!(
            Distro::K3s.default_restart(d.path()),
            Restart::Systemd("k3s".into())
        );
        std::fs::create_dir_all(d.path().join("etc/systemd/system")).unwrap();
        std::fs::write(d.path().join("etc/systemd/system/k3s-agent.service"), "").unwrap();
        assert_eq!(
            Distro::K3s.default_restart(d.path()),
            Restart::Systemd("k3s-agent".into())
        );
        assert_eq!(
            Distro::K3s.default_config(),
            PathBuf::from("/var/lib/rancher/k3s/agent/etc/containerd/config.toml")
        );
        std::fs::create_dir_all(d.path().join("var/lib/rancher/rke2/agent")).unwrap();
        assert_eq!(Distro::parse("auto", d.path()).unwrap(), Distro::Rke2);
        assert!(Distro::parse("ubuntu", d.path()).is_err());
    }
}

/// `host_root` + an absolute host path.
pub fn at(host_root: &Path, p: &Path) -> PathBuf {
    host_root.join(p.strip_prefix("/").unwrap_or(p))
}

pub struct Options {
    /// containerd binary, root config, socket: host paths.
    pub target: Target,
    pub distro: Distro,
    pub prefix: PathBuf,
    /// Sources in this process's file system.
    pub shim: PathBuf,
    pub profiles: PathBuf,
    pub restart: Restart,
    /// Image of the verification pod's container (default: the sandbox image).
    pub verify_image: Option<String>,
    pub verify: bool,
    pub dry_run: bool,
    pub kube: Kube,
    pub kubelet_config: PathBuf,
    pub profile: String,
    pub verbose: bool,
}

#[derive(Serialize, Deserialize, Default)]
struct State {
    version: String,
    changes: Vec<Change>,
    files: Vec<PathBuf>,
}

impl Options {
    fn at(&self, p: &Path) -> PathBuf {
        self.target.at(p)
    }

    fn state_path(&self) -> PathBuf {
        self.at(&self.prefix.join(STATE))
    }

    fn load_state(&self) -> Result<Option<State>, String> {
        let p = self.state_path();
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| format!("{}: {e}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("read {}: {e}", p.display())),
        }
    }

    fn save_state(&self, s: &State) -> Result<(), String> {
        let text = serde_json::to_string_pretty(s).map_err(|e| format!("state: {e}"))?;
        write_atomic(&self.state_path(), text.as_bytes(), 0o600)
    }

    fn mode(&self) -> Result<Mode, String> {
        let Some(dir) = self.distro.agent_dir() else {
            return Ok(Mode::Containerd);
        };
        // The rendered config says which containerd the agent runs (2.x: version 3).
        let rendered = self.at(&self.target.config);
        let version = match cc::parse_file(&rendered) {
            Ok((_, d)) => cc::version(&d),
            Err(e) => return Err(format!("{e} (the k3s/rke2 agent renders it at start-up)")),
        };
        let name = if version >= 3 {
            "config-v3.toml.tmpl"
        } else {
            "config.toml.tmpl"
        };
        Ok(Mode::Template {
            template: Path::new(dir).join(name),
            version,
        })
    }

    /// The version of the config the tables go into (the root file's; a template's rendered
    /// config's): it decides whether containerd has the shim sandboxer.
    fn config_version(&self, mode: &Mode) -> Result<i64, String> {
        match mode {
            Mode::Template { version, .. } => Ok(*version),
            Mode::Containerd => Ok(cc::version(
                &cc::parse_file(&self.at(&self.target.config))?.1,
            )),
        }
    }

    /// The handlers this node's containerd can hold, and the ones skipped with why.
    fn handlers(&self, mode: &Mode) -> Result<ce::Supported, String> {
        let mut all: Vec<Handler> = HANDLERS
            .iter()
            .map(|(h, f)| Handler {
                name: h.to_string(),
                config_path: Some(self.prefix.join("etc").join(f).display().to_string()),
                sandboxer: None,
            })
            .collect();
        all.push(Handler {
            name: PAUSELESS.into(),
            config_path: None,
            sandboxer: Some("shim".into()),
        });
        Ok(ce::supported(&all, self.config_version(mode)?))
    }

    fn shim_dest(&self) -> PathBuf {
        self.prefix.join("bin").join(SHIM)
    }

    /// The config changes, with paths as host paths, and the handlers they register.
    fn plan(&self) -> Result<(Vec<Change>, Vec<String>), String> {
        let read = |p: &Path| -> Result<Option<String>, String> {
            let hp = self.at(p);
            match std::fs::read_to_string(&hp) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("read {}: {e}", hp.display())),
            }
        };
        let mode = self.mode()?;
        let (handlers, skipped) = self.handlers(&mode)?;
        for (h, why) in skipped {
            say(&format!("{h} skipped: {why}"));
        }
        let changes = ce::plan(
            &mode,
            &self.target.config,
            &read,
            &self.shim_dest().display().to_string(),
            &handlers,
        )?;
        Ok((changes, handlers.into_iter().map(|h| h.name).collect()))
    }
}

fn say(s: &str) {
    println!("tent install: {s}");
}

/// `tent install`.
pub fn install(o: &Options) -> Result<(), String> {
    // Sources first: nothing is changed when one is missing.
    let shim =
        std::fs::read(&o.shim).map_err(|e| format!("read the shim {}: {e}", o.shim.display()))?;
    let mut profiles = Vec::new();
    for (_, f) in HANDLERS {
        let p = o.profiles.join(f);
        let b = std::fs::read(&p).map_err(|e| format!("read the profile {}: {e}", p.display()))?;
        profiles.push((o.prefix.join("etc").join(f), b));
    }
    let (changes, names) = o.plan()?;
    let shim_dest = o.shim_dest();
    if o.dry_run {
        println!(
            "# tent install --dry-run: would install {} and {} profiles under {}",
            shim_dest.display(),
            profiles.len(),
            o.prefix.display()
        );
        if changes.is_empty() {
            println!("# the configuration already registers tent: no change");
        }
        for c in &changes {
            print!("{}", ce::diff(&c.path, c.old.as_deref(), &c.new));
        }
        println!(
            "# then: restart ({:?}), verify a pod on each handler, label the node {}",
            o.restart,
            crate::kube::LABEL
        );
        return Ok(());
    }
    // Keep the first install's originals: a re-install finds tent's own tables.
    let mut state = o.load_state()?.unwrap_or_default();
    state.version = env!("CARGO_PKG_VERSION").into();
    for c in &changes {
        match state.changes.iter_mut().find(|s| s.path == c.path) {
            Some(s) => s.new = c.new.clone(),
            None => state.changes.push(c.clone()),
        }
    }
    let mut files = vec![shim_dest.clone()];
    files.extend(profiles.iter().map(|(p, _)| p.clone()));
    state.files = files;
    o.save_state(&state)?;
    write_atomic(&o.at(&shim_dest), &shim, 0o755)?;
    for (p, b) in &profiles {
        write_atomic(&o.at(p), b, 0o644)?;
    }
    say(&format!(
        "installed {} and the profiles under {}",
        shim_dest.display(),
        o.prefix.join("etc").display()
    ));
    for c in &changes {
        let mode = std::fs::metadata(o.at(&c.path))
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o644);
        write_atomic(&o.at(&c.path), c.new.as_bytes(), mode)?;
        say(&format!(
            "{} {}",
            if c.old.is_some() { "edited" } else { "wrote" },
            c.path.display()
        ));
    }
    let restarted = if changes.is_empty() {
        say("the configuration already registers tent: containerd not restarted");
        Ok(())
    } else {
        restart(o)
    };
    if let Err(e) = restarted.and_then(|()| check(o, &names)) {
        eprintln!("tent install: failed, rolling back");
        if let Err(r) = undo(o, &state, !changes.is_empty()) {
            eprintln!("tent install: the roll-back failed too: {r}");
        }
        return Err(e);
    }
    say(&o.kube.label(Some("true"))?);
    if names.iter().any(|n| n == PAUSELESS) {
        say(&o
            .kube
            .label_key(crate::kube::PAUSELESS_LABEL, Some("true"))?);
    }
    Ok(())
}

fn restart(o: &Options) -> Result<(), String> {
    if o.restart == Restart::None {
        say("not restarting containerd (--restart none): it reads the change at its next start");
        return Ok(());
    }
    say(&format!("restarting containerd ({:?})", o.restart));
    o.restart.run(&o.target.host)?;
    // The CRI answers once containerd is back.
    let addr = o.at(&o.target.address);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match Cri::connect(&addr).and_then(|c| c.status()) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(format!(
                    "containerd did not answer within 90 s of its restart: {e}"
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// The CRI reports every handler, a pod runs on each, and the doctor finds nothing.
fn check(o: &Options, handlers: &[String]) -> Result<(), String> {
    let addr = o.at(&o.target.address);
    let cri = Cri::connect(&addr)?;
    let st = cri.status()?;
    for h in handlers {
        if !st.handlers.iter().any(|x| x == h) {
            return Err(format!(
                "the CRI does not report handler {h} after the restart (it reports {:?})",
                st.handlers
            ));
        }
    }
    if !o.verify {
        say("--no-verify: no verification pod");
    } else {
        let image = match &o.verify_image {
            Some(i) => i.clone(),
            None => o
                .target
                .dump()
                .ok()
                .and_then(|d| cc::sandbox_image(&d))
                .ok_or("no --verify-image and no sandbox image in containerd's config")?,
        };
        let systemd =
            doctor::kubelet_driver(&o.at(&o.kubelet_config)).is_some_and(|d| d == "systemd");
        let log_root = o.prefix.join("verify");
        for h in handlers {
            let t0 = Instant::now();
            let uid = cri
                .verify_pod(&VerifyPod {
                    handler: h.clone(),
                    image: image.clone(),
                    log_root: log_root.clone(),
                    log_root_here: o.at(&log_root),
                    cgroup_root_here: o.at(Path::new("/sys/fs/cgroup")),
                    systemd,
                })
                .map_err(|e| format!("verification pod on {h}: {e}"))?;
            say(&format!(
                "a pod on handler {h} ran ({image}, uid {uid}) and was removed in {:.1} s",
                t0.elapsed().as_secs_f64()
            ));
        }
        let _ = std::fs::remove_dir(o.at(&log_root));
    }
    if o.target.dump().is_ok() {
        let findings = doctor::run(&doctor::Options {
            target: o.target.clone(),
            handlers: handlers.to_vec(),
            expect_version: env!("CARGO_PKG_VERSION").into(),
            kubelet_config: o.kubelet_config.clone(),
            profile: o.profile.clone(),
            cri: true,
        });
        if o.verbose {
            print!("{}", doctor::table(&findings));
        }
        let problems: Vec<String> = findings
            .iter()
            .filter(|f| f.is_problem())
            .map(|f| {
                format!(
                    "{}: {} (fix: {})",
                    f.check,
                    f.detail,
                    f.fix.as_deref().unwrap_or("")
                )
            })
            .collect();
        if !problems.is_empty() {
            return Err(format!(
                "tent doctor after the install:\n  {}",
                problems.join("\n  ")
            ));
        }
        say("tent doctor: no problems");
    }
    Ok(())
}

/// Put every changed file back, restart if asked, remove tent's files.
fn undo(o: &Options, state: &State, restart_after: bool) -> Result<(), String> {
    let mut changed = false;
    for c in state.changes.iter().rev() {
        let hp = o.at(&c.path);
        let cur = std::fs::read_to_string(&hp).ok();
        if cur.as_deref() == Some(c.new.as_str()) || cur.is_none() {
            match &c.old {
                Some(old) => {
                    let mode = std::fs::metadata(&hp)
                        .map(|m| m.permissions().mode() & 0o7777)
                        .unwrap_or(0o644);
                    write_atomic(&hp, old.as_bytes(), mode)?;
                    println!("tent uninstall: restored {}", c.path.display());
                }
                None => {
                    remove(&hp)?;
                    println!("tent uninstall: removed {}", c.path.display());
                }
            }
        } else if let Some(cur) = cur {
            // Changed since: take tent's part out and keep the operator's.
            let names = all_handler_names();
            let new = if cur.contains(ce::BEGIN) {
                ce::strip_block(&cur)
            } else {
                ce::remove_handlers(&cur, &names, &c.path)?
            };
            write_atomic(
                &hp,
                new.as_bytes(),
                std::fs::metadata(&hp)
                    .map(|m| m.permissions().mode() & 0o7777)
                    .unwrap_or(0o644),
            )?;
            eprintln!("tent uninstall: {} changed since tent install: tent's handlers removed, the rest kept (not byte-identical to the original)", c.path.display());
        }
        changed = true;
    }
    if changed && restart_after {
        o.restart.run(&o.target.host)?;
    }
    for f in &state.files {
        remove(&o.at(f))?;
    }
    remove(&o.state_path())?;
    for d in ["etc", "bin", ""] {
        let _ = std::fs::remove_dir(o.at(&o.prefix.join(d)));
    }
    Ok(())
}

/// `tent uninstall`: the label first (no new pods are scheduled here), then everything else.
pub fn uninstall(o: &Options) -> Result<(), String> {
    let Some(state) = o.load_state()? else {
        println!(
            "tent uninstall: nothing installed by tent under {} (no {STATE})",
            o.prefix.display()
        );
        return Ok(());
    };
    if o.dry_run {
        for c in state.changes.iter().rev() {
            let cur = std::fs::read_to_string(o.at(&c.path)).ok();
            match &c.old {
                Some(old) => print!("{}", ce::diff(&c.path, cur.as_deref(), old)),
                None => println!("--- {}\n(removed)", c.path.display()),
            }
        }
        for f in &state.files {
            println!("(removed) {}", f.display());
        }
        return Ok(());
    }
    println!("tent uninstall: {}", o.kube.label(None)?);
    if state.changes.iter().any(|c| c.new.contains(PAUSELESS)) {
        println!(
            "tent uninstall: {}",
            o.kube.label_key(crate::kube::PAUSELESS_LABEL, None)?
        );
    }
    undo(o, &state, true)?;
    println!("tent uninstall: done");
    Ok(())
}

fn remove(p: &Path) -> Result<(), String> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("remove {}: {e}", p.display())),
    }
}

/// Write through a temporary file and rename: a running shim binary is replaced, not
/// overwritten (ETXTBSY), and a reader never sees half a config.
fn write_atomic(p: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let dir = p
        .parent()
        .ok_or_else(|| format!("{}: no parent directory", p.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tent-tmp",
        p.file_name().map_or("f".into(), |n| n.to_string_lossy())
    ));
    let res = (|| {
        std::fs::write(&tmp, bytes)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, p)
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("write {}: {e}", p.display())
    })
}
