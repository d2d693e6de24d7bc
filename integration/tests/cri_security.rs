//! tent's security settings through containerd's CRI, driven as kubelet drives it
//! (RunPodSandbox / CreateContainer / StartContainer / ExecSync / Stop / Remove on the runtime
//! handlers `tent`, `tent-compat` and `runc`, and `tent-pauseless` on containerd 2.x where
//! tent's profile is checked, see `tent_integration::cri`):
//! - seccomp: `RuntimeDefault` is containerd's profile as given (`keyctl`, user namespaces
//!   refused, `ptrace` allowed, `AF_ALG` as the version's profile says), a `Localhost` profile
//!   decides with its own errno, `Unconfined` still gets tent's default filter on `tent` and
//!   runs unfiltered on `tent-compat` (as on runc); every probe runs in an ExecSync, so it also
//!   proves an exec gets its container's filter;
//! - tent's profile: `capabilities.add: SYS_ADMIN` and `privileged` are refused naming the pod
//!   field while the pod's other container keeps running, `hostNetwork` pods are refused at
//!   RunPodSandbox leaving nothing behind; `tent-compat` runs all three;
//! - pod sysctls: namespaced `net.*` ones apply inside the pod only, `kernel.core_pattern` is
//!   refused naming it with the host's value unchanged (tent and runc alike);
//! - AppArmor: containerd only asks for a profile when the host has AppArmor (skipped here
//!   otherwise, saying so).
//!
//! Every pod is removed at the end and checked to have left nothing (shims, mounts, cgroup
//! dirs, bundles, CRI state, network namespace). tent-only: skipped (printing why) when the
//! runtime under test is runc; the `runc` handler is the comparison inside the tests.

use std::collections::HashMap;
use std::time::Duration;

use tent_integration::cri::*;
use tent_integration::*;

const WAIT: [&str; 2] = ["/bin/tent-testbin", "wait-term"];
const PROBE: [&str; 2] = ["/bin/tent-testbin", "syscalls"];

fn skip_on_runc(test: &str) -> bool {
    if is_runc() {
        eprintln!(
            "SKIP {test}: the CRI handlers tent/tent-compat are what these tests check, and the runtime under test is runc"
        );
    }
    is_runc()
}

/// The handlers running tent's own profile: `tent`, and `tent-pauseless` on containerd 2.x
/// (its containers get the same profile; it cannot be given another).
fn tent_profile_handlers() -> Vec<&'static str> {
    let mut v = vec![TENT];
    if has_pauseless() {
        v.push(TENT_PAUSELESS);
    }
    v
}

/// `tent-testbin syscalls`' `name=result` lines.
fn probe(pod: &Pod, id: &str) -> HashMap<String, String> {
    let out = pod.exec_ok(id, &PROBE);
    let m: HashMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    assert_eq!(m.get("getpid").map(String::as_str), Some("ok"), "{out}");
    m
}

/// What this kernel answers `socket(AF_ALG, SOCK_SEQPACKET, 0)` with no filter (the test
/// process has none), in the probe's words: `ok`, or `errno97` where AF_ALG is not built.
fn unfiltered_af_alg() -> String {
    // SAFETY: a plain socket call; the fd is closed.
    let fd = unsafe { libc::socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0) };
    if fd >= 0 {
        // SAFETY: our own fd.
        unsafe { libc::close(fd) };
        return "ok".into();
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EPERM) => "EPERM".into(),
        Some(e) => format!("errno{e}"),
        None => "?".into(),
    }
}

#[track_caller]
fn expect(got: &HashMap<String, String>, want: &[(&str, &str)], what: &str) {
    for (k, v) in want {
        assert_eq!(
            got.get(*k).map(String::as_str),
            Some(*v),
            "{what}: {k} (probe: {got:?})"
        );
    }
}

fn with_seccomp(name: &str, p: SecurityProfile) -> ContainerConfig {
    let mut c = container_config(name, &WAIT);
    security_context(&mut c).seccomp = Some(p);
    c
}

