//! What containerd writes on `start`'s stdin, and the reply it expects.
//!
//! containerd 2.3+ writes a `containerd.runtime.bootstrap.v1.BootstrapParams` and
//! reads a protobuf `BootstrapResult` back; 1.6 … 2.2 write the runtime options
//! `Any` (maybe nothing) and read a plain address. The two inputs decode as each
//! other without error, so, as containerd's own shims do, BootstrapParams is only
//! believed when its `instance_id` and `namespace` equal the `-id`/`-namespace` flags.

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;

use crate::error::{Error, Result};
use crate::pb;

const PARAMS: &str = "BootstrapParams";

/// `containerd.runtime.bootstrap.v1.BootstrapParams`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Params {
    pub instance_id: String,
    pub namespace: String,
    /// containerd's open `LogLevel` enum: INFO = 0, more verbose negative.
    pub log_level: i32,
    pub containerd_version: String,
    pub ttrpc_address: String,
    pub grpc_address: String,
    pub containerd_binary: String,
    /// Each `Extension.value` (runtime options among them, with a bare type URL).
    pub extensions: Vec<Any>,
    pub socket_dir: Option<String>,
}

/// What `start` was given.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// containerd 2.3+.
    Bootstrap(Params),
    /// containerd 1.6 … 2.2: the runtime options, if any.
    Legacy(Option<Any>),
}

impl Input {
    /// Reads `stdin` as containerd wrote it for the shim `id` in `namespace`.
    pub fn parse(stdin: &[u8], id: &str, namespace: &str) -> Result<Input> {
        if stdin.is_empty() {
            return Ok(Input::Legacy(None));
        }
        if let Ok(params) = decode_params(stdin) {
            if params.instance_id == id && params.namespace == namespace {
                return Ok(Input::Bootstrap(params));
            }
        }
        let any = Any::parse_from_bytes(stdin).map_err(|e| {
            Error::InvalidArgument(format!(
                "start: stdin is neither a {PARAMS} for -id {id:?} -namespace {namespace:?} \
                 nor runtime options (an Any): {e}"
            ))
        })?;
        let empty = any.type_url.is_empty() && any.value.is_empty();
        Ok(Input::Legacy((!empty).then_some(any)))
    }

    /// The runtime options containerd passed, whichever way it passed them.
    pub fn options(&self) -> Vec<&Any> {
        match self {
            Input::Bootstrap(p) => p.extensions.iter().collect(),
            Input::Legacy(any) => any.iter().collect(),
        }
    }
}

/// Decodes a `BootstrapParams` (field numbers from containerd's
/// `api/runtime/bootstrap/v1/bootstrap.proto`).
pub fn decode_params(bytes: &[u8]) -> Result<Params> {
    let mut p = Params::default();
    for (field, value) in pb::fields(bytes, PARAMS)? {
        match field {
            1 => p.instance_id = value.string(PARAMS, "instance_id")?,
            2 => p.namespace = value.string(PARAMS, "namespace")?,
            // An enum is an int32 on the wire: negative values are sign-extended.
            3 => p.log_level = value.varint(PARAMS, "log_level")? as i64 as i32,
            4 => p.containerd_version = value.string(PARAMS, "containerd_version")?,
            5 => p.ttrpc_address = value.string(PARAMS, "containerd_ttrpc_address")?,
            6 => p.grpc_address = value.string(PARAMS, "containerd_grpc_address")?,
            7 => p.containerd_binary = value.string(PARAMS, "containerd_binary")?,
            8 => {
                let ext = value.bytes(PARAMS, "extensions")?;
                p.extensions.push(extension(&ext)?);
            }
            9 => p.socket_dir = Some(value.string(PARAMS, "socket_dir")?),
            _ => {}
        }
    }
    Ok(p)
}

/// `Extension { google.protobuf.Any value = 1; }`.
fn extension(bytes: &[u8]) -> Result<Any> {
    let mut any = Any::default();
    for (field, value) in pb::fields(bytes, "BootstrapParams.extensions")? {
        if field == 1 {
            let raw = value.bytes(PARAMS, "extensions.value")?;
            any = Any::parse_from_bytes(&raw).map_err(|e| {
                Error::InvalidArgument(format!("malformed {PARAMS}: extensions.value: {e}"))
            })?;
        }
    }
    Ok(any)
}

/// The `log` level containerd's `LogLevel` asks for: the nearest known level
/// (the enum is open), fatal and panic as error.
pub fn log_level(level: i32) -> log::LevelFilter {
    use log::LevelFilter::*;
    const KNOWN: [(i32, log::LevelFilter); 7] = [
        (-8, Trace),
        (-4, Debug),
        (0, Info),
        (4, Warn),
        (8, Error),
        (10, Error),
        (12, Error),
    ];
    KNOWN
        .iter()
        .min_by_key(|(v, _)| (i64::from(*v) - i64::from(level)).abs())
        .map(|(_, l)| *l)
        .unwrap_or(Info)
}

/// `BootstrapResult{version: 3, address, protocol: "ttrpc"}`: task API v3 over ttrpc.
pub fn encode_result(address: &str) -> Result<Vec<u8>> {
    pb::encode("BootstrapResult", |out| {
        out.write_int32(1, 3)?;
        out.write_string(2, address)?;
        out.write_string(3, "ttrpc")
    })
}

/// A `BootstrapResult`'s (version, address, protocol); for tests and for checking
/// what containerd's own shims answer.
#[cfg(test)]
pub fn decode_result(bytes: &[u8]) -> Result<(i64, String, String)> {
    const WHAT: &str = "BootstrapResult";
    let (mut version, mut address, mut protocol) = (0, String::new(), String::new());
    for (field, value) in pb::fields(bytes, WHAT)? {
        match field {
            1 => version = value.varint(WHAT, "version")? as i64,
            2 => address = value.string(WHAT, "address")?,
            3 => protocol = value.string(WHAT, "protocol")?,
            _ => {}
        }
    }
    Ok((version, address, protocol))
}

#[cfg(test)]
mod tests;
