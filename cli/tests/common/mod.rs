//! Shared helpers: build trees with known contents, run `tent audit` with a
//! deadline, read its JSON.

#![allow(dead_code)]

use std::ffi::{CString, OsStr};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use serde_json::Value;

pub fn tent() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tent"))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn json(&self) -> Value {
        assert_eq!(self.code, Some(0), "tent failed: {}", self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", self.stdout))
    }
}

/// Runs `tent` with `args`, killing it (and failing) after `deadline`.
pub fn run_as(args: &[&OsStr], deadline: Duration, uid: Option<u32>) -> Run {
    let mut c = Command::new(tent());
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(uid) = uid {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            c.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(uid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let start = Instant::now();
    let mut child = c.spawn().expect("spawn tent");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for tent") {
            break st;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            panic!("tent {args:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let code = status.code();
    Run {
        code,
        stdout: t_out.join().expect("stdout thread"),
        stderr: t_err.join().expect("stderr thread"),
        elapsed,
    }
}

pub fn run(args: &[&OsStr]) -> Run {
    run_as(args, Duration::from_secs(60), None)
}

/// `tent audit --json DIR`.
pub fn audit(dir: &Path) -> Value {
    run(&["audit".as_ref(), "--json".as_ref(), dir.as_os_str()]).json()
}

/// The `path` of every item of `v[list]["items"]`.
pub fn paths(v: &Value, list: &str) -> Vec<String> {
    v[list]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{list} missing in {v}"))
        .iter()
        .map(|i| {
            i.get("path")
                .and_then(Value::as_str)
                .or_else(|| i.as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

pub fn count(v: &Value, list: &str) -> u64 {
    v[list]["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("{list} count in {v}"))
}

/// Tool names the report found in `category`.
pub fn tool_names(v: &Value, category: &str) -> Vec<String> {
    v["tool_names"][category]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn new() -> Tree {
        let dir = tempfile::Builder::new()
            .prefix("tent-audit-test.")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod tempdir");
        let t = Tree { dir };
        t.mkdir("root", 0o755);
        t
    }

    /// The tree to audit (`<tmp>/root`; `<tmp>` itself is "outside").
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn outside(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn at(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel.trim_start_matches('/'))
    }

    pub fn mkdir(&self, rel: &str, mode: u32) -> PathBuf {
        let p = self.at(rel);
        std::fs::create_dir_all(&p).expect("mkdir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    pub fn file(&self, rel: &str, content: &[u8], mode: u32) -> PathBuf {
        let p = self.at(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir parent");
        }
        std::fs::write(&p, content).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    pub fn copy(&self, from: &Path, rel: &str, mode: u32) -> PathBuf {
        let data = std::fs::read(from).expect("read source binary");
        self.file(rel, &data, mode)
    }

    pub fn symlink(&self, target: &str, rel: &str) {
        let p = self.at(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir parent");
        }
        symlink(target, p).expect("symlink");
    }

    pub fn hard_link(&self, existing: &str, rel: &str) {
        std::fs::hard_link(self.at(existing), self.at(rel)).expect("link");
    }

    pub fn mknod(&self, rel: &str, block: bool, major: u32, minor: u32) {
        let p = self.at(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir parent");
        }
        let c = CString::new(p.as_os_str().as_bytes()).expect("path");
        let kind = if block { libc::S_IFBLK } else { libc::S_IFCHR };
        // SAFETY: valid NUL-terminated path.
        let r = unsafe { libc::mknod(c.as_ptr(), kind | 0o666, libc::makedev(major, minor)) };
        assert_eq!(
            r,
            0,
            "mknod {}: {}",
            p.display(),
            std::io::Error::last_os_error()
        );
    }

    /// A FIFO with every permission bit, exec included.
    pub fn mkfifo(&self, rel: &str) {
        let p = self.at(rel);
        let c = CString::new(p.as_os_str().as_bytes()).expect("path");
        // SAFETY: valid NUL-terminated path.
        let r = unsafe { libc::mkfifo(c.as_ptr(), 0o777) };
        assert_eq!(
            r,
            0,
            "mkfifo {}: {}",
            p.display(),
            std::io::Error::last_os_error()
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }

    /// Sets a revision 2 `security.capability` on `rel`.
    pub fn setcap(&self, rel: &str, permitted: u64, effective: bool) {
        let mut v = Vec::new();
        v.extend_from_slice(&(0x0200_0000u32 | u32::from(effective)).to_le_bytes());
        v.extend_from_slice(&(permitted as u32).to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&((permitted >> 32) as u32).to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        let p = CString::new(self.at(rel).as_os_str().as_bytes()).expect("path");
        // SAFETY: valid path, name and value buffers.
        let r = unsafe {
            libc::setxattr(
                p.as_ptr(),
                c"security.capability".as_ptr(),
                v.as_ptr().cast(),
                v.len(),
                0,
            )
        };
        assert_eq!(r, 0, "setxattr {rel}: {}", std::io::Error::last_os_error());
    }
}

/// A tiny truly static binary (`cc -static`), else tent-testbin (static-pie).
pub fn tiny_static(work: &Path) -> Option<PathBuf> {
    let src = work.join("tiny.c");
    let out = work.join("tiny");
    std::fs::write(&src, "int main(void) {\n  return 0;\n}\n").ok()?;
    let ok = Command::new("cc")
        .args(["-static", "-Os", "-s", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return Some(out);
    }
    let testbin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/x86_64-unknown-linux-gnu/release/tent-testbin");
    testbin.exists().then_some(testbin)
}

pub fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}
