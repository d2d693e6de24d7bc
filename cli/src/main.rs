//! `tent`: the operator CLI. `tent audit` reports what a root file system
//! carries that could widen what a container's processes can do (see
//! `cli/README.md`); `tent doctor`, `tent install` and `tent uninstall` put tent
//! on a node's containerd and check it is there (`nodecmd.rs`).

mod configedit;
mod cri;
mod ctdconfig;
mod doctor;
mod error;
mod host;
mod install;
mod kube;
mod nodecmd;
mod observe;
mod running;
mod source;

use tent_audit::{report, walk};

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use error::{Error, Result};

const USAGE: &str = "\
usage: tent audit [--json] [--verbose] [--max-depth N] <DIR>
       tent audit [...] --rootfs-of <CONTAINER> [--namespace NS] [--address SOCK] [--ctr PATH]
       tent audit [...] --pid <PID>
       tent audit [...] --image <REF> [--namespace NS] [--address SOCK] [--snapshotter NAME] [--ctr PATH]
       tent audit --running [--json] [--state DIR] [--address SOCK] [--ctr PATH]
       tent audit [...] --observe <CONTAINER> [--duration SECS] [--minimal-list] [--namespace NS] [--address SOCK] [--ctr PATH]

Reports what a root file system carries: setuid/setgid files, file capabilities,
shells, package managers, interpreters, compilers/debuggers/tracers, network and
kernel-facing tools (busybox applets included), device nodes, world-writable
directories, totals, and ELF facts (static or dynamic, the interpreter). Never
follows a symlink out of the tree; does not descend into other mounts.

  <DIR>                 a root file system directory
  --rootfs-of ID        a running container's root: /proc/<init pid>/root, the pid from `ctr task ls`
  --pid PID             a process's root: /proc/PID/root
  --image REF           an image: its snapshot mounted read-only with `ctr images mount`,
                        audited, then `ctr images unmount --rm` (nothing left behind)
  --observe ID          audit a running container's root, then record with fanotify (FAN_MARK_MOUNT on
                        its root mount, FAN_OPEN|FAN_OPEN_EXEC; no ptrace, the workload unchanged) every
                        file it opens or runs until it stops, SIGINT/SIGTERM/SIGHUP, or --duration;
                        report which findings were used and which never were
  --running             every running container (all namespaces) with the exposure tent's shim
                        computed at its Create (kept in <state>/io.containerd.runtime.v2.task/NS/ID/)
  --state DIR           containerd's state directory (default: $TENT_CONTAINERD_STATE or /run/containerd)
  --duration SECS       stop observing after SECS seconds
  --minimal-list        with --observe: print only the files a minimal image would need
  --namespace NS        containerd namespace (default: $CONTAINERD_NAMESPACE or default)
  --address SOCK        containerd socket (default: $CONTAINERD_ADDRESS or /run/containerd/containerd.sock)
  --ctr PATH            the ctr binary (default: $TENT_CTR or ctr)
  --snapshotter NAME    snapshotter for --image (default: containerd's)
  --json                JSON instead of the table
  --verbose             print the walk's time to stderr
  --max-depth N         directory depth the walk descends to (default 256)

Exit status: 0 when the audit ran (whatever the score), 1 on an error, 2 on bad usage.

Score: exposure, 0 is best. Points per finding, each rule capped:
";

enum Target {
    Dir(PathBuf),
    Container(String),
    Pid(i32),
    Image(String),
    Observe(String),
    Running,
}

struct Args {
    target: Target,
    json: bool,
    verbose: bool,
    max_depth: usize,
    containerd: source::Containerd,
    snapshotter: Option<String>,
    duration: Option<Duration>,
    minimal_list: bool,
    state: PathBuf,
}

fn env_or(var: &str, default: &str) -> OsString {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.into())
}

fn help() -> String {
    format!("{USAGE}{}", report::weights_table())
}

