//! A profile's audit budget: limits an image's contents must keep to, checked
//! on an [`Inventory`]. The profile's `[audit]` table names them; this module
//! only judges, so the CLI and the shim give the same verdict.

use std::fmt::Write as _;

use crate::classify::Category;
use crate::walk::Inventory;

/// What `forbid` may name, and the category it stands for (`None`: not a
/// tool category).
pub const FORBIDDABLE: &[(&str, Option<Category>)] = &[
    ("shell", Some(Category::Shell)),
    ("package-manager", Some(Category::PackageManager)),
    ("interpreter", Some(Category::Interpreter)),
    ("compiler", Some(Category::Compiler)),
    ("network-tools", Some(Category::Network)),
    ("kernel-tools", Some(Category::Kernel)),
    ("busybox", None),
    ("devices", None),
    ("world-writable", None),
];

/// Whether `name` is something `forbid` understands.
pub fn is_forbiddable(name: &str) -> bool {
    FORBIDDABLE.iter().any(|(n, _)| *n == name)
}

/// The limits, as the profile gives them.
#[derive(Debug, Clone, Default)]
pub struct Limits<'a> {
    pub max_setuid: Option<u64>,
    pub max_capabilities: Option<u64>,
    pub forbid: &'a [String],
}

/// One broken rule: the rule as written in the profile and what breaks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: String,
    pub count: u64,
    /// The first offending files (at most [`SHOWN`]).
    pub files: Vec<String>,
}

/// Offending files named per rule in a message.
pub const SHOWN: usize = 8;

fn first(paths: impl Iterator<Item = String>) -> Vec<String> {
    paths.take(SHOWN).collect()
}

/// Every rule of `limits` that `inv` breaks. An unknown `forbid` name is an
/// error (the profile is checked when parsed; this is the last guard).
pub fn check(inv: &Inventory, limits: &Limits<'_>) -> Result<Vec<Violation>, String> {
    let mut out = Vec::new();
    if let Some(max) = limits.max_setuid {
        if inv.setid.count > max {
            out.push(Violation {
                rule: format!("max_setuid = {max}"),
                count: inv.setid.count,
                files: first(inv.setid.items.iter().map(|s| s.path.clone())),
            });
        }
    }
    if let Some(max) = limits.max_capabilities {
        if inv.capabilities.count > max {
            out.push(Violation {
                rule: format!("max_capabilities = {max}"),
                count: inv.capabilities.count,
                files: first(inv.capabilities.items.iter().map(|c| c.path.clone())),
            });
        }
    }
    for name in limits.forbid {
        let Some((_, category)) = FORBIDDABLE.iter().find(|(n, _)| n == name) else {
            return Err(format!(
                "[audit] forbid: unknown {name:?} (one of: {})",
                FORBIDDABLE
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let (count, files) = match (name.as_str(), category) {
            (_, Some(c)) => {
                let names = inv.tool_names.get(c).map_or(0, |s| s.len() as u64);
                let mut files = first(
                    inv.tools
                        .items
                        .iter()
                        .filter(|t| t.category == *c)
                        .map(|t| t.path.clone()),
                );
                if files.is_empty() && names > 0 {
                    // Compiled into busybox without a link: `busybox sh` works.
                    files = first(inv.busybox.iter().map(|b| {
                        let applets = b.applets_by_category.get(c).cloned().unwrap_or_default();
                        format!("{} (applets {})", b.path, applets.join(" "))
                    }));
                }
                (names, files)
            }
            ("busybox", None) => (
                inv.busybox.len() as u64,
                first(inv.busybox.iter().map(|b| b.path.clone())),
            ),
            ("devices", None) => (
                inv.devices.count,
                first(inv.devices.items.iter().map(|d| d.path.clone())),
            ),
            _ => (
                inv.world_writable_dirs.count,
                first(inv.world_writable_dirs.items.iter().map(|w| w.path.clone())),
            ),
        };
        if count > 0 {
            out.push(Violation {
                rule: format!("forbid = [{name:?}]"),
                count,
                files,
            });
        }
    }
    Ok(out)
}

/// One line naming every broken rule and its files, for an error or a log.
pub fn describe(violations: &[Violation]) -> String {
    let mut s = String::new();
    for (i, v) in violations.iter().enumerate() {
        if i > 0 {
            s.push_str("; ");
        }
        let _ = write!(s, "[audit] {}: {}", v.rule, v.files.join(", "));
        let shown = v.files.len() as u64;
        if v.count > shown && v.rule.starts_with("max_") {
            let _ = write!(s, " ({} in all)", v.count);
        } else if v.count > shown {
            let _ = write!(s, " ({} names in all)", v.count);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walk::{SetId, Tool};

    fn inv() -> Inventory {
        let mut inv = Inventory::default();
        inv.setid.push(SetId {
            path: "/usr/bin/su".into(),
            mode: "4755".into(),
            uid: 0,
            gid: 0,
            setuid: true,
            setgid: false,
        });
        inv.tools.push(Tool {
            path: "/bin/sh".into(),
            name: "sh".into(),
            category: Category::Shell,
            via: Some("busybox".into()),
        });
        inv.tool_names
            .entry(Category::Shell)
            .or_default()
            .insert("sh".into());
        inv
    }

    #[test]
    fn names_the_rule_and_the_files() {
        let forbid = vec!["shell".to_string(), "kernel-tools".to_string()];
        let v = check(
            &inv(),
            &Limits {
                max_setuid: Some(0),
                max_capabilities: Some(0),
                forbid: &forbid,
            },
        )
        .unwrap();
        assert_eq!(v.len(), 2, "{v:?}");
        let d = describe(&v);
        assert!(d.contains("[audit] max_setuid = 0: /usr/bin/su"), "{d}");
        assert!(d.contains("[audit] forbid = [\"shell\"]: /bin/sh"), "{d}");
        assert!(!d.contains("kernel"), "{d}");
    }

    #[test]
    fn within_budget_and_unknown_names() {
        let v = check(
            &inv(),
            &Limits {
                max_setuid: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(v.is_empty());
        let bad = vec!["shells".to_string()];
        let e = check(
            &inv(),
            &Limits {
                forbid: &bad,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            e.contains("\"shells\"") && e.contains("package-manager"),
            "{e}"
        );
        assert!(is_forbiddable("kernel-tools") && !is_forbiddable("mount"));
    }
}
