//! The entry point `fuzz/` drives for the bytes containerd hands the shim outside ttrpc:
//! `start`'s stdin (BootstrapParams or a runtime-options `Any`) and the runc options inside.
//! Included by the fuzz target by path (the shim is a binary, not a library) and replayed
//! over the corpus and crashers by the test below, so it must never panic.

use containerd_shim_protos::protobuf::well_known_types::any::Any;

use crate::{bootstrap, runc_options};

/// The type URLs an option `Any` is tried as: the first input byte picks one.
const TYPE_URLS: [&str; 4] = [
    "containerd.runc.v1.Options",
    "types.containerd.io/containerd.linux.runc.CreateOptions",
    "containerd.linux.runc.RuncOptions",
    "io.containerd.tent.v1.Unknown",
];

/// `data` as `start`'s stdin (for the flags `-id c -namespace k8s.io`), every option it
/// carries decoded and checked, and the rest of `data` as a bare runc options message.
pub fn options(data: &[u8]) {
    if let Ok(input) = bootstrap::Input::parse(data, "c", "k8s.io") {
        for any in input.options() {
            check(any);
        }
        if let bootstrap::Input::Bootstrap(p) = &input {
            let _ = bootstrap::log_level(p.log_level);
        }
    }
    if let Some((&pick, rest)) = data.split_first() {
        let any = Any {
            type_url: TYPE_URLS[usize::from(pick) % TYPE_URLS.len()].to_string(),
            value: rest.to_vec(),
            ..Default::default()
        };
        check(&any);
    }
}

fn check(any: &Any) {
    if let Ok(Some(o)) = runc_options::decode(any) {
        // A fixed own address: both the accepted and the refused TaskApiAddress are reached.
        let _ = o.check("fuzz", "unix:///run/containerd/s/fuzz");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The corpus and kept crashers (`fuzz/{corpus,regressions}/shim_options`) replay.
    #[test]
    fn shim_options_inputs_replay() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut n = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(it) = std::fs::read_dir(root.join(dir).join("shim_options")) else {
                continue;
            };
            for e in it.flatten() {
                let data = std::fs::read(e.path())
                    .unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
                super::options(&data);
                n += 1;
            }
        }
        assert!(n > 0, "no shim_options corpus");
    }
}
