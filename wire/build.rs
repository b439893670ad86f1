//! Compiles `proto/` into Rust types with prost-build, parsing the files with protox so that a fresh
//! machine needs no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The .proto files stay at the workspace root (`proto/`), where the schema tests read them.
    let root = PathBuf::from("../proto");
    let files: Vec<PathBuf> = std::fs::read_dir(root.join("hodi/wire"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&root])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
