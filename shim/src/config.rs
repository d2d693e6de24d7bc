//! The shim's configuration: which tent profile a container runs under.
//!
//! containerd hands a runtime its options with every Create: for a CRI
//! handler the `[…runtimes.<handler>.options]` table (`ConfigPath`, or
//! containerd 2.x's inline `ConfigBody`), for `ctr run --runtime-config-path`
//! the path; both arrive as `runtimeoptions.v1.Options`. The file is TOML:
//!
//! ```toml
//! mode = "tent"              # or "compat": the spec as runc runs it
//! [allow]                    # what "tent" lets through
//! privileged = false
//! host_namespaces = []       # "pid", "ipc", "network"
//! capabilities = []          # e.g. "CAP_SYS_PTRACE"
//! hooks = false              # OCI hooks: programs run as root on the host
//! ```
//!
//! No options, or an empty file, is the `tent` profile. runc's options (which a
//! handler copied from runc, or containerd's Go client, may pass) are checked
//! field by field in [`crate::runc_options`]; options of any other type are
//! ignored with a warning: they hold no security setting tent knows.

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::CodedInputStream;
use tent_runtime::Profile;

use crate::error::{Error, Result};

/// `runtimeoptions.v1.Options`, the fields tent reads.
#[derive(Debug, Default, PartialEq, Eq)]
struct RuntimeOptions {
    config_path: String,
    config_body: String,
}

const RUNTIME_OPTIONS: &str = "runtimeoptions.v1.Options";

/// Decodes `runtimeoptions.v1.Options` (type_url = 1, config_path = 2,
/// config_body = 3; all strings).
fn decode(bytes: &[u8]) -> Result<RuntimeOptions> {
    let bad = |e: containerd_shim_protos::protobuf::Error| {
        Error::InvalidArgument(format!("create: options: malformed {RUNTIME_OPTIONS}: {e}"))
    };
    let mut out = RuntimeOptions::default();
    let mut input = CodedInputStream::from_bytes(bytes);
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(bad)? {
        match tag {
            // (field << 3) | wire type 2 (length-delimited)
            0x12 => out.config_path = input.read_string().map_err(bad)?,
            0x1a => out.config_body = input.read_string().map_err(bad)?,
            t => {
                let wire = containerd_shim_protos::protobuf::rt::WireType::new(t & 7).ok_or_else(
                    || {
                        Error::InvalidArgument(format!(
                            "create: options: malformed {RUNTIME_OPTIONS}: wire type {}",
                            t & 7
                        ))
                    },
                )?;
                input.skip_field(wire).map_err(bad)?;
            }
        }
    }
    Ok(out)
}

/// Parses the TOML text of a config; `what` names where it came from.
pub fn parse(text: &str, what: &str) -> Result<Profile> {
    let profile: Profile = basic_toml::from_str(text)
        .map_err(|e| Error::InvalidArgument(format!("tent config {what}: {e}")))?;
    profile
        .validate()
        .map_err(|e| Error::InvalidArgument(format!("tent config {what}: {e}")))?;
    crate::budget::validate(&profile.audit)
        .map_err(|e| Error::InvalidArgument(format!("tent config {what}: {e}")))?;
    Ok(profile)
}

/// What a Create's options ask of tent.
#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub profile: Profile,
    /// runc's `IoUid`/`IoGid`: who owns the container's stdio pipes.
    pub io_owner: Option<(u32, u32)>,
}

/// The options of a Create (containerd's `CreateTaskRequest.options`).
/// `own` is the shim's socket address (see [`crate::runc_options::RuncOptions::check`]).
pub fn options(options: Option<&Any>, own: &str) -> Result<Options> {
    if let Some(runc) = options
        .map(crate::runc_options::decode)
        .transpose()?
        .flatten()
    {
        return Ok(Options {
            profile: Profile::default(),
            io_owner: runc.check("create: options", own)?,
        });
    }
    Ok(Options {
        profile: profile(options)?,
        io_owner: None,
    })
}

