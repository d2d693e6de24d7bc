//! The device allow list: the spec's `linux.resources.devices` rules in order,
//! then the devices every container gets (runc's list). On v1 the rules are
//! written to `devices.allow`/`devices.deny`. v2 has no device files: it needs
//! a `BPF_PROG_TYPE_CGROUP_DEVICE` program, which tent does not load yet, so
//! on v2 the list is not enforced (the security issue adds the program).

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupManager;
use crate::error::{Error, Result};

/// Device rules every container gets: mknod of anything, the standard
/// character devices, ptys and tun (runc's list).
pub const DEFAULT_RULES: &[&str] = &[
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
];

/// One rule as the v1 files spell it, and whether it allows or denies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub line: String,
}

/// The spec's rules followed by [`DEFAULT_RULES`].
pub fn rules(spec_rules: &[LinuxDeviceCgroup]) -> Vec<Rule> {
    let mut out: Vec<Rule> = spec_rules
        .iter()
        .map(|r| {
            let typ = match r.typ() {
                Some(LinuxDeviceType::C) => "c",
                Some(LinuxDeviceType::B) => "b",
                _ => "a",
            };
            let num = |n: Option<i64>| {
                n.filter(|n| *n >= 0)
                    .map_or("*".to_string(), |n| n.to_string())
            };
            let access = r.access().clone().unwrap_or_else(|| "rwm".into());
            let line = if typ == "a" {
                "a".to_string()
            } else {
                format!("{typ} {}:{} {access}", num(r.major()), num(r.minor()))
            };
            Rule {
                allow: r.allow(),
                line,
            }
        })
        .collect();
    out.extend(DEFAULT_RULES.iter().map(|d| Rule {
        allow: true,
        line: d.to_string(),
    }));
    out
}

/// Applies the device list of a spec that has one to a new cgroup (v1); see
/// the module note for v2.
pub fn apply(cg: &CgroupManager, spec_rules: &[LinuxDeviceCgroup]) -> Result<()> {
    if cg.v2() {
        return Ok(());
    }
    let Some(dir) = cg.v1_dir("devices") else {
        return Ok(());
    };
    for rule in rules(spec_rules) {
        let file = dir.join(if rule.allow {
            "devices.allow"
        } else {
            "devices.deny"
        });
        std::fs::write(&file, &rule.line)
            .map_err(|e| Error::io("write device rule", file.join(&rule.line), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_rules_come_first() {
        let spec: Vec<LinuxDeviceCgroup> = serde_json::from_value(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "b", "major": 8, "access": "r"},
        ]))
        .unwrap_or_default();
        let r = rules(&spec);
        assert_eq!(r.len(), 2 + DEFAULT_RULES.len());
        assert_eq!(
            r[0],
            Rule {
                allow: false,
                line: "a".into()
            }
        );
        assert_eq!(r[1].line, "b 8:* r");
        assert_eq!(r[2].line, "c *:* m");
    }
}
