//! The command lines of `tent doctor`, `tent install` and `tent uninstall` (one parser: they
//! share the options that say where containerd is).

use std::ffi::OsString;
use std::path::PathBuf;

use crate::ctdconfig::Target;
use crate::host::Restart;
use crate::install::{self, Distro};
use crate::kube::Kube;
use crate::{doctor, host};

pub const USAGE: &str = "\
usage: tent doctor [--json] [--config FILE] [--address SOCK] [--containerd BIN] [--handler H]...
                   [--expect-version V] [--kubelet-config FILE] [--profile tent|compat] [--no-cri]
       tent install [--dry-run] [--prefix DIR] [--distro auto|k8s|k3s|rke2] [--config FILE]
                   [--address SOCK] [--containerd BIN] [--host-root DIR] [--host-ns [--host-pid P]]
                   [--shim FILE] [--profiles DIR] [--restart systemd:UNIT|cmd:COMMAND|none]
                   [--verify-image REF] [--no-verify] [--node NAME] [--kubeconfig FILE]
                   [--kubectl BIN] [--wait-for-term --daemonset NS/NAME] [--verbose]
       tent uninstall [--dry-run] [same options as install]

doctor     read-only: containerd's merged config (`containerd config dump`) and its CRI status;
           each problem with its fix; exit status 1 when there is a problem
install    copy the shim and profiles to PREFIX (default /opt/tent), register the handlers
           tent and tent-compat (runtime_path) under the plugin id of the config's version, in
           the drop-in an `imports = [\"DIR/*.toml\"]` names, else in config.toml (k3s/rke2: in
           their template); restart containerd; verify the CRI reports the handlers and a pod
           runs on each; run the doctor; then label the node runtime.tent.dev/ready=true.
           On a failed verification everything is rolled back.
           --wait-for-term: then wait for SIGTERM, and uninstall unless DaemonSet NS/NAME still
           exists and is not being deleted (a rolling update or an eviction keeps tent)
uninstall  remove the label, restore each changed file byte for byte (or take tent's tables
           out of a file changed since), restart containerd, remove the files
--dry-run  print the diff, change nothing
--verbose  print every finding of the doctor's run after the install (else only problems)

Defaults (by distro): config /etc/containerd/config.toml (k3s/rke2: the agent's config.toml,
whose version picks config.toml.tmpl or config-v3.toml.tmpl), address
/run/containerd/containerd.sock (k3s/rke2: /run/k3s/containerd/containerd.sock), restart
systemd:containerd (k3s: systemd:k3s, or k3s-agent where only its unit exists; rke2:
rke2-server or rke2-agent), containerd `containerd`,
kubelet config /var/lib/kubelet/config.yaml, shim and `profiles/` beside this binary.
--host-root DIR: the host's / is at DIR (the chart mounts it at /host); --host-ns: run
containerd and systemctl in PID 1's namespaces (hostPID; --host-pid names another process).
";

pub enum Cmd {
    Doctor {
        opts: doctor::Options,
        json: bool,
    },
    Install {
        opts: install::Options,
        wait: Option<(String, String)>,
    },
    Uninstall(install::Options),
}

