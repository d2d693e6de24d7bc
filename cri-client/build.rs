//! Generates the CRI v1 client (`runtime.v1`, client side only) from the vendored
//! `proto/cri-api-v1.proto` with protoc (Debian `protobuf-compiler`, installed by
//! hack/install-deps.sh).
fn main() {
    println!("cargo:rerun-if-changed=proto/cri-api-v1.proto");
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .compile_protos(&["proto/cri-api-v1.proto"], &["proto"])
        .unwrap_or_else(|e| {
            panic!(
                "compiling proto/cri-api-v1.proto (is protoc installed? hack/install-deps.sh): {e}"
            )
        });
}
