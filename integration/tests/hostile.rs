//! The hostile input corpus (`integration/corpus/hostile/*.json`, issue #11) sent through a
//! real containerd into the shim of a running container, which must outlive all of it.
//!
//! The anchor is a long-running container whose spec carries the CRI sandbox annotation, so
//! every case's container (same annotation) joins the anchor's shim, as a pod's containers
//! do. A case mutates containerd's own default spec (`ctr oci spec`) with JSON-pointer ops,
//! or is a raw config text, or a list of `ctr` requests; it expects an error that names the
//! field (all of `error`'s substrings in ctr's output) or containment (the host paths in
//! `host_absent` do not exist afterwards, whatever the container did). After every case:
//! nothing of it is left (mounts, cgroups, bundle), no mount mentions the canary, the
//! anchor's shim is still the only one and still serves an exec. At the end the daemon log
//! (the shim's log goes there) has no "panicked". The format is in
//! `integration/corpus/hostile/README.md`; the CRI cases are `hostile_cri.rs`'s.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tent_integration::{
    is_runc, mounts_mentioning, run_with_timeout, unique_id, Containerd, RunResult, Value,
    NAMESPACE,
};

const SANDBOX_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";
const T: Duration = Duration::from_secs(60);
/// Parallel case runners: all in the anchor's one shim.
const WORKERS: usize = 3;

struct Case {
    file: String,
    json: Value,
}

fn corpus() -> Vec<Case> {
    tent_integration::hostile_corpus_files()
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            Case {
                file: p.file_name().unwrap_or_default().to_string_lossy().into(),
                json,
            }
        })
        // The CRI cases are hostile_cri.rs's.
        .filter(|c| c.json["via"] != "cri")
        .collect()
}

/// What a case may refer to as `${NAME}` in any string.
struct Vars {
    anchor: String,
    anchor_pid: i32,
    canary: PathBuf,
    id: String,
    runtime: String,
}

impl Vars {
    fn subst(&self, s: &str) -> String {
        s.replace("${ANCHOR_PID}", &self.anchor_pid.to_string())
            .replace("${ANCHOR}", &self.anchor)
            .replace("${CANARY}", &self.canary.display().to_string())
            .replace("${ID}", &self.id)
            .replace("${RUNTIME}", &self.runtime)
    }

    /// Placeholders substituted; `{"$repeat": v, "count": n}` → n copies of v with `{i}`
    /// the index; `{"$string": s, "count": n}` → s repeated n times; `{"$object": {k: v},
    /// "count": n}` → n entries; `{"$range": n}` → [0, 1, …, n-1].
    fn expand(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.subst(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.expand(x)).collect()),
            Value::Object(o) => {
                let count = o.get("count").and_then(Value::as_u64).unwrap_or(0) as usize;
                if o.contains_key("$range") {
                    let n = o["$range"].as_u64().unwrap_or(0);
                    return Value::Array((0..n).map(Value::from).collect());
                }
                if let Some(s) = o.get("$string").and_then(Value::as_str) {
                    return Value::String(s.repeat(count));
                }
                if let Some(Value::Object(entries)) = o.get("$object") {
                    let one = self.expand(&Value::Object(entries.clone()));
                    let mut all = serde_json::Map::new();
                    for i in 0..count {
                        if let Value::Object(m) = with_index(&one, i) {
                            all.extend(m);
                        }
                    }
                    return Value::Object(all);
                }
                if let Some(item) = o.get("$repeat") {
                    let item = self.expand(item);
                    return Value::Array((0..count).map(|i| with_index(&item, i)).collect());
                }
                Value::Object(
                    o.iter()
                        .map(|(k, x)| (self.subst(k), self.expand(x)))
                        .collect(),
                )
            }
            other => other.clone(),
        }
    }
}