fn parse(mut it: impl Iterator<Item = OsString>) -> Result<Option<Args>> {
    let usage = |m: String| Error::Usage(format!("{m}\n\n{USAGE}"));
    match it.next() {
        Some(c) if c == "audit" => {}
        Some(c) if c == "--help" || c == "-h" || c == "help" => return Ok(None),
        Some(c) => return Err(usage(format!("unknown command {}", c.to_string_lossy()))),
        None => {
            return Err(usage(
                "a command is needed: audit, doctor, install or uninstall".into(),
            ))
        }
    }
    let mut target = None;
    let mut json = false;
    let mut verbose = false;
    let mut max_depth = walk::MAX_DEPTH;
    let mut containerd = source::Containerd {
        ctr: env_or("TENT_CTR", "ctr"),
        address: env_or("CONTAINERD_ADDRESS", "/run/containerd/containerd.sock"),
        namespace: env_or("CONTAINERD_NAMESPACE", "default")
            .to_string_lossy()
            .into_owned(),
    };
    let mut snapshotter = None;
    let mut duration = None;
    let mut minimal_list = false;
    let mut state = PathBuf::from(env_or("TENT_CONTAINERD_STATE", "/run/containerd"));
    let set = |t: Target, target: &mut Option<Target>| {
        if target.replace(t).is_some() {
            Err(usage(
                "one target only: a directory, --rootfs-of, --pid, --image or --observe".into(),
            ))
        } else {
            Ok(())
        }
    };
    while let Some(a) = it.next() {
        let s = a.to_string_lossy().into_owned();
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| usage(format!("{name} needs a value")))
        };
        match s.as_str() {
            "--help" | "-h" => return Ok(None),
            "--json" => json = true,
            "--verbose" | "-v" => verbose = true,
            "--max-depth" => {
                let v = value(&s)?;
                max_depth = v.to_string_lossy().parse().map_err(|_| {
                    usage(format!(
                        "--max-depth: not a number: {}",
                        v.to_string_lossy()
                    ))
                })?;
            }
            "--rootfs-of" => {
                let v = value(&s)?.to_string_lossy().into_owned();
                set(Target::Container(v), &mut target)?;
            }
            "--pid" => {
                let v = value(&s)?;
                let pid = v
                    .to_string_lossy()
                    .parse()
                    .map_err(|_| usage(format!("--pid: not a pid: {}", v.to_string_lossy())))?;
                set(Target::Pid(pid), &mut target)?;
            }
            "--image" => {
                let v = value(&s)?.to_string_lossy().into_owned();
                set(Target::Image(v), &mut target)?;
            }
            "--observe" => {
                let v = value(&s)?.to_string_lossy().into_owned();
                set(Target::Observe(v), &mut target)?;
            }
            "--duration" => {
                let v = value(&s)?;
                let secs: f64 = v
                    .to_string_lossy()
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 1e9)
                    .ok_or_else(|| {
                        usage(format!(
                            "--duration: not a positive number of seconds: {}",
                            v.to_string_lossy()
                        ))
                    })?;
                duration = Some(Duration::from_secs_f64(secs));
            }
            "--minimal-list" => minimal_list = true,
            "--running" => set(Target::Running, &mut target)?,
            "--state" => state = PathBuf::from(value(&s)?),
            "--namespace" | "-n" => {
                containerd.namespace = value(&s)?.to_string_lossy().into_owned()
            }
            "--address" | "-a" => containerd.address = value(&s)?,
            "--ctr" => containerd.ctr = value(&s)?,
            "--snapshotter" => snapshotter = Some(value(&s)?.to_string_lossy().into_owned()),
            _ if s.starts_with('-') && s != "-" => {
                return Err(usage(format!("unknown option {s}")))
            }
            _ => set(Target::Dir(PathBuf::from(a)), &mut target)?,
        }
    }
    let target = target.ok_or_else(|| {
        usage("what to audit: a directory, --rootfs-of, --pid, --image or --observe".into())
    })?;
    if !matches!(target, Target::Observe(_)) && (duration.is_some() || minimal_list) {
        return Err(usage(
            "--duration and --minimal-list go with --observe".into(),
        ));
    }
    Ok(Some(Args {
        target,
        json,
        verbose,
        max_depth,
        containerd,
        snapshotter,
        duration,
        minimal_list,
        state,
    }))
}