/// The profile for a Create with `options` (containerd's `CreateTaskRequest.options`).
pub fn profile(options: Option<&Any>) -> Result<Profile> {
    let Some(any) = options.filter(|a| !a.type_url.is_empty() || !a.value.is_empty()) else {
        return Ok(Profile::default());
    };
    let name = crate::runc_options::type_name(&any.type_url);
    if name != RUNTIME_OPTIONS {
        log::warn!(
            "create: ignoring runtime options of type {:?}",
            any.type_url
        );
        return Ok(Profile::default());
    }
    let opts = decode(&any.value)?;
    if !opts.config_path.is_empty() {
        let text = std::fs::read_to_string(&opts.config_path).map_err(|e| {
            Error::InvalidArgument(format!(
                "create: options: ConfigPath {}: {e}",
                opts.config_path
            ))
        })?;
        return parse(&text, &opts.config_path);
    }
    parse(&opts.config_body, "(ConfigBody)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tent_runtime::Mode;

    fn any(path: &str, body: &str) -> Any {
        let mut value = Vec::new();
        for (tag, s) in [(0x0au8, RUNTIME_OPTIONS), (0x12, path), (0x1a, body)] {
            if s.is_empty() {
                continue;
            }
            value.push(tag);
            value.push(s.len() as u8);
            value.extend_from_slice(s.as_bytes());
        }
        Any {
            type_url: RUNTIME_OPTIONS.into(),
            value,
            ..Default::default()
        }
    }

    #[test]
    fn no_options_is_tent() {
        assert_eq!(profile(None).ok(), Some(Profile::default()));
        assert_eq!(
            profile(Some(&Any::default())).ok(),
            Some(Profile::default())
        );
    }

    #[test]
    fn the_summary_is_on_unless_turned_off() {
        let p = |body: &str| profile(Some(&any("", body))).ok().map(|p| p.audit);
        assert_eq!(p("mode = \"tent\"").map(|a| a.summary), Some(true));
        assert_eq!(p("[audit]\nmode = \"warn\"").map(|a| a.summary), Some(true));
        let off = p("[audit]\nsummary = false").unwrap_or_default();
        assert!(!off.summary && !off.is_set(), "{off:?}");
    }

    #[test]
    fn body_and_path() {
        let p = profile(Some(&any("", "mode = \"compat\""))).ok();
        assert_eq!(p.map(|p| p.mode), Some(Mode::Compat));
        let file = std::env::temp_dir().join(format!("tent-config-{}.toml", std::process::id()));
        let _ = std::fs::write(
            &file,
            "mode = \"tent\"\n[allow]\nhost_namespaces = [\"network\"]\ncapabilities = [\"CAP_NET_ADMIN\"]\n",
        );
        let p = profile(Some(&any(&file.to_string_lossy(), ""))).ok();
        let _ = std::fs::remove_file(&file);
        let p = p.unwrap_or_default();
        assert_eq!(p.allow.host_namespaces, ["network"]);
        assert_eq!(p.allow.capabilities, ["CAP_NET_ADMIN"]);
    }

    #[test]
    fn bad_configs_name_what_is_wrong() {
        let e = |body: &str| {
            profile(Some(&any("", body)))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            e("mode = \"strict\"").contains("tent config (ConfigBody): unknown variant `strict`"),
            "{}",
            e("mode = \"strict\"")
        );
        assert!(
            e("mdoe = \"tent\"").contains("unknown field `mdoe`"),
            "{}",
            e("mdoe = \"tent\"")
        );
        assert!(e("[allow]\nhost_namespaces = [\"uts\"]").contains("allow.host_namespaces"));
        let b = e("[audit]\nforbid = [\"shells\"]");
        assert!(b.contains("[audit] forbid: unknown \"shells\""), "{b}");
        assert!(e("[audit]\nmode = \"block\"").contains("unknown variant `block`"));
        assert!(e("[audit]\nmax_suid = 0").contains("unknown field `max_suid`"));
        let s =
            e("[audit]\nsummary = false\nmode = \"deny\"\nforbid = [\"shell\"]\nmax_setuid = 0");
        assert!(
            s.contains("[audit] summary = false: the budget (max_setuid, forbid)"),
            "{s}"
        );
        let s = e("[audit]\nsummary = false\nmax_capabilities = 0");
        assert!(s.contains("(max_capabilities)"), "{s}");
        assert!(e("[audit]\nsummary = \"no\"").contains("summary"));
        let missing = profile(Some(&any("/nonexistent/tent.toml", "")))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            missing.contains("ConfigPath /nonexistent/tent.toml"),
            "{missing}"
        );
    }
}