fn with_index(v: &Value, i: usize) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace("{i}", &i.to_string())),
        Value::Array(a) => Value::Array(a.iter().map(|x| with_index(x, i)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.replace("{i}", &i.to_string()), with_index(x, i)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A JSON-pointer op: RFC 6902's add/replace/remove (`add` to `…/-` appends), plus
/// `extend` (append an array's items) and `merge` (insert an object's entries).
fn apply(spec: &mut Value, op: &Value, vars: &Vars) -> Result<(), String> {
    let kind = op["op"].as_str().ok_or("op without \"op\"")?;
    let path = op["path"].as_str().ok_or("op without \"path\"")?;
    if kind == "extend" || kind == "merge" {
        let target = spec
            .pointer_mut(path)
            .ok_or_else(|| format!("no {path} in the base spec"))?;
        return match (target, vars.expand(&op["value"])) {
            (Value::Array(a), Value::Array(items)) => {
                a.extend(items);
                Ok(())
            }
            (Value::Object(o), Value::Object(entries)) => {
                o.extend(entries);
                Ok(())
            }
            _ => Err(format!("cannot {kind} at {path}")),
        };
    }
    let (parent, last) = path.rsplit_once('/').ok_or("path must start with /")?;
    let last = last.replace("~1", "/").replace("~0", "~");
    let target = spec
        .pointer_mut(parent)
        .ok_or_else(|| format!("no {parent} in the base spec"))?;
    let value = vars.expand(&op["value"]);
    match (kind, target) {
        ("remove", Value::Object(o)) => drop(o.remove(&last)),
        ("remove", Value::Array(a)) => {
            let i: usize = last.parse().map_err(|_| format!("index {last}"))?;
            a.remove(i);
        }
        ("add" | "replace", Value::Object(o)) => drop(o.insert(last, value)),
        ("add", Value::Array(a)) if last == "-" => a.push(value),
        ("add" | "replace", Value::Array(a)) => {
            let i: usize = last.parse().map_err(|_| format!("index {last}"))?;
            if kind == "add" {
                a.insert(i, value);
            } else {
                *a.get_mut(i).ok_or(format!("no {path}"))? = value;
            }
        }
        (k, _) => return Err(format!("cannot {k} at {path}")),
    }
    Ok(())
}

/// The anchor: containerd's default spec running `sleep`, in its own group.
struct Anchor<'a> {
    c: &'a Containerd,
    id: String,
    pid: i32,
    /// The pod's shim server, which every case must go through.
    shim: i32,
    base: Value,
}

impl<'a> Anchor<'a> {
    fn start(c: &'a Containerd) -> Anchor<'a> {
        let id = unique_id("hostile-anchor");
        let out = c.ctr_result(&["oci", "spec"]);
        out.assert_ok();
        let base: Value = serde_json::from_str(&out.stdout).expect("ctr oci spec is JSON");
        let spec = spec_for(c, &base, &id, &id, &["sleep", "100000"]);
        let path = c.dir().join(format!("spec-{id}.json"));
        std::fs::write(&path, serde_json::to_vec(&spec).expect("json")).expect("write spec");
        let path = path.display().to_string();
        let runtime = tent_integration::runtime();
        let r = c.ctr_result(&["run", "-d", "--runtime", &runtime, "--config", &path, &id]);
        r.assert_ok();
        let pid = c.wait_running(&id, T);
        let shim = shim_servers(c);
        assert_eq!(shim.len(), 1, "one shim server for the anchor: {shim:?}");
        Anchor {
            c,
            id,
            pid,
            shim: shim[0],
            base,
        }
    }

    /// An exec into the anchor (it must still be served).
    fn exec_ok(&self, after: &str) -> Result<(), String> {
        let exec_id = unique_id("chk");
        let mut cmd =
            self.c
                .ctr_command(&["task", "exec", "--exec-id", &exec_id, &self.id, "true"]);
        let o = run_with_timeout(&mut cmd, None, T);
        if o.status.success() {
            Ok(())
        } else {
            Err(format!(
                "exec into the running container failed after {after}: {}",
                String::from_utf8_lossy(&o.stderr)
            ))
        }
    }
}

impl Drop for Anchor<'_> {
    fn drop(&mut self) {
        self.c.force_remove(&self.id);
    }
}

/// `base` with a fresh rootfs, `args`, the image's PATH, the cgroup path of `id`, in `group`'s shim.
fn spec_for(c: &Containerd, base: &Value, id: &str, group: &str, args: &[&str]) -> Value {
    let mut spec = base.clone();
    spec["root"] = serde_json::json!({ "path": c.rootfs_for(id).display().to_string() });
    spec["process"]["args"] = serde_json::json!(args);
    // What `ctr run` takes from the image config (the default spec has no env).
    spec["process"]["env"] = serde_json::json!(["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
    spec["linux"]["cgroupsPath"] = Value::String(format!("/{NAMESPACE}/{id}"));
    spec["annotations"] = serde_json::json!({ SANDBOX_ANNOTATION: group });
    spec
}

/// Prepares the case's rootfs (`rootfs`: `{"symlink": path, "to": target}`, `{"remove": path}`).
fn prepare_rootfs(root: &Path, steps: &Value, vars: &Vars) -> Result<(), String> {
    for s in steps.as_array().into_iter().flatten() {
        let rel = |k: &str| {
            s[k].as_str()
                .map(|p| root.join(vars.subst(p).trim_start_matches('/')))
        };
        if let Some(link) = rel("symlink") {
            let to = vars.subst(s["to"].as_str().ok_or("symlink without \"to\"")?);
            let _ = std::fs::remove_dir_all(&link);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&to, &link).map_err(|e| format!("{link:?}: {e}"))?;
        } else if let Some(p) = rel("remove") {
            let _ = std::fs::remove_dir_all(&p);
            let _ = std::fs::remove_file(&p);
        }
    }
    Ok(())
}

/// Runs one case; `Ok(outcome)` or `Err(why it failed)`.
fn run_case(anchor: &Anchor<'_>, case: &Case, canary: &Path) -> Result<String, String> {
    let c = anchor.c;
    let j = &case.json;
    let id = unique_id("hostile");
    let vars = Vars {
        anchor: anchor.id.clone(),
        anchor_pid: anchor.pid,
        canary: canary.to_path_buf(),
        id: id.clone(),
        runtime: tent_integration::runtime(),
    };
    let via = j["via"].as_str().unwrap_or("spec");
    let runtime = tent_integration::runtime();
    let result = match via {
        "spec" | "raw" => {
            let args: Vec<String> = j["args"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_else(|| vec!["true".into()]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut spec = spec_for(c, &anchor.base, &id, &anchor.id, &args);
            let root = PathBuf::from(spec["root"]["path"].as_str().unwrap_or_default());
            prepare_rootfs(&root, &j["rootfs"], &vars)?;
            for op in j["ops"].as_array().into_iter().flatten() {
                apply(&mut spec, op, &vars)?;
            }
            let text = match j["raw"].as_str() {
                Some(raw) => vars.subst(raw).into_bytes(),
                None => serde_json::to_vec(&spec).map_err(|e| e.to_string())?,
            };
            let path = c.dir().join(format!("spec-{id}.json"));
            std::fs::write(&path, text).map_err(|e| e.to_string())?;
            let path = path.display().to_string();
            let flags: Vec<String> = j["ctr_flags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|f| vars.subst(f))
                .collect();
            let mut cmd = c.ctr_command(&["run", "--rm", "--runtime", &runtime, "--config", &path]);
            cmd.args(&flags).arg(&id);
            let o = run_with_timeout(&mut cmd, None, T);
            let _ = c.ctr(&["container", "delete", &id]);
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_dir_all(&root);
            RunResult {
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
                code: o.status.code(),
            }
        }
        "ctr" => {
            let mut last = None;
            for step in j["steps"].as_array().into_iter().flatten() {
                let args: Vec<String> = step["ctr"]
                    .as_array()
                    .ok_or("step without \"ctr\"")?
                    .iter()
                    .filter_map(|x| x.as_str())
                    .map(|s| vars.subst(s))
                    .collect();
                let o = c.ctr_result(&args);
                if step["setup"].as_bool() == Some(true) && o.code != Some(0) {
                    return Err(format!("setup step {args:?} failed: {o:#?}"));
                }
                if step["setup"].as_bool() != Some(true) && step["cleanup"].as_bool() != Some(true)
                {
                    last = Some(o);
                }
            }
            last.ok_or("no checked step")?
        }
        other => return Err(format!("unknown via {other:?}")),
    };
    let output = format!("{}{}", result.stdout, result.stderr);
    let outcome = if let Some(subs) = j["expect"]["error"].as_array() {
        if result.code == Some(0) {
            return Err(format!("expected an error, it succeeded: {result:#?}"));
        }
        for s in subs.iter().filter_map(Value::as_str) {
            let s = vars.subst(s);
            if !output.contains(&s) {
                return Err(format!("the error must name {s:?}: {}", output.trim()));
            }
        }
        format!("error: {}", last_line(&output))
    } else if let Some(contained) = j["expect"].get("contained") {
        for p in contained["host_absent"].as_array().into_iter().flatten() {
            let p = vars.subst(p.as_str().unwrap_or_default());
            if Path::new(&p).symlink_metadata().is_ok() {
                return Err(format!("escaped: host path {p} exists ({result:#?})"));
            }
        }
        if contained["exit"]
            .as_i64()
            .is_some_and(|e| result.code != Some(e as i32))
        {
            return Err(format!("expected exit {}: {result:#?}", contained["exit"]));
        }
        match result.code {
            Some(0) => "contained: ran".to_string(),
            _ => format!("contained: refused: {}", last_line(&output)),
        }
    } else {
        return Err("the case has no expect.error or expect.contained".into());
    };
    wait_gone(c, &id)?;
    let m = mounts_mentioning(&canary.display().to_string());
    if !m.is_empty() {
        return Err(format!("host mounts on the canary: {m:?}"));
    }
    // A spawning shim's child shows the shim's cmdline until it execs: poll.
    let t = Instant::now();
    loop {
        let servers = shim_servers(c);
        if servers == [anchor.shim] {
            break;
        }
        if t.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "the pod's shim {} is not the only server: {servers:?}",
                anchor.shim
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anchor.exec_ok(&case.file)?;
    Ok(outcome)
}

/// Shim servers of the daemon: not the short-lived `start`/`delete` invocations
/// containerd runs for every container (`start` finds the pod's server and exits).
fn shim_servers(c: &Containerd) -> Vec<i32> {
    c.shim_pids("")
        .into_iter()
        .filter(|p| {
            let cmd = tent_integration::cmdline(*p);
            !cmd.ends_with(" start") && !cmd.ends_with(" delete") && !cmd.is_empty()
        })
        .collect()
}

fn wait_gone(c: &Containerd, id: &str) -> Result<(), String> {
    let t = Instant::now();
    loop {
        let left = c.leftovers(id);
        if left.is_empty() {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(10) {
            return Err(format!("left behind: {left:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn last_line(s: &str) -> String {
    let l = s.trim().lines().last().unwrap_or_default();
    l.chars().take(200).collect()
}

#[test]
fn hostile_corpus_is_refused_or_contained_and_the_pod_keeps_running() {
    let cases = corpus();
    assert!(cases.len() >= 60, "the corpus has {} cases", cases.len());
    let c = Containerd::shared();
    let anchor = Anchor::start(c);
    let canary = PathBuf::from(format!("/tmp/tent-hostile-canary-{}", std::process::id()));
    std::fs::create_dir_all(&canary).expect("canary dir");
    let t0 = Instant::now();
    let next = AtomicUsize::new(0);
    let report: Mutex<Vec<(String, Result<String, String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                let skip = is_runc() && case.json["tent_only"].as_bool() == Some(true);
                let r = if skip {
                    Ok("skipped (tent only)".to_string())
                } else {
                    run_case(&anchor, case, &canary)
                };
                report.lock().expect("report").push((case.file.clone(), r));
            });
        }
    });
    let mut report = report.into_inner().expect("report");
    report.sort();
    let mut failed = Vec::new();
    for (file, r) in &report {
        match r {
            Ok(o) => eprintln!("hostile: ok   {file}: {o}"),
            Err(e) => {
                eprintln!("hostile: FAIL {file}: {e}");
                failed.push(file.clone());
            }
        }
    }
    eprintln!(
        "hostile: {} cases in {:?}, {} failed",
        report.len(),
        t0.elapsed(),
        failed.len()
    );
    tent_integration::assert_canary_untouched_and_no_panic(&canary, &c.log_path());
    if !is_runc() {
        let log = std::fs::read_to_string(c.log_path()).unwrap_or_default();
        // Every case went into the anchor's shim: one server was ever started.
        let servers = log.matches("tent shim serving on").count();
        assert_eq!(servers, 1, "shim servers started (want the anchor's only)");
    }
    assert_eq!(
        tent_integration::proc_status_field(anchor.pid, "State").map(|s| s.starts_with('Z')),
        Some(false),
        "the running container's init is gone"
    );
    assert!(failed.is_empty(), "failed cases: {failed:?}");
    drop(anchor);
}
