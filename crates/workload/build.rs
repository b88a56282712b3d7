//! Generates the Workload API messages and server stubs from the spec's `proto/workload.proto`
//! (see proto/README.md), with the `protoc` that the protoc-bin-vendored crate ships, so no
//! system protobuf compiler is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    // prost-build finds the compiler through PROTOC (the build script is single-threaded).
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/workload.proto");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(
            &[std::path::PathBuf::from("proto/workload.proto")],
            &[std::path::PathBuf::from("proto"), include],
        )?;
    Ok(())
}
