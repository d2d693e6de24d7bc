//! Every container has a session keyring of its own, `_ses.<id>` (runc's name), joined by its
//! init and by every exec; none sees the session keyring the shim inherited from containerd
//! (the host's). Checked where `keyctl` is allowed (tent's `compat` profile, as under runc);
//! under tent's own profile the default seccomp filter refuses `keyctl` altogether.
mod common;

use common::Running;
use tent_integration::{is_runc, repo_root};

fn compat_flag() -> String {
    if is_runc() {
        // runc has no profile; its default spec allows keyctl as compat does.
        return "--label=tent.test/keyring=runc".into();
    }
    format!(
        "--runtime-config-path={}",
        repo_root().join("config/tent-compat.toml").display()
    )
}

/// `(serial, description)` from `tent-testbin keyring`'s line.
fn keyring_of(out: &str) -> (String, String) {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("keyring "))
        .unwrap_or_else(|| panic!("no keyring line in {out:?}"));
    let (serial, description) = line.split_once(' ').unwrap_or((line, ""));
    (serial.to_string(), description.to_string())
}

/// This process's session keyring serial (`KEYCTL_GET_KEYRING_ID`, without creating one).
fn own_session_keyring() -> String {
    // SAFETY: keyctl(KEYCTL_GET_KEYRING_ID = 0, KEY_SPEC_SESSION_KEYRING = -3, create = 0).
    let serial =
        unsafe { libc::syscall(libc::SYS_keyctl, 0 as libc::c_long, -3 as libc::c_long, 0) };
    assert!(serial > 0, "keyctl: {}", std::io::Error::last_os_error());
    serial.to_string()
}

#[test]
fn each_container_has_its_own_session_keyring_and_execs_join_it() {
    let c = tent_integration::Containerd::shared();
    let flag = compat_flag();
    let a = Running::start(c, "keyring-a", &[&flag]);
    let b = Running::start(c, "keyring-b", &[&flag]);
    let first = a.exec(&[], &["/bin/tent-testbin", "keyring"]);
    assert_eq!(first.code, Some(0), "{first:#?}");
    let (serial_a, description) = keyring_of(&first.stdout);
    // keyring;<uid>;<gid>;<perm>;<name>
    assert!(
        description.starts_with("keyring;") && description.ends_with(&format!(";_ses.{}", a.id)),
        "container {}'s session keyring must be its own: {description}",
        a.id
    );
    let again = a.exec(&[], &["/bin/tent-testbin", "keyring"]);
    assert_eq!(
        keyring_of(&again.stdout).0,
        serial_a,
        "a second exec must join the same keyring"
    );
    let other = b.exec(&[], &["/bin/tent-testbin", "keyring"]);
    let (serial_b, description_b) = keyring_of(&other.stdout);
    assert_ne!(serial_a, serial_b, "two containers share a keyring");
    assert!(
        description_b.ends_with(&format!(";_ses.{}", b.id)),
        "{description_b}"
    );
    // containerd (and so the shim) inherited this test's session keyring: the containers must
    // not have it.
    let ours = own_session_keyring();
    assert_ne!(
        serial_a, ours,
        "container {} kept the host's session keyring",
        a.id
    );
    assert_ne!(
        serial_b, ours,
        "container {} kept the host's session keyring",
        b.id
    );
    a.kill_and_check();
    b.kill_and_check();
}

#[test]
fn tent_profile_refuses_keyctl() {
    if is_runc() {
        eprintln!("SKIP: tent's profile");
        return;
    }
    let c = tent_integration::Containerd::shared();
    let a = Running::start(c, "keyring-tent", &[]);
    let r = a.exec(&[], &["/bin/tent-testbin", "keyring"]);
    assert_ne!(r.code, Some(0), "{r:#?}");
    assert!(
        r.stdout.contains("keyring error") && r.stdout.contains("Operation not permitted"),
        "keyctl must be refused by tent's default seccomp filter: {r:#?}"
    );
    a.kill_and_check();
}
