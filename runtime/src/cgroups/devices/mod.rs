//! The container's device allow list, enforced on both cgroup versions with the
//! same meaning. The list is: everything denied, then the spec's
//! `linux.resources.devices` rules in order, then the devices every container
//! gets (runc's list). Starting from "deny all" is what runc does on both
//! versions (containerd's first rule says it too), so a spec without rules gets
//! only the defaults, never the parent's allow-all.
//!
//! - v1: the rules are written to `devices.allow`/`devices.deny`, and the
//!   kernel's device controller keeps the resulting list.
//! - v2 has no device files: a `BPF_PROG_TYPE_CGROUP_DEVICE` program attached
//!   to the cgroup decides every mknod and open. Without it a container with
//!   CAP_MKNOD (a default capability) could mknod and open a host disk or
//!   `/dev/mem`, so a v2 container whose program the kernel refuses is refused.
//!   [`emulate`] replays the rules with v1's kernel semantics (allow/deny
//!   list, "a" resetting, no holes punched into wildcards), [`program`] turns
//!   that state into eBPF, [`bpf`] loads and attaches it.
//!
//! Update: on v2 a new program replaces the old one (attached first, so there
//! is never a moment without a filter); on v1 Update leaves the device list
//! alone, as before: rewriting it would need runc's transition computation to
//! avoid a moment of "deny all" while the container runs.

mod bpf;
mod emulate;
mod program;

use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupManager;
use crate::error::{Error, Result};

pub use bpf::{v2_filters, Program};

/// Access bits, numbered as the kernel's `DEVCG_ACC_*` / `BPF_DEVCG_ACC_*`.
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_RWM: u8 = 7;

/// Which devices a rule is about; `All` is v1's "a", which resets the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    All,
    Block,
    Char,
}

/// One rule as v1 understands it. `None` is the `*` wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// `ACC_*` bits.
    pub access: u8,
}

impl Rule {
    const fn char(major: u32, minor: Option<u32>, access: u8) -> Rule {
        Rule {
            allow: true,
            kind: Kind::Char,
            major: Some(major),
            minor,
            access,
        }
    }

    /// The rule as v1's `devices.allow`/`devices.deny` spell it (`c 1:3 rwm`, `a`).
    pub fn line(&self) -> String {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let kind = match self.kind {
            Kind::All => return "a".into(),
            Kind::Block => "b",
            Kind::Char => "c",
        };
        let access: String = [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
            .iter()
            .filter(|(bit, _)| self.access & bit != 0)
            .map(|(_, c)| *c)
            .collect();
        format!("{kind} {}:{} {access}", num(self.major), num(self.minor))
    }
}

/// The base of every list: nothing allowed.
pub const DENY_ALL: Rule = Rule {
    allow: false,
    kind: Kind::All,
    major: None,
    minor: None,
    access: ACC_RWM,
};

/// Device rules every container gets: mknod of anything, the standard
/// character devices, ptys and tun (runc's list).
pub const DEFAULT_RULES: &[Rule] = &[
    Rule {
        allow: true,
        kind: Kind::Char,
        major: None,
        minor: None,
        access: ACC_MKNOD,
    },
    Rule {
        allow: true,
        kind: Kind::Block,
        major: None,
        minor: None,
        access: ACC_MKNOD,
    },
    Rule::char(1, Some(3), ACC_RWM),    // null
    Rule::char(1, Some(5), ACC_RWM),    // zero
    Rule::char(1, Some(7), ACC_RWM),    // full
    Rule::char(1, Some(8), ACC_RWM),    // random
    Rule::char(1, Some(9), ACC_RWM),    // urandom
    Rule::char(5, Some(0), ACC_RWM),    // tty
    Rule::char(5, Some(1), ACC_RWM),    // console
    Rule::char(5, Some(2), ACC_RWM),    // ptmx
    Rule::char(136, None, ACC_RWM),     // pts/*
    Rule::char(10, Some(200), ACC_RWM), // net/tun
];

/// [`DENY_ALL`], the spec's rules (validated: an error names the field), then
/// [`DEFAULT_RULES`].
pub fn rules(spec_rules: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    let mut out = vec![DENY_ALL];
    for (i, r) in spec_rules.iter().enumerate() {
        out.push(parse_rule(i, r)?);
    }
    out.extend_from_slice(DEFAULT_RULES);
    Ok(out)
}

fn parse_rule(i: usize, r: &LinuxDeviceCgroup) -> Result<Rule> {
    let field = |f: &str| format!("resources.devices[{i}].{f}");
    let kind = match r.typ() {
        None | Some(LinuxDeviceType::A) => Kind::All,
        Some(LinuxDeviceType::B) => Kind::Block,
        Some(LinuxDeviceType::C) => Kind::Char,
        Some(t @ (LinuxDeviceType::U | LinuxDeviceType::P)) => {
            return Err(Error::spec(
                field("type"),
                format!(
                    "{:?} is not a device cgroup type (want \"a\", \"b\" or \"c\")",
                    t.as_str()
                ),
            ))
        }
    };
    // Negative is the wildcard (runc writes -1); v1 parses a u32.
    let num = |name: &str, n: Option<i64>| -> Result<Option<u32>> {
        match n {
            None => Ok(None),
            Some(n) if n < 0 => Ok(None),
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| *n != u32::MAX)
                .map(Some)
                .ok_or_else(|| Error::spec(field(name), format!("{n} is out of range"))),
        }
    };
    let major = num("major", r.major())?;
    let minor = num("minor", r.minor())?;
    let access = match r.access().as_deref() {
        None => ACC_RWM,
        Some(s) => parse_access(s).ok_or_else(|| {
            Error::spec(
                field("access"),
                format!("{s:?} is not a combination of r, w and m"),
            )
        })?,
    };
    Ok(Rule {
        allow: r.allow(),
        kind,
        major,
        minor,
        access,
    })
}

