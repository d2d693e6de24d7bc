//! The decoder and encoder against bytes containerd 2.3.4 and its runc shim really
//! wrote (tests/fixtures/containerd-2.3.4).

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/containerd-2.3.4/",
            $name
        ))
    };
}

#[test]
fn decodes_containerd_2_3_params_exactly() {
    let input =
        Input::parse(fixture!("start-stdin-plain.bin"), "probe-plain", "default").expect("parse");
    let Input::Bootstrap(p) = input else {
        panic!("not recognised as BootstrapParams: {input:?}");
    };
    assert_eq!(
        p,
        Params {
            instance_id: "probe-plain".into(),
            namespace: "default".into(),
            log_level: 0,
            containerd_version: "v2.3.4".into(),
            ttrpc_address: "/run/containerd/containerd.sock.ttrpc".into(),
            grpc_address: "/run/containerd/containerd.sock".into(),
            containerd_binary: "/usr/bin/containerd".into(),
            extensions: vec![],
            socket_dir: Some("/run/containerd/s".into()),
        }
    );
    assert_eq!(log_level(p.log_level), log::LevelFilter::Info);
}

#[test]
fn finds_the_runtime_options_inside_the_params() {
    let input = Input::parse(
        fixture!("start-stdin-with-options.bin"),
        "probe-options",
        "default",
    )
    .expect("parse");
    let options = input.options();
    assert_eq!(options.len(), 1, "{input:?}");
    assert_eq!(options[0].type_url, "runtimeoptions.v1.Options");
    // config_path (field 2) of runtimeoptions.v1.Options.
    let path = "/run/containerd/tent-options.toml";
    let mut expected = vec![0x12, path.len() as u8];
    expected.extend_from_slice(path.as_bytes());
    assert_eq!(options[0].value, expected);
    let profile = crate::config::profile(Some(options[0]));
    // The file is not on this machine: the error proves the path was found.
    let err = profile.expect_err("no such file here");
    assert!(err.to_string().contains(path), "{err}");
}

#[test]
fn params_for_another_id_or_namespace_are_legacy_options() {
    // A BootstrapParams also decodes as an Any: only the identity tells them apart.
    let bytes = fixture!("start-stdin-plain.bin");
    for (id, ns) in [("other", "default"), ("probe-plain", "k8s.io")] {
        let input = Input::parse(bytes, id, ns).expect("parse");
        assert!(
            matches!(input, Input::Legacy(Some(_))),
            "{id}/{ns}: {input:?}"
        );
    }
}

#[test]
fn legacy_options_and_empty_stdin() {
    assert_eq!(
        Input::parse(b"", "c1", "default").expect("empty"),
        Input::Legacy(None)
    );
    let any = Any {
        type_url: "containerd.runc.v1.Options".into(),
        value: vec![0x1a, 0x03, b'/', b's', b'c'],
        ..Default::default()
    };
    let bytes = any.write_to_bytes().expect("encode");
    let input = Input::parse(&bytes, "c1", "default").expect("legacy");
    assert_eq!(input, Input::Legacy(Some(any.clone())));
    assert_eq!(input.options(), vec![&any]);
    let err = Input::parse(&[0x0a, 0x7f, 0x01], "c1", "default").expect_err("garbage");
    assert!(err.to_string().contains("-id \"c1\""), "{err}");
}

#[test]
fn our_reply_is_byte_for_byte_what_runc_shim_answers() {
    let runc = fixture!("runc-shim-start-reply.bin");
    let (version, address, protocol) = decode_result(runc).expect("runc's reply");
    assert_eq!((version, protocol.as_str()), (3, "ttrpc"));
    // The same message for the same address, field for field and byte for byte.
    assert_eq!(encode_result(&address).expect("encode"), runc.to_vec());
    // And our address has runc's shape: the socket directory, then a SHA-256 in hex.
    // (runc's shim ran for a container id the capture does not record, so the
    // hash itself cannot be recomputed.)
    let ours = crate::address::socket_address(
        "/run/containerd/s",
        "/run/containerd/containerd.sock",
        "default",
        "probe-plain",
    );
    let shape = |a: &str| {
        let (dir, hash) = a.rsplit_once('/').unwrap_or_default();
        let hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        (dir.to_string(), hex)
    };
    assert_eq!(shape(&ours), shape(&address));
    assert_eq!(shape(&ours), ("unix:///run/containerd/s".to_string(), true));
}

#[test]
fn log_levels_map_to_the_nearest_known_one() {
    use log::LevelFilter::*;
    for (level, want) in [
        (-8, Trace),
        (-9, Trace),
        (-4, Debug),
        (-3, Debug),
        (0, Info),
        (1, Info),
        (4, Warn),
        (8, Error),
        (12, Error),
    ] {
        assert_eq!(log_level(level), want, "{level}");
    }
    // A negative enum value is a sign-extended varint on the wire.
    let mut bytes = vec![0x0a, 0x01, b'x', 0x12, 0x01, b'n', 0x18];
    bytes.extend_from_slice(&[0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert_eq!(decode_params(&bytes).expect("decode").log_level, -4);
}
