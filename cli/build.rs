//! Generates the CRI v1 client (`runtime.v1`, client side only) from the integration crate's
//! vendored `proto/cri-api-v1.proto` (one copy of the proto in the repository).
fn main() {
    println!("cargo:rerun-if-changed=../integration/proto/cri-api-v1.proto");
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .compile_protos(
            &["../integration/proto/cri-api-v1.proto"],
            &["../integration/proto"],
        )
        .unwrap_or_else(|e| panic!("compiling cri-api-v1.proto (is protoc installed?): {e}"));
}