/// Checks what serde would only report vaguely (an unknown enum name, no
/// field): each rule's `type` in a raw `config.json`.
pub(crate) fn precheck_raw(spec: &serde_json::Value) -> Result<()> {
    let Some(list) = spec
        .pointer("/linux/resources/devices")
        .and_then(serde_json::Value::as_array)
    else {
        return Ok(());
    };
    for (i, r) in list.iter().enumerate() {
        match r.get("type") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(t))
                if ["a", "b", "c", "u", "p"].contains(&t.as_str()) => {}
            Some(t) => {
                return Err(Error::spec(
                    format!("resources.devices[{i}].type"),
                    format!("{t} is not a device cgroup type (want \"a\", \"b\" or \"c\")"),
                ))
            }
        }
    }
    Ok(())
}

/// `rwm` letters, each at most once, at least one (runc refuses an empty access).
fn parse_access(s: &str) -> Option<u8> {
    let mut bits = 0u8;
    for c in s.chars() {
        let bit = match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => return None,
        };
        if bits & bit != 0 {
            return None;
        }
        bits |= bit;
    }
    (bits != 0).then_some(bits)
}

/// The v2 program of a rule list (see the module note), compiled and loaded
/// but not attached yet.
pub fn load_v2(rules: &[Rule]) -> Result<Program> {
    let state = emulate::replay(rules);
    Program::load(&program::compile(&state))
}

/// Applies the device list to a new cgroup: v1 files, or the v2 program.
pub fn apply(cg: &CgroupManager, spec_rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let rules = rules(spec_rules)?;
    if cg.v2() {
        return load_v2(&rules)?.install(&cg.v2_dir()).map(|_| ());
    }
    let Some(dir) = cg.v1_dir("devices") else {
        return Ok(());
    };
    for rule in rules {
        let file = dir.join(if rule.allow {
            "devices.allow"
        } else {
            "devices.deny"
        });
        let line = rule.line();
        std::fs::write(&file, &line)
            .map_err(|e| Error::io("write device rule", file.join(&line), e))?;
    }
    Ok(())
}

/// Update's device step, first half: on v2 with `devices` in the update, the
/// new program, loaded before anything changes (attach it with
/// [`Program::install`] after the other writes). v1: `None` (see the module note).
pub fn load_for_update(
    cg: &CgroupManager,
    spec_rules: Option<&[LinuxDeviceCgroup]>,
) -> Result<Option<Program>> {
    match spec_rules {
        Some(r) if cg.v2() => load_v2(&rules(r)?).map(Some),
        _ => Ok(None),
    }
}

/// An exception of the v1 list: kind, major, minor (`None` = `*`), `ACC_*` bits.
pub(crate) type Exception = (Kind, Option<u32>, Option<u32>, u8);

