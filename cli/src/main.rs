//! `tent`: the operator CLI. `tent audit` reports what a root file system
//! carries that could widen what a container's processes can do (see
//! `cli/README.md`).

mod caps;
mod classify;
mod elf;
mod error;
mod report;
mod source;
mod walk;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Instant;

use error::{Error, Result};

const USAGE: &str = "\
usage: tent audit [--json] [--verbose] [--max-depth N] <DIR>
       tent audit [...] --rootfs-of <CONTAINER> [--namespace NS] [--address SOCK] [--ctr PATH]
       tent audit [...] --pid <PID>
       tent audit [...] --image <REF> [--namespace NS] [--address SOCK] [--snapshotter NAME] [--ctr PATH]

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
}

struct Args {
    target: Target,
    json: bool,
    verbose: bool,
    max_depth: usize,
    containerd: source::Containerd,
    snapshotter: Option<String>,
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
        None => return Err(usage("a command is needed: audit".into())),
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
    let set = |t: Target, target: &mut Option<Target>| {
        if target.replace(t).is_some() {
            Err(usage(
                "one target only: a directory, --rootfs-of, --pid or --image".into(),
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
    let target = target
        .ok_or_else(|| usage("what to audit: a directory, --rootfs-of, --pid or --image".into()))?;
    Ok(Some(Args {
        target,
        json,
        verbose,
        max_depth,
        containerd,
        snapshotter,
    }))
}

fn audit(a: &Args) -> Result<report::Report> {
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
    };
    if a.verbose {
        eprintln!(
            "tent audit: total {:.1} ms, peak RSS {} KiB",
            started.elapsed().as_secs_f64() * 1000.0,
            peak_rss_kib().map_or_else(|| "?".to_string(), |k| k.to_string())
        );
    }
    Ok(r)
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

fn main() {
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
    match audit(&args) {
        Ok(r) if args.json => match serde_json::to_string_pretty(&r) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("tent audit: JSON: {e}");
                std::process::exit(1);
            }
        },
        Ok(r) => print!("{}", report::table(&r)),
        Err(e) => {
            eprintln!("tent audit: {e}");
            std::process::exit(1);
        }
    }
}
