//! The entry points `fuzz/` drives (cargo-fuzz, nightly) and the regression tests that
//! replay its corpora and crashers in an ordinary `cargo test`: everything here takes
//! untrusted bytes, must never panic, and keeps no state. Built only with the `fuzzing`
//! feature (and for tests), so the shipped library is unchanged.

use crate::confine::seccomp;
use crate::confine::Confinement;
use crate::profile::{Mode, Profile};
use crate::sync::{self, Message};

/// `config.json` bytes through everything the runtime checks and derives before it creates
/// anything: parsing and validation, both profiles' checks, the confinement (capabilities,
/// LSM labels, the seccomp filter), the cgroup path and resources' limits, mount options,
/// root propagation and the hooks' state document.
pub fn spec(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = crate::spec::parse(raw) else {
        return;
    };
    for mode in [Mode::Tent, Mode::Compat] {
        let profile = Profile {
            mode,
            ..Profile::default()
        };
        if let Ok(h) = profile.check_spec(&spec) {
            if let Ok(c) = Confinement::for_init(&spec, h) {
                if let Some(p) = spec.process() {
                    let _ = c.for_exec(p);
                }
            }
        }
    }
    for m in spec.mounts().iter().flatten() {
        let _ = crate::mounts::parse_options(m.options().as_deref().unwrap_or_default());
    }
    let _ = crate::mounts::root_propagation(&spec);
    if let Some(linux) = spec.linux() {
        if let Some(cg) = linux.cgroups_path() {
            let _ = crate::cgroups::CgroupPath::parse(&cg.to_string_lossy(), "fuzz");
        }
    }
    let _ = crate::hooks::state(
        &spec,
        "fuzz",
        Some(1),
        "/bundle",
        crate::hooks::Kind::Prestart,
    );
}

/// A sync-channel packet's bytes through [`sync::decode`]; what decodes must encode and
/// decode again, and an init's config must survive the spec checks the init repeats.
pub fn sync_message(data: &[u8]) {
    let Ok(msg) = sync::decode(data) else {
        return;
    };
    let again = serde_json::to_vec(&msg).map(|b| sync::decode(&b));
    assert!(
        matches!(again, Ok(Ok(_))),
        "a decoded message does not round-trip: {msg:?}"
    );
    if let Message::Config(c) = &msg {
        spec(c.spec.as_bytes());
    }
    if let Message::Exec(e) = &msg {
        if let Ok(p) = serde_json::from_str::<oci_spec::runtime::Process>(&e.process) {
            let _ = e.confinement.for_exec(&p);
        }
    }
}

/// A `linux.seccomp` JSON object through the compiler; a compiled filter must be one the
/// kernel would take: 1..=4096 instructions, every jump inside the program, a return last.
pub fn seccomp(data: &[u8]) {
    let Ok(profile) = serde_json::from_slice::<oci_spec::runtime::LinuxSeccomp>(data) else {
        return;
    };
    let Ok(f) = seccomp::compile(&profile) else {
        return;
    };
    let prog = f.instructions();
    let n = prog.len();
    assert!((1..=4096).contains(&n), "filter of {n} instructions");
    const CLASS: u16 = 0x07;
    const JMP: u16 = 0x05;
    const RET: u16 = 0x06;
    const JA: u16 = 0x00;
    for (i, insn) in prog.iter().enumerate() {
        if insn.code & CLASS != JMP {
            continue;
        }
        let targets = if insn.code & 0xf0 == JA {
            vec![insn.k as usize]
        } else {
            vec![insn.jt as usize, insn.jf as usize]
        };
        for t in targets {
            assert!(i + 1 + t < n, "jump at {i} to {} of {n}", i + 1 + t);
        }
    }
    assert_eq!(
        prog.last().map(|l| l.code & CLASS),
        Some(RET),
        "last instruction"
    );
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every file of `fuzz/corpus/<target>` and `fuzz/regressions/<target>` (crashers once
    /// found, kept) through `f`; the number of inputs.
    fn replay(target: &str, f: fn(&[u8])) -> usize {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut n = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(it) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for e in it.flatten() {
                let data = std::fs::read(e.path())
                    .unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
                f(&data);
                n += 1;
            }
        }
        n
    }

    #[test]
    fn spec_inputs_replay() {
        assert!(replay("spec", super::spec) > 0, "no spec corpus");
    }

    #[test]
    fn sync_inputs_replay() {
        assert!(replay("sync", super::sync_message) > 0, "no sync corpus");
    }

    #[test]
    fn seccomp_inputs_replay() {
        assert!(replay("seccomp", super::seccomp) > 0, "no seccomp corpus");
    }
}
