//! `containerd-shim-tent-v1`: containerd's shim v2 for tent (runtime type
//! `io.containerd.tent.v1`).
//!
//! The same binary is also the container init: a sealed copy of it is re-executed
//! for every container, and that check comes first, before any thread exists.

// Panic policy (docs/ARCHITECTURE.md): no explicit panic in shipped code (the shim's
// own code: no indexing either); any other panic is isolated to its request
// (shim/src/isolate.rs).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod address;
mod args;
mod bootstrap;
mod budget;
mod config;
mod console;
mod delete;
mod error;
mod events;
mod io;
mod isolate;
mod logger;
mod memory;
mod metrics;
mod oom;
mod pb;
mod pod_config;
mod pod_files;
mod process;
mod registry;
mod runc_options;
mod runtime;
mod sandbox;
mod server;
mod service;
mod shim;
mod shimlog;
mod start;
mod summary;
mod task;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod fuzzing;

use std::io::Write;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};

const NAME: &str = "containerd-shim-tent-v1";

fn main() {
    if tent_runtime::is_init_invocation() {
        tent_runtime::init_main();
    }
    let flags = match args::parse(std::env::args_os().skip(1)) {
        Ok(flags) => flags,
        Err(e) => fail(&e),
    };
    if flags.version {
        println!("{NAME}:\n  Version: {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    let result = if flags.info {
        info()
    } else {
        match flags.action.as_str() {
            "start" => start::start(&flags),
            "delete" => delete::delete(&flags),
            "" => server::serve(flags),
            other => Err(error::Error::InvalidArgument(format!(
                "unknown action {other:?}"
            ))),
        }
    };
    if let Err(e) = result {
        fail(&e.to_string());
    }
}

/// `-info`: a `RuntimeInfo` protobuf on stdout (asked for by newer containerd), with
/// the OCI features document tent's runtime builds for this host.
fn info() -> error::Result<()> {
    let bytes = runtime_info()?
        .write_to_bytes()
        .map_err(|e| error::Error::Internal(format!("encode RuntimeInfo: {e}")))?;
    std::io::stdout()
        .write_all(&bytes)
        .map_err(|e| error::Error::io("write RuntimeInfo", e))
}

fn runtime_info() -> error::Result<RuntimeInfo> {
    let features = Any {
        type_url: tent_runtime::FEATURES_TYPE_URL.to_string(),
        value: tent_runtime::features_json()?,
        ..Default::default()
    };
    Ok(RuntimeInfo {
        name: NAME.to_string(),
        version: MessageField::some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        }),
        features: MessageField::some(features),
        ..Default::default()
    })
}

fn fail(message: &str) -> ! {
    eprintln!("{NAME}: {message}");
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_keys(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        if let Some(map) = v.as_object() {
            for (k, v) in map {
                let key = format!("{prefix}/{k}");
                json_keys(v, &key, out);
                out.push(key);
            }
        }
    }

    #[test]
    fn info_reply_has_the_shape_of_runc_shims() {
        let runc = RuntimeInfo::parse_from_bytes(include_bytes!(
            "../tests/fixtures/containerd-2.3.4/runc-shim-info-reply.bin"
        ))
        .expect("runc shim's -info reply");
        let ours = RuntimeInfo::parse_from_bytes(
            &runtime_info()
                .and_then(|i| {
                    i.write_to_bytes()
                        .map_err(|e| error::Error::Internal(e.to_string()))
                })
                .expect("our reply"),
        )
        .expect("decodes");
        assert_eq!(ours.name, NAME);
        assert_eq!(ours.version.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(ours.features.type_url, runc.features.type_url);
        let doc = |any: &Any| -> serde_json::Value {
            serde_json::from_slice(&any.value).expect("features JSON")
        };
        let (theirs, mine) = (doc(&runc.features), doc(&ours.features));
        let (mut their_keys, mut my_keys) = (Vec::new(), Vec::new());
        json_keys(&theirs, "", &mut their_keys);
        json_keys(&mine, "", &mut my_keys);
        // Every field we report, runc's shim reports too (containerd reads those);
        // rdma is the OCI schema's and containerd ignores what it does not know.
        for key in &my_keys {
            assert!(
                their_keys.contains(key) || key == "/linux/cgroup/rdma",
                "{key} is not in runc's document"
            );
        }
        assert!(my_keys.contains(&"/linux/seccomp/actions".to_string()));
    }
}
