//! `containerd-shim-tent-v1`: containerd's shim v2 for tent (runtime type
//! `io.containerd.tent.v1`).
//!
//! The same binary is also the container init: a sealed copy of it is re-executed
//! for every container, and that check comes first, before any thread exists.

mod address;
mod args;
mod budget;
mod config;
mod console;
mod delete;
mod error;
mod events;
mod io;
mod logger;
mod memory;
mod metrics;
mod oom;
mod process;
mod registry;
mod runtime;
mod server;
mod service;
mod shim;
mod shimlog;
mod start;
mod summary;
mod task;

#[cfg(test)]
mod fake;

use std::io::Write;

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

/// `-info`: a `RuntimeInfo` protobuf on stdout (asked for by newer containerd).
fn info() -> error::Result<()> {
    let info = RuntimeInfo {
        name: NAME.to_string(),
        version: MessageField::some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let bytes = info
        .write_to_bytes()
        .map_err(|e| error::Error::Internal(format!("encode RuntimeInfo: {e}")))?;
    std::io::stdout()
        .write_all(&bytes)
        .map_err(|e| error::Error::io("write RuntimeInfo", e))
}

fn fail(message: &str) -> ! {
    eprintln!("{NAME}: {message}");
    std::process::exit(1)
}