fn exe_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn parse(cmd: &str, mut it: impl Iterator<Item = OsString>) -> Result<Cmd, String> {
    let mut json = false;
    let mut dry_run = false;
    let mut config: Option<PathBuf> = None;
    let mut address: Option<PathBuf> = None;
    let mut containerd = PathBuf::from("containerd");
    let mut handlers: Vec<String> = Vec::new();
    let mut expect = env!("CARGO_PKG_VERSION").to_string();
    let mut kubelet = PathBuf::from("/var/lib/kubelet/config.yaml");
    let mut profile = "tent".to_string();
    let mut cri = true;
    let mut prefix = PathBuf::from("/opt/tent");
    let mut distro = "auto".to_string();
    let mut host_root = PathBuf::from("/");
    let mut host_ns = false;
    let mut host_pid = 1u32;
    let mut shim = exe_dir().join("containerd-shim-tent-v1");
    let mut profiles = exe_dir().join("profiles");
    let mut restart: Option<Restart> = None;
    let mut verify_image = None;
    let mut verify = true;
    let mut kube = Kube {
        kubectl: PathBuf::from("kubectl"),
        kubeconfig: None,
        node: std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()),
    };
    let mut wait = false;
    let mut verbose = false;
    let mut daemonset = None;
    while let Some(a) = it.next() {
        let s = a.to_string_lossy().into_owned();
        let mut value = || it.next().ok_or_else(|| format!("{s} needs a value"));
        match s.as_str() {
            "--json" if cmd == "doctor" => json = true,
            "--dry-run" if cmd != "doctor" => dry_run = true,
            "--config" => config = Some(value()?.into()),
            "--address" => address = Some(value()?.into()),
            "--containerd" => containerd = value()?.into(),
            "--handler" if cmd == "doctor" => handlers.push(value()?.to_string_lossy().into()),
            "--expect-version" if cmd == "doctor" => expect = value()?.to_string_lossy().into(),
            "--kubelet-config" => kubelet = value()?.into(),
            "--profile" => {
                profile = value()?.to_string_lossy().into();
                if profile != "tent" && profile != "compat" {
                    return Err(format!("--profile {profile}: expected tent or compat"));
                }
            }
            "--no-cri" if cmd == "doctor" => cri = false,
            "--prefix" => {
                prefix = value()?.into();
                if !prefix.is_absolute() {
                    return Err(format!(
                        "--prefix {}: must be an absolute path",
                        prefix.display()
                    ));
                }
            }
            "--distro" => distro = value()?.to_string_lossy().into(),
            "--host-root" => host_root = value()?.into(),
            "--host-ns" => host_ns = true,
            "--host-pid" => {
                let v = value()?.to_string_lossy().into_owned();
                host_pid = v
                    .parse()
                    .map_err(|_| format!("--host-pid {v}: not a pid"))?;
            }
            "--shim" => shim = value()?.into(),
            "--profiles" => profiles = value()?.into(),
            "--restart" => restart = Some(Restart::parse(&value()?.to_string_lossy())?),
            "--verify-image" => verify_image = Some(value()?.to_string_lossy().into()),
            "--no-verify" => verify = false,
            "--verbose" if cmd != "doctor" => verbose = true,
            "--node" => kube.node = Some(value()?.to_string_lossy().into()),
            "--kubeconfig" => kube.kubeconfig = Some(value()?.into()),
            "--kubectl" => kube.kubectl = value()?.into(),
            "--wait-for-term" if cmd == "install" => wait = true,
            "--daemonset" if cmd == "install" => {
                let v = value()?.to_string_lossy().into_owned();
                let (ns, n) = v
                    .split_once('/')
                    .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                    .ok_or_else(|| format!("--daemonset {v}: expected NAMESPACE/NAME"))?;
                daemonset = Some((ns.to_string(), n.to_string()));
            }
            _ => return Err(format!("tent {cmd}: unknown option {s}")),
        }
    }
    let distro = Distro::parse(&distro, &host_root)?;
    let target = Target {
        containerd,
        config: config.unwrap_or_else(|| distro.default_config()),
        address: address.unwrap_or_else(|| distro.default_address()),
        host_root,
        host: host::Host {
            enter_ns: host_ns,
            pid: host_pid,
        },
    };
    if cmd == "doctor" {
        if handlers.is_empty() {
            handlers = install::all_handler_names();
        }
        return Ok(Cmd::Doctor {
            opts: doctor::Options {
                target,
                handlers,
                expect_version: expect,
                kubelet_config: kubelet,
                profile,
                cri,
            },
            json,
        });
    }
    let restart = restart.unwrap_or_else(|| distro.default_restart(&target.host_root));
    let opts = install::Options {
        target,
        distro,
        prefix,
        shim,
        profiles,
        restart,
        verify_image,
        verify,
        dry_run,
        kube,
        kubelet_config: kubelet,
        profile,
        verbose,
    };
    if wait && daemonset.is_none() && opts.kube.unavailable().is_none() {
        return Err("--wait-for-term in a cluster needs --daemonset NS/NAME (to tell a rolling update from an uninstall)".into());
    }
    Ok(match cmd {
        "install" => Cmd::Install {
            opts,
            wait: if wait {
                Some(daemonset.unwrap_or_default())
            } else {
                None
            },
        },
        _ => Cmd::Uninstall(opts),
    })
}

fn term_set() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set
}

/// Block SIGTERM/SIGINT from the start (before any thread exists, so every thread has them
/// blocked): one arriving during the install is taken by [`wait_for_term`] afterwards instead
/// of killing the install half-way. Children get an empty mask (`host::unblock_signals`).
fn block_term() -> Result<(), String> {
    term_set()
        .thread_block()
        .map_err(|e| format!("block SIGTERM: {e}"))
}

/// Block until SIGTERM or SIGINT (pending ones included).
fn wait_for_term() -> Result<(), String> {
    term_set().wait().map_err(|e| format!("sigwait: {e}"))?;
    Ok(())
}

pub fn run(cmd: Cmd) -> i32 {
    match cmd {
        Cmd::Doctor { opts, json } => {
            let f = doctor::run(&opts);
            if json {
                match serde_json::to_string_pretty(&f) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("tent doctor: JSON: {e}");
                        return 1;
                    }
                }
            } else {
                print!("{}", doctor::table(&f));
            }
            i32::from(f.iter().any(doctor::Finding::is_problem))
        }
        Cmd::Install { opts, wait } => {
            if wait.is_some() {
                if let Err(e) = block_term() {
                    eprintln!("tent install: {e}");
                    return 1;
                }
            }
            if let Err(e) = install::install(&opts) {
                eprintln!("tent install: {e}");
                return 1;
            }
            let Some((ns, name)) = wait else { return 0 };
            if let Err(e) = wait_for_term() {
                eprintln!("tent install: {e}");
                return 1;
            }
            let gone = if opts.kube.unavailable().is_some() {
                Ok(true)
            } else {
                opts.kube.daemonset_gone(&ns, &name)
            };
            match gone {
                Ok(false) => {
                    println!("tent install: SIGTERM while DaemonSet {ns}/{name} stays (rolling update or eviction): tent stays installed");
                    0
                }
                Ok(true) => match install::uninstall(&opts) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("tent uninstall: {e}");
                        1
                    }
                },
                Err(e) => {
                    // Unknown: keep the node working as it is (a pod can be rescheduled, a
                    // removed runtime cannot be used by the pods already placed here).
                    eprintln!("tent install: SIGTERM, cannot tell whether DaemonSet {ns}/{name} is being deleted ({e}): tent stays installed");
                    1
                }
            }
        }
        Cmd::Uninstall(opts) => match install::uninstall(&opts) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("tent uninstall: {e}");
                1
            }
        },
    }
}
