//! The CRI half of the hostile corpus (`integration/corpus/hostile/*.json` with `"via":
//! "cri"`): hostile CreateContainer fields sent through containerd's CRI into a pod whose
//! keeper container runs, on handler `tent` (and `runc`, which validates the cases). Each case
//! fails naming the field or is contained (the host canary untouched); the keeper answers an
//! ExecSync after every case; the `Pod` guard checks that nothing of the pod or of any case
//! container is left; the shim's log (in containerd's) has no "panicked".
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tent_integration::cri::*;
use tent_integration::*;

const WAIT: [&str; 2] = ["/bin/tent-testbin", "wait-term"];

fn cri_cases() -> Vec<(String, Value)> {
    tent_integration::hostile_corpus_files()
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            let name = p.file_name().unwrap_or_default().to_string_lossy().into();
            (json["via"] == "cri").then_some((name, json))
        })
        .collect()
}

/// `${CANARY}` substituted; `{"$string": s, "count": n}` → s repeated n times.
fn text(v: &Value, canary: &Path) -> String {
    match v {
        Value::Object(o) if o.contains_key("$string") => o["$string"]
            .as_str()
            .unwrap_or_default()
            .repeat(o["count"].as_u64().unwrap_or(0) as usize),
        _ => v
            .as_str()
            .unwrap_or_default()
            .replace("${CANARY}", &canary.display().to_string()),
    }
}

fn texts(v: &Value, canary: &Path) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|x| text(x, canary))
        .collect()
}

/// The case's `cri` fields onto kubelet's request for a container running `true`.
fn config_for(name: &str, cri: &Value, canary: &Path) -> ContainerConfig {
    let mut c = container_config(name, &["/bin/true"]);
    if cri["command"].is_array() {
        c.command = texts(&cri["command"], canary);
    }
    if let Some(w) = cri.get("working_dir") {
        c.working_dir = text(w, canary);
    }
    for kv in cri["envs"].as_array().into_iter().flatten() {
        c.envs.push(api::KeyValue {
            key: text(&kv[0], canary),
            value: text(&kv[1], canary),
        });
    }
    for (k, v) in cri["annotations"].as_object().into_iter().flatten() {
        c.annotations.insert(k.clone(), text(v, canary));
    }
    for m in cri["mounts"].as_array().into_iter().flatten() {
        c.mounts.push(api::Mount {
            container_path: text(&m["container_path"], canary),
            host_path: text(&m["host_path"], canary),
            readonly: m["readonly"].as_bool().unwrap_or(false),
            propagation: m["propagation"].as_i64().unwrap_or(0) as i32,
            ..Default::default()
        });
    }
    for d in cri["devices"].as_array().into_iter().flatten() {
        c.devices.push(api::Device {
            container_path: text(&d["container_path"], canary),
            host_path: text(&d["host_path"], canary),
            permissions: text(&d["permissions"], canary),
        });
    }
    let linux = c.linux.get_or_insert_with(Default::default);
    let r = linux.resources.get_or_insert_with(Default::default);
    let res = &cri["resources"];
    let int = |k: &str, d: i64| res[k].as_i64().unwrap_or(d);
    r.cpu_period = int("cpu_period", r.cpu_period);
    r.cpu_quota = int("cpu_quota", r.cpu_quota);
    r.cpu_shares = int("cpu_shares", r.cpu_shares);
    r.memory_limit_in_bytes = int("memory_limit_in_bytes", r.memory_limit_in_bytes);
    r.oom_score_adj = int("oom_score_adj", r.oom_score_adj);
    if let Some(s) = res["cpuset_cpus"].as_str() {
        r.cpuset_cpus = s.to_string();
    }
    for h in res["hugepage_limits"].as_array().into_iter().flatten() {
        r.hugepage_limits.push(api::HugepageLimit {
            page_size: text(&h["page_size"], canary),
            limit: h["limit"].as_u64().unwrap_or(0),
        });
    }
    for (k, v) in res["unified"].as_object().into_iter().flatten() {
        r.unified.insert(k.clone(), text(v, canary));
    }
    let sc = security_context(&mut c);
    if cri["add_capabilities"].is_array() {
        sc.capabilities = Some(Capability {
            add_capabilities: texts(&cri["add_capabilities"], canary),
            ..Default::default()
        });
    }
    if let Some(u) = cri["run_as_user"].as_i64() {
        sc.run_as_user = Some(api::Int64Value { value: u });
    }
    if let Some(u) = cri["run_as_username"].as_str() {
        sc.run_as_username = u.to_string();
    }
    if let Some(n) = cri["supplemental_groups_count"].as_i64() {
        sc.supplemental_groups = (0..n).collect();
    }
    sc.masked_paths.extend(texts(&cri["masked_paths"], canary));
    sc.readonly_paths
        .extend(texts(&cri["readonly_paths"], canary));
    if let Some(p) = cri["apparmor_localhost"].as_str() {
        sc.apparmor = Some(profile(ProfileType::Localhost, p));
    }
    if let Some(p) = cri["seccomp_localhost"].as_str() {
        sc.seccomp = Some(profile(ProfileType::Localhost, p));
    }
    c
}