/// Does the spec's seccomp profile refuse `socket(AF_ALG, …)` (containerd's newer
/// RuntimeDefault has a `socket` rule on arg0 == 38)?
fn spec_refuses_af_alg(spec: &Value) -> bool {
    spec["linux"]["seccomp"]["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["names"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n == "socket"))
        })
        .any(|r| {
            r["args"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["index"] == 0 && a["value"] == 38)
        })
}

#[test]
fn seccomp_runtime_default_is_containerds_profile_on_tent_as_on_runc() {
    if skip_on_runc("seccomp_runtime_default") {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let mut list = tent_profile_handlers();
    list.push(RUNC);
    for handler in list {
        let mut pod = Pod::run(&cri, pod_config(ctd, "seccomp-default"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox on {handler}: {e}"));
        let id = pod.run_container(&with_seccomp(
            "probe",
            profile(ProfileType::RuntimeDefault, ""),
        ));
        let spec = pod.runtime_spec(&id);
        assert_eq!(
            spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO",
            "{handler}: containerd puts RuntimeDefault in the spec: {}",
            spec["linux"]["seccomp"]
        );
        let alg = if spec_refuses_af_alg(&spec) {
            "EPERM".to_string()
        } else {
            unfiltered_af_alg()
        };
        let got = probe(&pod, &id);
        // ptrace is allowed by containerd's profile (tent's own default refuses it): the
        // pod's profile is used as given, not tent's.
        expect(
            &got,
            &[
                ("keyctl", "EPERM"),
                ("unshare_user", "EPERM"),
                ("ptrace_attach", "ok"),
                ("socket_af_alg", &alg),
                ("socket_af_unix", "ok"),
            ],
            &format!("RuntimeDefault on {handler}, containerd {}", ctd.version()),
        );
        pod.remove();
    }
}

#[test]
fn seccomp_localhost_profile_decides_with_its_own_errno() {
    if skip_on_runc("seccomp_localhost") {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let dir = ctd.dir().join(unique_id("seccomp"));
    std::fs::create_dir_all(&dir).expect("mkdir profiles");
    let write = |name: &str, p: Value| {
        let f = dir.join(name);
        std::fs::write(&f, serde_json::to_vec_pretty(&p).expect("json")).expect("write profile");
        f.display().to_string()
    };
    let arches = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
    let deny_keyctl = write(
        "deny-keyctl.json",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": arches,
            "syscalls": [{ "names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13 }]
        }),
    );
    let allow_all = write(
        "allow-all.json",
        json!({ "defaultAction": "SCMP_ACT_ALLOW", "architectures": arches, "syscalls": [] }),
    );
    let mut pod = Pod::run(&cri, pod_config(ctd, "seccomp-localhost"), TENT)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
    let deny = pod.run_container(&with_seccomp(
        "deny-keyctl",
        profile(ProfileType::Localhost, &deny_keyctl),
    ));
    let allow = pod.run_container(&with_seccomp(
        "allow-all",
        profile(ProfileType::Localhost, &allow_all),
    ));
    expect(
        &probe(&pod, &deny),
        &[("keyctl", "EACCES"), ("unshare_user", "ok")],
        "Localhost keyctl→EACCES on tent",
    );
    // Nothing of tent's default is layered on a pod's own profile.
    let alg = unfiltered_af_alg();
    expect(
        &probe(&pod, &allow),
        &[
            ("keyctl", "ok"),
            ("ptrace_attach", "ok"),
            ("socket_af_alg", &alg),
        ],
        "Localhost allow-all on tent",
    );
    pod.remove();
}

#[test]
fn seccomp_unconfined_gets_tents_default_on_tent_and_nothing_on_compat() {
    if skip_on_runc("seccomp_unconfined") {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let tent_default = [
        ("keyctl", "EPERM"),
        ("unshare_user", "EPERM"),
        ("ptrace_attach", "EPERM"),
        ("socket_af_alg", "EPERM"),
        ("socket_af_unix", "ok"),
    ];
    let alg = unfiltered_af_alg();
    let unfiltered = [
        ("keyctl", "ok"),
        ("ptrace_attach", "ok"),
        ("socket_af_alg", alg.as_str()),
    ];
    let mut list: Vec<(&str, &[(&str, &str)])> = tent_profile_handlers()
        .into_iter()
        .map(|h| (h, &tent_default[..]))
        .collect();
    list.extend([(TENT_COMPAT, &unfiltered[..]), (RUNC, &unfiltered[..])]);
    for (handler, want) in list {
        let mut pod = Pod::run(&cri, pod_config(ctd, "seccomp-unconfined"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox on {handler}: {e}"));
        let id = pod.run_container(&with_seccomp("probe", profile(ProfileType::Unconfined, "")));
        let spec = pod.runtime_spec(&id);
        assert!(
            spec["linux"]["seccomp"].is_null(),
            "{handler}: containerd sends no profile for Unconfined: {}",
            spec["linux"]["seccomp"]
        );
        expect(&probe(&pod, &id), want, &format!("Unconfined on {handler}"));
        pod.remove();
    }
}

/// CreateContainer + StartContainer: the CRI status of whichever step failed (containerd
/// creates the task, where tent's profile is applied, at StartContainer).
fn create_and_start(pod: &mut Pod, c: &ContainerConfig) -> Result<String, Status> {
    let id = pod.create(c)?;
    pod.start(&id)?;
    Ok(id)
}

#[test]
fn dangerous_capability_is_refused_on_tent_and_runs_on_compat() {
    if skip_on_runc("dangerous_capability") {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let admin = |name: &str| {
        let mut c = container_config(name, &WAIT);
        security_context(&mut c).capabilities = Some(Capability {
            add_capabilities: vec!["SYS_ADMIN".to_string()],
            ..Default::default()
        });
        c
    };

    for handler in tent_profile_handlers() {
        let mut pod = Pod::run(&cri, pod_config(ctd, "cap-admin"), handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox on {handler}: {e}"));
        let keeper = pod.run_container(&container_config("keeper", &WAIT));
        let err = create_and_start(&mut pod, &admin("admin"))
            .expect_err("a container adding CAP_SYS_ADMIN must not run on tent's profile");
        eprintln!(
            "{handler} refused capabilities.add SYS_ADMIN: {}",
            err.message()
        );
        assert!(
            err.message().contains(
                "securityContext.capabilities.add: CAP_SYS_ADMIN is refused by tent's profile"
            ),
            "{handler}: {err:?}"
        );
        // The pod and its other container are untouched.
        pod.wait_state(&keeper, ContainerState::ContainerRunning, Duration::ZERO);
        assert_eq!(
            pod.exec_ok(&keeper, &["echo", "still here"]),
            "still here\n"
        );
        let ready = cri.pod_sandbox_status(&pod.id).expect("PodSandboxStatus");
        assert_eq!(
            ready.status.map(|s| s.state),
            Some(api::PodSandboxState::SandboxReady as i32),
            "{handler}"
        );
        pod.remove();
    }

    let mut pod = Pod::run(&cri, pod_config(ctd, "cap-admin-compat"), TENT_COMPAT)
        .unwrap_or_else(|e| panic!("RunPodSandbox on tent-compat: {e}"));
    let id = pod.run_container(&admin("admin"));
    let st = parse_status(&pod.exec_ok(&id, &["/bin/tent-testbin", "status"]));
    let bit = cap_mask(&["CAP_SYS_ADMIN"]);
    assert_eq!(parse_cap_mask(&st["CapEff"]) & bit, bit, "{st:?}");
    pod.remove();
}

#[test]
fn host_network_pod_is_refused_on_tent_leaving_nothing_and_runs_on_compat() {
    if skip_on_runc("host_network") {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let host_net = |name: &str| {
        let mut p = pod_config(ctd, name);
        // kubelet names a hostNetwork pod after the node: without its own UTS namespace
        // another name cannot be applied (runc and tent refuse it).
        p.hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .expect("the host's name")
            .trim()
            .to_string();
        let sc = pod_linux(&mut p)
            .security_context
            .get_or_insert_with(Default::default);
        sc.namespace_options
            .get_or_insert_with(pod_namespaces)
            .network = NamespaceMode::Node as i32;
        p
    };
    // Pod::run checks that a refused pod left nothing behind (tent-pauseless's refusal:
    // cri_pauseless.rs).
    let err = match Pod::run(&cri, host_net("host-net"), TENT) {
        Ok(pod) => panic!("a hostNetwork pod ran on handler tent: {}", pod.id),
        Err(e) => e,
    };
    eprintln!("tent refused a hostNetwork pod: {}", err.message());
    assert!(
        err.message()
            .contains("hostNetwork: tent's profile refuses sharing the host's network namespace"),
        "{err:?}"
    );

    let mut pod = Pod::run(&cri, host_net("host-net-compat"), TENT_COMPAT)
        .unwrap_or_else(|e| panic!("RunPodSandbox on tent-compat: {e}"));
    let mut c = container_config("c", &WAIT);
    security_context(&mut c)
        .namespace_options
        .get_or_insert_with(pod_namespaces)
        .network = NamespaceMode::Node as i32;
    let id = pod.run_container(&c);
    // The container shares the host's network namespace: same inode as ours.
    let host = std::fs::read_link("/proc/self/ns/net").expect("readlink");
    let mine = pod.exec_ok(&id, &["readlink", "/proc/self/ns/net"]);
    assert_eq!(mine.trim(), host.display().to_string());
    pod.remove();
}

#[test]
fn privileged_is_refused_on_tent_naming_the_field_and_runs_on_compat() {
    if skip_on_runc("privileged") {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let privileged_pod = |name: &str| {
        let mut p = pod_config(ctd, name);
        pod_linux(&mut p)
            .security_context
            .get_or_insert_with(Default::default)
            .privileged = true;
        p
    };
    let privileged = |name: &str| {
        let mut c = container_config(name, &WAIT);
        let sc = security_context(&mut c);
        sc.privileged = true;
        sc.masked_paths.clear();
        sc.readonly_paths.clear();
        c
    };
    let want = "securityContext.privileged";
    // kubelet runs a pod with a privileged container in a privileged sandbox; whichever of
    // the sandbox or the container tent sees first is refused, naming the field.
    for handler in tent_profile_handlers() {
        match Pod::run(&cri, privileged_pod("priv"), handler) {
            Err(e) => {
                eprintln!("{handler} refused a privileged sandbox: {}", e.message());
                assert!(
                    e.message().contains(want),
                    "RunPodSandbox on {handler}: {e:?}"
                );
            }
            Ok(mut pod) => {
                let keeper = pod.run_container(&container_config("keeper", &WAIT));
                let err = create_and_start(&mut pod, &privileged("priv"))
                    .expect_err("a privileged container must not run on tent's profile");
                eprintln!(
                    "{handler} refused a privileged container: {}",
                    err.message()
                );
                assert!(err.message().contains(want), "{handler}: {err:?}");
                pod.wait_state(&keeper, ContainerState::ContainerRunning, Duration::ZERO);
                pod.remove();
            }
        }
    }

    let mut pod = Pod::run(&cri, privileged_pod("priv-compat"), TENT_COMPAT)
        .unwrap_or_else(|e| panic!("RunPodSandbox on tent-compat: {e}"));
    let id = pod.run_container(&privileged("priv"));
    let st = parse_status(&pod.exec_ok(&id, &["/bin/tent-testbin", "status"]));
    let bit = cap_mask(&["CAP_SYS_ADMIN"]);
    assert_eq!(parse_cap_mask(&st["CapEff"]) & bit, bit, "{st:?}");
    pod.remove();
}

fn host_sysctl(key: &str) -> String {
    let p = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {p}: {e}"))
        .trim()
        .to_string()
}

#[test]
fn namespaced_pod_sysctls_apply_inside_the_pod_only() {
    if skip_on_runc("namespaced_sysctls") {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    // ip_unprivileged_port_start=0 is what containerd 2.x sets by default: the port range
    // differs from every default, so the pod's sysctls are proven to arrive.
    let sysctls = [
        ("net.ipv4.ip_unprivileged_port_start", "0"),
        ("net.ipv4.ip_local_port_range", "40000 50000"),
    ];
    let before: Vec<String> = sysctls.iter().map(|(k, _)| host_sysctl(k)).collect();
    for handler in tent_profile_handlers() {
        let mut cfg = pod_config(ctd, "sysctls");
        pod_linux(&mut cfg).sysctls = sysctls
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut pod = Pod::run(&cri, cfg, handler)
            .unwrap_or_else(|e| panic!("RunPodSandbox on {handler}: {e}"));
        let id = pod.run_container(&container_config("c", &WAIT));
        for (k, v) in sysctls {
            let got = pod.exec_ok(&id, &["cat", &format!("/proc/sys/{}", k.replace('.', "/"))]);
            // The kernel prints the range tab-separated.
            assert_eq!(
                got.split_whitespace().collect::<Vec<_>>(),
                v.split_whitespace().collect::<Vec<_>>(),
                "{handler}: {k} in the pod"
            );
        }
        pod.remove();
    }
    let after: Vec<String> = sysctls.iter().map(|(k, _)| host_sysctl(k)).collect();
    assert_eq!(before, after, "the host's values are unchanged");
}

#[test]
fn host_sysctl_is_refused_naming_it_and_the_host_keeps_its_value() {
    if skip_on_runc("host_sysctl") {
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let key = "kernel.core_pattern";
    let before = host_sysctl(key);
    let mut list = tent_profile_handlers();
    list.extend([TENT_COMPAT, RUNC]);
    for handler in list {
        let mut cfg = pod_config(ctd, "core-pattern");
        pod_linux(&mut cfg).sysctls =
            HashMap::from([(key.to_string(), "/tmp/tent-cri-core.%p".to_string())]);
        // containerd does not check pod sysctls (kubelet does): the runtime is who refuses.
        match Pod::run(&cri, cfg, handler) {
            Ok(pod) => panic!("{handler}: a pod setting {key} ran: {}", pod.id),
            Err(e) => {
                eprintln!("{handler} refused {key}: {}", e.message());
                assert!(e.message().contains(key), "{handler}: {e:?}");
            }
        }
        assert_eq!(host_sysctl(key), before, "{handler}: the host's {key}");
    }
}

#[test]
fn apparmor_profile_from_cri_confines_the_container() {
    if skip_on_runc("apparmor") {
        return;
    }
    let enabled = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim() == "Y")
        .unwrap_or(false);
    if !enabled {
        eprintln!(
            "SKIP apparmor_profile_from_cri_confines_the_container: AppArmor is not enabled on this host (/sys/module/apparmor/parameters/enabled is not Y), so containerd's CRI sets no apparmorProfile"
        );
        return;
    }
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    let mut pod = Pod::run(&cri, pod_config(ctd, "apparmor"), TENT)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
    let mut c = container_config("c", &WAIT);
    security_context(&mut c).apparmor = Some(profile(ProfileType::RuntimeDefault, ""));
    let id = pod.run_container(&c);
    let spec = pod.runtime_spec(&id);
    let want = spec["process"]["apparmorProfile"]
        .as_str()
        .unwrap_or_else(|| panic!("containerd set no apparmorProfile: {}", spec["process"]))
        .to_string();
    let cur = pod.exec_ok(&id, &["cat", "/proc/self/attr/current"]);
    assert!(
        cur.starts_with(&want),
        "exec's label {cur:?}, profile {want}"
    );
    pod.remove();
}
