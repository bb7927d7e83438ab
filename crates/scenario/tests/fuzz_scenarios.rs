//! Seeded fuzzing of the scenario parser and validator (`validate_str`, what `cmksim validate`
//! calls through `validate_file`).
//!
//! Feeds: every file of `scenarios/*.toml`, mutated one to four times (byte flips, deletions,
//! insertions of the TOML-significant characters `[]="\n#.`, duplicated lines, truncations), and
//! random printable ASCII. Asserts: no panic; every diagnostic either has a position (line and
//! column both 1-based) and displays as `FILE:LINE:COLUMN: message`, or concerns the whole file
//! (line and column both 0) and displays as `FILE: message`; the line is within the input; and
//! no diagnostic is longer than [`DIAGNOSTIC_BYTES_MAX`] (echoed input stays cut).
//!
//! The seed is fixed, so a failure reproduces. The default iteration count keeps the test at
//! about two seconds in the debug profile; a long run:
//! `CMKSIM_FUZZ_ITERATIONS=200000 cargo test -p cmksim-scenario --test fuzz_scenarios`.
//!
//! Why not cargo-fuzz: it needs a nightly toolchain, and this project builds and tests on stable
//! only. This is the stable substitute: deterministic, bounded, and part of `cargo test`.

use std::path::{Path, PathBuf};

use cmksim_scenario::validate_str;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The fixed seed of every run.
const SEED: u64 = 0x5CE7_A210;
/// Inputs per run unless `CMKSIM_FUZZ_ITERATIONS` says otherwise.
const ITERATIONS_DEFAULT: u64 = 15_000;
/// The longest one diagnostic may display as (input echoed into it included).
const DIAGNOSTIC_BYTES_MAX: usize = 4 * 1024;
/// Characters that change how TOML reads a line.
const TOML_SIGNIFICANT: &[u8] = b"[]=\"\n#.";

fn iterations() -> u64 {
    std::env::var("CMKSIM_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ITERATIONS_DEFAULT)
}

fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("the scenarios directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a scenario file");
            (p, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenarios in {}", dir.display());
    files
}

fn mutate(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>) {
    let at = |rng: &mut ChaCha8Rng, len: usize| rng.gen_range(0..=len);
    match rng.gen_range(0..6) {
        0 if !bytes.is_empty() => {
            let i = rng.gen_range(0..bytes.len());
            bytes[i] ^= 1 << rng.gen_range(0..8);
        }
        1 if !bytes.is_empty() => {
            let from = rng.gen_range(0..bytes.len());
            let to = (from + rng.gen_range(1..64)).min(bytes.len());
            bytes.drain(from..to);
        }
        2 => {
            let i = at(rng, bytes.len());
            let c = TOML_SIGNIFICANT[rng.gen_range(0..TOML_SIGNIFICANT.len())];
            bytes.insert(i, c);
        }
        3 => {
            let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
            let line = lines[rng.gen_range(0..lines.len())].to_vec();
            let i = at(rng, bytes.len());
            let mut inserted = line;
            inserted.push(b'\n');
            bytes.splice(i..i, inserted);
        }
        4 => {
            let i = at(rng, bytes.len());
            bytes.truncate(i);
        }
        _ => {
            let i = at(rng, bytes.len());
            let junk: Vec<u8> = (0..rng.gen_range(1..16))
                .map(|_| rng.gen_range(0x20u8..0x7f))
                .collect();
            bytes.splice(i..i, junk);
        }
    }
}

fn check(path: &Path, text: &str) {
    let Err(diagnostics) = validate_str(path, text) else {
        return;
    };
    let lines = text.split('\n').count();
    for d in &diagnostics {
        let shown = d.to_string();
        assert!(
            shown.len() <= DIAGNOSTIC_BYTES_MAX,
            "a diagnostic of {} bytes for input {text:?}",
            shown.len()
        );
        if d.line == 0 {
            assert_eq!(d.column, 0, "{shown}");
            assert!(
                shown.starts_with(&format!("{}: ", path.display())),
                "{shown}"
            );
        } else {
            assert!(d.column >= 1, "{shown}");
            assert!(d.line <= lines, "line {} of {lines}: {shown}", d.line);
            let prefix = format!("{}:{}:{}: ", path.display(), d.line, d.column);
            assert!(shown.starts_with(&prefix), "{shown}");
        }
    }
}

#[test]
fn mutated_scenarios_and_random_text_never_panic_and_errors_have_positions() {
    let files = corpus();
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    for _ in 0..iterations() {
        if rng.gen_ratio(1, 10) {
            let text: String = (0..rng.gen_range(0..512))
                .map(|_| match rng.gen_range(0..10) {
                    0 => '\n',
                    1 => TOML_SIGNIFICANT[rng.gen_range(0..TOML_SIGNIFICANT.len())] as char,
                    _ => rng.gen_range(0x20u8..0x7f) as char,
                })
                .collect();
            check(Path::new("random.toml"), &text);
            continue;
        }
        let (path, original) = &files[rng.gen_range(0..files.len())];
        let mut bytes = original.clone();
        for _ in 0..rng.gen_range(1..=4) {
            mutate(&mut rng, &mut bytes);
        }
        check(path, &String::from_utf8_lossy(&bytes));
    }
}
