//! Root filesystem: read-only rootfs (issue #2).
use tent_integration::{unique_id, Containerd, RunOpts};

const PROBE: &str = "touch /probe-file && echo root-writable || echo root-readonly; \
                     touch /dev/shm/probe && echo shm-writable || echo shm-readonly";

#[test]
fn read_only_rootfs_refuses_writes() {
    let c = Containerd::shared();
    let id = unique_id("rootfs-ro");
    let r = c.run(
        &id,
        &["sh", "-c", PROBE],
        &RunOpts::default().flag("--read-only"),
    );
    r.assert_ok();
    assert!(r.stdout.contains("root-readonly"), "{r:#?}");
    assert!(r.stderr.contains("Read-only file system"), "{r:#?}");
    // Mounts on top of the rootfs stay writable.
    assert!(r.stdout.contains("shm-writable"), "{r:#?}");
    c.assert_no_leftovers(&id);
}

#[test]
fn writable_rootfs_by_default() {
    let c = Containerd::shared();
    let id = unique_id("rootfs-rw");
    let r = c.run(&id, &["sh", "-c", PROBE], &RunOpts::default());
    r.assert_ok();
    assert!(r.stdout.contains("root-writable"), "{r:#?}");
    c.assert_no_leftovers(&id);
}

#[test]
fn proc_and_dev_are_set_up() {
    let c = Containerd::shared();
    let id = unique_id("rootfs-mounts");
    let r = c.run(
        &id,
        &["sh", "-c", "echo pid=$$; ls /dev/null /dev/zero /dev/urandom /dev/pts/ptmx; cat /proc/1/cmdline | tr '\\0' ' '; echo"],
        &RunOpts::default(),
    );
    r.assert_ok();
    assert!(
        r.stdout.contains("pid=1"),
        "not PID 1 in a new pid namespace: {r:#?}"
    );
    assert!(
        r.stdout.contains("/dev/null") && r.stdout.contains("/dev/urandom"),
        "{r:#?}"
    );
}