/// What the kernel's v1 controller keeps of the list: allow-by-default or not,
/// and the exceptions to it `(kind, major, minor, ACC_* bits)`.
pub(crate) fn effective(spec_rules: &[LinuxDeviceCgroup]) -> Result<(bool, Vec<Exception>)> {
    let state = emulate::replay(&rules(spec_rules)?);
    let ex = state
        .exceptions
        .iter()
        .map(|((k, ma, mi), acc)| (*k, *ma, *mi, *acc))
        .collect();
    Ok((state.default_allow, ex))
}

/// What [`install_v2_filter`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// eBPF instructions of the new program (8 bytes each).
    pub insns: usize,
    /// Programs that were attached before and are detached now.
    pub replaced: usize,
}

/// Compiles `spec_rules` (after [`DENY_ALL`], before the defaults) and
/// installs the program on the cgroup v2 directory `dir`, replacing the ones
/// attached there: what create and Update do on v2, for any cgroup2
/// directory (the tests use the hybrid `unified` mount of a v1 host).
pub fn install_v2_filter(dir: &Path, spec_rules: &[LinuxDeviceCgroup]) -> Result<Installed> {
    let prog = load_v2(&rules(spec_rules)?)?;
    let replaced = prog.install(dir)?;
    Ok(Installed {
        insns: prog.insns(),
        replaced,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn spec_rules_between_deny_all_and_defaults() {
        let r = rules(&spec(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "b", "major": 8, "access": "r"},
            {"allow": true, "type": "c", "major": 1, "minor": -1},
        ])))
        .unwrap_or_default();
        let lines: Vec<String> = r.iter().map(Rule::line).collect();
        assert_eq!(r.len(), 4 + DEFAULT_RULES.len());
        assert_eq!(lines[..5], ["a", "a", "b 8:* r", "c 1:* rwm", "c *:* m"]);
        assert!(!r[0].allow && !r[1].allow && r[2].allow);
        let defaults: Vec<String> = DEFAULT_RULES.iter().map(Rule::line).collect();
        assert_eq!(
            defaults,
            [
                "c *:* m",
                "b *:* m",
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:1 rwm",
                "c 5:2 rwm",
                "c 136:* rwm",
                "c 10:200 rwm",
            ]
        );
    }

    #[test]
    fn invalid_rules_name_the_field() {
        let err = |v: serde_json::Value| {
            rules(&spec(v))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            err(serde_json::json!([{"allow": true, "access": "rwm"}, {"allow": true, "type": "u"}])),
            "resources.devices[1].type: \"u\" is not a device cgroup type (want \"a\", \"b\" or \"c\")"
        );
        assert_eq!(
            err(serde_json::json!([{"allow": true, "type": "p"}])),
            "resources.devices[0].type: \"p\" is not a device cgroup type (want \"a\", \"b\" or \"c\")"
        );
        for bad in ["rwx", "", "rr", "R"] {
            assert_eq!(
                err(serde_json::json!([{"allow": true, "type": "c", "access": bad}])),
                format!("resources.devices[0].access: {bad:?} is not a combination of r, w and m")
            );
        }
        assert_eq!(
            err(serde_json::json!([{"allow": true, "type": "c", "major": 4294967296_i64}])),
            "resources.devices[0].major: 4294967296 is out of range"
        );
        assert_eq!(
            err(serde_json::json!([{"allow": true, "type": "c", "minor": 4294967295_i64}])),
            "resources.devices[0].minor: 4294967295 is out of range"
        );
        assert_eq!(parse_access("mwr"), Some(ACC_RWM));
    }

    #[test]
    fn raw_type_names_the_field() {
        let raw = |t: serde_json::Value| {
            precheck_raw(&serde_json::json!({"linux": {"resources": {"devices": [
                {"allow": false}, {"allow": true, "type": t}
            ]}}}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
        };
        assert_eq!(
            raw(serde_json::json!("x")),
            "resources.devices[1].type: \"x\" is not a device cgroup type (want \"a\", \"b\" or \"c\")"
        );
        assert!(raw(serde_json::json!(3)).starts_with("resources.devices[1].type: 3 is not"));
        for ok in ["a", "b", "c", "u", "p"] {
            assert_eq!(raw(serde_json::json!(ok)), "", "{ok}");
        }
    }
}
