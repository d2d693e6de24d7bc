//! runc's runtime options, as containerd passes them to any shim whose handler
//! was copied from runc's (and as containerd's Go client and test-suite send them):
//! `containerd.runc.v1.Options`, and containerd 1.x's legacy
//! `containerd.linux.runc.CreateOptions` / `containerd.linux.runc.RuncOptions`.
//!
//! Per field, tent honours (`ShimCgroup` at `start`, `IoUid`/`IoGid` at Create),
//! ignores with a logged reason what only matters to a runc binary (its path, its
//! state root, criu paths), accepts what tent already does (`NoNewKeyring`: tent never
//! creates a session keyring; `SystemdCgroup`: the systemd form of `cgroupsPath` is
//! read from the path itself), and refuses what it cannot apply.

use containerd_shim_protos::protobuf::well_known_types::any::Any;

use crate::error::{Error, Result};
use crate::pb;

/// `containerd.runc.v1.Options` (containerd 1.6 … 2.x).
const OPTIONS: &str = "containerd.runc.v1.Options";
/// containerd 1.x's options for the v1 `io.containerd.runtime.v1.linux` runtime.
const LEGACY_CREATE: &str = "containerd.linux.runc.CreateOptions";
const LEGACY_RUNC: &str = "containerd.linux.runc.RuncOptions";

/// The union of the three messages' fields.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RuncOptions {
    pub no_pivot_root: bool,
    pub no_new_keyring: bool,
    pub shim_cgroup: String,
    pub io_uid: u32,
    pub io_gid: u32,
    pub binary_name: String,
    pub root: String,
    pub criu_path: String,
    pub systemd_cgroup: bool,
    pub criu_image_path: String,
    pub criu_work_path: String,
    pub task_api_address: String,
    pub task_api_version: u32,
    /// CreateOptions' checkpoint/restore settings (open_tcp … cgroups_mode).
    pub checkpoint_settings: bool,
}

/// The message name of a type URL, with or without the `types.containerd.io/` host
/// (containerd 2.3 sends bare names inside BootstrapParams).
pub fn type_name(type_url: &str) -> &str {
    type_url.rsplit('/').next().unwrap_or_default()
}

/// Decodes `any` if it holds one of runc's option messages.
pub fn decode(any: &Any) -> Result<Option<RuncOptions>> {
    let name = type_name(&any.type_url);
    let mut o = RuncOptions::default();
    let fields = match name {
        OPTIONS | LEGACY_CREATE | LEGACY_RUNC => pb::fields(&any.value, name)?,
        _ => return Ok(None),
    };
    for (field, v) in fields {
        let s = |v: pb::Value, f: &str| v.string(name, f);
        let b = |v: pb::Value, f: &str| v.varint(name, f).map(|n| n != 0);
        let u = |v: pb::Value, f: &str| v.varint(name, f).map(|n| n as u32);
        // Field numbers from containerd's api/types/runc/options/oci.proto and
        // (1.x) runtime/linux/runctypes/runc.proto.
        match (name, field) {
            (OPTIONS, 1) | (LEGACY_CREATE, 1) => o.no_pivot_root = b(v, "no_pivot_root")?,
            (OPTIONS, 2) | (LEGACY_CREATE, 8) => o.no_new_keyring = b(v, "no_new_keyring")?,
            (OPTIONS, 3) | (LEGACY_CREATE, 9) => o.shim_cgroup = s(v, "shim_cgroup")?,
            (OPTIONS, 4) | (LEGACY_CREATE, 10) => o.io_uid = u(v, "io_uid")?,
            (OPTIONS, 5) | (LEGACY_CREATE, 11) => o.io_gid = u(v, "io_gid")?,
            (OPTIONS, 6) | (LEGACY_RUNC, 1) => o.binary_name = s(v, "binary_name")?,
            (OPTIONS, 7) | (LEGACY_RUNC, 2) => o.root = s(v, "root")?,
            (OPTIONS, 8) | (LEGACY_RUNC, 3) => o.criu_path = s(v, "criu_path")?,
            (OPTIONS, 9) | (LEGACY_RUNC, 4) => o.systemd_cgroup = b(v, "systemd_cgroup")?,
            (OPTIONS, 10) | (LEGACY_CREATE, 13) => o.criu_image_path = s(v, "criu_image_path")?,
            (OPTIONS, 11) | (LEGACY_CREATE, 12) => o.criu_work_path = s(v, "criu_work_path")?,
            (OPTIONS, 12) => o.task_api_address = s(v, "task_api_address")?,
            (OPTIONS, 13) => o.task_api_version = u(v, "task_api_version")?,
            (LEGACY_CREATE, 2..=7) => o.checkpoint_settings = true,
            _ => {}
        }
    }
    Ok(Some(o))
}

