//! The build script reads the checkout it builds at run time (issue 17, defect 8): it took
//! `CARGO_MANIFEST_DIR` with `env!` when it was compiled, so a build-script binary that cargo
//! reused for another checkout sharing the target directory (or for a moved checkout) read the
//! old checkout's `proto/` — and failed with a bare "No such file or directory" once that was
//! gone.
//!
//! The test runs the build-script binary cargo compiled for this crate (the newest one under
//! `target/debug/build/cmksim-proto-*/`) as cargo runs it, but for another checkout: a temporary
//! directory whose `proto/` holds one file of its own. The generated code and descriptor must
//! come from that checkout. With the path baked in, the binary compiled this checkout's protos
//! instead, and no `moved.v1` module appeared.

use std::path::{Path, PathBuf};

/// The newest `build-script-build` of this crate in the target directory that holds this test.
fn build_script() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> → target/<profile>/build
    let build = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("build"))
        .expect("the test runs from target/<profile>/deps");
    let mut scripts: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&build)
        .unwrap_or_else(|e| panic!("{}: {e}", build.display()))
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("cmksim-proto-")
        })
        .map(|entry| entry.path().join("build-script-build"))
        .filter_map(|path| {
            let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
            Some((modified, path))
        })
        .collect();
    scripts.sort();
    scripts
        .pop()
        .map(|(_, path)| path)
        .unwrap_or_else(|| panic!("no cmksim-proto build script under {}", build.display()))
}

#[test]
fn the_build_script_compiles_the_checkout_it_is_run_for() {
    // No tempfile in this crate's dependencies: a directory named after the process, removed
    // before and after.
    let checkout = std::env::temp_dir().join(format!("cmksim-proto-moved-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&checkout);
    let manifest_dir = checkout.join("crates").join("proto");
    let proto_dir = checkout.join("proto");
    let out_dir = checkout.join("out");
    for dir in [&manifest_dir, &proto_dir, &out_dir] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(
        proto_dir.join("moved.proto"),
        "syntax = \"proto3\";\npackage moved.v1;\nmessage Moved { string here = 1; }\n",
    )
    .unwrap();

    let script = build_script();
    let output = std::process::Command::new(&script)
        .env("CARGO_MANIFEST_DIR", &manifest_dir)
        .env("OUT_DIR", &out_dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed for the other checkout: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let generated = std::fs::read_to_string(out_dir.join("moved.v1.rs"))
        .expect("the other checkout's package was generated");
    assert!(generated.contains("pub struct Moved"), "{generated}");
    assert!(
        !out_dir.join("storage.v1.rs").exists(),
        "this checkout's protos were compiled instead of the other checkout's"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&manifest_dir.display().to_string()),
        "rerun-if-changed names the other checkout: {stdout}"
    );
    std::fs::remove_dir_all(&checkout).unwrap();
}
