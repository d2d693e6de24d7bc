//! Volume mount propagation through containerd's CRI (`mountPropagation` of a pod's volume):
//! - `PROPAGATION_HOST_TO_CONTAINER` (rslave): a mount the host makes under the volume after
//!   the container started appears inside; one the container makes stays inside;
//! - `PROPAGATION_BIDIRECTIONAL` (rshared; containerd then sets `rootfsPropagation: rshared`):
//!   the host's new mount appears inside, and the container's appears on the host.
//!
//! The volumes' sources are under a directory of the test that it makes a shared mount (as
//! containerd requires for Bidirectional) and unmounts at the end. Mounting from inside the
//! container needs CAP_SYS_ADMIN, which tent's profile refuses: on handler `tent` the
//! host-to-container direction is checked, the container-to-host one on `tent-compat` and
//! `runc`.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use tent_integration::cri::*;
use tent_integration::*;

const WAIT: [&str; 2] = ["/bin/tent-testbin", "wait-term"];

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("path")
}

#[track_caller]
fn mount(src: &str, target: &Path, fstype: Option<&str>, flags: libc::c_ulong) {
    let s = CString::new(src).expect("src");
    let t = cstr(target);
    let f = fstype.map(|f| CString::new(f).expect("fstype"));
    // SAFETY: valid C strings (or null for the fs type); no data.
    let rc = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            f.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
            flags,
            std::ptr::null(),
        )
    };
    assert_eq!(
        rc,
        0,
        "mount {src} on {}: {}",
        target.display(),
        std::io::Error::last_os_error()
    );
}

/// A directory bind-mounted onto itself and made rshared; everything under it is unmounted
/// and it is removed on drop.
struct SharedDir(PathBuf);

impl SharedDir {
    fn new(ctd: &Containerd) -> SharedDir {
        let d = ctd.dir().join(unique_id("prop"));
        std::fs::create_dir_all(&d).expect("mkdir");
        let sd = SharedDir(d);
        mount(&sd.0.display().to_string(), &sd.0, None, libc::MS_BIND);
        mount("none", &sd.0, None, libc::MS_SHARED | libc::MS_REC);
        sd
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        let prefix = self.0.display().to_string();
        for _ in 0..5 {
            let mut points: Vec<String> = mountinfo()
                .iter()
                .filter_map(|l| l.split(' ').nth(4).map(String::from))
                .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
                .collect();
            if points.is_empty() {
                break;
            }
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let c = cstr(Path::new(&p));
                // SAFETY: umount2 with a valid C string.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn volume(host: &Path, container: &str, p: api::MountPropagation) -> api::Mount {
    api::Mount {
        container_path: container.to_string(),
        host_path: host.display().to_string(),
        propagation: p as i32,
        ..Default::default()
    }
}

/// `tent` and `tent-compat` (the profile that lets a container mount), `tent-pauseless` on
/// containerd 2.x, and `runc`.
fn mount_handlers() -> Vec<&'static str> {
    handlers()
        .into_iter()
        .flat_map(|h| {
            if h == TENT {
                vec![TENT, TENT_COMPAT]
            } else {
                vec![h]
            }
        })
        .collect()
}

/// One pod with a HostToContainer volume, and a Bidirectional one when `bidirectional`:
/// the host's new mounts reach both, the container's reach the host through the
/// Bidirectional volume only (checked where the profile allows mounting).
fn propagation(ctd: &Containerd, cri: &Cri, handler: &str, bidirectional: bool) {
    let dir = SharedDir::new(ctd);
    let (bidir, h2c) = (dir.0.join("bidir"), dir.0.join("h2c"));
    for d in [&bidir, &h2c] {
        std::fs::create_dir_all(d).expect("mkdir volume");
    }
    let mut pod = Pod::run(cri, pod_config(ctd, "propagation"), handler)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}"));
    let mut c = container_config("c", &WAIT);
    let mut volumes = vec![(h2c.clone(), "/h2c")];
    c.mounts = vec![volume(
        &h2c,
        "/h2c",
        api::MountPropagation::PropagationHostToContainer,
    )];
    if bidirectional {
        volumes.push((bidir.clone(), "/bidir"));
        c.mounts.push(volume(
            &bidir,
            "/bidir",
            api::MountPropagation::PropagationBidirectional,
        ));
    }
    // tent's profile (also tent-pauseless's, which has no options) refuses CAP_SYS_ADMIN.
    let in_container_mounts = ![TENT, TENT_PAUSELESS].contains(&handler);
    if in_container_mounts {
        security_context(&mut c).capabilities = Some(Capability {
            add_capabilities: vec!["SYS_ADMIN".to_string()],
            ..Default::default()
        });
    }
    let id = pod.run_container(&c);
    let spec = pod.runtime_spec(&id);
    let want = if bidirectional { "rshared" } else { "rslave" };
    assert_eq!(
        spec["linux"]["rootfsPropagation"], want,
        "{handler}: the root's propagation containerd asks for"
    );

    // Host → container, on every volume.
    for (host, inside) in &volumes {
        let m = host.join("from-host");
        std::fs::create_dir_all(&m).expect("mkdir");
        mount("tmpfs", &m, Some("tmpfs"), 0);
        std::fs::write(m.join("marker"), "host").expect("marker");
        let got = pod.exec(&id, &["cat", &format!("{inside}/from-host/marker")]);
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            "host",
            "{handler}: the host's mount under {} did not reach {inside}: {got:?}",
            host.display()
        );
    }

    if in_container_mounts {
        // Container → host: only through the Bidirectional volume.
        for (_, inside) in &volumes {
            pod.exec_ok(
                &id,
                &[
                    "sh",
                    "-c",
                    &format!(
                        "mkdir -p {inside}/from-ctr && mount -t tmpfs tmpfs {inside}/from-ctr && echo ctr > {inside}/from-ctr/marker"
                    ),
                ],
            );
        }
        if bidirectional {
            let seen = std::fs::read_to_string(bidir.join("from-ctr/marker")).unwrap_or_default();
            assert_eq!(
                seen, "ctr\n",
                "{handler}: the container's mount under /bidir is not on the host"
            );
        }
        let leaked = h2c.join("from-ctr/marker").exists();
        assert!(
            !leaked,
            "{handler}: the container's mount under /h2c reached the host"
        );
    }
    pod.remove();
    drop(dir);
}

#[test]
fn host_to_container_propagation() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each(&mount_handlers(), |handler| {
        propagation(ctd, &cri, handler, false)
    });
}

#[test]
fn bidirectional_propagation() {
    let ctd = Containerd::shared();
    let cri = Cri::connect(ctd);
    on_each(&mount_handlers(), |handler| {
        propagation(ctd, &cri, handler, true)
    });
}
