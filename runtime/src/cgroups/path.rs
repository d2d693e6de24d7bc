//! `linux.cgroupsPath` → a cgroup path relative to each hierarchy's root:
//! cgroupfs form (`/kubepods/…/<id>`) or systemd form (`slice:prefix:name`,
//! expanded as systemd lays slices out). `..` and the root cgroup are refused.

use crate::error::{Error, Result};

/// A validated cgroup path, relative to each hierarchy's root (no leading `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupPath(pub String);

impl CgroupPath {
    /// Parses `linux.cgroupsPath`; empty means `/tent/<id>`.
    pub fn parse(path: &str, id: &str) -> Result<CgroupPath> {
        let bad = |reason: String| Error::spec("linux.cgroupsPath", reason);
        if path.is_empty() {
            return Ok(CgroupPath(format!("tent/{id}")));
        }
        let rel = if !path.starts_with('/') && path.split(':').count() == 3 {
            let mut parts = path.split(':');
            let (slice, prefix, name) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            if name.is_empty() {
                return Err(bad(format!("{path:?}: empty name in slice:prefix:name")));
            }
            let mut dir = expand_slice(if slice.is_empty() {
                "system.slice"
            } else {
                slice
            })
            .map_err(|r| bad(format!("{path:?}: {r}")))?;
            let unit = if name.ends_with(".slice") {
                name.to_string()
            } else if prefix.is_empty() {
                format!("{name}.scope")
            } else {
                format!("{prefix}-{name}.scope")
            };
            if unit.contains('/') {
                return Err(bad(format!("{path:?}: unit name contains '/'")));
            }
            if !dir.is_empty() {
                dir.push('/');
            }
            dir + &unit
        } else {
            path.trim_start_matches('/').to_string()
        };
        for comp in rel.split('/') {
            if comp == ".." {
                return Err(bad(format!("{path:?} contains \"..\"")));
            }
        }
        let rel = rel
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect::<Vec<_>>()
            .join("/");
        if rel.is_empty() {
            return Err(bad(format!("{path:?} names the root cgroup")));
        }
        Ok(CgroupPath(rel))
    }

    /// A pod's `cgroup_parent` as kubelet sends it: a cgroupfs path, or with the systemd
    /// driver the bare slice name (`kubepods-besteffort-pod<uid>.slice`), expanded as systemd
    /// lays slices out.
    pub fn parse_parent(parent: &str) -> Result<CgroupPath> {
        if !parent.contains('/') && !parent.contains(':') && parent.ends_with(".slice") {
            let rel = expand_slice(parent)
                .map_err(|r| Error::spec("cgroup_parent", format!("{parent:?}: {r}")))?;
            if rel.is_empty() {
                return Err(Error::spec(
                    "cgroup_parent",
                    format!("{parent:?} names the root cgroup"),
                ));
            }
            return Ok(CgroupPath(rel));
        }
        CgroupPath::parse(parent, "pod")
    }
}

/// The slice and unit of a systemd-form `linux.cgroupsPath` (`slice:prefix:name`);
/// `None` for the cgroupfs form. Call after [`CgroupPath::parse`] accepted it.
pub fn systemd_name(path: &str) -> Option<super::systemd::UnitName> {
    if path.starts_with('/') || path.split(':').count() != 3 {
        return None;
    }
    let mut parts = path.split(':');
    let slice = parts
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("system.slice");
    let prefix = parts.next().unwrap_or("");
    let name = parts.next().unwrap_or("");
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Some(super::systemd::UnitName {
        slice: slice.to_string(),
        unit,
    })
}

/// Expands a systemd slice name as systemd does: `a-b.slice` → `a.slice/a-b.slice`.
fn expand_slice(slice: &str) -> std::result::Result<String, String> {
    let base = slice
        .strip_suffix(".slice")
        .ok_or_else(|| format!("slice {slice:?} does not end in .slice"))?;
    if base == "-" {
        return Ok(String::new());
    }
    if base.is_empty()
        || base.contains('/')
        || base.starts_with('-')
        || base.ends_with('-')
        || base.contains("--")
    {
        return Err(format!("invalid slice name {slice:?}"));
    }
    let mut out = Vec::new();
    let mut prefix = String::new();
    for part in base.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push(format!("{prefix}.slice"));
    }
    Ok(out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        match CgroupPath::parse(s, "c1") {
            Ok(p) => p.0,
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn cgroupfs_paths() {
        assert_eq!(p(""), "tent/c1");
        assert_eq!(
            p("/kubepods/besteffort/pod1/c1"),
            "kubepods/besteffort/pod1/c1"
        );
        assert_eq!(p("relative/x"), "relative/x");
        assert!(p("/a/../b").starts_with("ERR linux.cgroupsPath: "));
        assert!(p("../b").starts_with("ERR"));
        assert!(p("/").starts_with("ERR"));
    }

    #[test]
    fn systemd_paths() {
        assert_eq!(
            p("kubepods-besteffort-pod12.slice:cri-containerd:abc"),
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-abc.scope"
        );
        assert_eq!(p("system.slice:docker:x"), "system.slice/docker-x.scope");
        assert_eq!(p(":tent:x"), "system.slice/tent-x.scope");
        assert_eq!(p("-.slice:p:x"), "p-x.scope");
        assert_eq!(p("a.slice::x"), "a.slice/x.scope");
        assert!(p("bad:p:x").starts_with("ERR"));
        assert!(p("a.slice:p:..").starts_with("ERR") || p("a.slice:p:..") == "a.slice/p-...scope");
        assert!(p("a--b.slice:p:x").starts_with("ERR"));
        let n = systemd_name("kubepods-besteffort-pod12.slice:cri-containerd:abc");
        assert_eq!(
            n.map(|n| (n.slice, n.unit)),
            Some((
                "kubepods-besteffort-pod12.slice".to_string(),
                "cri-containerd-abc.scope".to_string()
            ))
        );
        let n = systemd_name(":tent:x").map(|n| n.slice);
        assert_eq!(n.as_deref(), Some("system.slice"));
        assert!(systemd_name("/kubepods/pod1/c1").is_none());
    }

    #[test]
    fn pod_parents() {
        let pp = |s: &str| match CgroupPath::parse_parent(s) {
            Ok(p) => p.0,
            Err(e) => format!("ERR {e}"),
        };
        assert_eq!(
            pp("kubepods-besteffort-pod12.slice"),
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice"
        );
        assert_eq!(
            pp("/kubepods/besteffort/pod12"),
            "kubepods/besteffort/pod12"
        );
        assert!(pp("-.slice").starts_with("ERR cgroup_parent: "));
        assert!(pp("a--b.slice").starts_with("ERR cgroup_parent: "));
        assert!(pp("/kubepods/../x").starts_with("ERR"));
    }
}