fn audit(a: &Args) -> Result<(report::Report, Option<observe::Observation>)> {
    let started = Instant::now();
    let scan = |root, what: String, src| -> Result<report::Report> {
        let walk_start = Instant::now();
        let inv = walk::scan(root, a.max_depth)?;
        let ms = walk_start.elapsed().as_secs_f64() * 1000.0;
        if a.verbose {
            eprintln!(
                "tent audit: walked {} entries of {what} in {ms:.1} ms",
                inv.totals.files
                    + inv.totals.dirs
                    + inv.totals.symlinks
                    + inv.devices.count
                    + inv.totals.other
            );
        }
        Ok(report::Report::new(what, src, inv, ms))
    };
    let mut observation = None;
    let r = match &a.target {
        Target::Dir(d) => scan(source::open_dir(d)?, d.display().to_string(), "directory")?,
        Target::Pid(pid) => scan(
            source::open_proc_root(*pid)?,
            format!("/proc/{pid}/root"),
            "process",
        )?,
        Target::Container(id) => {
            let pid = a.containerd.task_pid(id)?;
            scan(
                source::open_proc_root(pid)?,
                format!("container {id} (/proc/{pid}/root)"),
                "container",
            )?
        }
        Target::Running => {
            return Err(error::Error::Usage(
                "--running lists containers; it audits no tree".into(),
            ))
        }
        Target::Image(image) => {
            let m = source::ImageMount::new(&a.containerd, image, a.snapshotter.as_deref())?;
            let r = scan(
                source::open_dir(m.path())?,
                format!("image {image}"),
                "image",
            )?;
            drop(m);
            r
        }
        Target::Observe(id) => {
            let pid = a.containerd.task_pid(id)?;
            let (pidfd, root) = source::open_proc_root_pidfd(pid)?;
            // Marked before the walk, so nothing the workload does meanwhile
            // is missed; the walk's own opens are told apart by pid.
            let rec = observe::Recorder::new(root, pid)?;
            let walk_root = rec
                .root()
                .try_clone_to_owned()
                .map_err(|e| error::Error::Io {
                    step: "dup",
                    path: PathBuf::from(format!("/proc/{pid}/root")),
                    source: e,
                })?;
            let r = scan(
                walk_root,
                format!("container {id} (/proc/{pid}/root)"),
                "container",
            )?;
            let watches = observe::watches(rec.root(), &r.inventory);
            eprintln!(
                "tent audit: observing container {id} (pid {pid}){}; SIGINT or SIGTERM ends it",
                a.duration
                    .map_or_else(String::new, |d| format!(" for {:.1} s", d.as_secs_f64()))
            );
            let recording = rec.record(pidfd.as_fd(), a.duration)?;
            observation = Some(observe::Observation::new(recording, watches));
            r
        }
    };
    if a.verbose {
        eprintln!(
            "tent audit: total {:.1} ms, peak RSS {} KiB",
            started.elapsed().as_secs_f64() * 1000.0,
            peak_rss_kib().map_or_else(|| "?".to_string(), |k| k.to_string())
        );
    }
    Ok((r, observation))
}

/// The JSON of an observed audit: the audit's fields and `observe`.
#[derive(serde::Serialize)]
struct Observed<'a> {
    #[serde(flatten)]
    report: &'a report::Report,
    #[serde(skip_serializing_if = "Option::is_none")]
    observe: Option<&'a observe::Observation>,
}

/// This process's peak resident set (`VmHWM`), KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The walk holds one fd per ancestor directory: allow as many as the hard
/// limit lets (`--max-depth` above ~1,000 needs it).
fn raise_nofile() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid, local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max.min(1 << 16);
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// `--running`: the list, as a table or JSON.
fn running(a: &Args) -> i32 {
    match running::list(&a.containerd, &a.state) {
        Ok(rows) if a.json => match serde_json::to_string_pretty(&rows) {
            Ok(s) => {
                println!("{s}");
                0
            }
            Err(e) => {
                eprintln!("tent audit: JSON: {e}");
                1
            }
        },
        Ok(rows) => {
            print!("{}", running::table(&rows));
            0
        }
        Err(e) => {
            eprintln!("tent audit: {e}");
            1
        }
    }
}

fn main() {
    let mut argv = std::env::args_os().skip(1).peekable();
    if let Some(c) = argv
        .peek()
        .map(|c| c.to_string_lossy().into_owned())
        .filter(|c| matches!(c.as_str(), "doctor" | "install" | "uninstall"))
    {
        argv.next();
        let args: Vec<OsString> = argv.collect();
        if args.iter().any(|a| a == "--help" || a == "-h") {
            print!("{}", nodecmd::USAGE);
            return;
        }
        match nodecmd::parse(&c, args.into_iter()) {
            Ok(cmd) => std::process::exit(nodecmd::run(cmd)),
            Err(e) => {
                eprintln!("tent: {e}\n\n{}", nodecmd::USAGE);
                std::process::exit(2);
            }
        }
    }
    raise_nofile();
    let args = match parse(std::env::args_os().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{}", help());
            return;
        }
        Err(e) => {
            eprintln!("tent: {e}");
            std::process::exit(2);
        }
    };
    if matches!(args.target, Target::Running) {
        std::process::exit(running(&args));
    }
    match audit(&args) {
        Ok((_, Some(o))) if args.minimal_list => print!("{}", o.minimal_list()),
        Ok((r, o)) if args.json => match serde_json::to_string_pretty(&Observed {
            report: &r,
            observe: o.as_ref(),
        }) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("tent audit: JSON: {e}");
                std::process::exit(1);
            }
        },
        Ok((r, o)) => {
            print!("{}", report::table(&r));
            if let Some(o) = o {
                print!("{}", o.table());
            }
        }
        Err(e) => {
            eprintln!("tent audit: {e}");
            std::process::exit(1);
        }
    }
}