/// Runs one case in `pod`; `Ok(outcome)` or `Err(why it failed)`.
fn run_case(pod: &mut Pod, name: &str, j: &Value, canary: &Path) -> Result<String, String> {
    let cname = format!("hc-{}", name.split('-').next().unwrap_or("x"));
    let config = config_for(&cname, &j["cri"], canary);
    let created = pod.create(&config);
    let result = created.as_ref().map_err(Clone::clone).and_then(|id| {
        pod.start(id)?;
        // A container that ran to its end (or failed starting) reports its exit.
        let t = Instant::now();
        loop {
            let st = pod.cri().container_status(id)?.status.unwrap_or_default();
            if st.state == ContainerState::ContainerExited as i32 {
                return Ok(st.exit_code);
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err(Status::deadline_exceeded(format!(
                    "{id} still {}",
                    st.state
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    if let Ok(id) = &created {
        pod.remove_container(id, 2)
            .map_err(|e| format!("RemoveContainer {id}: {e}"))?;
    }
    let outcome = if let Some(subs) = j["expect"]["error"].as_array() {
        let err = match &result {
            Ok(code) => return Err(format!("expected an error, it ran (exit {code})")),
            Err(e) => e.message().to_string(),
        };
        for s in subs.iter().filter_map(Value::as_str) {
            if !err.contains(s) {
                return Err(format!("the error must name {s:?}: {err}"));
            }
        }
        format!("error: {}", err.chars().take(200).collect::<String>())
    } else if let Some(contained) = j["expect"].get("contained") {
        for p in texts(&contained["host_absent"], canary) {
            if Path::new(&p).symlink_metadata().is_ok() {
                return Err(format!("escaped: host path {p} exists ({result:?})"));
            }
        }
        match &result {
            Ok(code) => format!("contained: ran, exit {code}"),
            Err(e) => format!("contained: refused: {}", e.message()),
        }
    } else {
        return Err("the case has no expect.error or expect.contained".into());
    };
    let m = mounts_mentioning(&canary.display().to_string());
    if !m.is_empty() {
        return Err(format!("host mounts on the canary: {m:?}"));
    }
    Ok(outcome)
}

#[test]
fn hostile_cri_requests_are_refused_or_contained_and_the_pod_keeps_running() {
    let cases = cri_cases();
    assert!(
        cases.len() >= 10,
        "the corpus has {} CRI cases",
        cases.len()
    );
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let canary = PathBuf::from(format!(
        "/tmp/tent-hostile-cri-canary-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&canary).expect("canary dir");
    on_each_handler(|handler| {
        let mut pod = Pod::run(&cri, pod_config(ctd, "hostile"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
        let keeper = pod.run_container(&container_config("keeper", &WAIT));
        let mut failed = Vec::new();
        for (name, j) in &cases {
            // tent-pauseless runs tent's profile too.
            if ![TENT, TENT_PAUSELESS].contains(&handler) && j["tent_only"].as_bool() == Some(true)
            {
                continue;
            }
            match run_case(&mut pod, name, j, &canary) {
                Ok(o) => eprintln!("hostile cri {handler}: ok   {name}: {o}"),
                Err(e) => {
                    eprintln!("hostile cri {handler}: FAIL {name}: {e}");
                    failed.push(name.clone());
                }
            }
            let alive = pod.exec(&keeper, &["echo", "still-here"]);
            assert_eq!(
                (
                    alive.exit_code,
                    String::from_utf8_lossy(&alive.stdout).as_ref()
                ),
                (0, "still-here\n"),
                "{handler}: the keeper is not served after {name}"
            );
        }
        pod.remove();
        assert!(failed.is_empty(), "{handler}: failed cases: {failed:?}");
    });
    assert_canary_untouched_and_no_panic(&canary, &ctd.log_path());
}
