//! `tent-cri`: drive a running private containerd's CRI as kubelet does, outside the tests.
//!
//!   tent-cri demo  DIR [HANDLER]      a pod with two containers, an exec, the logs, teardown
//!   tent-cri bench DIR OUT.json [--handlers tent,runc] [--runs N] [--warmup N] [--pods N]
//!
//! DIR is a daemon started by `hack/containerd.sh up` (its `env`, `containerd.sock`). `demo` is
//! the pod half of `hack/demo.sh`; `bench` is row 4 of `hack/bench.sh`: pod start
//! (RunPodSandbox + CreateContainer + StartContainer) and teardown (StopPodSandbox +
//! RemovePodSandbox) interleaved across handlers, then the memory of every pod's runtime
//! processes (its shim(s) and its sandbox's pause process) with N pods running.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tent_integration::cri::{self, Cri, Pod};
use tent_integration::{cmdline, Containerd};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") if args.len() >= 2 => demo(
            Path::new(&args[1]),
            args.get(2).map(String::as_str).unwrap_or(cri::TENT),
        ),
        Some("bench") if args.len() >= 3 => {
            BenchOpts::parse(&args[3..]).and_then(|o| bench(Path::new(&args[1]), &args[2], &o))
        }
        _ => Err(
            "usage: tent-cri demo DIR [HANDLER] | tent-cri bench DIR OUT.json \
                  [--handlers tent,runc] [--runs N] [--warmup N] [--pods N]"
                .to_string(),
        ),
    };
    if let Err(e) = result {
        eprintln!("tent-cri: {e}");
        std::process::exit(1);
    }
}

fn say(s: &str) {
    println!("\n--> {s}");
}

/// A pod on `handler` with two containers sharing its network, IPC and UTS namespaces.
fn demo(dir: &Path, handler: &str) -> Result<(), String> {
    let ctd = Containerd::attach(dir)?;
    let cri = Cri::connect(&ctd);
    say(&format!("RunPodSandbox (runtime handler {handler:?})"));
    let mut pod = Pod::run(&cri, cri::pod_config(&ctd, "tent-demo"), handler)
        .map_err(|e| format!("RunPodSandbox: {e}\n{}", ctd.log_tail(20)))?;
    println!("pod sandbox {}", pod.id);
    let one = cri::container_config(
        "one",
        &[
            "sh",
            "-c",
            "echo \"one: hello from a tent, pod hostname $(hostname)\"; \
             echo 'written by one' > /dev/shm/note; exec sleep 3600",
        ],
    );
    let two = cri::container_config(
        "two",
        &["sh", "-c", "echo two: up as $(id -u); exec sleep 3600"],
    );
    say("CreateContainer + StartContainer: one, two");
    let c1 = pod.run_container(&one);
    let c2 = pod.run_container(&two);
    say("ExecSync in two: what it shares with one");
    let out = pod.exec_ok(
        &c2,
        &[
            "sh",
            "-c",
            "echo \"hostname: $(hostname)\"; echo \"/dev/shm/note: $(cat /dev/shm/note)\"; \
             echo \"pid 1: $(cat /proc/1/cmdline | tr '\\0' ' ')\"",
        ],
    );
    print!("{out}");
    let shims = ctd.shim_pids(&pod.id);
    println!("shim processes serving the pod: {}", shims.len());
    for p in &shims {
        println!("  {p}: {}", cmdline(*p));
    }
    say("container logs (CRI format, kubelet's files)");
    for (name, id) in [("one", &c1), ("two", &c2)] {
        let path = log_path(&pod, name);
        let text = wait_for_log(&path, Duration::from_secs(5));
        println!("{name} ({id:.12}), {}:", path.display());
        print!("{text}");
    }
    say("StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox (checked: nothing left)");
    pod.remove();
    println!("pod removed: no shim, mount, cgroup, netns or state left");
    Ok(())
}

fn log_path(pod: &Pod, name: &str) -> PathBuf {
    PathBuf::from(&pod.config.log_directory).join(format!("{name}/0.log"))
}

