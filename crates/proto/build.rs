//! Compiles every `.proto` file under the workspace's `proto/` directory with protox (a pure-Rust
//! protobuf compiler, so no `protoc` install is needed) and generates prost messages and tonic
//! clients/servers with tonic-prost-build. The encoded descriptor set is written next to the
//! generated code for gRPC server reflection (tonic-prost-build's `file_descriptor_set_path` is
//! ignored by `compile_fds`, so we write it ourselves).

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not with `env!` at compile time: a build script binary compiled in one
    // checkout is reused by cargo for another checkout sharing the target directory (or for the
    // same checkout after it moved), and a baked-in path would point at the old location.
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest_dir.join("../../proto");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&proto_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    // Sorted so that the generated code does not depend on directory order.
    files.sort();
    println!("cargo:rerun-if-changed={}", proto_dir.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::compile(&files, [&proto_dir])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("cmksim_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Decodes each message from one slice (src/codec.rs says why).
        .codec_path("crate::codec::SliceCodec")
        .compile_fds(fds)?;
    Ok(())
}