impl RuncOptions {
    /// Checks the options for a Create (`what` names the request in errors and logs):
    /// refuses what tent cannot apply, logs what it ignores. Returns the stdio owner.
    /// `own` is this shim's socket address: containerd 2.x names it as TaskApiAddress
    /// (`ttrpc+unix://…`) for the containers of a pod whose sandbox this shim is.
    pub fn check(&self, what: &str, own: &str) -> Result<Option<(u32, u32)>> {
        let ours = !own.is_empty()
            && self.task_api_address.strip_prefix("ttrpc+") == Some(own)
            && matches!(self.task_api_version, 0 | 3);
        if !self.task_api_address.is_empty() && !ours {
            return Err(Error::Unimplemented(format!(
                "{what}: runc option TaskApiAddress {:?}: tent serves the task API only on its own socket",
                self.task_api_address
            )));
        }
        if self.task_api_version != 0 && self.task_api_version != 2 && self.task_api_version != 3 {
            return Err(Error::InvalidArgument(format!(
                "{what}: runc option TaskApiVersion {}: only 2 and 3 exist",
                self.task_api_version
            )));
        }
        let ignored: [(bool, &str, &str); 6] = [
            (
                self.no_pivot_root,
                "NoPivotRoot",
                "tent always uses pivot_root (a container cannot climb out of its root)",
            ),
            (
                !self.binary_name.is_empty(),
                "BinaryName",
                "tent runs no runc binary",
            ),
            (
                !self.root.is_empty(),
                "Root",
                "tent keeps its own state, not runc's",
            ),
            (
                !self.criu_path.is_empty()
                    || !self.criu_image_path.is_empty()
                    || !self.criu_work_path.is_empty(),
                "CriuPath/CriuImagePath/CriuWorkPath",
                "tent does not checkpoint (checkpoint requests are refused)",
            ),
            (
                self.checkpoint_settings,
                "checkpoint settings",
                "tent does not checkpoint (checkpoint requests are refused)",
            ),
            (
                !self.shim_cgroup.is_empty(),
                "ShimCgroup",
                "applied when the shim started, not per container",
            ),
        ];
        for (set, name, why) in ignored {
            if set {
                log::info!("{what}: runc option {name} ignored: {why}");
            }
        }
        if self.systemd_cgroup {
            log::debug!("{what}: SystemdCgroup: tent reads the systemd form from cgroupsPath");
        }
        let owner = (self.io_uid != 0 || self.io_gid != 0).then_some((self.io_uid, self.io_gid));
        Ok(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::CodedOutputStream;

    /// Encodes `containerd.runc.v1.Options` field by field, by the proto's numbers.
    fn options(type_url: &str, write: impl FnOnce(&mut CodedOutputStream<'_>)) -> Any {
        let value = pb::encode("test options", |out| {
            write(out);
            Ok(())
        })
        .expect("encode");
        Any {
            type_url: type_url.to_string(),
            value,
            ..Default::default()
        }
    }

    #[test]
    fn decodes_every_runc_v1_field_by_number() {
        let any = options("types.containerd.io/containerd.runc.v1.Options", |o| {
            o.write_bool(1, true).expect("1");
            o.write_bool(2, true).expect("2");
            o.write_string(3, "/shims/tent").expect("3");
            o.write_uint32(4, 1000).expect("4");
            o.write_uint32(5, 1001).expect("5");
            o.write_string(6, "/usr/bin/runc").expect("6");
            o.write_string(7, "/run/runc").expect("7");
            o.write_bool(9, true).expect("9");
            o.write_string(10, "/img").expect("10");
            o.write_string(11, "/work").expect("11");
            o.write_uint32(13, 3).expect("13");
            // An unknown later field is skipped, as protobuf requires.
            o.write_string(99, "future").expect("99");
        });
        let o = decode(&any).expect("decode").expect("runc options");
        assert_eq!(
            o,
            RuncOptions {
                no_pivot_root: true,
                no_new_keyring: true,
                shim_cgroup: "/shims/tent".into(),
                io_uid: 1000,
                io_gid: 1001,
                binary_name: "/usr/bin/runc".into(),
                root: "/run/runc".into(),
                systemd_cgroup: true,
                criu_image_path: "/img".into(),
                criu_work_path: "/work".into(),
                task_api_version: 3,
                ..Default::default()
            }
        );
        assert_eq!(
            o.check("create c1", "").expect("acceptable"),
            Some((1000, 1001))
        );
    }

    #[test]
    fn decodes_the_legacy_create_options_numbers() {
        // Bare type URL, as containerd 2.3 puts options into BootstrapParams.
        let any = options(LEGACY_CREATE, |o| {
            o.write_bool(1, true).expect("1");
            o.write_bool(8, true).expect("8");
            o.write_string(9, "/shim").expect("9");
            o.write_uint32(10, 7).expect("10");
            o.write_uint32(11, 8).expect("11");
        });
        let o = decode(&any).expect("decode").expect("runc options");
        assert_eq!(
            (
                o.no_pivot_root,
                o.no_new_keyring,
                o.shim_cgroup.as_str(),
                o.io_uid,
                o.io_gid
            ),
            (true, true, "/shim", 7, 8)
        );
    }

    #[test]
    fn other_types_are_not_runc_and_bad_bytes_name_the_message() {
        let other = options("runtimeoptions.v1.Options", |o| {
            o.write_string(2, "/x.toml").expect("2");
        });
        assert_eq!(decode(&other).expect("not runc"), None);
        let bad = Any {
            type_url: OPTIONS.into(),
            value: vec![0x1a, 0x05, b'a'],
            ..Default::default()
        };
        let err = decode(&bad).expect_err("truncated");
        assert!(err.to_string().contains(OPTIONS), "{err}");
        let wrong_type = options(OPTIONS, |o| o.write_uint32(3, 1).expect("3"));
        let err = decode(&wrong_type).expect_err("shim_cgroup as a number");
        assert!(err.to_string().contains("shim_cgroup"), "{err}");
    }

    #[test]
    fn task_api_address_is_refused() {
        let any = options(OPTIONS, |o| {
            o.write_string(12, "ttrpc+unix:///elsewhere").expect("12")
        });
        let o = decode(&any).expect("decode").expect("runc options");
        let err = o.check("create c1", "unix:///run/x").expect_err("refused");
        assert!(err.to_string().contains("TaskApiAddress"), "{err}");
        assert_eq!(
            RuncOptions::default()
                .check("create c1", "")
                .expect("empty"),
            None
        );
        // A pauseless pod's container names the sandbox's shim: this one.
        let own = options(OPTIONS, |o| {
            o.write_string(12, "ttrpc+unix:///elsewhere").expect("12");
            o.write_uint32(13, 3).expect("13")
        });
        let o = decode(&own).expect("decode").expect("runc options");
        assert_eq!(
            o.check("create c1", "unix:///elsewhere").expect("own"),
            None
        );
    }
}