fn wait_for_log(path: &Path, timeout: Duration) -> String {
    let t = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if !text.is_empty() || t.elapsed() > timeout {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct BenchOpts {
    handlers: Vec<String>,
    runs: usize,
    warmup: usize,
    pods: usize,
}

impl BenchOpts {
    fn parse(args: &[String]) -> Result<BenchOpts, String> {
        let mut o = BenchOpts {
            handlers: vec![cri::TENT.to_string(), cri::RUNC.to_string()],
            runs: 30,
            warmup: 3,
            pods: 20,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            let num = || {
                value
                    .parse::<usize>()
                    .map_err(|_| format!("{flag}: not a number: {value:?}"))
            };
            match flag.as_str() {
                "--handlers" => o.handlers = value.split(',').map(String::from).collect(),
                "--runs" => o.runs = num()?,
                "--warmup" => o.warmup = num()?,
                "--pods" => o.pods = num()?,
                _ => return Err(format!("unknown option {flag:?}")),
            }
        }
        Ok(o)
    }
}

/// One pod with one `sleep` container, as the benchmark starts it.
struct BenchPod {
    id: String,
}

fn start_pod(cri: &Cri, ctd: &Containerd, handler: &str, n: usize) -> Result<BenchPod, String> {
    let config = cri::pod_config(ctd, &format!("bench-{handler}-{n}"));
    let id = cri
        .run_pod_sandbox(&config, handler)
        .map_err(|e| format!("RunPodSandbox on {handler}: {e}"))?;
    let c = cri::container_config("app", &["sleep", "3600"]);
    let created = cri
        .create_container(&id, &c, &config)
        .and_then(|cid| cri.start_container(&cid));
    if let Err(e) = created {
        let _ = stop_pod(cri, &id);
        return Err(format!("container on {handler}: {e}"));
    }
    Ok(BenchPod { id })
}

fn stop_pod(cri: &Cri, id: &str) -> Result<(), String> {
    cri.stop_pod_sandbox(id)
        .and_then(|_| cri.remove_pod_sandbox(id))
        .map_err(|e| format!("teardown of {id}: {e}"))
}

fn bench(dir: &Path, out: &str, o: &BenchOpts) -> Result<(), String> {
    let ctd = Containerd::attach(dir)?;
    let cri = Cri::connect(&ctd);
    let mut start: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut teardown: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    eprintln!(
        "tent-cri bench: pod start/teardown, {} warm-up + {} runs per handler, interleaved",
        o.warmup, o.runs
    );
    for i in 0..(o.warmup + o.runs) {
        // A B, then B A: neither handler always runs right after the other's teardown.
        let mut order: Vec<&String> = o.handlers.iter().collect();
        if i % 2 == 1 {
            order.reverse();
        }
        for h in order {
            if errors.contains_key(h) {
                continue;
            }
            let t = Instant::now();
            let pod = match start_pod(&cri, &ctd, h, i) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("tent-cri bench: {e}");
                    errors.insert(h.clone(), e);
                    continue;
                }
            };
            let started = t.elapsed().as_secs_f64();
            let t = Instant::now();
            if let Err(e) = stop_pod(&cri, &pod.id) {
                errors.insert(h.clone(), e);
                continue;
            }
            let torn = t.elapsed().as_secs_f64();
            if i >= o.warmup {
                start.entry(h.clone()).or_default().push(started);
                teardown.entry(h.clone()).or_default().push(torn);
            }
        }
        if (i + 1) % 10 == 0 {
            eprintln!("tent-cri bench: {} of {} rounds", i + 1, o.warmup + o.runs);
        }
    }
    let mut memory = serde_json::Map::new();
    for h in &o.handlers {
        if errors.contains_key(h) {
            continue;
        }
        eprintln!("tent-cri bench: memory of {} running pods on {h}", o.pods);
        match pod_memory(&cri, &ctd, h, o.pods) {
            Ok(v) => {
                memory.insert(h.clone(), v);
            }
            Err(e) => {
                errors.insert(h.clone(), e);
            }
        }
    }
    let result = json!({
        "handlers": o.handlers, "runs": o.runs, "warmup": o.warmup, "pods": o.pods,
        "start_s": start, "teardown_s": teardown, "memory": memory, "errors": errors,
    });
    std::fs::write(
        out,
        serde_json::to_vec_pretty(&result).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("write {out}: {e}"))
}

/// Starts `n` pods on `handler`, sums RSS/PSS of each pod's shim(s) and pause process, and
/// removes the pods again.
fn pod_memory(cri: &Cri, ctd: &Containerd, handler: &str, n: usize) -> Result<Value, String> {
    let mut pods = Vec::new();
    let mut result = Err(String::new());
    for i in 0..n {
        match start_pod(cri, ctd, handler, 1000 + i) {
            Ok(p) => pods.push(p),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if pods.len() == n {
        // Let lazily-touched pages settle as they would on an idle node.
        std::thread::sleep(Duration::from_secs(2));
        result = measure(cri, ctd, &pods);
    }
    for p in &pods {
        if let Err(e) = stop_pod(cri, &p.id) {
            eprintln!("tent-cri bench: {e}");
        }
    }
    result
}

fn measure(cri: &Cri, ctd: &Containerd, pods: &[BenchPod]) -> Result<Value, String> {
    let (mut shim_rss, mut shim_pss, mut pause_rss, mut pause_pss, mut shims) = (0, 0, 0, 0, 0);
    for p in pods {
        let pids = ctd.shim_pids(&p.id);
        if pids.is_empty() {
            return Err(format!("pod {}: no shim process found", p.id));
        }
        shims += pids.len();
        for pid in pids {
            let (r, s) = rss_pss_kb(pid)?;
            shim_rss += r;
            shim_pss += s;
        }
        let status = cri
            .pod_sandbox_status(&p.id)
            .map_err(|e| format!("PodSandboxStatus {}: {e}", p.id))?;
        let info: Value =
            serde_json::from_str(status.info.get("info").map(String::as_str).unwrap_or("{}"))
                .map_err(|e| format!("PodSandboxStatus info: {e}"))?;
        // A pauseless pod (tent-pauseless) says so and has no sandbox process (pid 0).
        if info["pauseless"] == true && info["pid"] == 0 {
            continue;
        }
        let pid = info["pid"]
            .as_i64()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("pod {}: no sandbox pid in its status", p.id))?;
        let (r, s) = rss_pss_kb(pid as i32)?;
        pause_rss += r;
        pause_pss += s;
    }
    let n = pods.len() as f64;
    Ok(json!({
        "pods": pods.len(), "shim_processes": shims,
        "per_pod_kb": {
            "shim_rss": shim_rss as f64 / n, "shim_pss": shim_pss as f64 / n,
            "pause_rss": pause_rss as f64 / n, "pause_pss": pause_pss as f64 / n,
            "rss": (shim_rss + pause_rss) as f64 / n, "pss": (shim_pss + pause_pss) as f64 / n,
        }
    }))
}

/// RSS and PSS (kB) from `/proc/<pid>/smaps_rollup`.
fn rss_pss_kb(pid: i32) -> Result<(u64, u64), String> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("{path}: no {name}"))
    };
    Ok((field("Rss:")?, field("Pss:")?))
}
