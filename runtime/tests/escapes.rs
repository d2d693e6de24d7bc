//! Regression tests for the container escapes listed in `docs/SECURITY.md`: one test per CVE,
//! named after it. Each builds the malicious bundle the CVE needs and asserts the
//! escape does not happen (no host file written or mounted over, or creation
//! fails with an error naming the path) and that nothing is left behind.
//!
//! Races (CVE-2021-30465, CVE-2024-45310, CVE-2025-31133, CVE-2025-52565,
//! CVE-2025-52881, CVE-2026-41579) cannot be won deterministically in a test:
//! those tests plant the end state of a won race (the symlink or over-mount
//! already in place) and check the mechanism that defends it.
//!
//! This test binary is also the container init (it has its own `main`). Needs
//! root. Run one with `cargo test -p tent-runtime --test escapes -- 2019_5736`.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{default_spec, pipe, read_all, reap_zombies, wait_for, Bundle, TestFn};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Process;
use serde_json::{json, Value};
use tent_runtime::{Container, ExecRequest, InitExe, RootfsMount, Stdio};

// ---------------------------------------------------------------- helpers

/// A directory on the host that an escape would write into or mount over.
struct Decoy(PathBuf);

impl Decoy {
    fn new(name: &str) -> Decoy {
        let p = std::env::temp_dir().join(format!("tent-decoy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create decoy");
        Decoy(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn is_mountpoint(&self) -> bool {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let want = self.0.to_string_lossy();
        info.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .any(|mp| mp == want)
    }

    /// Still an empty directory of the host, with nothing mounted on it.
    fn assert_untouched(&self) {
        assert!(
            !self.is_mountpoint(),
            "escape: {} was mounted over on the host",
            self.0.display()
        );
        let entries: Vec<_> = std::fs::read_dir(&self.0)
            .expect("read decoy")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            entries.is_empty(),
            "escape: host directory {} got {entries:?}",
            self.0.display()
        );
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        while self.is_mountpoint() {
            if nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn create(
    b: &Bundle,
    exe: &InitExe,
    mounts: &[RootfsMount],
    out: Option<&OwnedFd>,
) -> tent_runtime::Result<Container> {
    let dup = |fd: Option<&OwnedFd>| fd.map(|f| f.try_clone().expect("dup"));
    b.create(
        exe,
        mounts,
        Stdio {
            stdin: None,
            stdout: dup(out),
            stderr: dup(out),
        },
        &tent_runtime::Profile::default(),
    )
}

/// Creates, starts and waits for the container; returns its output
/// (stdout+stderr) and exit code. Checks nothing is left behind.
fn run(b: &Bundle, exe: &InitExe, mounts: &[RootfsMount]) -> (String, i32) {
    let (r, w) = pipe();
    let mut c = create(b, exe, mounts, Some(&w)).unwrap_or_else(|e| panic!("create: {e}"));
    drop(w);
    c.start().unwrap_or_else(|e| panic!("start: {e}"));
    let code = match wait_for(c.pid()) {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        other => panic!("unexpected {other:?}"),
    };
    c.destroy().expect("destroy");
    reap_zombies();
    b.assert_clean();
    (read_all(r), code)
}

/// `create` must fail with `want` in the error; nothing may be left behind.
fn create_fails(b: &Bundle, exe: &InitExe, mounts: &[RootfsMount], want: &str) -> String {
    match create(b, exe, mounts, None) {
        Ok(c) => {
            let pid = c.pid();
            let _ = c.destroy();
            wait_for(pid);
            panic!("create succeeded; want an error containing {want:?}");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(want), "want {want:?} in {msg:?}");
            reap_zombies();
            b.assert_clean();
            msg
        }
    }
}

fn spec_sh(script: &str) -> Value {
    default_spec(&["sh", "-c", script])
}

/// Drops the spec mounts under `/dev` (the rootfs's own `/dev` is used).
fn without_dev_mounts(spec: &mut Value) {
    if let Some(m) = spec["mounts"].as_array_mut() {
        m.retain(|m| {
            !m["destination"]
                .as_str()
                .is_some_and(|d| d == "/dev" || d.starts_with("/dev/"))
        });
    }
}

fn replace_with_symlink(path: &Path, to: &str) {
    let _ = std::fs::remove_dir_all(path);
    let _ = std::fs::remove_file(path);
    std::os::unix::fs::symlink(to, path).expect("plant symlink");
}

/// `../` enough times to leave any rootfs, then `abs`: a path that resolves
/// to `abs` on the host if followed outside the root.
fn climbing(abs: &Path) -> String {
    format!("../../../../../../../..{}", abs.display())
}

fn file_bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

// ---------------------------------------------------------------- CVEs

/// CVE-2019-5736: the container reopens the runtime binary through
/// `/proc/<pid>/exe` and overwrites it. tent's init (and every exec) runs from a
/// read-only overlay view or a sealed memfd of its binary.
fn cve_2019_5736(exe: &InitExe) {
    let host_bin = std::env::current_exe().expect("current_exe");
    let before = file_bytes(&host_bin);

    // (a) From the host, between create and start: the init's exe cannot be
    // opened for writing, neither directly nor by reopening an O_PATH fd.
    let b = Bundle::new("5736");
    let c = create(&b, exe, &[], None).unwrap_or_else(|e| panic!("create: {e}"));
    let exe_link = format!("/proc/{}/exe", c.pid());
    let check_write = |path: &str| {
        match std::fs::OpenOptions::new().write(true).open(path) {
            Err(e) => assert!(
                matches!(
                    e.raw_os_error(),
                    Some(libc::EROFS | libc::ETXTBSY | libc::EPERM | libc::EACCES)
                ),
                "{path}: unexpected {e}"
            ),
            Ok(mut f) => assert!(
                f.write_all(b"pwned").is_err(),
                "escape: wrote through {path}"
            ),
        };
    };
    check_write(&exe_link);
    let opath = nix::fcntl::open(
        exe_link.as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .expect("O_PATH open of the init's exe");
    let pid = c.pid();
    c.destroy().expect("destroy");
    wait_for(pid);
    // Once the init is gone (no ETXTBSY any more) the handle must still be read-only.
    check_write(&format!("/proc/self/fd/{}", opath.as_raw_fd()));
    drop(opath);
    reap_zombies();
    b.assert_clean();

    // (b) The original attack: the image's binary is `#!/proc/self/exe`, so when
    // tent execs it the kernel runs tent's own binary inside the container; the
    // container then opens that process's exe and writes to it, while it runs
    // and after it exited.
    let b = Bundle::new("5736x");
    if !copy_libs(&host_bin, &b.rootfs()) {
        eprintln!("  (skipped the in-container half: cannot copy the test binary's libraries)");
        return;
    }
    let evil = b.rootfs().join("bin/evil");
    std::fs::write(&evil, "#!/proc/self/exe\n").expect("evil");
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // The pattern is built at run time so the script's own cmdline does not match.
    let script = r#"pat=ev; pat="bin/${pat}il"; i=0
        while [ $i -lt 200 ]; do
          for p in /proc/[0-9]*; do
            case "$(tr '\0' ' ' <$p/cmdline 2>/dev/null)" in *"$pat"*)
              exec 3<$p/exe || { echo OPENFAIL; exit 0; }
              (echo pwned >/proc/self/fd/3) 2>/dev/null && echo WROTE-RUNNING || echo REFUSED-RUNNING
              while [ -n "$(cat $p/cmdline 2>/dev/null)" ]; do sleep 0.05; done
              (echo pwned >/proc/self/fd/3) 2>/dev/null && echo WROTE-EXITED || echo REFUSED-EXITED
              exit 0;;
            esac
          done
          i=$((i+1)); sleep 0.05
        done; echo NOTFOUND"#;
    let mut spec = spec_sh(script);
    spec["root"]["readonly"] = json!(false);
    b.write_config(&spec);
    let (r, w) = pipe();
    let mut c = create(&b, exe, &[], Some(&w)).unwrap_or_else(|e| panic!("create: {e}"));
    drop(w);
    c.start().expect("start");
    let p: Process =
        serde_json::from_value(default_spec(&["/bin/evil"])["process"].clone()).expect("process");
    let ep = c
        .exec(ExecRequest {
            process: &p,
            stdio: Stdio::default(),
        })
        .unwrap_or_else(|e| panic!("exec /bin/evil: {e}"));
    let waited = waitpid(Pid::from_raw(ep.pid), None);
    assert!(
        matches!(waited, Ok(WaitStatus::Exited(..))),
        "the exec'd tent binary: {waited:?}"
    );
    wait_for(c.pid());
    c.destroy().expect("destroy");
    reap_zombies();
    let out = read_all(r);
    assert!(!out.contains("WROTE"), "escape: {out}");
    assert!(!out.contains("NOTFOUND"), "attack never ran: {out}");
    b.assert_clean();
    assert!(
        file_bytes(&host_bin) == before,
        "escape: host binary changed"
    );
    eprintln!("  in-container attack: {}", out.trim().replace('\n', ", "));
}

/// Copies the dynamic libraries `bin` needs (per `ldd`) into `rootfs`.
fn copy_libs(bin: &Path, rootfs: &Path) -> bool {
    let Ok(o) = std::process::Command::new("ldd").arg(bin).output() else {
        return false;
    };
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let lib = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(PathBuf::from);
        let Some(lib) = lib else { continue };
        let dst = rootfs.join(lib.strip_prefix("/").unwrap_or(&lib));
        if let Some(d) = dst.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        if std::fs::copy(&lib, &dst).is_err() {
            return false;
        }
    }
    o.status.success()
}

/// CVE-2024-21626: a host directory fd leaks into the init and the workload's
/// cwd `/proc/self/fd/N` puts it outside the root. The leaked fd is made here
/// on purpose (no O_CLOEXEC in the caller), for both the init and an exec.
fn cve_2024_21626(exe: &InitExe) {
    let decoy = Decoy::new("21626");
    let path = std::ffi::CString::new(decoy.path().as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: plain open(2); the fd is owned below.
    let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    assert!(raw >= 0, "open decoy");
    // SAFETY: just opened, owned by nobody else.
    let leaked = unsafe { OwnedFd::from_raw_fd(raw) };
    let cwd = format!("/proc/self/fd/{raw}");

    // The init.
    let b = Bundle::new("21626");
    let mut spec = spec_sh("echo pwned > escaped; pwd");
    spec["process"]["cwd"] = json!(cwd);
    b.write_config(&spec);
    match create(&b, exe, &[], None) {
        Err(e) => assert!(e.to_string().contains("cwd"), "{e}"),
        Ok(mut c) => {
            let e = c.start().expect_err("start with a leaked host fd as cwd");
            assert!(e.to_string().contains("cwd"), "{e}");
            eprintln!("  refused: {e}");
            wait_for(c.pid());
            c.destroy().expect("destroy");
        }
    }
    reap_zombies();
    b.assert_clean();
    decoy.assert_untouched();

    // An exec into a running container.
    let b = Bundle::new("21626x");
    b.write_config(&default_spec(&["sleep", "100"]));
    let mut c = create(&b, exe, &[], None).unwrap_or_else(|e| panic!("create: {e}"));
    c.start().expect("start");
    let mut p = default_spec(&["sh", "-c", "echo pwned > escaped"])["process"].clone();
    p["cwd"] = json!(cwd);
    let p: Process = serde_json::from_value(p).expect("process");
    let r = c.exec(ExecRequest {
        process: &p,
        stdio: Stdio::default(),
    });
    match r {
        Err(e) => assert!(e.to_string().contains("cwd"), "{e}"),
        Ok(ep) => {
            let _ = waitpid(Pid::from_raw(ep.pid), None);
            panic!("exec with a leaked host fd as cwd succeeded");
        }
    }
    let _ = c.kill(libc::SIGKILL, true);
    wait_for(c.pid());
    c.destroy().expect("destroy");
    reap_zombies();
    b.assert_clean();
    decoy.assert_untouched();
    drop(leaked);
}

/// CVE-2019-19921: `/proc` in the rootfs is a symlink to a host directory, so
/// procfs would be mounted there (sidestepping LSM checks on /proc/self/attr).
fn cve_2019_19921(exe: &InitExe) {
    let decoy = Decoy::new("19921");
    let b = Bundle::new("19921");
    replace_with_symlink(&b.rootfs().join("proc"), &decoy.path().to_string_lossy());
    create_fails(&b, exe, &[], "refusing to mount proc on /proc");
    decoy.assert_untouched();
}

/// CVE-2023-27561 (the regression of CVE-2019-19921): any symlink for `/proc`
/// or `/sys`, even one resolving inside the root, is refused.
fn cve_2023_27561(exe: &InitExe) {
    for (dir, typ) in [("proc", "proc"), ("sys", "sysfs")] {
        let b = Bundle::new(&format!("27561{dir}"));
        std::fs::create_dir_all(b.rootfs().join("tmp/fake")).expect("mkdir");
        replace_with_symlink(&b.rootfs().join(dir), "tmp/fake");
        create_fails(&b, exe, &[], &format!("refusing to mount {typ} on /{dir}"));
        let b = Bundle::new(&format!("27561{dir}up"));
        replace_with_symlink(&b.rootfs().join(dir), "../../../../../../proc");
        create_fails(&b, exe, &[], &format!("refusing to mount {typ} on /{dir}"));
    }
}

/// CVE-2021-30465: a mount destination swapped for a symlink pointing outside
/// the root. The race is replaced by the planted symlink: the target must be
/// resolved inside the root (openat2 RESOLVE_IN_ROOT) and mounted through the fd.
/// Covers the spec mounts (inside the init) and containerd's rootfs mounts with
/// a target (mounted by the caller, on the host).
fn cve_2021_30465(exe: &InitExe) {
    // Spec mount: `/data` → `../../..<decoy>`; the tmpfs must land on
    // `<rootfs><decoy>`, never on the host's decoy.
    let decoy = Decoy::new("30465");
    let b = Bundle::new("30465");
    let inside = b
        .rootfs()
        .join(decoy.path().strip_prefix("/").expect("absolute"));
    std::fs::create_dir_all(&inside).expect("in-root copy of the decoy path");
    replace_with_symlink(&b.rootfs().join("data"), &climbing(decoy.path()));
    let mut spec = spec_sh(&format!(
        "echo in > /data/marker && cat {}/marker",
        decoy.path().display()
    ));
    if let Some(m) = spec["mounts"].as_array_mut() {
        m.push(json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs"}));
    }
    b.write_config(&spec);
    let (out, code) = run(&b, exe, &[]);
    assert_eq!(
        (out.as_str(), code),
        ("in\n", 0),
        "mount not inside the root"
    );
    decoy.assert_untouched();
    assert!(
        std::fs::read_dir(&inside).expect("inside").next().is_none(),
        "tmpfs content leaked to the rootfs"
    );

    // containerd rootfs mounts: the image (first mount) has `data` → the host
    // decoy; the second mount targets `data`. It is mounted by the caller in the
    // host's mount namespace, so following the symlink mounts over the host.
    let decoy = Decoy::new("30465r");
    let image = Bundle::new("30465img");
    replace_with_symlink(&image.rootfs().join("data"), &climbing(decoy.path()));
    std::fs::create_dir_all(
        image
            .rootfs()
            .join(decoy.path().strip_prefix("/").expect("absolute")),
    )
    .expect("in-image copy of the decoy path");
    let b = Bundle::new("30465r");
    std::fs::remove_dir_all(b.rootfs()).expect("empty rootfs");
    let mounts = [
        RootfsMount {
            kind: "bind".into(),
            source: image.rootfs().to_string_lossy().into_owned(),
            target: String::new(),
            options: vec!["rbind".into(), "rw".into()],
        },
        RootfsMount {
            kind: "tmpfs".into(),
            source: "tmpfs".into(),
            target: "/data".into(),
            options: vec![],
        },
    ];
    match create(&b, exe, &mounts, None) {
        Ok(c) => {
            let mounted = decoy.is_mountpoint();
            let pid = c.pid();
            c.destroy().expect("destroy");
            wait_for(pid);
            assert!(
                !mounted,
                "escape: the rootfs mount landed on the host's decoy"
            );
        }
        Err(e) => {
            decoy.assert_untouched();
            assert!(e.to_string().contains("data"), "{e}");
        }
    }
    reap_zombies();
    b.assert_clean();
    decoy.assert_untouched();
}

/// CVE-2024-45310: a symlinked mount destination makes the runtime create
/// directories and files on the host (mkdir -p following the symlink). The
/// planted symlink stands in for the race; nothing may appear in the host dir.
fn cve_2024_45310(exe: &InitExe) {
    let decoy = Decoy::new("45310");
    let b = Bundle::new("45310");
    replace_with_symlink(&b.rootfs().join("vol"), &decoy.path().to_string_lossy());
    let src = b.dir.join("srcfile");
    std::fs::write(&src, "content\n").expect("bind source");
    let mut spec = default_spec(&["true"]);
    if let Some(m) = spec["mounts"].as_array_mut() {
        m.push(json!({"destination": "/vol/sub/dir/file", "type": "bind",
                      "source": src, "options": ["bind", "ro"]}));
        m.push(json!({"destination": "/vol/sub2", "type": "tmpfs", "source": "tmpfs"}));
    }
    b.write_config(&spec);
    match create(&b, exe, &[], None) {
        Ok(c) => {
            let pid = c.pid();
            c.destroy().expect("destroy");
            wait_for(pid);
        }
        Err(e) => assert!(e.to_string().contains("/vol/sub"), "{e}"),
    }
    reap_zombies();
    b.assert_clean();
    decoy.assert_untouched();
}

fn capget() -> [[u32; 3]; 2] {
    let mut hdr = [0x2008_0522u32, 0];
    let mut data = [[0u32; 3]; 2];
    // SAFETY: capget v3 with a header and two data structs.
    let rc = unsafe { libc::syscall(libc::SYS_capget, hdr.as_mut_ptr(), data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget");
    data
}

fn capset(data: &[[u32; 3]; 2]) {
    let mut hdr = [0x2008_0522u32, 0];
    // SAFETY: capset v3 with a header and two data structs.
    let rc = unsafe { libc::syscall(libc::SYS_capset, hdr.as_mut_ptr(), data.as_ptr()) };
    assert_eq!(rc, 0, "capset");
}

fn ambient(op: libc::c_ulong, cap: libc::c_ulong) {
    // SAFETY: plain prctl with integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_CAP_AMBIENT, op, cap, 0, 0) };
    assert_eq!(rc, 0, "PR_CAP_AMBIENT");
}

/// CVE-2022-29162: the runtime gave processes inheritable capabilities they
/// did not ask for (exec'ing a file with inheritable file caps then raised
/// them). Here the caller itself has inheritable and ambient capabilities, and
/// neither the init's workload nor an exec may get any.
fn cve_2022_29162(exe: &InitExe) {
    let saved = capget();
    let mut noisy = saved;
    // CAP_SYS_ADMIN (21), CAP_NET_ADMIN (12), CAP_KILL (5).
    noisy[0][2] |= (1 << 21) | (1 << 12) | (1 << 5);
    capset(&noisy);
    ambient(libc::PR_CAP_AMBIENT_RAISE as _, 12);
    let restore = || {
        ambient(libc::PR_CAP_AMBIENT_CLEAR_ALL as _, 0);
        capset(&saved);
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    assert!(status.contains("CapAmb:\t0000000000001000"), "{status}");

    let script = "grep -E '^Cap(Inh|Amb)' /proc/self/status";
    let want = "CapInh:\t0000000000000000\nCapAmb:\t0000000000000000\n";
    let result = std::panic::catch_unwind(|| {
        for (name, user) in [
            ("root", json!({"uid": 0, "gid": 0})),
            ("user", json!({"uid": 1000, "gid": 1000})),
        ] {
            let b = Bundle::new(&format!("29162{name}"));
            let mut spec = spec_sh(script);
            spec["process"]["user"] = user;
            b.write_config(&spec);
            let (out, code) = run(&b, exe, &[]);
            assert_eq!((out.as_str(), code), (want, 0), "{name}");
        }
        // An exec gets none either.
        let b = Bundle::new("29162x");
        b.write_config(&default_spec(&["sleep", "100"]));
        let mut c = create(&b, exe, &[], None).unwrap_or_else(|e| panic!("create: {e}"));
        c.start().expect("start");
        let mut p = default_spec(&["sh", "-c", script])["process"].clone();
        p["user"] = json!({"uid": 1000, "gid": 1000});
        let p: Process = serde_json::from_value(p).expect("process");
        let (r, w) = pipe();
        let ep = c
            .exec(ExecRequest {
                process: &p,
                stdio: Stdio {
                    stdin: None,
                    stdout: Some(w),
                    stderr: None,
                },
            })
            .unwrap_or_else(|e| panic!("exec: {e}"));
        let out = read_all(r);
        let _ = waitpid(Pid::from_raw(ep.pid), None);
        let _ = c.kill(libc::SIGKILL, true);
        wait_for(c.pid());
        c.destroy().expect("destroy");
        reap_zombies();
        b.assert_clean();
        assert_eq!(out, want, "exec");
    });
    restore();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// CVE-2025-31133: `/dev/null` in the rootfs is a symlink (a won race), so
/// masking a path would bind its target (e.g. `/proc/sys/kernel/core_pattern`)
/// read-write over it. The rootfs's own `/dev` is used (no /dev tmpfs).
fn cve_2025_31133(exe: &InitExe) {
    let core_pattern = std::fs::read("/proc/sys/kernel/core_pattern").unwrap_or_default();
    for (name, plant) in [("link", true), ("file", false)] {
        let b = Bundle::new(&format!("31133{name}"));
        let null = b.rootfs().join("dev/null");
        if plant {
            replace_with_symlink(&null, "/proc/sys/kernel/core_pattern");
        } else {
            std::fs::write(&null, "").expect("plain file");
        }
        let mut spec = spec_sh("echo '|/tmp/pwned' > /proc/timer_list");
        without_dev_mounts(&mut spec);
        b.write_config(&spec);
        create_fails(
            &b,
            exe,
            &[],
            "/dev/null in the container is not the 1:3 character device",
        );
    }
    assert_eq!(
        std::fs::read("/proc/sys/kernel/core_pattern").unwrap_or_default(),
        core_pattern,
        "escape: core_pattern changed"
    );
    // With a proper /dev, masked files are the real null device.
    let b = Bundle::new("31133ok");
    b.write_config(&spec_sh("stat -c %F:%t:%T /proc/timer_list /proc/keys"));
    let (out, code) = run(&b, exe, &[]);
    assert_eq!(
        (out.as_str(), code),
        (
            "character special file:1:3\ncharacter special file:1:3\n",
            0
        )
    );
}

fn read_master(master: &OwnedFd, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut f = std::fs::File::from(master.try_clone().expect("dup"));
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut pfd = [libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(pfd.as_mut_ptr(), 1, left.as_millis() as i32) } <= 0 {
            break;
        }
        let mut buf = [0u8; 4096];
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).replace('\r', "")
}

/// CVE-2025-52565: `/dev/pts/N` (or `/dev/console`) swapped for something else
/// before the console bind, so the runtime bind-mounts the wrong file. tent
/// opens the peer with TIOCGPTPEER and binds through the fd: `/dev/console` and
/// the workload's terminal must be the very pty whose master the caller got.
fn cve_2025_52565(exe: &InitExe) {
    let b = Bundle::new("52565");
    let mut spec = spec_sh("stat -c %t:%T /dev/console; stat -L -c %t:%T /proc/self/fd/0");
    spec["process"]["terminal"] = json!(true);
    b.write_config(&spec);
    let mut c = create(&b, exe, &[], None).unwrap_or_else(|e| panic!("create: {e}"));
    let master = c.take_console().expect("pty master");
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes the pty number into `n`.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) };
    assert_eq!(rc, 0, "TIOCGPTN");
    c.start().expect("start");
    let out = read_master(&master, Duration::from_secs(10));
    wait_for(c.pid());
    c.destroy().expect("destroy");
    reap_zombies();
    b.assert_clean();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_eq!(lines[0], lines[1], "/dev/console is not the workload's pty");
    let (maj, min) = lines[0].split_once(':').expect("major:minor");
    let maj = u64::from_str_radix(maj, 16).expect("major");
    let min = u64::from_str_radix(min, 16).expect("minor");
    assert!((136..=143).contains(&maj), "not a pts device: {out:?}");
    assert_eq!(
        (maj - 136) * 256 + min,
        u64::from(n),
        "/dev/console is not the peer of the master we got"
    );

    // A planted `/dev/console` symlink (rootfs's own /dev) is refused, not followed.
    let b = Bundle::new("52565l");
    let target = b.rootfs().join("etc/target");
    std::fs::write(&target, "original\n").expect("target");
    std::fs::create_dir_all(b.rootfs().join("dev/pts")).expect("dev/pts");
    replace_with_symlink(&b.rootfs().join("dev/console"), "/etc/target");
    let mut spec = spec_sh("true");
    without_dev_mounts(&mut spec);
    if let Some(m) = spec["mounts"].as_array_mut() {
        m.push(
            json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                      "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666"]}),
        );
    }
    spec["linux"]["maskedPaths"] = json!([]);
    spec["process"]["terminal"] = json!(true);
    b.write_config(&spec);
    create_fails(&b, exe, &[], "/dev/console");
    assert_eq!(
        std::fs::read_to_string(&target).ok().as_deref(),
        Some("original\n")
    );
}

/// CVE-2025-52881: writes to `/proc/sys` redirected by a mount over procfs.
/// Redirect 1: a bind of another procfs file (the host sleeper's
/// `oom_score_adj`, harmless to write and observable) over
/// `/proc/sys/kernel/domainname` — it passes a plain "is it procfs?" check.
/// Redirect 2: a tmpfs over `/proc/sys/kernel`. In both cases the sysctl must
/// reach the container's real `kernel.domainname`.
fn cve_2025_52881(exe: &InitExe) {
    let mut sleeper = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .expect("sleeper");
    let victim = format!("/proc/{}/oom_score_adj", sleeper.id());
    let before = std::fs::read_to_string(&victim).expect("victim");
    let value = if before.trim() == "517" { "518" } else { "517" };
    let cases = [
        json!({"destination": "/proc/sys/kernel/domainname", "type": "bind",
               "source": victim, "options": ["bind"]}),
        json!({"destination": "/proc/sys/kernel", "type": "tmpfs", "source": "tmpfs"}),
    ];
    for (i, extra) in cases.into_iter().enumerate() {
        let b = Bundle::new(&format!("52881-{i}"));
        let mut spec = default_spec(&["sleep", "100"]);
        if let Some(m) = spec["mounts"].as_array_mut() {
            m.insert(1, extra);
        }
        spec["linux"]["sysctl"] = json!({"kernel.domainname": value});
        b.write_config(&spec);
        match create(&b, exe, &[], None) {
            Ok(c) => {
                let uts = format!("--uts=/proc/{}/ns/uts", c.pid());
                let o = std::process::Command::new("nsenter")
                    .args([uts.as_str(), "cat", "/proc/sys/kernel/domainname"])
                    .output()
                    .expect("nsenter");
                let pid = c.pid();
                c.destroy().expect("destroy");
                wait_for(pid);
                assert_eq!(
                    String::from_utf8_lossy(&o.stdout).trim(),
                    value,
                    "case {i}: the sysctl did not reach the container's procfs"
                );
            }
            Err(e) => panic!("case {i}: create: {e}"),
        }
        reap_zombies();
        b.assert_clean();
        let after = std::fs::read_to_string(&victim).expect("victim");
        assert_eq!(
            after, before,
            "case {i}: escape: sysctl write redirected to {victim}"
        );
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// CVE-2026-41579: `rootfs/dev` is a symlink to a host directory and `/dev` is
/// set up by path before pivot_root, so device nodes, symlinks and mounts land
/// on the host. `/dev` must be a plain directory of the rootfs, with or without
/// a /dev tmpfs in the spec.
fn cve_2026_41579(exe: &InitExe) {
    for (name, no_tmpfs) in [("tmpfs", false), ("rootdev", true)] {
        for abs in [true, false] {
            let decoy = Decoy::new(&format!("41579{name}{abs}"));
            let b = Bundle::new(&format!("41579{name}{abs}"));
            // The in-root copy exists too, so only a refusal (not ENOENT) stops it.
            std::fs::create_dir_all(
                b.rootfs()
                    .join(decoy.path().strip_prefix("/").expect("absolute")),
            )
            .expect("in-root copy");
            let to = if abs {
                decoy.path().to_string_lossy().into_owned()
            } else {
                climbing(decoy.path())
            };
            replace_with_symlink(&b.rootfs().join("dev"), &to);
            let mut spec = default_spec(&["true"]);
            if no_tmpfs {
                without_dev_mounts(&mut spec);
                spec["linux"]["devices"] = json!([
                    {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}
                ]);
            }
            b.write_config(&spec);
            create_fails(&b, exe, &[], "/dev: not a plain directory");
            decoy.assert_untouched();
        }
    }
    // The host's own /dev.
    let b = Bundle::new("41579hostdev");
    replace_with_symlink(&b.rootfs().join("dev"), "/dev");
    create_fails(&b, exe, &[], "/dev: not a plain directory");
}

/// Host sysctls through `linux.sysctl` (runc's rules): a key that is not
/// namespaced (`kernel.core_pattern` is a host escape on its own, `vm.*`,
/// `fs.*`), a `net.*` key without a private network namespace, or an IPC key
/// without a private IPC namespace is refused at create, naming the key, before
/// anything exists; the host's values stay as they were.
fn host_sysctls(exe: &InitExe) {
    let read = |k: &str| {
        std::fs::read_to_string(format!("/proc/sys/{}", k.replace('.', "/")))
            .unwrap_or_else(|e| panic!("read host sysctl {k}: {e}"))
    };
    let cases: &[(&str, &str, &[&str], &str)] = &[
        (
            "kernel.core_pattern",
            "|/tmp/tent-escape %p",
            &[],
            "not in a separate kernel namespace",
        ),
        (
            "vm.overcommit_memory",
            "1",
            &[],
            "not in a separate kernel namespace",
        ),
        (
            "fs.file-max",
            "1234",
            &[],
            "not in a separate kernel namespace",
        ),
        (
            "net.ipv4.ip_forward",
            "1",
            &["network"],
            "host's network namespace",
        ),
        ("kernel.shmmni", "17", &["ipc"], "host's IPC namespace"),
    ];
    for (i, (key, value, drop_ns, want)) in cases.iter().enumerate() {
        let before = read(key);
        let b = Bundle::new(&format!("sysctl{i}"));
        let mut spec = spec_sh("true");
        spec["linux"]["sysctl"] = json!({ *key: value });
        if let Some(nss) = spec["linux"]["namespaces"].as_array_mut() {
            nss.retain(|n| !drop_ns.contains(&n["type"].as_str().unwrap_or_default()));
        }
        b.write_config(&spec);
        let msg = create_fails(&b, exe, &[], want);
        assert!(msg.contains(key), "the error must name {key}: {msg}");
        assert_eq!(read(key), before, "host sysctl {key} changed");
    }
}

// ---------------------------------------------------------------- main

fn main() {
    if tent_runtime::is_init_invocation() {
        tent_runtime::init_main();
    }
    // CVE-2019-5736 runs this binary inside a container as `#!/proc/self/exe`
    // of /bin/evil: stay alive a moment (so the container can attack it), then go.
    if std::env::args().nth(1).as_deref() == Some("/bin/evil") {
        std::thread::sleep(Duration::from_millis(800));
        return;
    }
    let tests: &[(&str, TestFn)] = &[
        ("cve_2019_5736", cve_2019_5736),
        ("cve_2024_21626", cve_2024_21626),
        ("cve_2019_19921", cve_2019_19921),
        ("cve_2023_27561", cve_2023_27561),
        ("cve_2021_30465", cve_2021_30465),
        ("cve_2024_45310", cve_2024_45310),
        ("cve_2022_29162", cve_2022_29162),
        ("cve_2025_31133", cve_2025_31133),
        ("cve_2025_52565", cve_2025_52565),
        ("cve_2025_52881", cve_2025_52881),
        ("cve_2026_41579", cve_2026_41579),
        ("host_sysctls", host_sysctls),
    ];
    common::run_suite("escape", tests);
}
